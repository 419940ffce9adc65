//! A Heihei server as the seed and `docs/platforms/heihei.md` describe it: `init` returning the endpoint map
//! (pointing at itself), hosts going on and off air (list-live-by-user, join-live, get-live, quit-live,
//! and a `stop-live` action on the socket), the channel socket with its token check (pings are answered by
//! the websocket layer), frames in both forms (arrays of items whose `msg` is a JSON string, and the
//! `{timeStamp, type, liveId, msg}` envelope), and `sendMsg` with its error codes, echoing what is sent.

mod contract;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{Sessions, SimServer};

#[derive(Clone, Debug)]
pub struct HeiheiSimConfig {
    /// The bridge's valid token.
    pub token: String,
    /// The bridge's user (the sender of its echoes).
    pub user_id: u64,
    pub hosts: Vec<u64>,
}

/// A message sent through `sendMsg`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMsg {
    pub room_id: u64,
    pub live_id: u64,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimLive {
    pub live_id: u64,
    pub room_id: u64,
}

#[derive(Default)]
struct Inner {
    /// Each host's current broadcast, and the ones that ended.
    on_air: HashMap<u64, SimLive>,
    ended: Vec<(u64, SimLive)>,
    revoked: bool,
    fail_next: Option<i64>,
    sent: Vec<SentMsg>,
    joins: Vec<u64>,
}

struct Shared {
    config: HeiheiSimConfig,
    base: String,
    inner: Mutex<Inner>,
    frames: broadcast::Sender<String>,
    sent_tx: broadcast::Sender<SentMsg>,
    next: AtomicU64,
    form: AtomicUsize,
    sessions: Sessions,
}

pub struct HeiheiSim {
    server: SimServer,
    shared: Arc<Shared>,
}

/// The sessions hold the shared state: they are cut when the simulator goes.
impl Drop for HeiheiSim {
    fn drop(&mut self) {
        self.shared.sessions.drop_all();
    }
}

impl HeiheiSim {
    /// Listens on a free loopback port.
    pub async fn start(config: HeiheiSimConfig) -> std::io::Result<Self> {
        Self::start_on(config, 0).await
    }

    /// Listens on loopback port `port` (0: any free one).
    pub async fn start_on(config: HeiheiSimConfig, port: u16) -> std::io::Result<Self> {
        // The endpoint map points at the server itself: bind first, then build the routes.
        let listener = tokio::net::TcpListener::bind(super::loopback(port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            base: format!("{addr}"),
            inner: Mutex::default(),
            frames: broadcast::channel(4096).0,
            sent_tx: broadcast::channel(4096).0,
            next: AtomicU64::new(1000),
            form: AtomicUsize::new(0),
            sessions: Sessions::default(),
        });
        let app = Router::new()
            .route("/api/init", get(init))
            .route("/api/live/list-live-by-user", post(list_live_by_user))
            .route("/api/live/join-live", post(join_live))
            .route("/api/live/get-live", post(get_live))
            .route("/api/live/quit-live", post(quit_live))
            .route("/api/msg/send-msg", post(send_msg))
            .route("/api/live/gift-info", post(gift_info))
            .route("/ws/channel", get(channel))
            .with_state(Arc::clone(&shared));
        let server = SimServer::from_listener(listener, app)?;
        Ok(Self { server, shared })
    }

    pub fn init_url(&self) -> String {
        format!("http://{}/api/init", self.shared.base)
    }

    /// The host starts a broadcast.
    pub fn start_live(&self, host: u64) -> SimLive {
        let n = self.shared.next.fetch_add(2, Ordering::Relaxed);
        let live = SimLive { live_id: 840_000_000 + n, room_id: 120_000 + n };
        self.shared.lock().on_air.insert(host, live);
        live
    }

    /// The host ends the broadcast: `stop-live` on the socket.
    pub fn stop_live(&self, host: u64) {
        let Some(live) = self.shared.lock().on_air.remove(&host) else { return };
        self.shared.lock().ended.push((host, live));
        let msg = json!({"msgType": "action", "action": "stop-live", "comment": "直播结束", "roomId": live.room_id,
            "live": {"liveId": live.live_id, "roomId": live.room_id, "userId": host, "title": "title"}, "msgId": self.msg_id()});
        self.shared.push(Some(live.live_id), msg);
    }

    /// A viewer says `text` in the host's current broadcast.
    pub fn say(&self, host: u64, from: u64, name: &str, text: &str) {
        let Some(live) = self.shared.lock().on_air.get(&host).copied() else { return };
        let msg = json!({"msgType": "text", "fromUserId": from, "fromUserName": name, "gender": "Male",
            "coverUrl": "http://cdn/c.png", "text": text, "msgId": self.msg_id(), "roomId": live.room_id});
        self.shared.push(Some(live.live_id), msg);
    }

