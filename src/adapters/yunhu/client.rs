//! The sending side: send, edit and recall over HTTP with protobuf bodies.

use std::sync::Arc;

use super::proto::{
    EditMessageRequest, EditMessageResponse, RecallBatchRequest, RecallBatchResponse, RecallMessageRequest,
    RecallMessageResponse, SendContent, SendMedia, SendMessageRequest, SendMessageResponse, Status,
};
use super::upload;
use super::{Chat, Shared};
use crate::adapters::{AdapterContext, OutMessage, SendAction, SendFailure, SendRequest};
use crate::link::MediaFile;
use crate::model::{ClientIdForm, Content, RemoteId, Segment, push_plain, rich};

/// `content_type` 1: text; 3: Markdown.
const TEXT: u64 = 1;
const MARKDOWN: u64 = 3;

pub(super) async fn send(shared: Arc<Shared>, ctx: AdapterContext, request: SendRequest) {
    let result = match shared.chats().iter().find(|chat| chat.room == request.room).cloned() {
        None => {
            Err(SendFailure::RoomBroken { reason: format!("`{}` is not one of this account's chats", request.room) })
        }
        Some(chat) => match &request.action {
            SendAction::Message(message) => send_message(&shared, &ctx, &chat, &request, message).await,
            SendAction::Edit { target, message } => edit(&shared, &chat, target, message).await,
            SendAction::Recall { targets } => recall(&shared, &chat, targets).await,
        },
    };
    shared.stop.answer(&ctx, &request.room, result).await;
}

/// A part as Yunhu text with its native mentions' ids, and its content type: markdown where it carries formatting
/// (the router leaves formatting in only where the account and the room send markdown), else plain text.
fn text_and_mentions(part: &Content) -> (String, Vec<String>, u64) {
    let markdown = part.is_rich();
    let mut text = String::new();
    let mut ids = Vec::new();
    for segment in &part.0 {
        match segment {
            Segment::Mention { user: Some(id), name } => {
                text.push('@');
                if markdown {
                    rich::markdown::escape(&mut text, name);
                } else {
                    text.push_str(name);
                }
                text.push(' ');
                ids.push(id.to_string());
            }
            other if markdown => rich::markdown::push(&mut text, other),
            other => push_plain(&mut text, other),
        }
    }
    if markdown {
        let kept = text.trim_end().len();
        text.truncate(kept);
    }
    (text, ids, if markdown { MARKDOWN } else { TEXT })
}

fn check(status: Option<Status>) -> Result<(), SendFailure> {
    match status {
        Some(status) if status.code == 1 => Ok(()),
        Some(status) => Err(SendFailure::Rejected { reason: format!("code {}: {}", status.code, status.msg) }),
        None => Err(SendFailure::Transient { after: None, reason: "an answer without a status".into() }),
    }
}

async fn send_message(
    shared: &Shared,
    ctx: &AdapterContext,
    chat: &Chat,
    request: &SendRequest,
    message: &OutMessage,
) -> Result<Vec<RemoteId>, SendFailure> {
    let mut ids = Vec::with_capacity(message.parts.len());
    // A message that may have arrived before (a retry, a replay after a restart): the chat's history since
    // its cursor says which of its ids did. Without an answer it is sent (at least once).
    let arrived: std::collections::HashSet<String> = match ctx.cursors.get(&chat.room) {
        Some(cursor) if request.maybe_sent => {
            let from = cursor.parse().unwrap_or(0);
            match super::history::since(shared, chat, from).await {
                Ok(pushes) => pushes.into_iter().map(|p| p.msg_id).collect(),
                Err(failure) => {
                    tracing::debug!(reason = %failure, "The history cannot tell whether a replayed message arrived; sending it.");
                    Default::default()
                }
            }
        }
        _ => Default::default(),
    };
    for (i, part) in message.parts.iter().enumerate() {
        let id = request.client_ids.get(i).cloned().or_else(|| ClientIdForm::UuidHex.generate());
        let id = id.expect("a uuid is always generated");
        if arrived.contains(id.as_str()) {
            tracing::debug!(msg_id = %id.as_str(), "Already in the chat's history: not sent again.");
            ids.push(id);
            continue;
        }
        // The text first (when there is any), then each media item as a message of its own; the first message
        // carries the part's id and the quote.
        let (text_part, media) = split_media(part, &message.files);
        let mut first = Some(id);
        if !text_part.is_empty() || media.is_empty() {
            let (text, mentioned_id, content_type) = text_and_mentions(&text_part);
            let content = SendContent { text, mentioned_id, ..SendContent::default() };
            let id = first.take().expect("the first message");
            send_one(shared, chat, &id, content, content_type, None, (i == 0).then_some(message)).await?;
            ids.push(id);
        }
        for (segment, file) in media {
            let id = first.take().or_else(|| ClientIdForm::UuidHex.generate()).expect("a uuid is always generated");
            let quoting = (i == 0 && ids.is_empty()).then_some(message);
            let (kind, name, seconds) = match segment {
                Segment::Video { .. } => (upload::Kind::Video, None, None),
                Segment::Audio { seconds, .. } => (upload::Kind::Audio, None, *seconds),
                Segment::File { name, .. } => (upload::Kind::File, name.as_deref(), None),
                _ => (upload::Kind::Image, None, None),
            };
            match upload::upload(shared, file, kind, name, seconds).await {
                Ok((content, media)) => {
                    send_one(shared, chat, &id, content, kind.content_type(), media, quoting).await?
                }
                // An item that cannot be uploaded goes as its link.
                Err(failure) => {
                    tracing::warn!(reason = %failure, "A media item could not be uploaded to Yunhu; sending its link.");
                    let mut text = String::new();
                    push_plain(&mut text, segment);
                    let content = SendContent { text, ..SendContent::default() };
                    send_one(shared, chat, &id, content, TEXT, None, quoting).await?;
                }
            }
            ids.push(id);
        }
    }
    Ok(ids)
}

