//! `/api/websocket`: matterbridge's message stream over a websocket, capped in clients, with a deadline for a
//! slow reader.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::json;

use super::Hub;
use super::server::{Feed, MAX_MESSAGE, RETRY_AFTER_SECONDS, accept, refuse};
use super::wire::ApiMessage;

pub(super) async fn websocket(
    State(hub): State<Arc<Hub>>,
    Query(args): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let last_id = args.get("last_id").cloned();
    // An upgraded connection leaves the listener's count: websockets have a cap of their own, the same.
    let Some(client) = WebsocketClient::admit(&hub) else {
        let mut response = refuse(StatusCode::SERVICE_UNAVAILABLE, "too many websocket clients; try again later");
        response.headers_mut().insert(header::RETRY_AFTER, RETRY_AFTER_SECONDS.into());
        return response;
    };
    upgrade
        .read_buffer_size(crate::adapters::WS_READ_BUFFER)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            session(Arc::clone(&hub), socket, last_id).await;
            drop(client);
        })
}

/// One connected websocket client, counted while it lives (in the hub, for the cap, and in the metrics).
struct WebsocketClient(Arc<Hub>);

impl WebsocketClient {
    fn admit(hub: &Arc<Hub>) -> Option<Self> {
        use std::sync::atomic::Ordering;
        let counter = &hub.websockets;
        let mut now = counter.load(Ordering::SeqCst);
        loop {
            if now >= hub.ctx.http.max_connections {
                crate::warn_throttled!(format!("websocket cap {}", hub.ctx.account); account = %hub.ctx.account, max = hub.ctx.http.max_connections, "Websocket client limit reached: new clients are refused (http_max_connections).");
                return None;
            }
            match counter.compare_exchange(now, now + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    hub.ctx.stats.websocket_clients.fetch_add(1, Ordering::SeqCst);
                    return Some(Self(Arc::clone(hub)));
                }
                Err(current) => now = current,
            }
        }
    }
}

impl Drop for WebsocketClient {
    fn drop(&mut self) {
        self.0.websockets.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.ctx.stats.websocket_clients.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The most frames written to a client at once (messages that were ready together).
const MAX_FRAMES_AT_ONCE: usize = 64;

/// Sends frames to a websocket client — all that were ready, written together and flushed once: one write
/// system call for several messages when several are ready — which must take them within the slow-reader wait:
/// a client that stopped reading would otherwise hold its session (and what is queued for it) for ever. False
/// when the session is to end.
async fn send_within(
    hub: &Hub,
    sink: &mut futures_util::stream::SplitSink<WebSocket, WsMessage>,
    frames: impl IntoIterator<Item = WsMessage>,
) -> bool {
    use futures_util::SinkExt;
    let mut send = std::pin::pin!(async move {
        for frame in frames {
            sink.feed(frame).await?;
        }
        sink.flush().await
    });
    // Most sends complete at once: only one that has to wait gets a timer (one per message would cost CPU).
    if let std::task::Poll::Ready(sent) =
        std::future::poll_fn(|cx| std::task::Poll::Ready(send.as_mut().poll(cx))).await
    {
        return sent.is_ok();
    }
    match tokio::time::timeout(hub.slow_reader_wait, send).await {
        Ok(sent) => sent.is_ok(),
        Err(_) => {
            crate::warn_throttled!(format!("websocket stuck {}", hub.ctx.account); account = %hub.ctx.account, wait = ?hub.slow_reader_wait, "A websocket client stopped reading: disconnected (it can reconnect with last_id).");
            false
        }
    }
}

async fn session(hub: Arc<Hub>, socket: WebSocket, last_id: Option<String>) {
    let session = hub.sessions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut feed = Feed::new(&hub, last_id.as_deref(), session);
    let (mut sink, mut incoming) = socket.split();
    loop {
        tokio::select! {
            _ = hub.ctx.closed.cancelled() => return,
            message = feed.next() => {
                let Some(message) = message else { return };
                let mut frames = Vec::with_capacity(4);
                let mut next = Some(message);
                while let Some(message) = next {
                    let Ok(text) = axum::extract::ws::Utf8Bytes::try_from(message.json()) else { return };
                    frames.push(WsMessage::Text(text));
                    next = if frames.len() < MAX_FRAMES_AT_ONCE { feed.try_next() } else { None };
                }
                if !send_within(&hub, &mut sink, frames).await {
                    return;
                }
            }
            frame = incoming.next() => {
                let Some(Ok(frame)) = frame else { return };
                let WsMessage::Text(text) = frame else { continue };
                let answer = match serde_json::from_str::<ApiMessage>(&text) {
                    Ok(message) => match accept(&hub, message).await {
                        // As matterbridge does, what one websocket client posts goes to the account's other
                        // streaming clients too (not to the bridge's rooms a second time: they have it).
                        Ok(stored) => {
                            hub.deliver(super::Kept::from_session(&stored, session)).await;
                            None
                        }
                        Err(refused) => Some(refused.text()),
                    },
                    Err(e) => Some(format!("not a JSON message: {e}")),
                };
                if let Some(why) = answer {
                    let error = json!({"event": "error", "text": why}).to_string();
                    if !send_within(&hub, &mut sink, [WsMessage::text(error)]).await {
                        return;
                    }
                }
            }
        }
    }
}
