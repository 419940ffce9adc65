//! The HTTP side: matterbridge's routes, with the bearer token on every one of them when it is set.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use serde_json::json;

use super::Hub;
pub(super) use super::feed::Feed;
use super::wire::{self, ACTION, ApiMessage, DELETE};
use crate::model::{Content, Event, EventKind, Message, RemoteId, Reply, RoomId, User};
use crate::settings::Secret;

pub(super) async fn serve(hub: Arc<Hub>, listener: tokio::net::TcpListener) {
    let app = Router::new()
        .route("/api/health", get(|| async { "OK" }))
        .route("/api/message", post(post_message))
        .route("/api/messages", get(messages))
        .route("/api/stream", get(stream))
        .route("/api/websocket", get(super::websocket::websocket))
        // As echo (matterbridge's HTTP framework) answers: JSON `{"message": …}`.
        .fallback(|| async { refuse(StatusCode::NOT_FOUND, "Not Found") })
        .method_not_allowed_fallback(|| async { refuse(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed") })
        // No body limit layer: axum's default for a body read whole is 2 MiB, MAX_MESSAGE (tests/it/hostile).
        .with_state(Arc::clone(&hub));
    let closed = hub.ctx.closed.clone();
    let gate = hub
        .config
        .token
        .clone()
        .map(|token| Arc::new(move |headers: &HeaderMap| refusal(&token, headers)) as crate::listener::Gate);
    hub.ctx.set_state(crate::adapters::AccountState::Connected).await;
    crate::listener::serve_gated(listener, app, hub.ctx.http, "api", closed, gate).await;
}

pub(super) fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "message": message.into() }))).into_response()
}

/// The credentials of `Authorization: <scheme> <credentials>` when the scheme is Bearer, in any case (RFC 9110:
/// schemes are case-insensitive; matterbridge's echo accepts `bearer`).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim_start_matches(' '))
}

/// `Authorization: Bearer <token>` on every request, whatever its path: missing is 400, wrong is 401, as
/// matterbridge answers.
fn refusal(token: &Secret, headers: &HeaderMap) -> Option<Response> {
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(given) = given.and_then(bearer) else {
        return Some(refuse(StatusCode::BAD_REQUEST, "missing or malformed Authorization: Bearer <token> header"));
    };
    // In constant time: how long the comparison takes says nothing of how much of the token was right.
    (!bool::from(subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.expose().as_bytes())))
        .then(|| refuse(StatusCode::UNAUTHORIZED, "invalid token"))
}

/// The largest message a client may send, by POST (413 past it) or over the websocket (the connection is
/// closed past it, however the message is fragmented).
pub(super) const MAX_MESSAGE: usize = 2 << 20;

/// How long a client is asked to wait while the store cannot write.
pub(super) const RETRY_AFTER_SECONDS: u64 = 5;

/// Why a posted message was not taken.
pub(super) enum Refused {
    /// The message is wrong: 400.
    Bad(String),
    /// The bridge cannot keep it now: 503 with `Retry-After`.
    Unavailable(String),
}

impl From<String> for Refused {
    fn from(why: String) -> Self {
        Refused::Bad(why)
    }
}

impl From<&str> for Refused {
    fn from(why: &str) -> Self {
        Refused::Bad(why.to_owned())
    }
}

impl Refused {
    pub(super) fn text(self) -> String {
        match self {
            Refused::Bad(why) | Refused::Unavailable(why) => why,
        }
    }

    fn response(self) -> Response {
        match self {
            Refused::Bad(why) => refuse(StatusCode::BAD_REQUEST, why),
            Refused::Unavailable(why) => {
                let mut response = refuse(StatusCode::SERVICE_UNAVAILABLE, why);
                response.headers_mut().insert(header::RETRY_AFTER, RETRY_AFTER_SECONDS.into());
                response
            }
        }
    }
}