/// A part's text, and its media items that are in the store (sent as Yunhu media).
fn split_media<'a>(part: &'a Content, files: &'a [Arc<MediaFile>]) -> (Content, Vec<(&'a Segment, &'a MediaFile)>) {
    let mut text = Vec::with_capacity(part.0.len());
    let mut media = Vec::new();
    for segment in &part.0 {
        let url = match segment {
            Segment::Image { url }
            | Segment::Video { url }
            | Segment::Audio { url, .. }
            | Segment::File { url, .. } => Some(url),
            _ => None,
        };
        match url.and_then(|url| files.iter().find(|f| &f.url == url)) {
            Some(file) => media.push((segment, &**file)),
            None => text.push(segment.clone()),
        }
    }
    // What was written around the items is no longer followed by them.
    if let Some(Segment::Text(last)) = text.last_mut() {
        let kept = last.trim_end().len();
        last.truncate(kept);
    }
    text.retain(|s| !matches!(s, Segment::Text(t) if t.is_empty()));
    (Content(text), media)
}

/// One `send-message`; `quoting`: the message whose reply this is, for the first message sent for it.
async fn send_one(
    shared: &Shared,
    chat: &Chat,
    id: &RemoteId,
    mut content: SendContent,
    content_type: u64,
    media: Option<SendMedia>,
    quoting: Option<&OutMessage>,
) -> Result<(), SendFailure> {
    let mut quote_msg_id = String::new();
    if let Some(message) = quoting {
        quote_msg_id = message.reply_to.as_ref().map(ToString::to_string).unwrap_or_default();
        if let Some(quote) = &message.quote {
            content.quote_msg_text = match &quote.sender {
                Some(sender) => format!("{sender}: {}", quote.text),
                None => quote.text.clone(),
            };
            // "引用图片直链,https://…" (seed 004).
            content.quote_image_url = quote.image.clone().filter(|url| url.starts_with("https://")).unwrap_or_default();
        }
    }
    let body = SendMessageRequest {
        msg_id: id.to_string(),
        chat_id: chat.id.clone(),
        chat_type: chat.kind,
        content: Some(content),
        content_type,
        quote_msg_id,
        media,
        ..SendMessageRequest::default()
    };
    let answer: SendMessageResponse = shared.call("/v1/msg/send-message", &body).await?;
    check(answer.status)
}

async fn edit(
    shared: &Shared,
    chat: &Chat,
    target: &RemoteId,
    message: &OutMessage,
) -> Result<Vec<RemoteId>, SendFailure> {
    let (text, mentioned_id, content_type) =
        message.parts.first().map(text_and_mentions).unwrap_or_else(|| (String::new(), Vec::new(), TEXT));
    let body = EditMessageRequest {
        msg_id: target.to_string(),
        chat_id: chat.id.clone(),
        chat_type: chat.kind,
        content: Some(SendContent { text, mentioned_id, ..SendContent::default() }),
        content_type,
        quote_msg_id: String::new(),
    };
    let answer: EditMessageResponse = shared.call("/v1/msg/edit-message", &body).await?;
    check(answer.status)?;
    Ok(vec![target.clone()])
}

/// One message (`recall-msg`), or every part of a split one at once (`recall-msg-batch`).
async fn recall(shared: &Shared, chat: &Chat, targets: &[RemoteId]) -> Result<Vec<RemoteId>, SendFailure> {
    let status = match targets {
        [target] => {
            let body =
                RecallMessageRequest { msg_id: target.to_string(), chat_id: chat.id.clone(), chat_type: chat.kind };
            shared.call::<_, RecallMessageResponse>("/v1/msg/recall-msg", &body).await?.status
        }
        targets => {
            let msg_id = targets.iter().map(ToString::to_string).collect();
            let body = RecallBatchRequest { msg_id, chat_id: chat.id.clone(), chat_type: chat.kind };
            shared.call::<_, RecallBatchResponse>("/v1/msg/recall-msg-batch", &body).await?.status
        }
    };
    check(status)?;
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::{MARKDOWN, TEXT, text_and_mentions};
    use crate::model::{Content, Segment, Style, UserId};

    #[test]
    fn formatting_goes_as_markdown_and_plain_text_as_it_is() {
        let mention = Segment::Mention { user: Some(UserId::new("42")), name: "a_b".into() };
        let plain = Content(vec![Segment::Text("3 * 4 = **12** ".into()), mention.clone()]);
        assert_eq!(text_and_mentions(&plain), ("3 * 4 = **12** @a_b ".into(), vec!["42".into()], TEXT));
        let rich = Content(vec![
            Segment::Text("3 * 4 = ".into()),
            Segment::Styled { text: "12".into(), style: Style::BOLD },
            Segment::Text(" ".into()),
            mention,
        ]);
        assert_eq!(text_and_mentions(&rich), ("3 \\* 4 = **12** @a\\_b".into(), vec!["42".into()], MARKDOWN));
    }
}
