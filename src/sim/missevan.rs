//! A Missevan live-chat server as `docs/platforms/missevan.md` describes it: `/api/user/info` hands out
//! `FM_SESS` sessions that expire, the chat socket refuses a handshake without one (403), acknowledges
//! joins (500030004 for an unknown room), echoes `❤️`, drops clients silent too long, and pushes events as
//! text and as Brotli binary frames, batched into arrays; the send API checks cookies, has a
//! configurable forbidden word, and echoes each sent message on the room's sockets with its `msg_id`.

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
}

impl Default for MissevanSimConfig {
    fn default() -> Self {
        Self {
            rooms: Vec::new(),
            users: Vec::new(),
            session_ttl: Duration::from_secs(3 * 24 * 3600),
            idle_timeout: Duration::from_secs(120),
            forbidden_word: None,
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
        let rooms = config.rooms.iter().map(|r| (*r, broadcast::channel(4096).0)).collect();
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

async fn user_info(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if shared.is_down() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let user = shared.user_of_token(&headers);
    // Random, as the site's are: a session value in a log would be a leak a test can find.
    let id = format!("fmsess{:016x}{:04}", fastrand::u64(..), shared.counter.fetch_add(1, Ordering::Relaxed));
    shared.lock().sessions.insert(id.clone(), Session { user: user.clone(), created: Instant::now() });
    let info = match &user {
        Some((user_id, name)) => json!({"user": {"user_id": user_id, "username": name, "iconurl": ""}}),
        None => json!({"user": null}),
    };
    let cookies = axum::response::AppendHeaders([
        (header::SET_COOKIE, format!("FM_SESS={id}; Path=/; HttpOnly")),
        (header::SET_COOKIE, format!("FM_SESS.sig=sig-{id}; Path=/; HttpOnly")),
    ]);
    (cookies, axum::Json(json!({"code": 0, "info": info}))).into_response()
}

/// The room's recent chat messages, newest first, as the site's history API lists them.
async fn history(State(shared): State<Arc<Shared>>, Query(args): Query<HashMap<String, String>>) -> Response {
    if shared.is_down() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let room = args.get("room_id").and_then(|r| r.parse::<u64>().ok()).unwrap_or_default();
    let history: Vec<Value> = shared
        .lock()
        .history
        .get(&room)
        .map(|h| {
            h.iter()
                .rev()
                .map(|item| {
                    json!({"msg_id": item["msg_id"], "create_time": item["create_time"], "message": item["message"],
                        "user": item["user"], "room_id": room})
                })
                .collect()
        })
        .unwrap_or_default();
    axum::Json(json!({"code": 0, "info": {"history": history}})).into_response()
}

async fn send_message(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    if shared.is_down() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let Some(Some((user_id, username))) = shared.session(&headers) else {
        return (StatusCode::FORBIDDEN, axum::Json(json!({"code": 100010006, "info": "请先登录"}))).into_response();
    };
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return axum::Json(json!({"code": 100010001, "info": "参数错误"})).into_response();
    };
    let room_id = body["room_id"].as_u64().unwrap_or_default();
    let message = body["message"].as_str().unwrap_or_default().to_owned();
    let msg_id = body["msg_id"].as_str().unwrap_or_default().to_owned();
    if !shared.rooms.contains_key(&room_id) {
        return axum::Json(json!({"code": 500030004, "info": "无法找到该聊天室"})).into_response();
    }
    if shared.config.forbidden_word.as_ref().is_some_and(|w| message.contains(w.as_str())) {
        return axum::Json(json!({"code": 500150022, "info": "聊天内容含有违规信息"})).into_response();
    }
    let sent = SentMessage { room_id, message: message.clone(), msg_id: msg_id.clone(), user_id };
    shared.lock().sent.push(sent.clone());
    let _ = shared.sent_tx.send(sent);
    let item = chat(room_id, &msg_id, &message, user_id, &username);
    shared.remember(room_id, &item);
    if let Some(tx) = shared.rooms.get(&room_id) {
        let _ = tx.send(Push::Items(vec![item]));
    }
    let lost = shared.lose_answers.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if lost {
        return StatusCode::BAD_GATEWAY.into_response();
    }
    let user = json!({"user_id": user_id, "username": username, "iconurl": "", "titles": []});
    axum::Json(json!({"code": 0, "info": {"msg_id": msg_id, "user": user}, "noble": null, "bubble": null, "ok": 1}))
        .into_response()
}

async fn socket(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(args): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if shared.is_down() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if shared.session(&headers).is_none() {
        return (StatusCode::FORBIDDEN, "session required").into_response();
    }
    let Some(room) = args.get("room_id").and_then(|r| r.parse::<u64>().ok()) else {
        return (StatusCode::BAD_REQUEST, "room_id required").into_response();
    };
    let (dropped, muted) = shared.sessions.tokens();
    upgrade.on_upgrade(move |ws| chat_socket(ws, shared, room, dropped, muted))
}

async fn chat_socket(
    mut ws: WebSocket,
    shared: Arc<Shared>,
    url_room: u64,
    dropped: CancellationToken,
    muted: CancellationToken,
) {
    let idle = tokio::time::sleep(shared.config.idle_timeout);
    tokio::pin!(idle);
    let mut pushes: Option<broadcast::Receiver<Push>> = None;
    loop {
        tokio::select! {
            _ = dropped.cancelled() => return,
            _ = &mut idle => return,
            _ = muted.cancelled() => {
                // Silent until cut: the socket stays open and answers nothing.
                dropped.cancelled().await;
                return;
            }
            push = recv(&mut pushes) => {
                let Some(push) = push else { continue };
                if ws.send(encode(&shared, push)).await.is_err() {
                    return;
                }
            }
            message = ws.recv() => {
                let Some(Ok(message)) = message else { return };
                idle.as_mut().reset(tokio::time::Instant::now() + shared.config.idle_timeout);
                let Message::Text(text) = message else { continue };
                if text.as_str() == HEARTBEAT {
                    if ws.send(Message::text(HEARTBEAT)).await.is_err() {
                        return;
                    }
                    continue;
                }
                let Ok(join) = serde_json::from_str::<Value>(&text) else { continue };
                if join["action"] != "join" {
                    continue;
                }
                let room = join["room_id"].as_u64().unwrap_or_default();
                let known = room == url_room && shared.rooms.contains_key(&room);
                // As the site acknowledges: the room on success, the reason on a refusal.
                let ack = if known {
                    json!({"type": "room", "event": "join", "uuid": join["uuid"], "code": 0, "room_id": room})
                } else {
                    json!({"type": "room", "event": "join", "uuid": join["uuid"], "code": 500030004,
                        "info": "无法找到该聊天室"})
                };
                if known {
                    shared.lock().joins.push((room, join["reconnect"] == 1));
                    pushes = shared.rooms.get(&room).map(broadcast::Sender::subscribe);
                }
                if ws.send(Message::text(ack.to_string())).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn recv(pushes: &mut Option<broadcast::Receiver<Push>>) -> Option<Push> {
    match pushes {
        Some(rx) => rx.recv().await.ok(),
        None => std::future::pending().await,
    }
}

/// Items alternate between text and Brotli binary frames, as both occur on the real socket.
fn encode(shared: &Shared, push: Push) -> Message {
    match push {
        Push::Raw(RawFrame::Text(text)) => Message::text(text),
        Push::Raw(RawFrame::Binary(bytes)) => Message::binary(bytes),
        Push::Items(mut items) => {
            let payload = if items.len() == 1 { items.remove(0).to_string() } else { Value::Array(items).to_string() };
            if shared.frames.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
                Message::text(payload)
            } else {
                Message::binary(encode_binary(payload.as_bytes()))
            }
        }
    }
}

impl crate::sim::contract::Simulator for MissevanSim {
    fn platform(&self) -> crate::model::Platform {
        crate::model::Platform::Missevan
    }

    fn account(&self, name: &str) -> String {
        let token = &self.shared.config.users[0].0;
        format!(
            "\n[accounts.missevan.{name}]\ncookie = \"token={token}\"\napi_url = \"{}\"\nws_url = \"{}\"\n\
             heartbeat = \"200ms\"\nidle_timeout = \"2s\"\nrequest_timeout = \"3s\"\n",
            self.api_url(),
            self.ws_url()
        )
    }

    fn room(&self) -> String {
        self.shared.config.rooms[0].to_string()
    }

    fn say(&self, text: &str) {
        MissevanSim::say(self, self.shared.config.rooms[0], 42, crate::sim::contract::MEMBER.1, text);
    }

    fn garbage(&self) {
        self.push_raw(self.shared.config.rooms[0], RawFrame::Text("{\"type\": \"message\", not json".into()));
    }

    fn sent_texts(&self) -> Vec<String> {
        self.sent().into_iter().map(|s| s.message).collect()
    }

    fn drop_connections(&self) {
        MissevanSim::drop_connections(self);
    }

    fn restart(&mut self, down_for: Duration) -> crate::sim::contract::Restarting<'_> {
        Box::pin(self.server.restart(down_for))
    }
}
