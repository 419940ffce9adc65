//! A Yunhu server as `docs/platforms/yunhu.md` describes it: protobuf HTTP endpoints with token checks (send,
//! edit, recall, user info, list-message-by-seq with per-chat sequence numbers) and a websocket that needs
//! the JSON login frame, answers heartbeats with `heartbeat_ack`, and pushes `push_message`, `edit_message`,
//! recall notices and `stream_message` parts to every logged-in client — the sender included, as the real
//! service does. Clients can be dropped and sent garbage.

mod contract;
mod media;
mod server;

use server::*;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prost::Message as _;
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{Sessions, SimServer};
use crate::adapters::yunhu::proto::{
    Any, EditMessageRequest, EditMessageResponse, HistoryContent, HistoryMsg, HistorySender, ListMessageBySeqRequest,
    ListMessageResponse, MsgContent, PushMessage, RecallBatchRequest, RecallMessageRequest, RecallMessageResponse,
    SendMessageRequest, SendMessageResponse, Sender, Status, StreamMessage, UserData, UserInfo, WsInfo, WsWrapper,
};

#[derive(Clone, Debug, Default)]
pub struct YunhuSimConfig {
    /// Known users: (token, user id, name).
    pub users: Vec<(String, String, String)>,
    /// The upload host keeps no bytes, only that a key was uploaded (a benchmark's thousands of pictures).
    pub discard_uploads: bool,
}

/// A message a client sent through the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub msg_id: String,
    pub chat_id: String,
    pub chat_type: u64,
    pub content_type: u64,
    pub text: String,
    pub mentioned_id: Vec<String>,
    pub quote_msg_id: String,
    pub quote_msg_text: String,
    /// The uploaded key a media message names (`image`, `video`, `audio` or `file_key`), and a file's name and size.
    pub media_key: String,
    pub file_name: String,
    pub file_size: u64,
}

/// What a client asked of the HTTP API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Send(Sent),
    Edit { msg_id: String, text: String },
    Recall { msg_id: String, chat_id: String },
}

#[derive(Default)]
struct Inner {
    /// Every message per chat, in sequence.
    history: HashMap<String, Vec<PushMessage>>,
    requests: Vec<Request>,
    logins: usize,
    /// Upload tokens given out, and what was uploaded with them, by key.
    upload_tokens: Vec<String>,
    uploads: HashMap<String, Vec<u8>>,
}

struct Shared {
    config: YunhuSimConfig,
    inner: Mutex<Inner>,
    frames: broadcast::Sender<Vec<u8>>,
    requests_tx: broadcast::Sender<Request>,
    next: AtomicU64,
    sessions: Sessions,
    /// The service is down: every request and handshake answers 503; messages said meanwhile are only in
    /// the history.
    down: std::sync::atomic::AtomicBool,
    /// The next this many sends are accepted but answered 502 (a proxy lost the answer).
    lose_answers: std::sync::atomic::AtomicUsize,
}

pub struct YunhuSim {
    server: SimServer,
    shared: Arc<Shared>,
}

fn now() -> i64 {
    crate::model::Time::now().0
}

fn wrap(cmd: &str, seq: &str, value: Vec<u8>) -> Vec<u8> {
    let type_url = match cmd {
        "stream_message" => "type.googleapis.com/proto.StreamMessage",
        _ => "type.googleapis.com/proto.PushMessage",
    };
    WsWrapper {
        info: Some(WsInfo { seq: seq.to_owned(), cmd: cmd.to_owned() }),
        data: Some(Any { type_url: type_url.to_owned(), value }),
    }
    .encode_to_vec()
}

fn ok() -> Status {
    Status { request_id: 1, code: 1, msg: "success".into() }
}

/// The sessions hold the shared state: they are cut when the simulator goes.
impl Drop for YunhuSim {
    fn drop(&mut self) {
        self.shared.sessions.drop_all();
    }
}

impl YunhuSim {
    /// Listens on a free loopback port.
    pub async fn start(config: YunhuSimConfig) -> std::io::Result<Self> {
        Self::start_on(config, 0).await
    }

