//! Heihei's socket frames and API answers (`docs/platforms/heihei.md`, seed "消息数据定义" and "IM消息类型");
//! nothing here leaves the adapter.
//!
//! A text frame is a JSON array of items whose `msg` is a JSON *string* holding the message (parsed again),
//! or one envelope `{timeStamp, type, liveId|chatId|targetUserId, msg: {…}}`. Both are accepted.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::adapters::bounded::Bounded;
use crate::model::{Content, EventKind, Message, Segment, Time, User};

/// One item of a frame: the message and, when the envelope says, the broadcast it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub live_id: Option<u64>,
    pub msg: Inner,
}

/// The message inside an item (every field optional; unknown ones ignored).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Inner {
    pub msg_type: String,
    pub text: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    pub from_user_id: Option<u64>,
    pub from_user_name: Option<String>,
    pub cover_url: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub msg_id: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    pub room_id: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub live_id: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub amount: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub gift_id: Option<u64>,
    /// A live gift: the gift, named.
    pub gift: Option<super::gifts::GiftRef>,
    pub action: Option<String>,
    pub comment: Option<String>,
    pub title: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    pub user_id: Option<u64>,
    pub live: Option<LiveRef>,
    /// IM: the private message itself.
    pub msg: Option<ImMessage>,
    /// IM: who is who, by id (other messages use the key for a list of users).
    pub users: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LiveRef {
    #[serde(deserialize_with = "lenient_u64")]
    pub live_id: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub room_id: Option<u64>,
    pub title: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    pub status: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub user_id: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub creator_id: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ImMessage {
    #[serde(deserialize_with = "lenient_u64")]
    pub to_user_id: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub from_user_id: Option<u64>,
    pub msg_type: String,
    pub content: Value,
    #[serde(deserialize_with = "lenient_string")]
    pub msg_id: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    pub create_time: Option<u64>,
    pub tips: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ImUser {
    pub display_name: String,
    pub cover_url: Option<String>,
}

pub(super) fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// Items of one frame: the platform sends a few at a time; more is refused before they are built.
pub const MAX_ITEMS: usize = 1000;

/// Decodes one text frame into its items; a bad item costs only itself.
pub fn decode_frame(text: &str) -> Result<Vec<Result<Inbound, String>>, String> {
    match text.trim_start().as_bytes().first() {
        Some(b'[') => {
            let items = serde_json::from_str::<Bounded<Box<RawValue>, MAX_ITEMS>>(text).map_err(|e| e.to_string())?;
            Ok(items
                .0
                .iter()
                .map(|raw| serde_json::from_str(raw.get()).map_err(|e| e.to_string()).and_then(item))
                .collect())
        }
        Some(b'{') => Ok(vec![item(serde_json::from_str(text).map_err(|e| e.to_string())?)]),
        _ => Err("expected an array or an object".to_owned()),
    }
}

/// An item: `{msg: "<json>"}` or an envelope `{type, liveId, msg: {…}}`.
fn item(value: Value) -> Result<Inbound, String> {
    let Value::Object(mut fields) = value else { return Err("an item is not an object".into()) };
    let live_id = fields.get("liveId").and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
    let inner = match fields.remove("msg") {
        Some(Value::String(text)) => serde_json::from_str::<Inner>(&text).map_err(|e| format!("inner message: {e}"))?,
        Some(msg @ Value::Object(_)) => {
            serde_json::from_value::<Inner>(msg).map_err(|e| format!("inner message: {e}"))?
        }
        // A bare message without a wrapper (the IM envelope has its own `msg`).
        _ => serde_json::from_value::<Inner>(Value::Object(fields)).map_err(|e| format!("message: {e}"))?,
    };
    if inner.msg_type.is_empty() {
        return Err("an item without msgType".into());
    }
    Ok(Inbound { live_id, msg: inner })
}

/// What an item means for the bridge.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// Something in a live room (matched to a configured room by `roomId` or the envelope's `liveId`).
    Room { room_id: Option<u64>, live_id: Option<u64>, msg_id: Option<String>, sender: Option<User>, kind: EventKind },
    /// The broadcast ended.
    StopLive { room_id: Option<u64>, live_id: Option<u64> },
    /// A private IM message.
    Im { from: u64, msg_id: Option<String>, sender: User, content: Content, time: Option<Time> },
}

pub fn map(item: &Inbound, names: &super::gifts::GiftNames) -> Mapped {
    let m = &item.msg;
    let sender = m.from_user_id.map(|id| {
        let mut user = User::new(id.to_string(), m.from_user_name.clone().unwrap_or_default());
        user.avatar = m.cover_url.clone().filter(|u| !u.is_empty());
        user
    });
    let text = m.text.clone().unwrap_or_default();
    let room = |kind: EventKind| Mapped::Room {
        room_id: m.room_id.or(m.live.as_ref().and_then(|l| l.room_id)),
        live_id: item.live_id.or(m.live_id),
        msg_id: m.msg_id.clone(),
        sender: sender.clone(),
        kind,
    };
    match m.msg_type.as_str() {
        "text" | "barrage" => room(EventKind::Message(Message { content: Content::text(text), ..Message::default() })),
        "like" => {
            let who = m.from_user_name.as_deref().unwrap_or("someone");
            room(EventKind::Notice { text: if text.is_empty() { format!("{who} liked the broadcast") } else { text } })
        }
        "gift" => {
            // `giftId` is the gift; `gift.name` names it (its `id` in the seed's example is the amount's copy).
            let named = m.gift.as_ref().and_then(|g| g.name.clone()).filter(|n| !n.trim().is_empty());
            if let (Some(id), Some(name)) = (m.gift_id, &named) {
                names.learn(id, name);
            }
            let name = match (m.gift_id, named) {
                (Some(id), None) => names.name_or_id(id),
                (_, Some(name)) => names.name(m.gift_id.unwrap_or_default()).unwrap_or(name),
                (None, None) => "a gift".to_owned(),
            };
            let count = m.amount.map_or(1, |n| u32::try_from(n.max(1)).unwrap_or(u32::MAX));
            room(EventKind::Gift { name, count, value: None })
        }
        "system" | "toast" => room(EventKind::Notice { text }),
        "action" => action(item, room),
        "IM" => im(m, names),
        other => room(EventKind::Unsupported { kind: other.to_owned(), raw: format!("{m:?}") }),
    }
}

fn action(item: &Inbound, room: impl Fn(EventKind) -> Mapped) -> Mapped {
    let m = &item.msg;
    let action = m.action.as_deref().unwrap_or_default();
    match action {
        "stop-live" => Mapped::StopLive {
            room_id: m.room_id.or(m.live.as_ref().and_then(|l| l.room_id)),
            live_id: m.live.as_ref().and_then(|l| l.live_id).or(item.live_id),
        },
        "live-change" => {
            let title = m.title.clone().or_else(|| m.live.as_ref().and_then(|l| l.title.clone())).unwrap_or_default();
            room(EventKind::Notice { text: format!("The broadcast is now called “{title}”.") })
        }
        "shutup-user" | "shutup-open-user" => {
            let who = m.user_id.map_or_else(|| "a user".to_owned(), |id| format!("user {id}"));
            let what = if action == "shutup-user" { "was muted" } else { "may speak again" };
            room(EventKind::Notice { text: format!("{who} {what}.") })
        }
        "system-notify" | "start-live-notify" => {
            room(EventKind::Notice { text: m.text.clone().or(m.comment.clone()).unwrap_or_default() })
        }
        other => room(EventKind::Unsupported { kind: format!("action/{other}"), raw: format!("{m:?}") }),
    }
}

fn im(envelope: &Inner, names: &super::gifts::GiftNames) -> Mapped {
    let m = envelope.msg.clone().unwrap_or_default();
    let from = m.from_user_id.unwrap_or_default();
    let profile = envelope
        .users
        .as_ref()
        .and_then(|users| users.get(from.to_string()))
        .and_then(|user| serde_json::from_value::<ImUser>(user.clone()).ok());
    let profile = profile.as_ref();
    let mut sender = User::new(from.to_string(), profile.map_or_else(String::new, |p| p.display_name.clone()));
    sender.avatar = profile.and_then(|p| p.cover_url.clone()).filter(|u| !u.is_empty());
    let c = &m.content;
    let str_of = |key: &str| c.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut segments = Vec::new();
    match m.msg_type.as_str() {
        "text" | "systopic" => segments.extend(str_of("text").map(Segment::Text)),
        "gift" => {
            // Only the id comes: its name as learned, else the id.
            let gift = c.get("giftId").and_then(Value::as_u64).map(|id| names.name_or_id(id));
            let text = str_of("text").filter(|t| !t.trim().is_empty());
            segments.push(Segment::Text(match (text, gift) {
                (Some(text), Some(gift)) => format!("{text} [gift: {gift}]"),
                (None, Some(gift)) => format!("[gift: {gift}]"),
                (Some(text), None) => text,
                (None, None) => "[a gift]".to_owned(),
            }));
        }
        "sysnotify" => {
            segments.extend(str_of("text").map(Segment::Text));
            segments.extend(str_of("img").map(|url| Segment::Image { url }));
        }
        "image" => segments.extend(str_of("img").map(|url| Segment::Image { url })),
        "audio" => segments.extend(str_of("audio").map(|url| Segment::Audio {
            url,
            seconds: c.get("length").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()),
        })),
        "video" => segments.extend(str_of("video").or(str_of("url")).map(|url| Segment::Video { url })),
        "dueChat" => segments.push(Segment::Text(format!(
            "[due chat: status {}, {} s]",
            c.get("chatStatus").unwrap_or(&Value::Null),
            c.get("chatLength").unwrap_or(&Value::Null)
        ))),
        _ => segments.extend(m.tips.clone().map(Segment::Text)),
    }
    if segments.is_empty() {
        segments.extend(m.tips.clone().map(Segment::Text));
    }
    let time = m.create_time.map(|t| Time(i64::try_from(t).unwrap_or_default() * 1000));
    Mapped::Im { from, msg_id: m.msg_id, sender, content: Content(segments), time }
}

/// The `errorcode` / `errormsg` of every API answer, with what the live calls return.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Answer {
    pub errorcode: i64,
    pub errormsg: String,
    pub live: Option<LiveRef>,
    pub lives: Vec<LiveRef>,
}

/// The answer of `init`: the endpoint map, by function.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct InitAnswer {
    pub errorcode: i64,
    pub errormsg: String,
    pub message: HashMap<String, Value>,
    pub live: HashMap<String, Value>,
}
