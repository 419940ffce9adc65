//! A Missevan live-chat server as `docs/platforms/missevan.md` describes it: `/api/user/info` hands out
//! `FM_SESS` sessions that expire, the chat socket refuses a handshake without one (403), acknowledges
//! joins (500030004 for an unknown room), echoes `❤️`, drops clients silent too long, and pushes events as
//! text and as Brotli binary frames, batched into arrays; the send API checks cookies, has a
//! configurable forbidden word, and echoes each sent message on the room's sockets with its `msg_id`.

mod contract;
mod server;

use server::*;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{Sessions, SimServer};
use crate::adapters::missevan::wire::{HEARTBEAT, encode_binary};

/// How the simulated site behaves.
#[derive(Clone, Debug)]
pub struct MissevanSimConfig {
    pub rooms: Vec<u64>,
    /// Login tokens: (token, user id, user name).
    pub users: Vec<(String, u64, String)>,
    /// How long an `FM_SESS` session lives (about three days on the site).
    pub session_ttl: Duration,
    /// Clients silent this long are dropped (120 s on the site).
    pub idle_timeout: Duration,
    /// Messages containing it are refused by the content filter (code 500150022).
    pub forbidden_word: Option<String>,
    /// Pushes each room holds for a connection that lags (see `start_on`): smaller for thousands of rooms.
    pub room_buffer: usize,
}

impl Default for MissevanSimConfig {
    fn default() -> Self {
        Self {
            rooms: Vec::new(),
            users: Vec::new(),
            session_ttl: Duration::from_secs(3 * 24 * 3600),
            idle_timeout: Duration::from_secs(120),
            forbidden_word: None,
            room_buffer: 1 << 16,
        }
    }
}

/// A message sent through the send API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    pub room_id: u64,
    pub message: String,
    pub msg_id: String,
    pub user_id: u64,
}

/// A frame to push verbatim (malformed-frame tests).
#[derive(Clone, Debug)]
pub enum RawFrame {
    Text(String),
    Binary(Vec<u8>),
}

#[derive(Clone, Debug)]
enum Push {
    /// JSON items, sent as one object or an array, as text or Brotli (alternating).
    Items(Vec<Value>),
    Raw(RawFrame),
}

struct Session {
    user: Option<(u64, String)>,
    created: Instant,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    revoked: HashSet<String>,
    sent: Vec<SentMessage>,
    joins: Vec<(u64, bool)>,
    /// Each room's chat messages, oldest first (the history API's source).
    history: HashMap<u64, std::collections::VecDeque<Value>>,
}

/// Messages the history API keeps per room.
const HISTORY: usize = 1000;

struct Shared {
    config: MissevanSimConfig,
    inner: Mutex<Inner>,
    rooms: HashMap<u64, broadcast::Sender<Push>>,
    sent_tx: broadcast::Sender<SentMessage>,
    sessions: Sessions,
    counter: AtomicU64,
    frames: AtomicUsize,
    /// The site is down: handshakes and API calls answer 503.
    down: std::sync::atomic::AtomicBool,
    /// The next this many sends are accepted but answered 502 (a proxy lost the answer).
    lose_answers: AtomicUsize,
}

pub struct MissevanSim {
    server: SimServer,
    shared: Arc<Shared>,
}

/// The sessions hold the shared state: they are cut when the simulator goes.
impl Drop for MissevanSim {
    fn drop(&mut self) {
        self.shared.sessions.drop_all();
    }
}

impl MissevanSim {
    /// Listens on a free loopback port.
    pub async fn start(config: MissevanSimConfig) -> std::io::Result<Self> {
        Self::start_on(config, 0).await
    }

    /// Listens on loopback port `port` (0: any free one).
    pub async fn start_on(config: MissevanSimConfig, port: u16) -> std::io::Result<Self> {
        // Room pushes wait here for slow connections: a burst beyond this is skipped for a connection that lags (a
        // real server would hold it in the socket's buffers instead), so it is sized for the busiest test (the
        // 5,000-message burst of `chatbridge bench --burst`).
        let rooms = config.rooms.iter().map(|r| (*r, broadcast::channel(config.room_buffer.max(16)).0)).collect();
        let shared = Arc::new(Shared {
            config,
            inner: Mutex::default(),
            rooms,
            sent_tx: broadcast::channel(4096).0,
            sessions: Sessions::default(),
            counter: AtomicU64::new(1),
            frames: AtomicUsize::new(0),
            down: Default::default(),
            lose_answers: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/api/user/info", get(user_info))
            .route("/api/chatroom/message/send", post(send_message))
            .route("/api/v2/chatroom/history/message", get(history))
            .route("/ws", get(socket))
            .with_state(Arc::clone(&shared));
        Ok(Self { server: SimServer::start_at(super::loopback(port), app).await?, shared })
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.server.addr())
    }

    /// A listener says `text` in `room`; returns the message id.
    pub fn say(&self, room: u64, user_id: u64, username: &str, text: &str) -> String {
        let msg_id = uuid::Uuid::new_v4().to_string();
        let item = chat(room, &msg_id, text, user_id, username);
        self.shared.remember(room, &item);
        if !self.is_down() {
            self.push(room, vec![item]);
        }
        msg_id
    }

    /// The site goes down (every socket is cut, every request answers 503) or comes back. What is said
    /// meanwhile is only in the history.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
        if down {
            self.drop_connections();
        }
    }