    /// Listens on loopback port `port` (0: any free one).
    pub async fn start_on(config: YunhuSimConfig, port: u16) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            config,
            inner: Mutex::default(),
            frames: broadcast::channel(4096).0,
            requests_tx: broadcast::channel(4096).0,
            next: AtomicU64::new(1),
            sessions: Sessions::default(),
            down: Default::default(),
            lose_answers: Default::default(),
        });
        let app = Router::new()
            .route("/v1/user/info", get(user_info))
            .route("/v1/msg/send-message", post(send_message))
            .route("/v1/msg/edit-message", post(edit_message))
            .route("/v1/msg/recall-msg", post(recall))
            .route("/v1/msg/recall-msg-batch", post(recall_batch))
            .route("/v1/msg/list-message-by-seq", post(list_by_seq))
            .route("/ws", get(socket))
            .route("/v1/misc/qiniu-token", get(media::upload_token))
            .route("/v1/misc/qiniu-token2", get(media::upload_token))
            .route("/v1/misc/qiniu-token-video", get(media::upload_token))
            .route("/v1/misc/qiniu-token-audio", get(media::upload_token))
            .route("/qiniu/upload", post(media::qiniu_upload).layer(axum::extract::DefaultBodyLimit::max(64 << 20)))
            .layer(axum::middleware::from_fn_with_state(Arc::clone(&shared), unless_down))
            .with_state(Arc::clone(&shared));
        Ok(Self { server: SimServer::start_at(super::loopback(port), app).await?, shared })
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.server.addr())
    }

    /// `user` (id, name) says `text` in `group`; returns the message id.
    pub fn say(&self, group: &str, user: (&str, &str), text: &str) -> String {
        self.post(group, user, text, &[], ("", ""))
    }

    /// `user` says `text` in `group` as a message of `content_type` (3 markdown, 8 HTML); returns the message id.
    pub fn say_as(&self, group: &str, user: (&str, &str), content_type: u64, text: &str) -> String {
        let msg_id = uuid::Uuid::new_v4().simple().to_string();
        let content = MsgContent { text: text.to_owned(), ..MsgContent::default() };
        let push = self.shared.message(&msg_id, group, 2, user, 1, content_type, content, "");
        self.shared.publish("push_message", &push);
        msg_id
    }

    /// `user` posts any content (a post, a form, buttons, a call…) of `content_type` in `group`, its fields given by
    /// their names as in `tests/fixtures/wire/yunhu/content_kinds.jsonl`; returns its id.
    pub fn push_content(
        &self,
        group: &str,
        user: (&str, &str),
        content_type: u64,
        fields: &serde_json::Value,
    ) -> String {
        let content = content_from_fields(fields);
        let msg_id = uuid::Uuid::new_v4().simple().to_string();
        let push = self.shared.message(&msg_id, group, 2, user, 1, content_type, content, "");
        self.shared.publish("push_message", &push);
        msg_id
    }

    /// A text message with mentions (ids for the `@name`s of the text) quoting (msg_id, text).
    pub fn post(
        &self,
        chat: &str,
        user: (&str, &str),
        text: &str,
        mentioned_id: &[&str],
        quote: (&str, &str),
    ) -> String {
        let msg_id = uuid::Uuid::new_v4().simple().to_string();
        let content = MsgContent {
            text: text.to_owned(),
            mentioned_id: mentioned_id.iter().map(|s| (*s).to_owned()).collect(),
            quote_msg_text: quote.1.to_owned(),
            ..MsgContent::default()
        };
        let push = self.shared.message(&msg_id, chat, 2, user, 1, 1, content, quote.0);
        self.shared.publish("push_message", &push);
        msg_id
    }

    /// A bot's streamed message: the first part as a push, the rest as `stream_message` parts.
    pub async fn stream(&self, group: &str, bot: (&str, &str), parts: &[&str], gap: std::time::Duration) -> String {
        let msg_id = uuid::Uuid::new_v4().simple().to_string();
        let first = MsgContent { text: parts.first().copied().unwrap_or_default().to_owned(), ..MsgContent::default() };
        let push = self.shared.message(&msg_id, group, 2, bot, 3, 1, first, "");
        self.shared.publish("push_message", &push);
        for part in &parts[1..] {
            tokio::time::sleep(gap).await;
            let part = StreamMessage {
                msg_id: msg_id.clone(),
                recv_id: group.to_owned(),
                chat_id: group.to_owned(),
                content: (*part).to_owned(),
            };
            let _ = self.shared.frames.send(wrap("stream_message", "", part.encode_to_vec()));
        }
        msg_id
    }

    /// Someone edits their message `msg_id`.
    pub fn edit(&self, msg_id: &str, text: &str) {
        self.shared.edit(msg_id, text);
    }

    /// Someone recalls their message `msg_id`.
    pub fn recall(&self, msg_id: &str) {
        self.shared.recall(msg_id);
    }

    /// A frame that is not protobuf.
    pub fn garbage(&self, bytes: &[u8]) {
        let _ = self.shared.frames.send(bytes.to_vec());
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Request> {
        self.shared.requests_tx.subscribe()
    }

    pub fn logins(&self) -> usize {
        self.shared.lock().logins
    }

    pub fn drop_connections(&self) {
        self.shared.sessions.drop_all();
        self.server.drop_connections();
    }

    /// The next `count` sends go through (pushed, in the history) but are answered 502.
    pub fn lose_answers(&self, count: usize) {
        self.shared.lose_answers.store(count, Ordering::SeqCst);
    }

    /// The service goes down (every socket is cut, everything answers 503) or comes back.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
        if down {
            self.drop_connections();
        }
    }
}

