//! Yunhu's frames (`docs/platforms/yunhu.md`): JSON text up (login, heartbeat), protobuf `WsWrapper` down.
//! Nothing here leaves the adapter.

use prost::Message as _;
use serde_json::json;

use super::proto::{MsgContent, PushMessage, StreamMessage, WsWrapper};
use crate::model::{Content, EventKind, Message, RemoteId, Reply, Segment, Time, User, UserId, rich};

/// A decoded server frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    HeartbeatAck,
    Push(PushMessage),
    Edit(PushMessage),
    Stream(StreamMessage),
    /// A command the bridge does not use (drafts, boards, calls…).
    Other {
        cmd: String,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("not a WsWrapper: {0}")]
    Envelope(String),
    #[error("`{cmd}` payload does not decode: {error}")]
    Payload { cmd: String, error: String },
}

pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
    let wrapper = WsWrapper::decode(bytes).map_err(|e| FrameError::Envelope(e.to_string()))?;
    let cmd = wrapper.info.map(|i| i.cmd).unwrap_or_default();
    let value = wrapper.data.map(|d| d.value).unwrap_or_default();
    let payload = |error: prost::DecodeError| FrameError::Payload { cmd: cmd.clone(), error: error.to_string() };
    Ok(match cmd.as_str() {
        "heartbeat_ack" => Frame::HeartbeatAck,
        "push_message" => Frame::Push(PushMessage::decode(value.as_slice()).map_err(payload)?),
        "edit_message" => Frame::Edit(PushMessage::decode(value.as_slice()).map_err(payload)?),
        "stream_message" => Frame::Stream(StreamMessage::decode(value.as_slice()).map_err(payload)?),
        _ => Frame::Other { cmd },
    })
}

/// The login frame (the first thing sent).
pub fn login(seq: &str, user_id: &str, token: &str, platform: &str, device_id: &str) -> String {
    json!({"seq": seq, "cmd": "login", "data": {"userId": user_id, "token": token, "platform": platform, "deviceId": device_id}})
        .to_string()
}

pub fn heartbeat(seq: &str) -> String {
    json!({"seq": seq, "cmd": "heartbeat", "data": {}}).to_string()
}

/// The content of a push as segments: markdown (3) and HTML (8) read for their formatting.
pub fn content(kind: u64, c: &MsgContent) -> Content {
    let mut segments = match kind {
        3 => rich::markdown::parse(&c.text).0,
        8 => rich::html::parse(&c.text).0,
        5 => super::kinds::form(c),
        6 => super::kinds::post(c),
        13 => super::kinds::call(c),
        _ if c.text.is_empty() => Vec::new(),
        _ => vec![Segment::Text(c.text.clone())],
    };
    // A form or a call may come with a text of its own too.
    if matches!(kind, 5 | 13) && !c.text.trim().is_empty() {
        segments.insert(0, Segment::Text(format!("{}\n", c.text.trim())));
    }
    if let Some(labels) = super::kinds::buttons(c) {
        if !segments.is_empty() {
            segments.push(Segment::Text("\n".to_owned()));
        }
        segments.push(Segment::Text(labels));
    }
    // A mention is written into the text as `@name`; the ids come separately.
    let url = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    if let Some(url) = url(&c.image_url) {
        segments.push(Segment::Image { url });
    }
    if let Some(url) = url(&c.file_url) {
        let name = url_name(&c.file_name);
        segments.push(Segment::File { url, name, size: (c.file_size > 0).then_some(c.file_size) });
    }
    if let Some(url) = url(&c.video_url) {
        segments.push(Segment::Video { url });
    }
    if let Some(url) = url(&c.audio_url) {
        segments.push(Segment::Audio { url, seconds: u32::try_from(c.audio_time).ok().filter(|s| *s > 0) });
    }
    if let Some(url) = url(&c.sticker_url) {
        let id = (c.sticker_item_id > 0).then(|| c.sticker_item_id.to_string());
        segments.push(Segment::Sticker { url, id });
    }
    if segments.is_empty() && !c.tip.is_empty() {
        segments.push(Segment::Text(c.tip.clone()));
    }
    Content(segments)
}

fn url_name(name: &str) -> Option<String> {
    (!name.is_empty()).then(|| name.to_owned())
}

pub fn sender(push: &PushMessage) -> Option<User> {
    let s = push.sender.as_ref()?;
    let mut user = User::new(s.chat_id.as_str(), s.name.as_str());
    user.avatar = (!s.avatar_url.is_empty()).then(|| s.avatar_url.clone());
    // The group's tag for the sender is its badge (the newer `tag`, else the older list of names).
    let tag = s
        .tag
        .iter()
        .map(|t| t.text.as_str())
        .chain(s.tag_old.iter().map(String::as_str))
        .find(|t| !t.trim().is_empty());
    if let Some(tag) = tag {
        let badge = tag.chars().filter(|c| !c.is_control()).take(24).collect::<String>().trim().to_owned();
        user.badges = crate::model::Badges { badge, ..Default::default() }.or_none();
    }
    Some(user)
}

/// The event a push (or an edit) stands for: a recall notice when it carries a delete timestamp.
pub fn kind(push: &PushMessage, edit: bool) -> EventKind {
    let msg_id = RemoteId::new(push.msg_id.as_str());
    if push.delete_timestamp > 0 {
        return EventKind::Recalled { target: msg_id };
    }
    let empty = MsgContent::default();
    let c = push.content.as_ref().unwrap_or(&empty);
    let mut content = content(push.content_type, c);
    mentions(&mut content, &c.mentioned_id);
    if edit {
        return EventKind::Edited { target: msg_id, content };
    }
    let quoting = !push.quote_msg_id.is_empty() || !c.quote_msg_text.is_empty() || !c.quote_image_url.is_empty();
    let reply = quoting.then(|| Reply {
        target: (!push.quote_msg_id.is_empty()).then(|| RemoteId::new(push.quote_msg_id.as_str())),
        quoted_sender: None,
        quoted_text: (!c.quote_msg_text.is_empty()).then(|| c.quote_msg_text.clone()),
        quoted_time: None,
        quoted_image: (!c.quote_image_url.is_empty()).then(|| c.quote_image_url.clone()),
    });
    EventKind::Message(Message { content, reply, private: push.chat_type == 1, ..Message::default() })
}

/// `@name` tokens of the text become mentions; the ids go with them in order when the counts agree.
fn mentions(content: &mut Content, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let mut ids = ids.iter();
    let mut out = Vec::new();
    for segment in content.0.drain(..) {
        let Segment::Text(text) = segment else {
            out.push(segment);
            continue;
        };
        let mut rest = text.as_str();
        while let Some(at) = rest.find('@') {
            let name_len = rest[at + 1..].find(char::is_whitespace).unwrap_or(rest.len() - at - 1);
            if name_len == 0 {
                break;
            }
            let Some(id) = ids.next() else { break };
            if at > 0 {
                out.push(Segment::Text(rest[..at].to_owned()));
            }
            let name = rest[at + 1..at + 1 + name_len].to_owned();
            out.push(Segment::Mention { user: Some(UserId::new(id.as_str())), name });
            rest = &rest[at + 1 + name_len..];
        }
        if !rest.is_empty() {
            out.push(Segment::Text(rest.to_owned()));
        }
    }
    content.0 = out;
}

pub fn time_of(push: &PushMessage) -> Option<Time> {
    (push.timestamp > 0).then_some(Time(push.timestamp))
}
