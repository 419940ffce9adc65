//! The receiving side: the websocket — login, heartbeats, pushes, edits, recalls and streamed messages.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, interval, interval_at, sleep};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tracing::{debug, info};

use super::proto::PushMessage;
use super::wire::{self, Frame};
use super::{Shared, Streaming};
use crate::adapters::supervise::{Attempt, Ended, Until, supervise};
use crate::adapters::{AccountState, AdapterContext};
use crate::model::{Cursor, Event, RemoteId, RoomId};
use crate::stats::Metric;

pub(super) async fn socket(shared: Arc<Shared>, ctx: AdapterContext) {
    let (shared, ctx) = (&shared, &ctx);
    supervise(ctx, &shared.stop, None, Until::StopReceiving, |attempt| async move {
        let connecting = crate::adapters::connect_ws(shared.config.ws_url.as_str(), crate::adapters::WS_READ_BUFFER);
        match tokio::time::timeout(shared.config.request_timeout, connecting).await {
            Ok(Ok((socket, _))) => listen(shared, ctx, socket, &attempt).await,
            Ok(Err(e)) => Ended::Lost(e.to_string()),
            Err(_) => Ended::Lost("the handshake timed out".into()),
        }
    })
    .await;
}

use crate::adapters::WsStream as Socket;

async fn listen(shared: &Shared, ctx: &AdapterContext, socket: Socket, attempt: &Attempt) -> Ended {
    let config = &shared.config;
    let (mut sink, mut stream) = socket.split();
    let mut seq = 0u64;
    let mut next_seq = || {
        seq += 1;
        format!("cb{seq}")
    };
    let login = wire::login(&next_seq(), &shared.user_id, config.token.expose(), &config.platform, &config.device_id);
    // No acknowledgement comes for the login: the first heartbeat's answer says it worked.
    for frame in [login, wire::heartbeat(&next_seq())] {
        if let Err(e) = sink.send(WsMessage::text(frame)).await {
            return Ended::Lost(e.to_string());
        }
    }
    let mut heartbeat = interval_at(Instant::now() + config.heartbeat, config.heartbeat);
    let mut settle = interval(config.stream_settle / 4);
    let idle = sleep(config.idle_timeout);
    tokio::pin!(idle);
    let mut connected = false;
    // Where each chat stood when this connection began: gap filling starts there.
    let resume: Vec<(RoomId, Cursor)> =
        shared.chats().iter().filter_map(|c| Some((c.room.clone(), ctx.cursors.get(&c.room)?))).collect();
    let mut early = Vec::new();
    loop {
        let frame = tokio::select! {
            _ = ctx.stop_receiving.cancelled() => {
                let _ = sink.send(WsMessage::Close(None)).await;
                return Ended::Stopped;
            }
            _ = shared.stop.stopped() => return Ended::Stopped,
            _ = heartbeat.tick() => {
                if let Err(e) = sink.send(WsMessage::text(wire::heartbeat(&next_seq()))).await {
                    return Ended::Lost(e.to_string());
                }
                continue;
            }
            _ = settle.tick() => {
                if !flush_streams(shared, ctx, false).await {
                    return Ended::Stopped;
                }
                continue;
            }
            _ = &mut idle => return Ended::Lost(format!("no frame for {:?}", config.idle_timeout)),
            frame = stream.next() => frame,
        };
        idle.as_mut().reset(Instant::now() + config.idle_timeout);
        let decoded = match frame {
            None => return Ended::Lost("the server closed the socket".into()),
            Some(Err(e)) => return Ended::Lost(e.to_string()),
            Some(Ok(WsMessage::Binary(bytes))) => wire::decode(&bytes),
            Some(Ok(WsMessage::Text(text))) => {
                if !connected && text.contains("数据不合法") {
                    return Ended::Fatal("Yunhu refused the login (数据不合法: check the token and user id)".into());
                }
                debug!(account = %ctx.account, "Text frame ignored.");
                continue;
            }
            Some(Ok(WsMessage::Close(_))) => return Ended::Lost("the server closed the socket".into()),
            Some(Ok(_)) => continue,
        };
        let frame = match decoded {
            Ok(frame) => frame,
            Err(e) => {
                ctx.stats.count_account(Metric::Malformed, &ctx.account);
                crate::warn_throttled!(format!("malformed frame {}", ctx.account); account = %ctx.account, error = %e, "Malformed frame skipped.");
                continue;
            }
        };
        let relayed = match frame {
            Frame::HeartbeatAck if !connected => {
                connected = true;
                attempt.connected();
                info!(account = %ctx.account, "Connected.");
                ctx.set_state(AccountState::Connected).await;
                // What was said while away goes first, from where the chats stood when this connection
                // began; then what came on the socket meanwhile.
                let mut relayed = gap_fill(shared, ctx, &resume).await;
                for frame in early.drain(..) {
                    relayed = relayed && handle(shared, ctx, frame).await;
                }
                relayed
            }
            Frame::HeartbeatAck => true,
            // Held until the gap is filled, so the order holds.
            frame if !connected => {
                early.push(frame);
                true
            }
            frame => handle(shared, ctx, frame).await,
        };
        if !relayed {
            return Ended::Stopped;
        }
    }
}

