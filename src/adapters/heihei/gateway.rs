//! The receiving side: the channel socket (`?token=`, pinged every few seconds) and, per room, the
//! follower of the host's current broadcast.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, interval_at, sleep};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tracing::{debug, info, warn};

use super::config::HeiheiRoom;
use super::wire::{self, Mapped};
use super::{Live, Shared};
use crate::adapters::retry::describe;
use crate::adapters::supervise::{Ended, Until, supervise};
use crate::adapters::{AccountState, AdapterContext};
use crate::model::{Event, EventKind, Message, RemoteId, RoomAddr, RoomId};
use crate::stats::Metric;

/// Pings that may go unanswered before the socket counts as dead.
const MAX_UNANSWERED: u32 = 3;

/// The text of an error with the token taken out (it travels in the socket URL's query).
fn redact(shared: &Shared, text: String) -> String {
    text.replace(shared.config.token.expose(), "***")
}

pub(super) async fn channel(shared: Arc<Shared>, ctx: AdapterContext) {
    let mut url = shared.endpoints.channel.clone();
    url.query_pairs_mut().append_pair("token", shared.config.token.expose());
    let (shared, ctx, url) = (&shared, &ctx, &url);
    supervise(ctx, &shared.stop, None, Until::StopReceiving, |attempt| async move {
        match tokio::time::timeout(
            shared.config.request_timeout,
            crate::adapters::connect_ws(url.as_str(), crate::adapters::WS_READ_BUFFER),
        )
        .await
        {
            Ok(Ok((socket, _))) => {
                attempt.connected();
                info!(account = %ctx.account, "Channel connected.");
                ctx.set_state(AccountState::Connected).await;
                listen(shared, ctx, socket).await
            }
            Ok(Err(e)) => Ended::Lost(redact(shared, e.to_string())),
            Err(_) => Ended::Lost("the handshake timed out".to_owned()),
        }
    })
    .await;
}

use crate::adapters::WsStream as Socket;

/// Relays until the socket dies or receiving stops.
async fn listen(shared: &Shared, ctx: &AdapterContext, socket: Socket) -> Ended {
    let (mut sink, mut stream) = socket.split();
    let period = shared.config.ping_interval;
    let mut ping = interval_at(Instant::now() + period, period);
    let mut unanswered = 0u32;
    loop {
        let frame = tokio::select! {
            _ = ctx.stop_receiving.cancelled() => {
                let _ = sink.send(WsMessage::Close(None)).await;
                return Ended::Stopped;
            }
            _ = shared.stop.stopped() => return Ended::Stopped,
            _ = ping.tick() => {
                if unanswered >= MAX_UNANSWERED {
                    return Ended::Lost(format!("{MAX_UNANSWERED} pings unanswered"));
                }
                unanswered += 1;
                if let Err(e) = sink.send(WsMessage::Ping("ping".into())).await {
                    return Ended::Lost(redact(shared, e.to_string()));
                }
                continue;
            }
            frame = stream.next() => frame,
        };
        let text = match frame {
            None => return Ended::Lost("the server closed the socket".into()),
            Some(Err(e)) => return Ended::Lost(redact(shared, e.to_string())),
            Some(Ok(WsMessage::Pong(_))) => {
                unanswered = 0;
                continue;
            }
            Some(Ok(WsMessage::Text(text))) => text,
            Some(Ok(WsMessage::Close(_))) => return Ended::Lost("the server closed the socket".into()),
            Some(Ok(_)) => continue,
        };
        let items = match wire::decode_frame(&text) {
            Ok(items) => items,
            Err(e) => {
                ctx.stats.count_account(Metric::Malformed, &ctx.account);
                crate::warn_throttled!(format!("malformed frame {}", ctx.account); account = %ctx.account, error = %e, "Malformed frame skipped.");
                continue;
            }
        };
        for item in items {
            match item {
                Ok(item) => {
                    if !dispatch(shared, ctx, &item).await {
                        return Ended::Stopped;
                    }
                }
                Err(e) => {
                    ctx.stats.count_account(Metric::Malformed, &ctx.account);
                    crate::warn_throttled!(format!("malformed item {}", ctx.account); account = %ctx.account, error = %e, "Malformed item skipped; the rest of the frame is kept.");
                }
            }
        }
    }
}