async fn unless_down(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if shared.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    next.run(request).await
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("simulator lock is never poisoned")
    }

    fn user(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let token = headers.get("token")?.to_str().ok()?;
        self.config.users.iter().find(|(t, _, _)| t == token).map(|(_, id, name)| (id.clone(), name.clone()))
    }

    #[allow(clippy::too_many_arguments)]
    fn message(
        &self,
        msg_id: &str,
        chat: &str,
        chat_type: u64,
        (user_id, name): (&str, &str),
        sender_type: u64,
        content_type: u64,
        content: MsgContent,
        quote: &str,
    ) -> PushMessage {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let push = PushMessage {
            msg_id: msg_id.to_owned(),
            sender: Some(Sender {
                chat_id: user_id.to_owned(),
                chat_type: sender_type,
                name: name.to_owned(),
                ..Sender::default()
            }),
            recv_id: chat.to_owned(),
            chat_id: chat.to_owned(),
            chat_type,
            content: Some(content),
            content_type,
            timestamp: now(),
            quote_msg_id: quote.to_owned(),
            msg_seq: seq,
            ..PushMessage::default()
        };
        self.lock().history.entry(chat.to_owned()).or_default().push(push.clone());
        push
    }

    fn publish(&self, cmd: &str, push: &PushMessage) {
        if self.down.load(Ordering::SeqCst) {
            return;
        }
        let _ = self.frames.send(wrap(cmd, "", push.encode_to_vec()));
    }

    fn find(&self, msg_id: &str) -> Option<PushMessage> {
        self.lock().history.values().flatten().find(|m| m.msg_id == msg_id).cloned()
    }

    fn edit(&self, msg_id: &str, text: &str) {
        let Some(mut push) = self.find(msg_id) else { return };
        push.content.get_or_insert_with(Default::default).text = text.to_owned();
        push.edit_timestamp = now() as u64;
        self.publish("edit_message", &push);
    }

    fn recall(&self, msg_id: &str) {
        let Some(mut push) = self.find(msg_id) else { return };
        push.delete_timestamp = now() as u64;
        self.publish("push_message", &push);
    }

    fn record(&self, request: Request) {
        self.lock().requests.push(request.clone());
        let _ = self.requests_tx.send(request);
    }
}

/// A message's content from its fields by name (as `tests/fixtures/wire/yunhu/content_kinds.jsonl` writes them).
pub(crate) fn content_from_fields(fields: &serde_json::Value) -> MsgContent {
    let s = |k: &str| fields[k].as_str().unwrap_or_default().to_owned();
    MsgContent {
        text: s("text"),
        buttons: s("buttons"),
        form: s("form"),
        post_id: s("post_id"),
        post_title: s("post_title"),
        post_content: s("post_content"),
        post_content_type: s("post_content_type"),
        call_text: s("call_text"),
        call_status_text: s("call_status_text"),
        tip: s("tip"),
        ..MsgContent::default()
    }
}