/// Relays one frame (or holds a bot's message that may be streamed); false when the router is gone.
async fn handle(shared: &Shared, ctx: &AdapterContext, frame: Frame) -> bool {
    match frame {
        Frame::HeartbeatAck => true,
        Frame::Push(push) if is_bot(&push) && push.delete_timestamp == 0 => {
            // A bot's message may be the first part of a stream: collected until it settles.
            let mut streams = shared.streams.lock().expect("never poisoned");
            streams.insert(push.msg_id.clone(), Streaming { push, last: Instant::now() });
            true
        }
        Frame::Push(push) => relay(shared, ctx, &push, false, false).await,
        Frame::Edit(push) => relay(shared, ctx, &push, true, false).await,
        Frame::Stream(part) => {
            let mut streams = shared.streams.lock().expect("never poisoned");
            if let Some(streaming) = streams.get_mut(&part.msg_id) {
                let content = streaming.push.content.get_or_insert_with(Default::default);
                content.text.push_str(&part.content);
                streaming.last = Instant::now();
            }
            true
        }
        Frame::Other { cmd } => {
            // Not chat content (drafts, boards, calls…), but nothing goes uncounted.
            match ctx.stats.unknown_kinds.count("yunhu", &cmd) {
                Some(kind) => {
                    info!(account = %ctx.account, kind = %kind, "A kind of frame this bridge does not carry: not relayed, counted in /metrics (chatbridge_events_unknown_kind_total); said once per kind.")
                }
                None => debug!(account = %ctx.account, cmd = %cmd, "Unsupported command: not relayed."),
            }
            true
        }
    }
}

fn is_bot(push: &PushMessage) -> bool {
    push.sender.as_ref().is_some_and(|s| s.chat_type == 3)
}

/// Relays the streamed messages no part has come for within the settle time (all of them with `all`).
async fn flush_streams(shared: &Shared, ctx: &AdapterContext, all: bool) -> bool {
    let settled: Vec<PushMessage> = {
        let mut streams = shared.streams.lock().expect("never poisoned");
        let done: Vec<String> = streams
            .iter()
            .filter(|(_, s)| all || s.last.elapsed() >= shared.config.stream_settle)
            .map(|(id, _)| id.clone())
            .collect();
        done.into_iter().filter_map(|id| streams.remove(&id)).map(|s| s.push).collect()
    };
    for push in settled {
        if !relay(shared, ctx, &push, false, false).await {
            return false;
        }
    }
    true
}

/// The configured room a push belongs to: groups and bots by chat id; a user chat by the other person.
fn room_of(shared: &Shared, push: &PushMessage) -> Option<RoomId> {
    let sender = push.sender.as_ref().map_or("", |s| s.chat_id.as_str());
    let chats = shared.chats();
    let chat = chats.iter().find(|chat| match (chat.kind, push.chat_type) {
        (1, 1) => {
            let other = if sender == shared.user_id { push.recv_id.as_str() } else { sender };
            chat.id == other
        }
        (kind, chat_type) => kind == chat_type && chat.id == push.chat_id,
    })?;
    Some(chat.room.clone())
}

/// Relays what each chat said since its cursor (the `msg_seq` of the last message read); false when the
/// router is gone. A chat never read has no gap.
async fn gap_fill(shared: &Shared, ctx: &AdapterContext, resume: &[(RoomId, Cursor)]) -> bool {
    for chat in shared.chats().iter() {
        let Some(from) = resume.iter().find(|(room, _)| room == &chat.room).and_then(|(_, c)| c.parse::<u64>()) else {
            continue;
        };
        let Some(pushes) = ctx.read_history(&chat.room, || super::history::since(shared, chat, from)).await else {
            continue;
        };
        // The first is the message the cursor names: the router knows it and drops it. What others said is
        // counted; the bridge's own copies are not relayed again.
        let theirs =
            pushes.iter().skip(1).filter(|p| p.sender.as_ref().is_none_or(|s| s.chat_id != shared.user_id)).count();
        for push in &pushes {
            if !relay(shared, ctx, push, false, true).await {
                return false;
            }
        }
        if theirs > 0 {
            info!(account = %ctx.account, room = %chat.room, messages = theirs, read = pushes.len(), "Gap filling: relayed what was said while disconnected.");
        }
    }
    true
}

async fn relay(shared: &Shared, ctx: &AdapterContext, push: &PushMessage, edit: bool, replayed: bool) -> bool {
    let Some(room) = room_of(shared, push) else {
        debug!(account = %ctx.account, chat = %push.chat_id, "Push of a chat we do not bridge skipped.");
        return true;
    };
    // New messages advance the chat's cursor (edits and recalls repeat an old sequence number).
    let cursor = (push.msg_seq > 0 && !edit && push.delete_timestamp == 0)
        .then(|| {
            let current = ctx.cursors.get(&room).and_then(|c| c.parse::<u64>());
            current.is_none_or(|c| push.msg_seq >= c).then(|| {
                let cursor = Cursor::new(push.msg_seq.to_string());
                ctx.cursors.set(&room, cursor.clone());
                cursor
            })
        })
        .flatten();
    let room = ctx.room_addr(&room);
    let mut sender = wire::sender(push);
    if let Some(sender) = &mut sender {
        sender.is_self = sender.id.as_str() == shared.user_id;
    }
    let kind = wire::kind(push, edit);
    // An edit or recall names its target; the push itself carries no new id.
    let remote_id = matches!(kind, crate::model::EventKind::Message(_)).then(|| RemoteId::new(push.msg_id.as_str()));
    let mut event = Event::new(room, remote_id, sender, kind);
    if let Some(time) = wire::time_of(push) {
        event.time = time;
    }
    event.origin.cursor = cursor;
    event.origin.replayed = replayed;
    ctx.emit(event).await
}
