//! The receiving side: a long-poll loop for one room.

use std::sync::Arc;

use reqwest::StatusCode;
use tracing::{debug, info, warn};

use super::Shared;
use super::wire::{FishMessage, content_of, parse_poll};
use crate::adapters::retry::describe;
use crate::adapters::supervise::{Attempt, Ended, Until, supervise};
use crate::adapters::{AccountState, AdapterContext};
use crate::model::{Event, EventKind, Message, RoomId, User};
use crate::stats::Metric;

/// How one poll ended.
enum Polled {
    Messages(Vec<Result<FishMessage, String>>),
    /// The body was not the expected JSON.
    Malformed(String),
    Transient(String),
    RoomBroken(String),
    Fatal(String),
}

pub(super) async fn poll_room(shared: Arc<Shared>, ctx: AdapterContext, room: RoomId) {
    let (shared, ctx, room) = (&shared, &ctx, &room);
    supervise(ctx, &shared.stop, Some(room), Until::StopReceiving, |attempt| async move {
        // A long-poll answers only when a message comes or 10 s pass: the status route tells at once that the
        // server is up; the first poll then checks the token.
        tokio::select! {
            _ = ctx.stop_receiving.cancelled() => return Ended::Stopped,
            _ = shared.stop.stopped() => return Ended::Stopped,
            probed = probe(shared) => {
                if let Err(reason) = probed {
                    return Ended::Lost(reason);
                }
            }
        }
        attempt.connected();
        info!(account = %ctx.account, room = %room, "Connected.");
        ctx.set_state(AccountState::Connected).await;
        poll(shared, ctx, room, &attempt).await
    })
    .await;
}

/// Polls until the connection is lost or receiving stops.
async fn poll(shared: &Arc<Shared>, ctx: &AdapterContext, room: &RoomId, attempt: &Attempt) -> Ended {
    loop {
        let mut polling = Box::pin(poll_once(Arc::clone(shared), room.clone()));
        // A stop waits for this poll, and for what it brings to be handed over: what the server hands it is gone
        // from the server's queue.
        let _reading = ctx.stats.reads.begin();
        let mut last = false;
        let polled = tokio::select! {
            _ = shared.stop.stopped() => return Ended::Stopped,
            polled = &mut polling => polled,
            _ = ctx.stop_receiving.cancelled() => {
                // The server takes messages off its queue when it answers a poll: one in flight is let finish,
                // and what it brings is handed over, not dropped — until the session closes, when the poll
                // goes on alone and what it brings is handed over if anything still takes it, else counted.
                last = true;
                tokio::select! {
                    polled = &mut polling => polled,
                    _ = ctx.closed.cancelled() => {
                        let outliving = outlive(Arc::clone(shared), ctx.clone(), room.clone(), polling);
                        tokio::spawn(tracing::Instrument::in_current_span(outliving));
                        return Ended::Stopped;
                    }
                }
            }
        };
        match polled {
            Polled::Messages(items) => {
                attempt.connected();
                for item in items {
                    if !relay(shared, ctx, room, item).await {
                        return Ended::Stopped;
                    }
                }
                if last {
                    return Ended::Stopped;
                }
            }
            _ if last => return Ended::Stopped,
            Polled::Malformed(reason) => {
                ctx.stats.count_account(Metric::Malformed, &ctx.account);
                let delay = attempt.next_delay();
                crate::warn_throttled!(format!("malformed poll {}", ctx.account); account = %ctx.account, room = %room, reason = %reason, "Malformed poll answer skipped; polling again in {delay:.1?}.");
                // As after a failure: a server answering nonsense at once is not polled in a loop.
                tokio::select! {
                    _ = ctx.stop_receiving.cancelled() => return Ended::Stopped,
                    _ = shared.stop.stopped() => return Ended::Stopped,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Polled::Transient(reason) => {
                warn!(account = %ctx.account, room = %room, reason = %reason, "Connection lost.");
                return Ended::Lost(reason);
            }
            Polled::RoomBroken(reason) => return Ended::RoomRefused(reason),
            Polled::Fatal(reason) => return Ended::Fatal(reason),
        }
    }
}

/// `GET /api/status`: Fishroom answers 418 "I'm a TUNA" when it is up.
async fn probe(shared: &Shared) -> Result<(), String> {
    let response = shared.http.get(shared.api("status")).send().await.map_err(describe)?;
    match response.status() {
        s if s == StatusCode::IM_A_TEAPOT || s.is_success() => Ok(()),
        other => Err(format!("the status route answered {other}")),
    }
}

/// A poll still in flight when its session closed: what it brings is relayed if the router still takes it (a
/// session replaced by a reload: the same router), else counted as lost and said.
async fn outlive(shared: Arc<Shared>, ctx: AdapterContext, room: RoomId, polling: impl Future<Output = Polled>) {
    debug!(account = %ctx.account, room = %room, "The session closed with a poll in flight: it is let finish.");
    let Polled::Messages(items) = polling.await else { return };
    let mut lost = 0;
    let total = items.len();
    for item in items {
        if lost > 0 || !relay(&shared, &ctx, &room, item).await {
            lost += 1;
        }
    }
    if lost > 0 {
        ctx.stats.lost_after_close.add(lost as u64);
        warn!(account = %ctx.account, room = %room, lost, total, "A poll answered after its session closed; what nothing took in any more is lost.");
    }
}

async fn poll_once(shared: Arc<Shared>, room: RoomId) -> Polled {
    let request =
        shared.http.get(shared.api("messages")).headers(shared.auth.clone()).query(&[("room", room.as_str())]);
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Polled::Transient(describe(e)),
    };
    let status = response.status();
    let body = match crate::adapters::retry::read_body(response, super::MAX_ANSWER).await {
        Ok(body) => body,
        Err(e) => return Polled::Transient(e),
    };
    match status {
        StatusCode::OK => match parse_poll(&body) {
            Ok(messages) => Polled::Messages(messages),
            Err(e) => Polled::Malformed(e),
        },
        StatusCode::FORBIDDEN => Polled::Fatal("the server refused the token (403 Invalid Token)".to_owned()),
        StatusCode::NOT_FOUND => Polled::RoomBroken(format!("the server has no public room `{room}` (404)")),
        other => Polled::Transient(format!("the server answered {other}")),
    }
}

/// Turns one feed item into an event for the router; false when the router is gone.
async fn relay(shared: &Shared, ctx: &AdapterContext, room: &RoomId, item: Result<FishMessage, String>) -> bool {
    let message = match item {
        Ok(message) => message,
        Err(e) => {
            ctx.stats.count_account(Metric::Malformed, &ctx.account);
            crate::warn_throttled!(format!("malformed message {}", ctx.account); account = %ctx.account, room = %room, error = %e, "Malformed message skipped.");
            return true;
        }
    };
    if message.room.as_deref().is_some_and(|r| r != room.as_str()) {
        debug!(account = %ctx.account, room = %room, "Message of another room skipped.");
        return true;
    }
    let text = message.content.clone().unwrap_or_default();
    let own = shared.is_own_echo(message.channel.as_deref(), message.sender.as_deref(), &text);
    let name = message.sender.clone().unwrap_or_default();
    let mut sender = User::new(name.as_str(), name.as_str());
    sender.is_self = own;
    let kind = match message.mtype.as_deref() {
        Some("event") => EventKind::Notice { text },
        _ => EventKind::Message(Message { content: content_of(&message), ..Message::default() }),
    };
    ctx.emit(Event::new(ctx.room_addr(room), None, Some(sender), kind)).await
}