    /// Pushes an inner message (any `msgType`) as the server would, in the next frame form.
    pub fn push(&self, live_id: Option<u64>, msg: Value) {
        self.shared.push(live_id, msg);
    }

    /// Pushes a frame verbatim.
    pub fn push_raw(&self, frame: &str) {
        let _ = self.shared.frames.send(frame.to_owned());
    }

    /// The current broadcast of a host.
    pub fn live_of(&self, host: u64) -> Option<SimLive> {
        self.shared.lock().on_air.get(&host).copied()
    }

    pub fn sent(&self) -> Vec<SentMsg> {
        self.shared.lock().sent.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<SentMsg> {
        self.shared.sent_tx.subscribe()
    }

    /// join-live calls, by live id.
    pub fn joins(&self) -> Vec<u64> {
        self.shared.lock().joins.clone()
    }

    /// The next `sendMsg` answers with this error code.
    pub fn fail_next_send(&self, code: i64) {
        self.shared.lock().fail_next = Some(code);
    }

    /// The bridge's token stops being accepted (720).
    pub fn revoke_token(&self) {
        self.shared.lock().revoked = true;
    }

    /// The open sockets stop answering pings (and everything else), still open.
    pub fn mute_connections(&self) {
        self.shared.sessions.mute_all();
    }

    /// Goes down for `down_for` (connections refused) and comes back on the same port.
    pub async fn restart(&mut self, down_for: std::time::Duration) -> std::io::Result<()> {
        self.shared.sessions.drop_all();
        self.server.restart(down_for).await
    }

    pub fn drop_connections(&self) {
        self.shared.sessions.drop_all();
        self.server.drop_connections();
    }

    fn msg_id(&self) -> u64 {
        12_222_221_000_000 + self.shared.next.fetch_add(1, Ordering::Relaxed)
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("simulator lock is never poisoned")
    }

    fn token_ok(&self, token: Option<&String>) -> bool {
        token.is_some_and(|t| *t == self.config.token) && !self.lock().revoked
    }

    /// Frames alternate between the two forms the sources show.
    fn push(&self, live_id: Option<u64>, msg: Value) {
        let frame = if self.form.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
            json!([{ "msg": msg.to_string() }]).to_string()
        } else {
            json!({"timeStamp": crate::model::Time::now().0, "type": "toLive", "liveId": live_id, "msg": msg})
                .to_string()
        };
        let _ = self.frames.send(frame);
    }

    fn live_by_id(&self, live_id: u64) -> Option<SimLive> {
        self.lock().on_air.values().find(|l| l.live_id == live_id).copied()
    }
}

type Args = HashMap<String, String>;

fn answer(code: i64, message: &str, extra: Value) -> Response {
    let mut body = json!({"errorcode": code, "errormsg": message});
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    axum::Json(body).into_response()
}

async fn init(State(shared): State<Arc<Shared>>, Query(args): Query<Args>) -> Response {
    let required = ["ap", "version", "local", "uuid", "apiVersion", "deveiceType"];
    if required.iter().any(|k| !args.contains_key(*k)) || args.get("ap").map(String::as_str) != Some("heihei") {
        return answer(700, "参数错误", json!({}));
    }
    if !shared.token_ok(args.get("token")) {
        return answer(720, "token无效", json!({}));
    }
    let api = format!("http://{}/api", shared.base);
    answer(
        0,
        "success",
        json!({
            "message": {"sendMsg": format!("{api}/msg/send-msg"), "channel": format!("ws://{}/ws/channel", shared.base),
                "messageList": format!("{api}/msg/message-list")},
            "live": {"getLive": format!("{api}/live/get-live"), "joinLive": format!("{api}/live/join-live"),
                "quitLive": format!("{api}/live/quit-live"), "listLiveByUser": format!("{api}/live/list-live-by-user"),
                "giftInfo": format!("{api}/live/gift-info")},
            "imgPath": "http://cdn.wmlives.com"
        }),
    )
}

/// The gift list (seed 001 "礼物列表": its example gift, and gift 113, which the seed's IM gift example sends).
async fn gift_info(State(shared): State<Arc<Shared>>, Form(args): Form<Args>) -> Response {
    if !shared.token_ok(args.get("token")) {
        return answer(720, "token无效", json!({}));
    }
    let gift = |id: u64, name: &str| json!({"id": id, "name": name, "gold": 1, "exp": 10, "cl": [255, 255, 255], "image": "a.jpg", "icon": "b.jpg", "type": 1});
    answer(0, "success", json!({"expireTime": 60, "gifts": [gift(123, "小黄瓜"), gift(113, "kiss雨")]}))
}

