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
use crate::model::{Content, Event, EventKind, Message, RemoteId, Reply, User};
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
    /// Faster than the account's `post_rate`: 429 with `Retry-After` (whole seconds, at least 1).
    TooFast(std::time::Duration),
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
            Refused::TooFast(wait) => too_fast(wait),
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
            Refused::TooFast(wait) => {
                let mut response = refuse(StatusCode::TOO_MANY_REQUESTS, too_fast(wait));
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    wait.as_secs_f64().ceil().max(1.0).to_string().parse().expect("digits"),
                );
                response
            }
        }
    }
}

fn too_fast(wait: std::time::Duration) -> String {
    format!("posting faster than this account's post_rate; send it again in {:.1} s", wait.as_secs_f64())
}

/// Checks a posted message and hands it to the router; the stored message (with its id) or why not.
pub(super) async fn accept(hub: &Hub, mut message: ApiMessage) -> Result<ApiMessage, Refused> {
    if let Err(wait) =
        hub.posts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take(std::time::Instant::now())
    {
        hub.ctx.stats.count_account(crate::stats::Metric::RateLimited, &hub.ctx.account);
        return Err(Refused::TooFast(wait));
    }
    let unavailable = |reason: String| {
        Refused::Unavailable(format!(
            "the bridge cannot store messages right now ({reason}); send it again in {RETRY_AFTER_SECONDS} s"
        ))
    };
    if let Some(reason) = hub.ctx.stats.store.failing() {
        return Err(unavailable(reason));
    }
    let Some(room) = hub.gateways.iter().find(|r| r.room.as_str() == message.gateway).cloned() else {
        let served: Vec<&str> = hub.gateways.iter().map(|r| r.room.as_str()).collect();
        return Err(format!("unknown gateway `{}`; this API serves: {}", message.gateway, served.join(", ")).into());
    };
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
    message.account.clone_from(&hub.account);
    message.protocol = "api".into();
    message.channel = "api".into();
    message.timestamp = wire::now();
    // One id for the event, whichever it names: the message itself, or the one edited or recalled.
    let id = RemoteId::new(message.id.as_str());
    let kind = if deleting {
        EventKind::Recalled { target: id.clone() }
    } else if editing {
        EventKind::Edited { target: id.clone(), content: Content::text(message.text.as_str()) }
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
    let remote_id = matches!(kind, EventKind::Message(_)).then_some(id);
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
mod tests;