/// Checks a posted message and hands it to the router; the stored message (with its id) or why not.
pub(super) async fn accept(hub: &Hub, mut message: ApiMessage) -> Result<ApiMessage, Refused> {
    let unavailable = |reason: String| {
        Refused::Unavailable(format!(
            "the bridge cannot store messages right now ({reason}); send it again in {RETRY_AFTER_SECONDS} s"
        ))
    };
    if let Some(reason) = hub.ctx.stats.store.failing() {
        return Err(unavailable(reason));
    }
    if !hub.gateways.contains(&message.gateway) {
        return Err(
            format!("unknown gateway `{}`; this API serves: {}", message.gateway, hub.gateways.join(", ")).into()
        );
    }
    let deleting = message.event == DELETE;
    if deleting && message.id.is_empty() {
        return Err("`msg_delete` needs the `id` of the message to delete".into());
    }
    if !deleting && message.text.is_empty() {
        return Err("missing `text`".into());
    }
    // An id makes a post an edit only when it names a message of this account's (matterbridge ignores the ids
    // clients send: an unknown one is a new message, with an id of ours).
    let editing = !deleting && !message.id.is_empty() && hub.knows(&message.id);
    if !deleting && !editing {
        message.id.clear();
    }
    if message.id.is_empty() {
        // Time-ordered, like the ids the bridge gives its copies (see `ClientIdForm::generate`).
        message.id = uuid::Uuid::now_v7().to_string();
    }
    message.account = hub.ctx.account.to_string();
    message.protocol = "api".into();
    message.channel = "api".into();
    message.timestamp = wire::now();
    let room = hub.ctx.room_addr(&RoomId::new(message.gateway.as_str()));
    let target = RemoteId::new(message.id.as_str());
    let kind = if deleting {
        EventKind::Recalled { target }
    } else if editing {
        EventKind::Edited { target, content: Content::text(message.text.as_str()) }
    } else {
        let reply = (!message.parent_id.is_empty())
            .then(|| Reply { target: Some(RemoteId::new(message.parent_id.as_str())), ..Reply::default() });
        EventKind::Message(Message {
            content: Content::text(message.text.as_str()),
            reply,
            action: message.event == ACTION,
            extra: message.extra.clone().filter(|extra| !extra.is_null()),
            ..Message::default()
        })
    };
    let user_id = if message.userid.is_empty() { message.username.as_str() } else { message.userid.as_str() };
    let mut sender = User::new(user_id, message.username.as_str());
    sender.avatar = (!message.avatar.is_empty()).then(|| message.avatar.clone());
    let remote_id = matches!(kind, EventKind::Message(_)).then(|| RemoteId::new(message.id.as_str()));
    // The store may have started failing since the check above: refused at once, never a request left waiting.
    match hub.ctx.offer(Event::new(room, remote_id, Some(sender), kind)).await {
        Ok(()) => {
            hub.know(&message.id);
            Ok(message)
        }
        Err(Some(reason)) => Err(unavailable(reason)),
        Err(None) => Err("the bridge is shutting down".into()),
    }
}

async fn post_message(State(hub): State<Arc<Hub>>, body: Bytes) -> Response {
    let message: ApiMessage = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("the body is not a JSON message: {e}")),
    };
    match accept(&hub, message).await {
        Ok(stored) => axum::Json(stored).into_response(),
        Err(refused) => refused.response(),
    }
}

/// The reader of `GET /api/messages`: the token, and a `client` name when several read with one token.
fn reader(headers: &HeaderMap, args: &HashMap<String, String>) -> String {
    let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    format!("{token}|{}", args.get("client").map_or("", String::as_str))
}

async fn messages(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Query(args): Query<HashMap<String, String>>,
) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], hub.unread(&reader(&headers, &args))).into_response()
}

