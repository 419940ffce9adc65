//! The receiving side: one chat socket per room — join, keep alive, decode, relay, reconnect.

use std::sync::Arc;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use tokio::time::{Instant, interval_at, sleep};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::{COOKIE, ORIGIN, USER_AGENT};
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tracing::{debug, error, info};

use super::history;
use super::wire::{self, Frame, HEARTBEAT, Item, Join};
use super::{ORIGIN as SITE, Shared};
use crate::adapters::supervise::{Attempt, Ended, Until, supervise};
use crate::adapters::{AccountState, AdapterContext, SendFailure};
use crate::model::{Cursor, RoomAddr, RoomId};
use crate::stats::Metric;

use crate::adapters::WsStream as Socket;

/// A room's receiver, for as long as the room is the account's. A plain function around an `async move` block:
/// an `async fn` keeps a second copy of its arguments (the context is 224 bytes) in its state.
#[allow(clippy::manual_async_fn, reason = "an async fn would keep its arguments twice in every room's task")]
pub(super) fn follow_room(
    shared: Arc<Shared>,
    ctx: AdapterContext,
    room: RoomId,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        let Some(super::config::MissevanRoom(room_id)) = super::config::MissevanRoom::parse(room.as_str()) else {
            error!(account = %ctx.account, room = %room, "Not a Missevan room id.");
            return;
        };
        let (shared, ctx, room) = (&shared, &ctx, &room);
        // A room's task is allocated at the size of its largest state, for as long as the room runs; an account
        // may hold thousands. The handshake (TLS, HTTP: 12 KB of state) and the gap fill (an HTTP request) run
        // once per connection, and relaying once per message, so each is boxed only while it runs: an idle room's
        // task is the size of the socket loop (docs/performance.md, "Memory per room").
        supervise(ctx, &shared.stop, Some(room), Until::StopReceiving, |attempt| async move {
            // Bound before the call: a `match` on the handshake would keep its result (1.4 KB) for the whole call.
            let socket = match Box::pin(connect(shared, room_id)).await {
                Ok(socket) => socket,
                Err(ended) => return ended,
            };
            // Split here, not in `listen`: an argument stays in the task's state for as long as the call runs.
            listen(shared, ctx, room, room_id, socket.split(), &attempt).await
        })
        .await;
    }
}

