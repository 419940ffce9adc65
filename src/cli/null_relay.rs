//! The floor of the API path (`chatbridge bench --null-relay POST READ`): the stack the API adapter is built on —
//! the same listener (axum over hyper, `TCP_NODELAY`, the same limits), the same JSON type, the same websocket —
//! with no bridge in it. A POST to `POST/api/message` is decoded, encoded again and written to every websocket
//! reader of `READ/api/websocket`: no routing, no store, no ids, no queue. What it costs is what the stack costs;
//! `chatbridge bench --suite` runs it beside chatbridge to tell the two apart.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::SinkExt;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::adapters::api::wire::{ApiMessage, CONNECTED};
use crate::listener::{Limits, serve};

/// Messages in flight to readers; a reader further behind loses the oldest (the floor keeps nothing). A
/// broadcast channel allocates its slots up front: 8,192 of them are ~0.5 MB (65,536 were 3.7 MB of the floor's
/// idle memory).
const BUFFER: usize = 8_192;

async fn relay(State(readers): State<broadcast::Sender<Bytes>>, body: Bytes) -> Response {
    let message: ApiMessage = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let json = Bytes::from(serde_json::to_vec(&message).expect("a message serialises"));
    let _ = readers.send(json.clone());
    ([(axum::http::header::CONTENT_TYPE, "application/json")], json).into_response()
}

async fn websocket(State(readers): State<broadcast::Sender<Bytes>>, upgrade: WebSocketUpgrade) -> Response {
    let mut feed = readers.subscribe();
    upgrade.on_upgrade(move |mut socket| async move {
        let hello = serde_json::to_string(&ApiMessage { event: CONNECTED.into(), ..ApiMessage::default() });
        if socket.send(Message::text(hello.expect("a message serialises"))).await.is_err() {
            return;
        }
        loop {
            let json = match feed.recv().await {
                Ok(json) => json,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            // What is ready goes out together, flushed once (as the API's websocket does).
            let mut next = Some(json);
            let mut written = 0;
            while let Some(json) = next {
                let Ok(text) = axum::extract::ws::Utf8Bytes::try_from(json) else { return };
                if socket.feed(Message::Text(text)).await.is_err() {
                    return;
                }
                written += 1;
                next = if written < 64 { feed.try_recv().ok() } else { None };
            }
            if socket.flush().await.is_err() {
                return;
            }
        }
    })
}

/// Serves the two listeners until `stop`.
pub async fn run(post_addr: SocketAddr, read_addr: SocketAddr, stop: CancellationToken) -> anyhow::Result<()> {
    let readers = broadcast::channel::<Bytes>(BUFFER).0;
    let health = || get(|| async { "OK" });
    let posting =
        Router::new().route("/api/message", post(relay)).route("/api/health", health()).with_state(readers.clone());
    let reading =
        Router::new().route("/api/websocket", get(websocket)).route("/api/health", health()).with_state(readers);
    let (posts, reads) =
        (tokio::net::TcpListener::bind(post_addr).await?, tokio::net::TcpListener::bind(read_addr).await?);
    tokio::join!(
        serve(posts, posting, Limits::default(), "null relay", stop.clone()),
        serve(reads, reading, Limits::default(), "null relay", stop),
    );
    Ok(())
}