async fn stream(State(hub): State<Arc<Hub>>, Query(args): Query<HashMap<String, String>>) -> Response {
    let feed = Feed::new(&hub, args.get("last_id").map(String::as_str), 0);
    let lines = futures_util::stream::unfold(feed, |mut feed| async move {
        let message = feed.next().await?;
        Some((Ok::<_, Infallible>(message.line), feed))
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response()
}

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast;

    use super::super::wire::CONNECTED;
    use super::*;
    use crate::adapters::{AdapterContext, Backoff, Cursors};
    use crate::model::{AccountId, Platform};

    #[test]
    fn readers_of_api_messages_are_bounded() {
        let hub = hub(10);
        for n in 0..5_000 {
            let _ = hub.unread(&format!("token|client-{n}"));
        }
        assert_eq!(hub.log.lock().unwrap().cursors.len(), super::super::MAX_READERS);
        // The most recent readers are the ones kept.
        assert!(hub.log.lock().unwrap().cursors.contains_key("token|client-4999"));
        assert!(!hub.log.lock().unwrap().cursors.contains_key("token|client-0"));
    }

    fn hub(history: usize) -> Arc<Hub> {
        hub_waiting(history, super::super::SLOW_READER_WAIT)
    }

    fn hub_waiting(history: usize, slow_reader_wait: std::time::Duration) -> Arc<Hub> {
        let ctx = AdapterContext {
            account: AccountId::new(Platform::Api, "t"),
            rooms: Default::default(),
            router: tokio::sync::mpsc::channel(1).0,
            stop_receiving: Default::default(),
            closed: Default::default(),
            stats: Default::default(),
            backoff: Backoff::new(std::time::Duration::from_secs(1), std::time::Duration::from_secs(2)),
            cursors: Cursors::default(),
            http: Default::default(),
            send_now: Default::default(),
        };
        let config = crate::config::ApiAccount { listen: "127.0.0.1:0".parse().unwrap(), token: None, history };
        Arc::new(Hub {
            config,
            ctx,
            gateways: vec!["g".into()],
            log: Default::default(),
            live: broadcast::channel(super::super::LIVE_BUFFER).0,
            readers: Default::default(),
            advanced: Default::default(),
            waiting: Default::default(),
            websockets: Default::default(),
            sessions: Default::default(),
            known: Default::default(),
            slow_reader_wait,
        })
    }

    fn request(action: crate::adapters::SendAction) -> crate::adapters::SendRequest {
        crate::adapters::SendRequest {
            room: RoomId::new("g"),
            action,
            client_ids: Vec::new(),
            attempt: 1,
            maybe_sent: false,
            event_time: crate::model::Time::now(),
        }
    }

    /// A send is answered on the router's task while every streaming client has room for what it hands out, and
    /// declined (to wait on the adapter's task) when one would be `history` behind.
    #[test]
    fn sends_are_answered_at_once_only_while_every_reader_has_room() {
        use crate::adapters::{OutMessage, SendAction, SendNow};
        let hub = hub(4);
        let _reader = hub.reader(0);
        let at_once = super::super::send::SendsAtOnce(Arc::downgrade(&hub));
        let say =
            || request(SendAction::Message(OutMessage { parts: vec![Content::text("x")], ..OutMessage::default() }));
        let recall =
            |n: usize| request(SendAction::Recall { targets: (0..n).map(|i| RemoteId::new(i.to_string())).collect() });
        for _ in 0..2 {
            assert!(matches!(at_once.send_now(&say()), Some(Ok(ids)) if ids.len() == 1));
        }
        // Two behind: three deletions would make the third wait (the reader four behind), two would not.
        assert!(at_once.send_now(&recall(3)).is_none());
        assert_eq!(hub.log.lock().unwrap().next, 2, "a declined send hands nothing out");
        assert!(matches!(at_once.send_now(&recall(2)), Some(Ok(ids)) if ids.is_empty()));
        assert_eq!(hub.log.lock().unwrap().next, 4);
        // Four behind: nothing more at once.
        assert!(at_once.send_now(&say()).is_none());
        drop(hub);
        assert!(at_once.send_now(&say()).is_none(), "a session that ended answers nothing");
    }

    /// What a feed handed out, read back.
    async fn next(feed: &mut Feed) -> ApiMessage {
        serde_json::from_slice(&feed.next().await.expect("a message").json()).expect("JSON")
    }

    fn message(text: &str) -> ApiMessage {
        ApiMessage { text: text.into(), gateway: "g".into(), ..ApiMessage::default() }
    }

    /// What is ready is taken without waiting, in order, past the live buffer too, and never what the session
    /// itself posted (a websocket writes these together, flushed once).
    #[tokio::test]
    async fn ready_messages_are_taken_without_waiting() {
        let hub = hub(5000);
        let mut feed = Feed::new(&hub, None, 7);
        assert_eq!(next(&mut feed).await.event, CONNECTED);
        assert!(feed.try_next().is_none(), "nothing ready");
        let count = super::super::LIVE_BUFFER * 2;
        for i in 0..count {
            hub.publish(message(&i.to_string()), if i == 5 { 7 } else { 0 });
        }
        let mut got = Vec::new();
        while let Some(kept) = feed.try_next() {
            got.push(serde_json::from_slice::<ApiMessage>(&kept.json()).unwrap().text);
        }
        let want: Vec<String> = (0..count).filter(|i| *i != 5).map(|i| i.to_string()).collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_the_live_feed_catches_up_from_the_kept_messages() {
        let hub = hub(5000);
        let mut feed = Feed::new(&hub, None, 0);
        assert_eq!(next(&mut feed).await.event, CONNECTED);
        // Far more than the live buffer holds, while the client reads nothing.
        let count = super::super::LIVE_BUFFER * 4;
        for i in 0..count {
            hub.publish(message(&i.to_string()), 0);
        }
        for i in 0..count {
            assert_eq!(next(&mut feed).await.text, i.to_string(), "every message, in order");
        }
        hub.publish(message("live again"), 0);
        assert_eq!(next(&mut feed).await.text, "live again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_client_holds_sends_back_instead_of_losing_messages() {
        // Far more messages than the live buffer and the kept ones hold, to a client slower than the sender.
        let hub = hub(8);
        let count = super::super::LIVE_BUFFER * 3;
        let mut feed = Feed::new(&hub, None, 0);
        assert_eq!(next(&mut feed).await.event, CONNECTED);
        let sender = Arc::clone(&hub);
        let sending = tokio::spawn(async move {
            for i in 0..count {
                sender.deliver(message(&i.to_string()), 0).await;
            }
        });
        for i in 0..count {
            if i % 10 == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            assert_eq!(next(&mut feed).await.text, i.to_string(), "every message, in order");
        }
        sending.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_reading_is_disconnected_and_the_others_go_on() {
        let hub = hub_waiting(4, std::time::Duration::from_millis(100));
        let mut stuck = Feed::new(&hub, None, 0);
        let mut reading = Feed::new(&hub, None, 0);
        assert_eq!(next(&mut stuck).await.event, CONNECTED);
        assert_eq!(next(&mut reading).await.event, CONNECTED);
        let sender = Arc::clone(&hub);
        let sending = tokio::spawn(async move {
            for i in 0..20 {
                sender.deliver(message(&i.to_string()), 0).await;
            }
        });
        for i in 0..20 {
            assert_eq!(next(&mut reading).await.text, i.to_string());
        }
        sending.await.unwrap();
        assert!(stuck.next().await.is_none(), "the stuck client's feed ends: it reconnects with its last id");
    }
}
