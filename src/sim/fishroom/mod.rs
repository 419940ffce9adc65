//! A Fishroom server as `docs/platforms/fishroom.md` describes it: token checks via headers or `id`/`key`
//! arguments, one queue per token holding the last 15 messages for 60 s, a 10 s long-poll (shortened by
//! a setting for tests) that drops other rooms' messages, own echoes, the trailing-slash post route,
//! and the upstream "500 on every post" mode.

mod contract;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use super::SimServer;

/// How the simulated server behaves.
#[derive(Clone, Debug)]
pub struct FishroomSimConfig {
    /// Public rooms (the server's bindings).
    pub rooms: Vec<String>,
    /// API tokens: (id, key, display name).
    pub tokens: Vec<(String, String, String)>,
    /// How long a poll waits for a message (10 s on the real server).
    pub poll_timeout: Duration,
    /// How many messages a token's queue keeps (15).
    pub queue_len: usize,
    /// How long a token's queue lives after its last message (60 s).
    pub queue_ttl: Duration,
}

impl Default for FishroomSimConfig {
    fn default() -> Self {
        Self {
            rooms: Vec::new(),
            tokens: Vec::new(),
            poll_timeout: Duration::from_secs(10),
            queue_len: 15,
            queue_ttl: Duration::from_secs(60),
        }
    }
}

/// A message an API client posted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posted {
    pub room: String,
    pub sender: String,
    pub content: String,
    /// `api-<token name>`.
    pub channel: String,
}

#[derive(Default)]
struct TokenQueue {
    items: VecDeque<Value>,
    last_push: Option<Instant>,
    /// Bodies to answer the next polls with, verbatim (malformed-frame tests).
    raw: VecDeque<String>,
}

struct Inner {
    queues: HashMap<String, TokenQueue>,
    posted: Vec<Posted>,
    fail_posts: bool,
    /// Posts answered with 500.
    failed: usize,
    /// Polls answered.
    polls: usize,
}

struct Shared {
    config: FishroomSimConfig,
    rooms: HashSet<String>,
    inner: Mutex<Inner>,
    arrived: Notify,
    posted_tx: broadcast::Sender<Posted>,
}

/// The simulator: a server on `127.0.0.1:0` and its control API.
pub struct FishroomSim {
    server: SimServer,
    shared: Arc<Shared>,
}

impl FishroomSim {
    /// Listens on a free loopback port.
    pub async fn start(config: FishroomSimConfig) -> std::io::Result<Self> {
        Self::start_on(config, 0).await
    }

    /// Listens on loopback port `port` (0: any free one).
    pub async fn start_on(config: FishroomSimConfig, port: u16) -> std::io::Result<Self> {
        let queues = config.tokens.iter().map(|(id, _, _)| (id.clone(), TokenQueue::default())).collect();
        let shared = Arc::new(Shared {
            rooms: config.rooms.iter().cloned().collect(),
            config,
            inner: Mutex::new(Inner { queues, posted: Vec::new(), fail_posts: false, failed: 0, polls: 0 }),
            arrived: Notify::new(),
            posted_tx: broadcast::channel(4096).0,
        });
        let app = Router::new()
            .route("/api/status", get(status))
            .route("/api/messages", get(poll))
            .route("/api/messages/{room}/", post(post_message))
            .with_state(Arc::clone(&shared));
        let server = SimServer::start_at(super::loopback(port), app).await?;
        Ok(Self { server, shared })
    }

    /// The API root to configure as `api_url`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.server.addr())
    }

    /// Someone on another Fishroom channel (IRC, Telegram…) says `content` in `room`.
    pub fn say(&self, room: &str, channel: &str, sender: &str, content: &str) {
        self.shared.publish(message(room, channel, sender, content));
    }

    /// Someone on IRC says something formatted: (styles, text) runs as fishroom's IRC handler gives them in
    /// `rich_text` (`["bold"]`, `["italic", "underline"]`…), their texts together the `content`.
    pub fn say_rich(&self, room: &str, sender: &str, runs: &[(&[&str], &str)]) {
        let content: String = runs.iter().map(|(_, text)| *text).collect();
        let mut message = message(room, "irc", sender, &content);
        message["rich_text"] =
            runs.iter().map(|(styles, text)| json!([{"color": "", "style": styles}, text])).collect();
        self.shared.publish(message);
    }

    /// Publishes a message object as given (media, events, odd fields).
    pub fn publish(&self, message: Value) {
        self.shared.publish(message);
    }

    /// The next poll of `token_id` is answered with `body`, verbatim.
    pub fn inject_raw(&self, token_id: &str, body: &str) {
        let mut inner = self.shared.lock();
        inner.queues.entry(token_id.to_owned()).or_default().raw.push_back(body.to_owned());
        drop(inner);
        self.shared.arrived.notify_waiters();
    }

    /// How many polls were answered (one a second or a few is polling; thousands is a loop).
    pub fn polls(&self) -> usize {
        self.shared.lock().polls
    }

    /// Everything API clients posted, in order.
    pub fn posted(&self) -> Vec<Posted> {
        self.shared.lock().posted.clone()
    }

    /// Posted messages as they arrive.
    pub fn subscribe(&self) -> broadcast::Receiver<Posted> {
        self.shared.posted_tx.subscribe()
    }

    /// Answer every valid post with the upstream 500 (true) or the intended 200 (false).
    pub fn fail_posts(&self, fail: bool) {
        self.shared.lock().fail_posts = fail;
    }

    /// How many posts were answered with 500.
    pub fn fail_count(&self) -> usize {
        self.shared.lock().failed
    }

    pub fn drop_connections(&self) {
        self.server.drop_connections();
    }

    /// Goes down for `down_for` and comes back on the same port, queues intact.
    pub async fn restart(&mut self, down_for: Duration) -> std::io::Result<()> {
        self.server.restart(down_for).await
    }
}

