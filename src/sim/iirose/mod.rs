//! An IIROSE server as `docs/platforms/iirose.md` describes it: the `*` login checked against known users
//! (MD5 password) with the `%*"<code>` refusals, the `%*"` dump (users, rooms, recent history), several clients per
//! room, packets over 256 bytes gzipped behind `0x01`, batches newest first, fields escaped as the platform
//! does, a sender's own messages echoed with its `i`, joins and leaves, recalls, broadcasts, kicks.

mod contract;
mod server;

use server::*;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::{Sessions, SimServer};
use crate::adapters::iirose::wire::{LOGIN_ANSWER, decode_frame, encode_frame, escape, md5_hex};

/// A known member: uid, name, password.
#[derive(Clone, Debug)]
pub struct SimUser {
    pub uid: String,
    pub name: String,
    pub password: String,
}

#[derive(Clone, Debug, Default)]
pub struct IiroseSimConfig {
    pub rooms: Vec<String>,
    pub users: Vec<SimUser>,
}

/// A message a client sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Said {
    pub room: String,
    pub name: String,
    pub text: String,
    pub id: String,
    /// The receiver's uid, for a private message.
    pub to: Option<String>,
}

struct Client {
    uid: String,
    name: String,
    room: String,
    tx: mpsc::UnboundedSender<String>,
}

#[derive(Default)]
struct Inner {
    clients: HashMap<u64, Client>,
    /// Public records per room, oldest first (escaped, as on the wire).
    history: HashMap<String, Vec<(String, String)>>,
    said: Vec<Said>,
    recalls: Vec<(String, String, String)>,
    logins: Vec<(String, String)>,
    refuse: Option<String>,
    /// Clients' messages are taken and dropped: no echo, no delivery.
    swallow: bool,
}

struct Shared {
    config: IiroseSimConfig,
    inner: Mutex<Inner>,
    said_tx: broadcast::Sender<Said>,
    next: AtomicU64,
    sessions: Sessions,
    /// The site is down: sockets are refused (503); what is said meanwhile is only in the history.
    down: std::sync::atomic::AtomicBool,
}

pub struct IiroseSim {
    server: SimServer,
    shared: Arc<Shared>,
}

/// Marks a queued packet as a frame to send as it is.
const RAW_FRAME: &str = "\u{0}raw\u{0}";

fn now() -> i64 {
    crate::model::Time::now().0 / 1000
}

/// A user record of the login dump (14 fields): avatar, gender, name, colour, room, -, signature, -, uid,
/// -, background, status, tag, online time.
fn user_record(uid: &str, name: &str, room: &str) -> String {
    format!("cartoon/600215>2>{}>66ccff>{room}>>>>{uid}>>>n>>'3600", escape(name))
}

/// A room record of the login dump (8 fields): `<parent>_<id>`, name, colour, properties, -, background and
/// description with `&&`-separated details, -, -.
fn room_record(room: &str) -> String {
    format!("5ce6a4b520a90_{room}>room {room}>66ccff>0003>>s://r.iirose.com/i/bg.jpg a room&&1600000000&&&&&&&&&&&&>>")
}

fn public_record(time: i64, name: &str, text: &str, uid: &str, id: &str) -> String {
    let (name, text) = (escape(name), escape(text));
    format!("{time}>cartoon/600215>{name}>{text}>66ccff>66ccff>2>>{uid}>''1'1'2,100,0.5>{id}")
}

/// The sessions hold the shared state: they are cut when the simulator goes.
impl Drop for IiroseSim {
    fn drop(&mut self) {
        self.shared.sessions.drop_all();
    }
}

impl IiroseSim {
    /// Listens on a free loopback port.
    pub async fn start(config: IiroseSimConfig) -> std::io::Result<Self> {
        Self::start_on(config, 0).await
    }

