//! The sending side: `POST /api/messages/<room>/` with the rendered nick in `sender`.

use std::sync::Arc;

use reqwest::StatusCode;
use tracing::{debug, warn};

use super::Shared;
use super::wire::{PostBody, StatusBody};
use crate::adapters::retry::describe;
use crate::adapters::{AdapterContext, OutMessage, SendAction, SendFailure, SendRequest};
use crate::model::RoomId;

pub(super) async fn send(shared: Arc<Shared>, ctx: AdapterContext, request: SendRequest) {
    let result = match &request.action {
        SendAction::Message(message) => post(&shared, &request.room, message).await,
        SendAction::Edit { .. } | SendAction::Recall { .. } => {
            Err(SendFailure::Rejected { reason: "Fishroom cannot edit or recall messages".to_owned() })
        }
    };
    shared.stop.answer(&ctx, &request.room, result.map(|()| Vec::new())).await;
}

async fn post(shared: &Shared, room: &RoomId, message: &OutMessage) -> Result<(), SendFailure> {
    let url = shared.api(&format!("messages/{room}/"));
    for part in &message.parts {
        let content = part.to_plain_text();
        let sender = message.sender.as_deref();
        // Remembered before the post: the feed may deliver the echo before the answer.
        shared.remember_post(sender, &content);
        let body = PostBody { sender, content: &content };
        let response = shared
            .http
            .post(&url)
            .headers(shared.auth.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| SendFailure::Transient { after: None, reason: describe(e) })?;
        let status = response.status();
        let after = crate::adapters::retry::retry_after(response.headers());
        let text = crate::adapters::retry::read_body(response, super::MAX_ANSWER)
            .await
            .map(|body| String::from_utf8_lossy(&body).into_owned())
            .unwrap_or_else(|e| e);
        let message =
            || serde_json::from_str::<StatusBody>(&text).map_or_else(|_| text.trim().to_owned(), |b| b.message);
        match status {
            s if s.is_success() => debug!(room = %room, "Posted."),
            StatusCode::FORBIDDEN => {
                return Err(SendFailure::Fatal {
                    reason: "the server refused the token (403 Invalid Token)".to_owned(),
                });
            }
            StatusCode::NOT_FOUND => {
                return Err(SendFailure::RoomBroken {
                    reason: format!("the server has no public room `{room}` (404)"),
                });
            }
            StatusCode::BAD_REQUEST => return Err(SendFailure::Rejected { reason: format!("400: {}", message()) }),
            StatusCode::INTERNAL_SERVER_ERROR => {
                let first = shared.warned_500.lock().expect("lock is never poisoned").insert(room.clone());
                if first {
                    warn!(room = %room, "The Fishroom server answered 500 to a post. Servers running fishroom's \
                        current code answer 500 to every valid post (a known upstream bug); the message is retried \
                        up to the attempt limit. Logged once per room.");
                }
                return Err(SendFailure::Transient { after: None, reason: "the server answered 500".to_owned() });
            }
            other => {
                return Err(SendFailure::Transient { after, reason: format!("the server answered {other}") });
            }
        }
    }
    Ok(())
}
