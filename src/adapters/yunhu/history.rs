//! Gap filling: `POST /v1/msg/list-message-by-seq` lists a chat's messages from a sequence number on. After
//! a reconnect or restart, each chat is read from its cursor (the `msg_seq` of the last message read) and
//! what it missed is relayed before anything live; the router drops what it relayed already (by msg_id).
//! A history entry is turned into the websocket's `PushMessage` (whose field numbers differ), so both take
//! one path.

use super::proto::{HistoryMsg, ListMessageBySeqRequest, ListMessageResponse, MsgContent, PushMessage, Sender};
use super::{Chat, Shared};
use crate::adapters::SendFailure;

/// The chat's messages with a sequence number of `from` or more, in sequence; recalled ones left out.
pub(super) async fn since(shared: &Shared, chat: &Chat, from: u64) -> Result<Vec<PushMessage>, SendFailure> {
    let request = ListMessageBySeqRequest { msg_seq: from, chat_type: chat.kind, chat_id: chat.id.clone() };
    let answer: ListMessageResponse = shared.call("/v1/msg/list-message-by-seq", &request).await?;
    if let Some(status) = &answer.status
        && status.code != 1
    {
        return Err(SendFailure::Transient {
            after: None,
            reason: format!("history: {} ({})", status.msg, status.code),
        });
    }
    let mut pushes: Vec<PushMessage> =
        answer.msg.into_iter().filter(|m| m.msg_delete_time == 0).map(|m| to_push(m, chat)).collect();
    pushes.sort_by_key(|p| p.msg_seq);
    Ok(pushes)
}

fn to_push(m: HistoryMsg, chat: &Chat) -> PushMessage {
    let sender = m.sender.unwrap_or_default();
    let content = m.content.unwrap_or_default();
    PushMessage {
        msg_id: m.msg_id,
        sender: Some(Sender {
            chat_id: sender.chat_id,
            chat_type: sender.chat_type,
            name: sender.name,
            avatar_url: sender.avatar_url,
            ..Sender::default()
        }),
        recv_id: chat.id.clone(),
        chat_id: chat.id.clone(),
        chat_type: chat.kind,
        content: Some(MsgContent {
            text: content.text,
            buttons: content.buttons,
            image_url: content.image_url,
            file_name: content.file_name,
            file_url: content.file_url,
            mentioned_id: content.at,
            form: content.form,
            quote_msg_text: content.quote_msg_text,
            sticker_url: content.sticker_url,
            file_size: content.file_size,
            video_url: content.video_url,
            audio_url: content.audio_url,
            audio_time: content.audio_time,
            tip: content.tip,
            ..MsgContent::default()
        }),
        content_type: m.content_type,
        timestamp: i64::try_from(m.send_time).unwrap_or(i64::MAX),
        quote_msg_id: m.quote_msg_id,
        msg_seq: m.msg_seq,
        edit_timestamp: m.edit_time,
        ..PushMessage::default()
    }
}
