//! The sending side: `sendMsg`, form-encoded, to the followed room's current broadcast.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tracing::debug;

use super::wire::Answer;
use super::{Live, Shared};
use crate::adapters::retry::describe;
use crate::adapters::{AdapterContext, OutMessage, SendAction, SendFailure, SendRequest};
use crate::model::{RemoteId, Time};

pub(super) async fn send(shared: Arc<Shared>, ctx: AdapterContext, request: SendRequest) {
    let result = match &request.action {
        SendAction::Message(message) => send_message(&shared, &request, message).await,
        _ => Err(SendFailure::Rejected { reason: "Heihei has no edit or recall".to_owned() }),
    };
    shared.stop.answer(&ctx, &request.room, result).await;
}

async fn send_message(
    shared: &Shared,
    request: &SendRequest,
    message: &OutMessage,
) -> Result<Vec<RemoteId>, SendFailure> {
    let Some(mut changes) = shared.lives().get(&request.room).map(|current| current.subscribe()) else {
        return Err(SendFailure::RoomBroken {
            reason: format!("`{}` cannot be written to (IM is receive-only)", request.room),
        });
    };
    // Off air: the message waits for the next broadcast, up to its age limit.
    let age = Duration::from_millis(u64::try_from(Time::now().0 - request.event_time.0).unwrap_or_default());
    let left = shared.config.offair_max_age.saturating_sub(age);
    let live: Live = match tokio::time::timeout(left, changes.wait_for(Option::is_some)).await {
        Ok(Ok(live)) => (*live).expect("waited for a broadcast"),
        _ => {
            return Err(SendFailure::Rejected {
                reason: format!("the host stayed off air for longer than {:?}", shared.config.offair_max_age),
            });
        }
    };
    for part in &message.parts {
        post(shared, live, &part.to_plain_text()).await?;
    }
    // No id comes back: the copy is recorded without one.
    Ok(Vec::new())
}

async fn post(shared: &Shared, live: Live, text: &str) -> Result<(), SendFailure> {
    let (room_id, live_id) = (live.room_id.to_string(), live.live_id.to_string());
    let form = [("token", shared.config.token.expose()), ("text", text), ("roomId", &room_id), ("liveId", &live_id)];
    // Remembered before the send: the echo may come first.
    shared.remember_sent(live.room_id, text);
    let response = shared
        .http
        .post(&shared.endpoints.send_msg)
        .form(&form)
        .send()
        .await
        .map_err(|e| SendFailure::Transient { after: None, reason: describe(e) })?;
    let status = response.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        let after = crate::adapters::retry::retry_after(response.headers());
        return Err(SendFailure::Transient { after, reason: format!("sendMsg answered {status}") });
    }
    let answer: Answer = crate::adapters::retry::read_json(response, super::MAX_ANSWER)
        .await
        .map_err(|reason| SendFailure::Transient { after: None, reason })?;
    match answer.errorcode {
        0 => {
            debug!(room = live.room_id, "Sent.");
            Ok(())
        }
        700 => Err(SendFailure::Rejected { reason: format!("700 {}", answer.errormsg) }),
        720 => Err(SendFailure::Fatal { reason: format!("the token was refused (720 {})", answer.errormsg) }),
        733 => Err(SendFailure::RoomBroken {
            reason: format!("room {} is invalid (733 {})", live.room_id, answer.errormsg),
        }),
        code => Err(SendFailure::Rejected { reason: format!("{code} {}", answer.errormsg) }),
    }
}
