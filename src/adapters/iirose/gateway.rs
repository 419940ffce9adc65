//! The session: connect (each `ws_url` in turn), log in, keep alive, write what the senders queue, and
//! turn packets into events.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, interval_at, sleep};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tracing::{debug, info, warn};

use super::wire::{self, Login, Packet, PrivateMessage, PublicMessage, Record};
use super::{ANONYMOUS, Outgoing, Seen, Shared};
use crate::adapters::supervise::{Attempt, Ended, Until, supervise};
use crate::adapters::{AccountState, AdapterContext};
use crate::model::{Cursor, Event, EventKind, Message, RemoteId, RoomAddr, RoomId, Time, User};
use crate::stats::Metric;

pub(super) async fn session(shared: Arc<Shared>, ctx: AdapterContext, queue: mpsc::UnboundedReceiver<Outgoing>) {
    let urls = shared.config.ws_urls.clone();
    let queue = tokio::sync::Mutex::new(queue);
    let (shared, ctx, urls, queue) = (&shared, &ctx, &urls, &queue);
    // The session carries sends too: it keeps reconnecting until the daemon closes.
    supervise(ctx, &shared.stop, None, Until::Closed, |attempt| async move {
        let url = &urls[attempt.number as usize % urls.len()];
        let connecting = crate::adapters::connect_ws(url.as_str(), crate::adapters::WS_READ_BUFFER);
        match tokio::time::timeout(shared.config.request_timeout, connecting).await {
            Ok(Ok((socket, _))) => run(shared, ctx, socket, &mut *queue.lock().await, &attempt).await,
            Ok(Err(e)) => Ended::Lost(format!("{url}: {e}")),
            Err(_) => Ended::Lost(format!("{url}: the handshake timed out")),
        }
    })
    .await;
}

/// The next midnight in China (UTC+8), where the platform counts its days.
fn until_next_day() -> Duration {
    let now = Time::now().0 / 1000 + 8 * 3600;
    Duration::from_secs((86_400 - now.rem_euclid(86_400)) as u64 + 60)
}

use crate::adapters::WsStream as Socket;