async fn list_live_by_user(State(shared): State<Arc<Shared>>, Form(args): Form<Args>) -> Response {
    if !shared.token_ok(args.get("token")) {
        return answer(720, "token无效", json!({}));
    }
    let Some(user) = args.get("userId").and_then(|u| u.parse::<u64>().ok()) else {
        return answer(700, "参数错误", json!({}));
    };
    let inner = shared.lock();
    let mut lives: Vec<Value> = inner
        .ended
        .iter()
        .filter(|(h, _)| *h == user)
        .map(|(_, l)| json!({"creatorId": user, "liveId": l.live_id, "roomId": l.room_id, "status": 2}))
        .collect();
    if let Some(live) = inner.on_air.get(&user) {
        lives.insert(
            0,
            json!({"creatorId": user, "liveId": live.live_id, "roomId": live.room_id, "status": 1, "title": "on air"}),
        );
    }
    answer(0, "success", json!({"expireTime": 120, "totalCount": lives.len(), "lives": lives}))
}

async fn join_live(State(shared): State<Arc<Shared>>, Form(args): Form<Args>) -> Response {
    live_call(&shared, &args, true)
}

async fn get_live(State(shared): State<Arc<Shared>>, Form(args): Form<Args>) -> Response {
    live_call(&shared, &args, false)
}

fn live_call(shared: &Shared, args: &Args, join: bool) -> Response {
    if !shared.token_ok(args.get("token")) {
        return answer(720, "token无效", json!({}));
    }
    let Some(live_id) = args.get("liveId").and_then(|l| l.parse::<u64>().ok()) else {
        return answer(700, "参数错误", json!({}));
    };
    let Some(live) = shared.live_by_id(live_id) else { return answer(731, "直播无效", json!({})) };
    if join {
        shared.lock().joins.push(live_id);
    }
    answer(
        0,
        "success",
        json!({"live": {"liveId": live.live_id, "roomId": live.room_id, "status": 1, "title": "on air"}}),
    )
}

async fn quit_live(State(shared): State<Arc<Shared>>, Form(args): Form<Args>) -> Response {
    if !shared.token_ok(args.get("token")) {
        return answer(720, "token无效", json!({}));
    }
    answer(0, "success", json!({}))
}

async fn send_msg(State(shared): State<Arc<Shared>>, Form(args): Form<Args>) -> Response {
    let field = |k: &str| args.get(k).filter(|v| !v.is_empty());
    let (Some(text), Some(room), Some(live)) = (field("text"), field("roomId"), field("liveId")) else {
        return answer(700, "参数错误", json!({}));
    };
    if !shared.token_ok(args.get("token")) {
        return answer(720, "token无效", json!({}));
    }
    if let Some(code) = shared.lock().fail_next.take() {
        return answer(code, "simulated failure", json!({}));
    }
    let (Ok(room_id), Ok(live_id)) = (room.parse::<u64>(), live.parse::<u64>()) else {
        return answer(700, "参数错误", json!({}));
    };
    if shared.live_by_id(live_id).is_none_or(|l| l.room_id != room_id) {
        return answer(733, "room无效", json!({}));
    }
    let sent = SentMsg { room_id, live_id, text: text.clone() };
    shared.lock().sent.push(sent.clone());
    let _ = shared.sent_tx.send(sent);
    let echo = json!({"msgType": "text", "fromUserId": shared.config.user_id, "fromUserName": "bridgebot",
        "text": text, "msgId": shared.next.fetch_add(1, Ordering::Relaxed), "roomId": room_id});
    shared.push(Some(live_id), echo);
    answer(0, "success", json!({}))
}

async fn channel(State(shared): State<Arc<Shared>>, Query(args): Query<Args>, upgrade: WebSocketUpgrade) -> Response {
    if !shared.token_ok(args.get("token")) {
        return (StatusCode::FORBIDDEN, "token invalid").into_response();
    }
    let (dropped, muted) = shared.sessions.tokens();
    let frames = shared.frames.subscribe();
    upgrade.on_upgrade(move |ws| socket(ws, frames, dropped, muted))
}

async fn socket(
    mut ws: WebSocket,
    mut frames: broadcast::Receiver<String>,
    dropped: CancellationToken,
    muted: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = dropped.cancelled() => return,
            _ = muted.cancelled() => {
                // Silent until cut: nothing is read, so no ping is answered.
                dropped.cancelled().await;
                return;
            }
            frame = frames.recv() => {
                let Ok(frame) = frame else { return };
                if ws.send(Message::text(frame)).await.is_err() {
                    return;
                }
            }
            incoming = ws.recv() => {
                // Pings are answered by the websocket layer as the frames are read.
                if !matches!(incoming, Some(Ok(_))) {
                    return;
                }
            }
        }
    }
}