    /// Listens on loopback port `port` (0: any free one).
    pub async fn start_on(config: IiroseSimConfig, port: u16) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            config,
            inner: Mutex::default(),
            said_tx: broadcast::channel(4096).0,
            next: AtomicU64::new(1),
            sessions: Sessions::default(),
            down: Default::default(),
        });
        let app = Router::new().route("/", get(socket)).with_state(Arc::clone(&shared));
        Ok(Self { server: SimServer::start_at(super::loopback(port), app).await?, shared })
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.server.addr())
    }

    /// Someone (not a connected client) says `text` in `room`; returns the message id.
    pub fn say(&self, room: &str, uid: &str, name: &str, text: &str) -> String {
        let id = self.shared.new_id();
        self.shared.publish(room, uid, name, text, &id, now());
        id
    }

    /// Several messages in one packet, newest first as the platform batches them (times ascending in
    /// `messages`).
    pub fn say_batch(&self, room: &str, messages: &[(&str, &str, &str)]) -> Vec<String> {
        let start = now();
        let mut records = Vec::new();
        let mut ids = Vec::new();
        for (offset, (uid, name, text)) in messages.iter().enumerate() {
            let id = self.shared.new_id();
            records.push(public_record(start + offset as i64, name, text, uid, &id));
            ids.push(id);
        }
        records.reverse();
        self.shared.to_room(room, &format!("\"{}", records.join("<")));
        ids
    }

    /// A private message to the client named `to`.
    pub fn say_private(&self, to: &str, from_uid: &str, from_name: &str, text: &str, anonymous: bool) -> String {
        let id = self.shared.new_id();
        let kind = if anonymous { "@" } else { "" };
        let record = format!(
            "\"\"{}>{from_uid}>{}>cartoon/1>{}>ffffff>{kind}>ffffff>2>>{id}",
            now(),
            escape(from_name),
            escape(text)
        );
        let inner = self.shared.lock();
        for client in inner.clients.values().filter(|c| c.name == to) {
            let _ = client.tx.send(record.clone());
        }
        id
    }

    /// Someone enters (`'1`) or leaves (`'3`) the room: 12 fields, a join ending `>>1<room>'n'''`, a leave `>>2`.
    pub fn presence(&self, room: &str, uid: &str, name: &str, joined: bool) {
        let (code, end) = if joined { ("'1", format!("1{room}'n'''")) } else { ("'3", "2".to_owned()) };
        let line = format!("\"{}>cartoon/1>{}>{code}>66ccff>66ccff>2>>{uid}>''1>>{end}", now(), escape(name));
        self.shared.to_room(room, &line);
    }

    /// `uid` recalls message `id` in `room`.
    pub fn recall(&self, room: &str, uid: &str, id: &str) {
        self.shared.to_room(room, &format!("v0#{uid}_{id}\""));
    }

    /// A site-wide broadcast, to every client.
    pub fn broadcast(&self, name: &str, text: &str) {
        let packet = format!(
            "={}>{}>614530>614530>2>cartoon/1>{}>uidb>>1866>57>2,100,0.5>f160",
            escape(name),
            escape(text),
            now()
        );
        for client in self.shared.lock().clients.values() {
            let _ = client.tx.send(packet.clone());
        }
    }

    /// Sends a raw packet to every client in `room` (malformed and unknown packets).
    pub fn raw(&self, room: &str, packet: &str) {
        self.shared.to_room(room, packet);
    }

    /// Sends `bytes` to every client in `room` as one frame, as they are (not a packet: garbage).
    pub fn raw_frame(&self, room: &str, bytes: &str) {
        self.shared.to_room(room, &format!("{RAW_FRAME}{bytes}"));
    }

    /// Kicks the client named `name` (`-k`).
    pub fn kick(&self, name: &str) {
        for client in self.shared.lock().clients.values().filter(|c| c.name == name) {
            let _ = client.tx.send("-k".to_owned());
        }
    }

    /// Every later login is refused with this code (`None`: logins work again).
    pub fn refuse_logins(&self, code: Option<&str>) {
        self.shared.lock().refuse = code.map(str::to_owned);
    }

    /// Clients' messages vanish (true) or are delivered and echoed again (false).
    pub fn swallow_messages(&self, swallow: bool) {
        self.shared.lock().swallow = swallow;
    }

    /// Messages sent by clients, in order.
    pub fn said(&self) -> Vec<Said> {
        self.shared.lock().said.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Said> {
        self.shared.said_tx.subscribe()
    }

    /// Recalls sent by clients: (room, client name, message id).
    pub fn recalls(&self) -> Vec<(String, String, String)> {
        self.shared.lock().recalls.clone()
    }

    /// Successful logins: (name, room).
    pub fn logins(&self) -> Vec<(String, String)> {
        self.shared.lock().logins.clone()
    }

    pub fn drop_connections(&self) {
        self.shared.sessions.drop_all();
        self.server.drop_connections();
    }

    /// Every open session goes silent, still connected: it reads nothing and answers nothing.
    pub fn mute_connections(&self) {
        self.shared.sessions.mute_all();
    }

    /// The site goes down (every socket is cut, new ones are refused) or comes back.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
        if down {
            self.drop_connections();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("simulator lock is never poisoned")
    }

    fn new_id(&self) -> String {
        format!("{:012}", 100_000_000_000 + self.next.fetch_add(1, Ordering::Relaxed))
    }

    fn to_room(&self, room: &str, packet: &str) {
        for client in self.lock().clients.values().filter(|c| c.room == room) {
            let _ = client.tx.send(packet.to_owned());
        }
    }

    fn publish(&self, room: &str, uid: &str, name: &str, text: &str, id: &str, time: i64) {
        let record = public_record(time, name, text, uid, id);
        self.lock().history.entry(room.to_owned()).or_default().push((id.to_owned(), record.clone()));
        self.to_room(room, &format!("\"{record}"));
    }

    /// Handles a login; the client's registration or the refusal to send.
    fn login(&self, json: &str, conn: u64, tx: &mpsc::UnboundedSender<String>) -> Result<(), String> {
        let login: Value = serde_json::from_str(json).map_err(|_| "%*\"1".to_owned())?;
        let (name, password, room) =
            (login["n"].as_str().unwrap_or(""), login["p"].as_str().unwrap_or(""), login["r"].as_str().unwrap_or(""));
        let mut inner = self.lock();
        if let Some(code) = &inner.refuse {
            return Err(format!("{LOGIN_ANSWER}{code}"));
        }
        let user = self.config.users.iter().find(|u| u.name == name).ok_or("%*\"1")?;
        if md5_hex(&user.password) != password {
            return Err("%*\"2".into());
        }
        if !self.config.rooms.iter().any(|r| r == room) {
            return Err("%*\"n0".into());
        }
        if inner.clients.values().any(|c| c.name == name) {
            return Err("%*\"0".into());
        }
        inner.clients.insert(
            conn,
            Client { uid: user.uid.clone(), name: name.to_owned(), room: room.to_owned(), tx: tx.clone() },
        );
        inner.logins.push((name.to_owned(), room.to_owned()));
        // The dump, as the platform sends it: `%*"`, then three `"`-separated parts of `<`-joined
        // records — everyone online and every room; who is in this room and its recent history, newest
        // first; loading information (left empty here).
        let online: Vec<String> = inner.clients.values().map(|c| user_record(&c.uid, &c.name, &c.room)).collect();
        let here: Vec<String> =
            inner.clients.values().filter(|c| c.room == room).map(|c| user_record(&c.uid, &c.name, &c.room)).collect();
        let rooms = self.config.rooms.iter().map(|r| room_record(r));
        let history = inner.history.get(room).into_iter().flatten().rev().take(20).map(|(_, r)| r.clone());
        let first: Vec<String> = online.into_iter().chain(rooms).collect();
        let second: Vec<String> = here.into_iter().chain(history).collect();
        let dump = format!("{LOGIN_ANSWER}{}\"{}\"", first.join("<"), second.join("<"));
        let _ = tx.send(dump);
        Ok(())
    }

    fn handle(&self, conn: u64, text: &str) {
        let Some((uid, name, room)) =
            self.lock().clients.get(&conn).map(|c| (c.uid.clone(), c.name.clone(), c.room.clone()))
        else {
            return;
        };
        if let Some(rest) = text.strip_prefix("v0*") {
            let Some((peer, id)) = rest.split_once('#') else { return };
            let packet = format!("v0*{peer}\"{uid}_{id}");
            let mut inner = self.lock();
            inner.recalls.push((format!("user/{peer}"), name, id.to_owned()));
            for client in inner.clients.values().filter(|c| c.uid == peer || c.uid == uid) {
                let _ = client.tx.send(packet.clone());
            }
            return;
        }
        if let Some(id) = text.strip_prefix("v0#") {
            self.lock().recalls.push((room.clone(), name, id.to_owned()));
            self.to_room(&room, &format!("v0#{uid}_{id}\""));
            return;
        }
        let Ok(message) = serde_json::from_str::<Value>(text) else { return };
        if self.lock().swallow {
            return;
        }
        let (Some(m), Some(i)) = (message["m"].as_str(), message["i"].as_str()) else { return };
        let to = message["g"].as_str().map(str::to_owned);
        let said =
            Said { room: room.clone(), name: name.clone(), text: m.to_owned(), id: i.to_owned(), to: to.clone() };
        self.lock().said.push(said.clone());
        let _ = self.said_tx.send(said);
        match to {
            None => self.publish(&room, &uid, &name, m, i, now()),
            Some(peer) => {
                // `"st":"@"` sends anonymously: the type field says `@` (the sender is still on the wire).
                let kind = if message["st"] == "@" { "@" } else { "" };
                let base = format!(
                    "\"\"{}>{uid}>{}>cartoon/1>{}>66ccff>{kind}>66ccff>2>>{i}",
                    now(),
                    escape(&name),
                    escape(m)
                );
                let inner = self.lock();
                for client in inner.clients.values() {
                    if client.uid == peer {
                        let _ = client.tx.send(base.clone());
                    } else if client.uid == uid {
                        let _ = client.tx.send(format!("{base}>{peer}>peer>2>66ccff>cartoon/1>"));
                    }
                }
            }
        }
    }
}