/// Routes one item to its configured room; false when the router is gone.
async fn dispatch(shared: &Shared, ctx: &AdapterContext, item: &wire::Inbound) -> bool {
    match wire::map(item, &shared.gifts) {
        Mapped::Room { room_id, live_id, msg_id, mut sender, kind } => {
            let Some((room, live)) = shared.room_of(room_id, live_id) else {
                debug!(account = %ctx.account, ?room_id, ?live_id, "Item of a room we do not follow skipped.");
                return true;
            };
            if let (Some(user), EventKind::Message(Message { content, .. })) = (&mut sender, &kind) {
                let from = user.id.as_str().parse().ok();
                user.is_self = shared.is_own(live.room_id, from, &content.to_plain_text());
            }
            let event = Event::new(ctx.room_addr(&room), msg_id.map(RemoteId::new), sender, kind);
            ctx.emit(event).await
        }
        Mapped::StopLive { room_id, live_id } => {
            if let Some((room, _)) = shared.room_of(room_id, live_id)
                && let Some(current) = shared.lives().get(&room)
            {
                current.send_replace(None);
            }
            true
        }
        Mapped::Im { from, msg_id, mut sender, content, time } => {
            sender.is_self = shared.config.user_id == Some(from);
            let addr = RoomAddr::new(ctx.account.clone(), RoomId::new(format!("im/{from}")));
            let kind = EventKind::Message(Message { content, private: true, ..Message::default() });
            let mut event = Event::new(addr, msg_id.map(RemoteId::new), Some(sender), kind);
            if let Some(time) = time {
                event.time = time;
            }
            ctx.emit(event).await
        }
    }
}

/// Keeps `room`'s current broadcast up to date: find it, join it, wait for its end, quit it, repeat.
pub(super) async fn follow(shared: Arc<Shared>, ctx: AdapterContext, room: RoomId) {
    let followed = match HeiheiRoom::parse(room.as_str()) {
        Some(followed @ (HeiheiRoom::Host(_) | HeiheiRoom::Live(_))) => followed,
        _ => return,
    };
    let mut backoff = ctx.backoff.clone();
    let mut was_on_air = None::<bool>;
    let Some(current) = shared.lives().get(&room).cloned() else { return };
    let current = &current;
    loop {
        let found = match &followed {
            HeiheiRoom::Host(user) => find_live(&shared, *user).await,
            HeiheiRoom::Live(live) => on_air(&shared, *live).await,
            // Never followed (`im/` rooms are private messages).
            HeiheiRoom::Im(_) => return,
        };
        let joined = match found {
            Ok(Some(live_id)) => join(&shared, live_id).await,
            Ok(None) => Ok(None),
            Err(reason) => Err(reason),
        };
        match joined {
            Ok(Some(live)) => {
                backoff.connected();
                info!(account = %ctx.account, room = %room, live = live.live_id, "On air: following the broadcast.");
                was_on_air = Some(true);
                current.send_replace(Some(live));
                let mut changes = current.subscribe();
                tokio::select! {
                    _ = ctx.closed.cancelled() => return,
                    _ = shared.stop.stopped() => return,
                    _ = changes.wait_for(|now| *now != Some(live)) => {}
                }
                info!(account = %ctx.account, room = %room, live = live.live_id, "The broadcast ended.");
                quit(&shared, live.live_id).await;
                if matches!(followed, HeiheiRoom::Live(_)) {
                    return;
                }
            }
            Ok(None) => {
                if matches!(followed, HeiheiRoom::Live(_)) {
                    info!(account = %ctx.account, room = %room, "The broadcast has ended; nothing more to follow.");
                    return;
                }
                if was_on_air != Some(false) {
                    info!(account = %ctx.account, room = %room, "The host is off air; waiting for the next broadcast.");
                    was_on_air = Some(false);
                }
            }
            Err(reason) => {
                warn!(account = %ctx.account, room = %room, reason = %reason, "Could not look up the broadcast.")
            }
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = ctx.closed.cancelled() => return,
            _ = shared.stop.stopped() => return,
            _ = sleep(delay) => {}
        }
    }
}