fn message(room: &str, channel: &str, sender: &str, content: &str) -> Value {
    let now = time_of_day();
    json!({
        "channel": channel, "sender": sender, "receiver": "", "room": room, "mtype": mtype_of(content),
        "content": content, "media_url": null, "rich_text": null, "date": "2026-01-01", "time": now,
        "botmsg": false, "opt": {}, "route": null,
    })
}

fn mtype_of(content: &str) -> &'static str {
    let mut chars = content.chars();
    match (chars.next(), chars.next()) {
        (Some('/' | '.'), Some(second)) if second != '/' && second != '.' => "command",
        _ => "text",
    }
}

fn time_of_day() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    format!("{:02}:{:02}:{:02}", secs / 3600 % 24, secs / 60 % 60, secs % 60)
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("simulator lock is never poisoned")
    }

    /// Every token's queue gets the message (the hub publishes to all API clients).
    fn publish(&self, message: Value) {
        let mut inner = self.lock();
        for queue in inner.queues.values_mut() {
            if queue.last_push.is_some_and(|t| t.elapsed() > self.config.queue_ttl) {
                queue.items.clear();
            }
            queue.items.push_back(message.clone());
            while queue.items.len() > self.config.queue_len {
                queue.items.pop_front();
            }
            queue.last_push = Some(Instant::now());
        }
        drop(inner);
        self.arrived.notify_waiters();
    }

    /// The token id and its name, when the request carries a valid token.
    fn auth(&self, headers: &HeaderMap, args: &HashMap<String, String>) -> Option<(String, String)> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let id = header("x-token-id").or_else(|| args.get("id").cloned())?;
        let key = header("x-token-key").or_else(|| args.get("key").cloned())?;
        let (_, _, name) = self.config.tokens.iter().find(|(i, k, _)| *i == id && *k == key)?;
        Some((id, name.clone()))
    }

    fn take(&self, token: &str, all: bool) -> Result<Vec<Value>, String> {
        let mut inner = self.lock();
        let queue = inner.queues.entry(token.to_owned()).or_default();
        if let Some(raw) = queue.raw.pop_front() {
            return Err(raw);
        }
        if queue.last_push.is_some_and(|t| t.elapsed() > self.config.queue_ttl) {
            queue.items.clear();
        }
        Ok(if all { queue.items.drain(..).collect() } else { queue.items.pop_front().into_iter().collect() })
    }
}

async fn status() -> Response {
    (StatusCode::IM_A_TEAPOT, axum::Json(json!({"status": "OK"}))).into_response()
}

fn invalid_token() -> Response {
    (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "application/json")], "Invalid Token").into_response()
}

fn room_not_found() -> Response {
    (StatusCode::NOT_FOUND, "Room not found").into_response()
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({ "message": message }))).into_response()
}

async fn poll(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(args): Query<HashMap<String, String>>,
) -> Response {
    let Some((token, _)) = shared.auth(&headers, &args) else { return invalid_token() };
    let Some(room) = args.get("room").filter(|r| shared.rooms.contains(*r)) else { return room_not_found() };
    shared.lock().polls += 1;
    let deadline = tokio::time::Instant::now() + shared.config.poll_timeout;
    // A non-empty queue: take everything. An empty one: wait for one message (BLPOP with a timeout). As on the
    // real server, the wait and the take go on whether or not the client is still there: a client that gave up
    // on its poll loses what that poll takes.
    let waiting = Arc::clone(&shared);
    let taking = tokio::spawn(async move {
        let shared = waiting;
        let mut taken = shared.take(&token, true);
        while matches!(&taken, Ok(items) if items.is_empty()) {
            let arrived = shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            taken = shared.take(&token, false);
            if matches!(&taken, Ok(items) if items.is_empty())
                && tokio::time::timeout_at(deadline, arrived).await.is_err()
            {
                break;
            }
        }
        taken
    });
    let Ok(taken) = taking.await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the poll failed").into_response();
    };
    match taken {
        Ok(items) => {
            let messages: Vec<Value> = items.into_iter().filter(|m| m["room"] == room.as_str()).collect();
            axum::Json(json!({ "messages": messages })).into_response()
        }
        Err(raw) => ([(header::CONTENT_TYPE, "application/json")], raw).into_response(),
    }
}

async fn post_message(
    State(shared): State<Arc<Shared>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    Query(args): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if body.is_empty() {
        return bad_request("Cannot handle empty request");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else { return bad_request("Unable to parse JSON.") };
    if !shared.rooms.contains(&room) {
        return room_not_found();
    }
    let Some((_, name)) = shared.auth(&headers, &args) else { return invalid_token() };
    let content = body["content"].as_str().unwrap_or_default();
    if content.is_empty() {
        return bad_request("Cannot send empty message");
    }
    let failing = {
        let mut inner = shared.lock();
        inner.failed += usize::from(inner.fail_posts);
        inner.fail_posts
    };
    if failing {
        return (StatusCode::INTERNAL_SERVER_ERROR, "<html><title>500: Internal Server Error</title></html>")
            .into_response();
    }
    let sender = body["sender"].as_str().unwrap_or(&name).to_owned();
    let channel = format!("api-{name}");
    let posted =
        Posted { room: room.clone(), sender: sender.clone(), content: content.to_owned(), channel: channel.clone() };
    shared.lock().posted.push(posted.clone());
    let _ = shared.posted_tx.send(posted);
    shared.publish(message(&room, &channel, &sender, content));
    axum::Json(json!({ "message": "OK" })).into_response()
}