async fn run(
    shared: &Shared,
    ctx: &AdapterContext,
    socket: Socket,
    queue: &mut mpsc::UnboundedReceiver<Outgoing>,
    attempt: &Attempt,
) -> Ended {
    let config = &shared.config;
    let (mut sink, mut stream) = socket.split();
    let password =
        if config.password.expose().len() == 32 && config.password.expose().bytes().all(|b| b.is_ascii_hexdigit()) {
            config.password.expose().to_ascii_lowercase()
        } else {
            wire::md5_hex(config.password.expose())
        };
    let login = Login {
        r: shared.room.as_str(),
        n: &config.username,
        p: &password,
        st: "n",
        mo: "",
        mb: "",
        mu: "01",
        fp: format!("@{}", wire::md5_hex(&config.username)),
    };
    let login = format!("*{}", serde_json::to_string(&login).expect("the login serialises"));
    if let Err(e) = sink.send(WsMessage::binary(wire::encode_frame(&login))).await {
        return Ended::Lost(e.to_string());
    }
    let mut logged_in = false;
    let login_deadline = sleep(config.request_timeout);
    tokio::pin!(login_deadline);
    let mut heartbeat = interval_at(Instant::now() + config.heartbeat, config.heartbeat);
    // The platform sends nothing of its own in a quiet room, but a websocket peer answers pings: anything
    // heard counts, and nothing heard for `idle_timeout` means the session is gone.
    let mut heard = Instant::now();
    let addr = ctx.room_addr(&shared.room);
    loop {
        let frame = tokio::select! {
            _ = ctx.closed.cancelled() => {
                let _ = sink.send(WsMessage::Close(None)).await;
                return Ended::Stopped;
            }
            _ = &mut login_deadline, if !logged_in => return Ended::Lost("no answer to the login".into()),
            _ = heartbeat.tick() => {
                if heard.elapsed() >= config.idle_timeout {
                    return Ended::Lost(format!("nothing heard for {:.0?}", heard.elapsed()));
                }
                if let Err(e) = sink.send(WsMessage::binary(Vec::new())).await {
                    return Ended::Lost(e.to_string());
                }
                if let Err(e) = sink.send(WsMessage::Ping(Default::default())).await {
                    return Ended::Lost(e.to_string());
                }
                continue;
            }
            outgoing = queue.recv(), if logged_in => {
                let Some(outgoing) = outgoing else { return Ended::Stopped };
                if outgoing.deadline < Instant::now() {
                    debug!(account = %ctx.account, "A queued packet outlived its wait; dropped (its sender was told).");
                    continue;
                }
                if let Err(e) = sink.send(WsMessage::binary(wire::encode_frame(&outgoing.packet))).await {
                    return Ended::Lost(e.to_string());
                }
                continue;
            }
            frame = stream.next() => {
                heard = Instant::now();
                frame
            }
        };
        let text = match frame {
            None => return Ended::Lost("the server closed the socket".into()),
            Some(Err(e)) => return Ended::Lost(e.to_string()),
            Some(Ok(WsMessage::Binary(bytes))) => wire::decode_frame(&bytes),
            Some(Ok(WsMessage::Text(text))) => Ok(text.as_str().to_owned()),
            Some(Ok(WsMessage::Close(frame))) => {
                return Ended::Lost(format!("the server closed the socket: {frame:?}"));
            }
            Some(Ok(_)) => continue,
        };
        let text = match text {
            Ok(text) => text,
            Err(e) => {
                ctx.stats.count_account(Metric::Malformed, &ctx.account);
                crate::warn_throttled!(format!("malformed frame {}", ctx.account); account = %ctx.account, error = %e, "Malformed frame skipped.");
                continue;
            }
        };
        for packet in wire::parse_packet(&text) {
            match packet {
                Packet::LoggedIn { members, history } => {
                    // The dump lists who is online, this account included: its uid tells our own
                    // recalls and echoes apart before we have said anything.
                    if let Some(me) = members.iter().find(|m| m.name == config.username) {
                        *shared.own_uid.lock().expect("never poisoned") = Some(me.uid.clone());
                    }
                    // The dump replays recent history: what is newer than the room's cursor was said while
                    // we were away and is relayed (the router drops what it relayed already); the rest is
                    // remembered for quotes only. A room never read has no gap.
                    let cursor = ctx.cursors.get(&shared.room).and_then(|c| c.parse::<i64>());
                    let mut missed = Vec::new();
                    for record in history {
                        if let Record::Message(m) = &record {
                            if cursor.is_some_and(|c| m.time >= c) {
                                missed.push(record);
                            } else {
                                shared.remember(seen(m));
                            }
                        }
                    }
                    if !logged_in {
                        logged_in = true;
                        attempt.connected();
                        info!(account = %ctx.account, room = %shared.room, "Logged in.");
                        ctx.set_state(AccountState::Connected).await;
                    }
                    let packet = Packet::Chat { public: missed, private: Vec::new() };
                    // Said is what others said: the bridge's own copies among them are not relayed again.
                    let (mut theirs, mut own) = (0usize, 0usize);
                    for mut event in events(shared, &addr, packet) {
                        event.origin.replayed = true;
                        if event.sender.as_ref().is_some_and(|s| s.is_self) {
                            own += 1
                        } else {
                            theirs += 1
                        }
                        advance(ctx, &shared.room, &mut event);
                        if !ctx.emit(event).await {
                            return Ended::Stopped;
                        }
                    }
                    if theirs > 0 {
                        info!(account = %ctx.account, room = %shared.room, messages = theirs, own_copies = own, "Gap filling: relayed what was said while disconnected.");
                    }
                }
                Packet::LoginRefused(code) => {
                    let reason = wire::login_error(&code);
                    return match code.as_str() {
                        "4" => Ended::LostUntil { reason, wait: until_next_day() },
                        // Our own earlier session, cut without the server noticing, holds the name until
                        // the server drops it: not permanent, so tried again with the backoff.
                        "0" => {
                            warn!(account = %ctx.account, "{reason}; if that is this bridge's own lost session, the server frees the name soon: trying again.");
                            Ended::Lost(reason)
                        }
                        _ => Ended::Fatal(reason),
                    };
                }
                Packet::LoginUnrecognised(start) => {
                    // Only the documented codes stop an account; the login timeout still applies.
                    ctx.stats.count_account(Metric::Malformed, &ctx.account);
                    crate::warn_throttled!(format!("login answer {}", ctx.account); account = %ctx.account, start = %start, "An unrecognised login answer; still waiting for the room dump.");
                }
                Packet::Kicked => {
                    warn!(account = %ctx.account, room = %shared.room, "Kicked from the room; logging in again.");
                    return Ended::Lost("kicked".into());
                }
                Packet::Moved(room) => {
                    warn!(account = %ctx.account, to = %room, "Another session of this account moved rooms; logging in to the configured room again.");
                    return Ended::Lost("moved by another session".into());
                }
                Packet::KeepAlive => {}
                packet if logged_in => {
                    for mut event in events(shared, &addr, packet) {
                        if ctx.stop_receiving.is_cancelled() && !event.sender.as_ref().is_some_and(|s| s.is_self) {
                            continue;
                        }
                        advance(ctx, &shared.room, &mut event);
                        if !ctx.emit(event).await {
                            return Ended::Stopped;
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// A public message of the room advances its cursor (its time, in seconds, as the dump gives it).
fn advance(ctx: &AdapterContext, room: &RoomId, event: &mut Event) {
    if &event.origin.room.room != room || !matches!(event.kind, EventKind::Message(_)) {
        return;
    }
    let seconds = event.time.0 / 1000;
    let current = ctx.cursors.get(room).and_then(|c| c.parse::<i64>());
    if current.is_none_or(|c| seconds >= c) {
        ctx.cursors.set(room, Cursor::new(seconds.to_string()));
        event.origin.cursor = Some(Cursor::new(seconds.to_string()));
    }
}

fn seen(m: &PublicMessage) -> Seen {
    Seen { msg_id: m.msg_id.clone(), name: m.name.clone(), time: Time(m.time * 1000), text: m.text.clone() }
}

fn user(uid: &str, name: &str, avatar: &str) -> User {
    let mut user = User::new(uid, name);
    user.avatar = Some(avatar.to_owned()).filter(|a| !a.is_empty());
    user
}

/// A packet's events. Our own messages come back too: they confirm a send and are marked ours.
fn events(shared: &Shared, room: &RoomAddr, packet: Packet) -> Vec<Event> {
    let own = shared.config.username.as_str();
    let mut out = Vec::new();
    match packet {
        Packet::Chat { public, private } => {
            for record in public {
                match record {
                    Record::Message(m) => {
                        let confirmed = shared.confirm(&m.msg_id);
                        shared.remember(seen(&m));
                        let (content, mut reply) = wire::parse_text(&m.text);
                        if let Some(reply) = &mut reply
                            && let (Some(name), Some(time)) = (&reply.quoted_sender, reply.quoted_time)
                        {
                            reply.target = shared.quoted(name, time).map(|s| RemoteId::new(s.msg_id));
                        }
                        let mut sender = user(&m.uid, &m.name, &m.avatar);
                        sender.is_self = confirmed || m.name == own;
                        if sender.is_self {
                            *shared.own_uid.lock().expect("never poisoned") = Some(m.uid.clone());
                        }
                        let kind = EventKind::Message(Message { content, reply, ..Message::default() });
                        let mut event = Event::new(room.clone(), Some(RemoteId::new(m.msg_id)), Some(sender), kind);
                        event.time = Time(m.time * 1000);
                        out.push(event);
                    }
                    Record::System { presence, time, name, uid } => {
                        let kind = match presence {
                            wire::Presence::Joined => EventKind::Joined,
                            wire::Presence::Moved | wire::Presence::Left => EventKind::Left,
                        };
                        let mut sender = user(&uid, &name, "");
                        sender.is_self = name == own;
                        let mut event = Event::new(room.clone(), None, Some(sender), kind);
                        event.time = Time(time * 1000);
                        out.push(event);
                    }
                    Record::Other(raw) => {
                        out.push(Event::new(
                            room.clone(),
                            None,
                            None,
                            EventKind::Unsupported { kind: "record".into(), raw },
                        ));
                    }
                }
            }
            out.extend(private.into_iter().map(|m| private_event(shared, room, m)));
        }
        Packet::Recalled { uid, msg_id } => {
            let mut by = User::new(uid.as_str(), "");
            by.is_self = shared.own_uid.lock().expect("never poisoned").as_deref() == Some(uid.as_str());
            out.push(Event::new(room.clone(), None, Some(by), EventKind::Recalled { target: RemoteId::new(msg_id) }));
        }
        Packet::PrivateRecalled { receiver, sender, msg_id } => {
            // Our own recalls come back too; the conversation is with whoever is not us.
            let us = shared.own_uid.lock().expect("never poisoned").clone();
            let peer = if us.as_deref() == Some(receiver.as_str()) { sender } else { receiver };
            let addr = RoomAddr::new(room.account.clone(), RoomId::new(format!("user/{peer}")));
            out.push(Event::new(addr, None, None, EventKind::Recalled { target: RemoteId::new(msg_id) }));
        }
        Packet::Broadcast { name, text, uid } => {
            let sender = user(&uid, &name, "");
            out.push(Event::new(
                room.clone(),
                None,
                Some(sender),
                EventKind::Notice { text: format!("{name}: {text}") },
            ));
        }
        Packet::Other { kind, raw } => match super::mailbox::action(&raw) {
            Some((name, what)) => {
                let text = format!("{name} {what} the bridge's account.");
                out.push(Event::new(room.clone(), None, Some(user("", &name, "")), EventKind::Notice { text }));
            }
            None => out.push(Event::new(room.clone(), None, None, EventKind::Unsupported { kind, raw })),
        },
        Packet::LoggedIn { .. }
        | Packet::LoginRefused(_)
        | Packet::LoginUnrecognised(_)
        | Packet::Kicked
        | Packet::Moved(_)
        | Packet::KeepAlive => {}
    }
    out
}

/// A private message, in the conversation's room (`user/<uid>`), or in `user/anonymous` without its
/// sender when it was sent anonymously.
fn private_event(shared: &Shared, room: &RoomAddr, m: PrivateMessage) -> Event {
    let confirmed = shared.confirm(&m.msg_id);
    let (conversation, mut sender) = if m.anonymous {
        (ANONYMOUS.to_owned(), User::new("anonymous", "anonymous"))
    } else {
        let peer = m.receiver.clone().unwrap_or_else(|| m.uid.clone());
        (format!("user/{peer}"), user(&m.uid, &m.name, &m.avatar))
    };
    sender.is_self = confirmed || m.receiver.is_some();
    let (content, reply) = wire::parse_text(&m.text);
    let addr = RoomAddr::new(room.account.clone(), RoomId::new(conversation));
    let kind = EventKind::Message(Message { content, reply, private: true, ..Message::default() });
    let mut event = Event::new(addr, Some(RemoteId::new(m.msg_id)), Some(sender), kind);
    event.time = Time(m.time * 1000);
    event
}