async fn call(shared: &Shared, url: &str, form: &[(&str, &str)]) -> Result<wire::Answer, String> {
    let response = shared.http.post(url).form(form).send().await.map_err(describe)?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("answered {status}"));
    }
    crate::adapters::retry::read_json(response, super::MAX_ANSWER).await
}

/// The host's broadcast that is on air (status 1), if any.
async fn find_live(shared: &Shared, user: u64) -> Result<Option<u64>, String> {
    let user = user.to_string();
    let form = [("token", shared.config.token.expose()), ("userId", user.as_str()), ("limit", "20")];
    let answer = call(shared, &shared.endpoints.list_live_by_user, &form).await?;
    if answer.errorcode != 0 {
        return Err(format!("list-live-by-user: {} ({})", answer.errormsg, answer.errorcode));
    }
    Ok(answer.lives.iter().find(|l| l.status == Some(1)).and_then(|l| l.live_id))
}

/// The broadcast, if it is still on air (`get-live`: status 1; 731 when it is gone).
async fn on_air(shared: &Shared, live_id: u64) -> Result<Option<u64>, String> {
    let id = live_id.to_string();
    let form = [("token", shared.config.token.expose()), ("liveId", id.as_str())];
    let answer = call(shared, &shared.endpoints.get_live, &form).await?;
    match answer.errorcode {
        0 => Ok(answer.live.filter(|l| l.status == Some(1)).map(|_| live_id)),
        731 => Ok(None),
        code => Err(format!("get-live: {} ({code})", answer.errormsg)),
    }
}

/// Joins a broadcast; `None` when it is no longer live (731).
async fn join(shared: &Shared, live_id: u64) -> Result<Option<Live>, String> {
    let id = live_id.to_string();
    let form = [("token", shared.config.token.expose()), ("liveId", id.as_str())];
    let answer = call(shared, &shared.endpoints.join_live, &form).await?;
    match answer.errorcode {
        0 => {
            let room_id = answer.live.and_then(|l| l.room_id).unwrap_or(live_id);
            Ok(Some(Live { live_id, room_id }))
        }
        731 | 725 => Ok(None),
        code => Err(format!("join-live: {} ({code})", answer.errormsg)),
    }
}

async fn quit(shared: &Shared, live_id: u64) {
    let id = live_id.to_string();
    let form = [("token", shared.config.token.expose()), ("liveId", id.as_str())];
    if let Err(e) = call(shared, &shared.endpoints.quit_live, &form).await {
        debug!(live = live_id, error = %e, "quit-live failed; the broadcast is over anyway.");
    }
}

/// Reads the gift list once, so that IM gifts (which carry only an id) arrive named. Where there is none, or it
/// fails, names come from the live gifts seen.
pub(super) async fn learn_gifts(shared: Arc<Shared>, account: crate::model::AccountId) {
    let Some(url) = shared.endpoints.gift_info.clone() else { return };
    let form = [("token", shared.config.token.expose())];
    let read = async {
        let response = shared.http.post(&url).form(&form).send().await.map_err(describe)?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        crate::adapters::retry::read_json::<super::gifts::GiftList>(response, super::MAX_ANSWER).await
    };
    let answer = tokio::select! {
        answer = tokio::time::timeout(shared.config.request_timeout, read) => answer,
        _ = shared.stop.stopped() => return,
    };
    match answer {
        Ok(Ok(list)) if list.errorcode == 0 => {
            let learned = shared.gifts.learn_list(&list);
            debug!(account = %account, gifts = learned, "Gift names read.");
        }
        Ok(Ok(list)) => {
            info!(account = %account, error = %list.errormsg, code = list.errorcode, "The gift list was refused; gifts are named as live rooms name them.")
        }
        Ok(Err(e)) => {
            info!(account = %account, error = %redact(&shared, e), "The gift list could not be read; gifts are named as live rooms name them.")
        }
        Err(_) => info!(account = %account, "The gift list timed out; gifts are named as live rooms name them."),
    }
}