/// Opens the socket with the session cookie; a refused session is refreshed once.
async fn connect(shared: &Shared, room_id: u64) -> Result<Socket, Ended> {
    let mut url = shared.config.ws_url.clone();
    url.query_pairs_mut().append_pair("room_id", &room_id.to_string());
    for refreshed in [false, true] {
        let cookies = shared.session.cookies().await.map_err(from_failure)?;
        let mut request = url.as_str().into_client_request().map_err(|e| Ended::Lost(e.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(COOKIE, cookies.header.clone());
        headers.insert(ORIGIN, SITE.parse().expect("a valid header value"));
        headers
            .insert(USER_AGENT, concat!("Mozilla/5.0 chatbridge/", env!("CARGO_PKG_VERSION")).parse().expect("valid"));
        let handshake = tokio::time::timeout(
            shared.config.request_timeout,
            crate::adapters::connect_ws(request, crate::adapters::WS_ROOM_READ_BUFFER),
        )
        .await;
        match handshake {
            Err(_) => return Err(Ended::Lost("the handshake timed out".into())),
            Ok(Ok((socket, _))) => return Ok(socket),
            Ok(Err(tungstenite::Error::Http(response)))
                if matches!(response.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) =>
            {
                if refreshed {
                    return Err(Ended::Fatal(format!(
                        "the chat socket refused a fresh session ({}): the login token is no longer accepted",
                        response.status()
                    )));
                }
                debug!(status = %response.status(), "Socket refused the session; refreshing it.");
                shared.session.refresh(cookies.generation).await.map_err(from_failure)?;
            }
            Ok(Err(e)) => return Err(Ended::Lost(e.to_string())),
        }
    }
    unreachable!("the second attempt returns")
}

fn from_failure(failure: SendFailure) -> Ended {
    match failure {
        SendFailure::Fatal { reason } => Ended::Fatal(reason),
        other => Ended::Lost(other.to_string()),
    }
}

async fn listen(
    shared: &Shared,
    ctx: &AdapterContext,
    room: &RoomId,
    room_id: u64,
    (mut sink, mut stream): (SplitSink<Socket, WsMessage>, SplitStream<Socket>),
    attempt: &Attempt,
) -> Ended {
    let uuid = uuid::Uuid::new_v4().to_string();
    let join =
        Join { action: "join", uuid: &uuid, kind: "room", room_id, reconnect: attempt.is_reconnect().then_some(1) };
    let join = serde_json::to_string(&join).expect("the join frame serialises");
    if let Err(e) = sink.send(WsMessage::text(join)).await {
        return Ended::Lost(e.to_string());
    }
    let config = &shared.config;
    let mut heartbeat = interval_at(Instant::now() + config.heartbeat, config.heartbeat);
    let idle = sleep(config.idle_timeout);
    // The join must be acknowledged within a request's time (the site gives IM requests 5 s).
    let join_deadline = sleep(config.request_timeout);
    tokio::pin!(idle, join_deadline);
    let addr = ctx.room_addr(room);
    let mut joined = false;
    let mut foreign = 0u64;
    loop {
        let frame = tokio::select! {
            _ = ctx.stop_receiving.cancelled() => {
                let _ = sink.send(WsMessage::Close(None)).await;
                return Ended::Stopped;
            }
            _ = shared.stop.stopped() => return Ended::Stopped,
            _ = heartbeat.tick() => {
                if let Err(e) = sink.send(WsMessage::text(HEARTBEAT)).await {
                    return Ended::Lost(e.to_string());
                }
                continue;
            }
            _ = &mut idle => return Ended::Lost(format!("no frame for {:?}", config.idle_timeout)),
            _ = &mut join_deadline, if !joined => return Ended::Lost("the join was not acknowledged".into()),
            frame = stream.next() => frame,
        };
        idle.as_mut().reset(Instant::now() + config.idle_timeout);
        let decoded = match frame {
            None => return Ended::Lost("the server closed the socket".into()),
            Some(Err(e)) => return Ended::Lost(e.to_string()),
            Some(Ok(WsMessage::Text(text))) => wire::decode_text(&text),
            Some(Ok(WsMessage::Binary(bytes))) => wire::decode_binary(&bytes),
            Some(Ok(WsMessage::Close(frame))) => {
                return Ended::Lost(format!("the server closed the socket: {frame:?}"));
            }
            Some(Ok(_)) => continue,
        };
        let items = match decoded {
            Ok(Frame::Heartbeat) => continue,
            Ok(Frame::Items(items)) => items,
            Err(e) => {
                ctx.stats.count_account(Metric::Malformed, &ctx.account);
                crate::warn_throttled!(format!("malformed frame {}", ctx.account); account = %ctx.account, room = %room, error = %e, "Malformed frame skipped.");
                continue;
            }
        };
        for raw in items {
            // Boxed: an item is 528 bytes, held across the awaits below in every idle room's task otherwise.
            let item: Box<Item> = match serde_json::from_str(raw.get()) {
                Ok(item) => item,
                Err(e) => {
                    ctx.stats.count_account(Metric::Malformed, &ctx.account);
                    crate::warn_throttled!(format!("malformed item {}", ctx.account); account = %ctx.account, room = %room, error = %e, "Malformed item skipped.");
                    continue;
                }
            };
            if item.is_join_ack() && item.uuid.as_deref() == Some(uuid.as_str()) {
                if item.code != Some(0) {
                    return Ended::RoomRefused(format!(
                        "{} (code {})",
                        item.info_text(),
                        item.code.unwrap_or_default()
                    ));
                }
                joined = true;
                attempt.connected();
                info!(account = %ctx.account, room = %room, "Joined.");
                ctx.set_state(AccountState::Connected).await;
                // What was said while away goes first; live frames wait in the socket meanwhile.
                if !Box::pin(gap_fill(shared, ctx, room, room_id, &addr)).await {
                    return Ended::Stopped;
                }
                continue;
            }
            if item.room_id.is_some_and(|r| r != room_id) {
                foreign += 1;
                debug!(account = %ctx.account, room = %room, kind = %item.name(), foreign, "Item of another room skipped.");
                continue;
            }
            if joined && !Box::pin(relay(shared, ctx, &addr, &item, raw.get(), false)).await {
                return Ended::Stopped;
            }
        }
    }
}

/// Relays what the room said since its cursor (the `create_time` of the last message read), from the
/// history API; false when the router is gone. Without a cursor (the room was never read) there is no gap.
async fn gap_fill(shared: &Shared, ctx: &AdapterContext, room: &RoomId, room_id: u64, addr: &RoomAddr) -> bool {
    let Some(cursor) = ctx.cursors.get(room).and_then(|c| c.parse::<i64>()) else { return true };
    let Some((items, malformed)) = ctx.read_history(room, || history::fetch(shared, room_id)).await else {
        return true;
    };
    for _ in 0..malformed {
        ctx.stats.count_account(Metric::Malformed, &ctx.account);
    }
    // The last message read has the cursor's time too: the router knows it and drops it.
    let missed: Vec<_> =
        items.into_iter().filter(|(item, _)| item.create_time.or(item.time).is_some_and(|t| t >= cursor)).collect();
    // What others said, counted: the bridge's own copies and the message the cursor names are not relayed again.
    let own_user = shared.session.user_id().await;
    let theirs = missed
        .iter()
        .skip(1)
        .filter(|(item, _)| {
            let own_message = item.msg_id.as_deref().is_some_and(|id| shared.was_delivered(id));
            let by_us = item.user.as_ref().is_some_and(|u| own_user.is_some_and(|own| u.user_id == Some(own)));
            !own_message && !by_us
        })
        .count();
    for (item, raw) in &missed {
        if !relay(shared, ctx, addr, item, raw, true).await {
            return false;
        }
    }
    if theirs > 0 {
        info!(account = %ctx.account, room = %room, messages = theirs, read = missed.len(), "Gap filling: relayed what was said while disconnected.");
    }
    true
}

/// Hands an item's events to the router, marking our own and advancing the room's cursor; false when the
/// router is gone.
async fn relay(shared: &Shared, ctx: &AdapterContext, addr: &RoomAddr, item: &Item, raw: &str, replayed: bool) -> bool {
    let own_user = shared.session.user_id().await;
    let own_message = item.msg_id.as_deref().is_some_and(|id| shared.was_delivered(id));
    let time = item.create_time.or(item.time);
    let cursor = time.and_then(|t| {
        let current = ctx.cursors.get(&addr.room).and_then(|c| c.parse::<i64>());
        (current.is_none_or(|c| t >= c)).then(|| {
            let cursor = Cursor::new(t.to_string());
            ctx.cursors.set(&addr.room, cursor.clone());
            cursor
        })
    });
    // The audience, every couple of minutes: for the status page, not relayed.
    if let Some(online) = wire::online(item) {
        ctx.stats.room(addr).set_online(online);
        return true;
    }
    for mut event in wire::to_events(item, addr, raw) {
        if let Some(sender) = &mut event.sender {
            let by_us = own_user.is_some_and(|id| sender.id.as_str() == id.to_string());
            sender.is_self = by_us || own_message;
        }
        event.origin.cursor = cursor.clone();
        event.origin.replayed = replayed;
        if !ctx.emit(event).await {
            return false;
        }
    }
    true
}
