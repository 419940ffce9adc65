//! The sending side: `POST /api/chatroom/message/send` with a `msg_id` we chose, one per part.

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, ORIGIN};
use tracing::debug;

use super::wire::{Answer, SendBody, info_text};
use super::{ORIGIN as SITE, Shared};
use crate::adapters::retry::describe;
use crate::adapters::{AdapterContext, OutMessage, SendAction, SendFailure, SendRequest};
use crate::model::{Content, RemoteId, Segment, push_plain};

/// "无法找到该聊天室": the room does not exist.
const ROOM_NOT_FOUND: i64 = 500030004;

pub(super) async fn send(shared: Arc<Shared>, ctx: AdapterContext, request: SendRequest) {
    let result = match &request.action {
        SendAction::Message(message) => post_parts(&shared, &request, message).await,
        SendAction::Edit { .. } | SendAction::Recall { .. } => {
            Err(SendFailure::Rejected { reason: "Missevan has no edit or recall for users".to_owned() })
        }
    };
    shared.stop.answer(&ctx, &request.room, result).await;
}

async fn post_parts(
    shared: &Shared,
    request: &SendRequest,
    message: &OutMessage,
) -> Result<Vec<RemoteId>, SendFailure> {
    let Some(super::config::MissevanRoom(room_id)) = super::config::MissevanRoom::parse(request.room.as_str()) else {
        return Err(SendFailure::RoomBroken {
            reason: format!("`{}` is not one of this account's rooms", request.room),
        });
    };
    let mut ids = Vec::with_capacity(message.parts.len());
    // A message that may have arrived before (a retry, a replay after a restart): the room's history says
    // which of its ids did. Without an answer it is sent (at least once).
    let arrived: std::collections::HashSet<String> = if request.maybe_sent {
        match super::history::fetch(shared, room_id).await {
            Ok((items, _)) => items.into_iter().filter_map(|(item, _)| item.msg_id).collect(),
            Err(reason) => {
                debug!(reason = %reason, "The history cannot tell whether a replayed message arrived; sending it.");
                Default::default()
            }
        }
    } else {
        Default::default()
    };
    for (i, part) in message.parts.iter().enumerate() {
        let msg_id = request.client_ids.get(i).map_or_else(|| uuid::Uuid::new_v4().to_string(), |id| id.to_string());
        if arrived.contains(&msg_id) {
            debug!(%msg_id, "Already in the room's history: not sent again.");
            shared.mark_delivered(&msg_id);
        }
        // A retry after a failed later part does not send the earlier parts again.
        if !shared.was_delivered(&msg_id) {
            post(shared, room_id, render(part), &msg_id).await?;
            shared.mark_delivered(&msg_id);
        }
        ids.push(RemoteId::new(msg_id));
    }
    Ok(ids)
}

/// Text as the chat shows it: mentions as `@name ` (the site's own form).
pub(super) fn render(part: &Content) -> String {
    let mut text = String::new();
    let mut segments = part.0.iter().peekable();
    while let Some(segment) = segments.next() {
        match segment {
            Segment::Mention { name, .. } => {
                text.push('@');
                text.push_str(name);
                let spaced = matches!(segments.peek(), Some(Segment::Text(t)) if t.starts_with(char::is_whitespace));
                if !spaced {
                    text.push(' ');
                }
            }
            other => push_plain(&mut text, other),
        }
    }
    text
}

async fn post(shared: &Shared, room_id: u64, message: String, msg_id: &str) -> Result<(), SendFailure> {
    let url = format!("{}/api/chatroom/message/send", shared.config.api_url.as_str().trim_end_matches('/'));
    let body = SendBody { room_id, message, msg_id: msg_id.to_owned() };
    for refreshed in [false, true] {
        let cookies = shared.session.cookies().await?;
        let response = shared
            .http
            .post(&url)
            .header(COOKIE, cookies.header.clone())
            .header(ORIGIN, SITE)
            .json(&body)
            .send()
            .await
            .map_err(|e| SendFailure::Transient { after: None, reason: describe(e) })?;
        let status = response.status();
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            if refreshed {
                return Err(SendFailure::Fatal {
                    reason: format!(
                        "the send API refused a fresh session ({status}): the login token is no longer accepted"
                    ),
                });
            }
            debug!(%status, "The send API refused the session; refreshing it.");
            shared.session.refresh(cookies.generation).await?;
            continue;
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            let after = crate::adapters::retry::retry_after(response.headers());
            return Err(SendFailure::Transient { after, reason: format!("the send API answered {status}") });
        }
        if !status.is_success() {
            return Err(SendFailure::Rejected { reason: format!("the send API answered {status}") });
        }
        let answer: Answer = crate::adapters::retry::read_json(response, super::MAX_ANSWER)
            .await
            .map_err(|reason| SendFailure::Transient { after: None, reason })?;
        return match answer.code {
            0 => Ok(()),
            ROOM_NOT_FOUND => Err(SendFailure::RoomBroken {
                reason: format!("no such live room {room_id}: {}", info_text(Some(&answer.info))),
            }),
            code => Err(SendFailure::Rejected { reason: format!("code {code}: {}", info_text(Some(&answer.info))) }),
        };
    }
    unreachable!("the second attempt returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_render_as_at_name_space() {
        let part = Content(vec![
            Segment::Mention { user: None, name: "小明".into() },
            Segment::Text("晚上好".into()),
            Segment::Mention { user: None, name: "b".into() },
            Segment::Text(" hi".into()),
            Segment::Image { url: "https://i/1.png".into() },
        ]);
        assert_eq!(render(&part), "@小明 晚上好@b hi [image] https://i/1.png");
    }
}