    pub fn is_down(&self) -> bool {
        self.shared.down.load(Ordering::SeqCst)
    }

    /// The next `count` sends go through (sent, echoed, in the history) but are answered 502.
    pub fn lose_answers(&self, count: usize) {
        self.shared.lose_answers.store(count, Ordering::SeqCst);
    }

    /// Pushes items to the room's sockets in one frame (an array when more than one).
    pub fn push(&self, room: u64, items: Vec<Value>) {
        if let Some(tx) = self.shared.rooms.get(&room) {
            let _ = tx.send(Push::Items(items));
        }
    }

    pub fn push_raw(&self, room: u64, frame: RawFrame) {
        if let Some(tx) = self.shared.rooms.get(&room) {
            let _ = tx.send(Push::Raw(frame));
        }
    }

    /// A site-wide horn from another room, as every socket receives it.
    pub fn horn(&self, from_room: u64, html: &str) {
        let item = json!({"type": "notify", "event": "horn", "notify_type": "message", "room_id": from_room,
            "message": html, "msg_id": ""});
        for tx in self.shared.rooms.values() {
            let _ = tx.send(Push::Items(vec![item.clone()]));
        }
    }

    /// Messages sent through the send API, in order.
    /// Every `FM_SESS` value handed out so far.
    pub fn issued_sessions(&self) -> Vec<String> {
        self.shared.lock().sessions.keys().cloned().collect()
    }

    pub fn sent(&self) -> Vec<SentMessage> {
        self.shared.lock().sent.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<SentMessage> {
        self.shared.sent_tx.subscribe()
    }

    /// Joins acknowledged so far: (room, whether the client said it is a reconnect).
    pub fn joins(&self) -> Vec<(u64, bool)> {
        self.shared.lock().joins.clone()
    }

    /// Every session expires now (as after three days).
    pub fn expire_sessions(&self) {
        self.shared.lock().sessions.clear();
    }

    /// The login token is no longer accepted.
    pub fn revoke(&self, token: &str) {
        self.shared.lock().revoked.insert(token.to_owned());
    }

    /// Cuts every open socket without a close frame.
    pub fn drop_connections(&self) {
        self.shared.sessions.drop_all();
        self.server.drop_connections();
    }

    /// The open sockets stop answering anything (a dead server behind a live TCP connection).
    pub fn mute_connections(&self) {
        self.shared.sessions.mute_all();
    }
}

fn chat(room: u64, msg_id: &str, text: &str, user_id: u64, username: &str) -> Value {
    json!({"type": "message", "event": "new", "notify_type": "", "room_id": room, "message": text, "msg_id": msg_id,
        "user": {"user_id": user_id, "username": username, "iconurl": "", "titles": [{"type": "level", "level": 1}]},
        "create_time": crate::model::Time::now().0})
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (n, v) = pair.trim().split_once('=')?;
        (n == name).then_some(v)
    })
}

impl Shared {
    fn remember(&self, room: u64, item: &Value) {
        let mut inner = self.lock();
        let history = inner.history.entry(room).or_default();
        history.push_back(item.clone());
        if history.len() > HISTORY {
            history.pop_front();
        }
    }

    fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("simulator lock is never poisoned")
    }

    fn user_of_token(&self, headers: &HeaderMap) -> Option<(u64, String)> {
        let token = cookie(headers, "token")?;
        if self.lock().revoked.contains(token) {
            return None;
        }
        self.config.users.iter().find(|(t, _, _)| t == token).map(|(_, id, name)| (*id, name.clone()))
    }

    /// The session's user (`Some(None)` for a guest), when the request carries a live session.
    fn session(&self, headers: &HeaderMap) -> Option<Option<(u64, String)>> {
        let id = cookie(headers, "FM_SESS")?;
        let inner = self.lock();
        let session = inner.sessions.get(id).filter(|s| s.created.elapsed() < self.config.session_ttl)?;
        let user =
            session.user.clone().filter(|_| cookie(headers, "token").is_some_and(|t| !inner.revoked.contains(t)));
        Some(user)
    }
}
