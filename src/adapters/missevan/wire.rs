//! Missevan's chat socket frames and JSON (`docs/platforms/missevan.md`); nothing here leaves the adapter.
//!
//! Server frames are text (the `❤️` keep-alive echo, or JSON) or binary: a flag byte (1 = Brotli), the
//! decoded length as 24-bit little-endian, then the Brotli stream. A payload is one JSON object or an
//! array of them.

use std::io::Read;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::adapters::bounded::Bounded;
use crate::model::{Badges, Content, Event, EventKind, Message, RemoteId, RoomAddr, Segment, Time, User};

/// The keep-alive text, both ways.
pub const HEARTBEAT: &str = "❤️";
/// Flag byte of a Brotli-compressed binary frame.
const FLAG_BROTLI: u8 = 1;
/// Decoded payloads larger than this are refused. The 24-bit header allows 16 MiB; the frames the platform sends
/// are a few KiB (the largest of the golden corpus, a room's info with its gift list, is 1.6 KiB), so 1 MiB
/// leaves room for any of them while a hostile frame costs little.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Items of one frame: the platform sends a few (a message and its notices); a frame of millions of tiny items
/// would cost far more than its bytes once built. Counted as they are read, refused past it.
pub const MAX_ITEMS: usize = 1000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("binary frame shorter than its 4-byte header")]
    Short,
    #[error("unknown binary frame flag {0}")]
    Flag(u8),
    #[error("Brotli stream is corrupt")]
    Brotli,
    #[error("declared length {declared} but {actual} bytes decoded")]
    Length { declared: usize, actual: usize },
    #[error("not JSON: {0}")]
    Json(String),
    #[error("declared length {0} is over the {MAX_PAYLOAD} bytes a frame may have")]
    Large(usize),
}

/// One server frame, decoded.
#[derive(Debug)]
pub enum Frame {
    Heartbeat,
    /// The JSON items it carried, each still raw (parsed one by one, so a bad item costs only itself).
    Items(Vec<Box<RawValue>>),
}

pub fn decode_text(text: &str) -> Result<Frame, FrameError> {
    if text.trim() == HEARTBEAT {
        return Ok(Frame::Heartbeat);
    }
    items(text.as_bytes())
}

pub fn decode_binary(bytes: &[u8]) -> Result<Frame, FrameError> {
    let [flag, a, b, c, stream @ ..] = bytes else { return Err(FrameError::Short) };
    if *flag != FLAG_BROTLI {
        return Err(FrameError::Flag(*flag));
    }
    let declared = usize::from(*a) | usize::from(*b) << 8 | usize::from(*c) << 16;
    if declared > MAX_PAYLOAD {
        return Err(FrameError::Large(declared));
    }
    // Grown as the stream decodes: a header may lie, and 16 MiB up front per frame is a gift to a hostile server.
    let mut payload = Vec::with_capacity(declared.min(64 << 10));
    // One byte more than declared is enough to tell a longer stream.
    let mut decoder = brotli::Decompressor::new(stream, 4096).take(declared as u64 + 1);
    decoder.read_to_end(&mut payload).map_err(|_| FrameError::Brotli)?;
    if payload.len() != declared {
        return Err(FrameError::Length { declared, actual: payload.len() });
    }
    items(&payload)
}

/// A binary frame as the server sends it (for the simulator and tests).
pub fn encode_binary(payload: &[u8]) -> Vec<u8> {
    // The header's 24 bits: what a server can declare, whatever the client takes.
    let len = payload.len().min((1 << 24) - 1);
    let mut out = vec![FLAG_BROTLI, len as u8, (len >> 8) as u8, (len >> 16) as u8];
    let params = brotli::enc::BrotliEncoderParams { quality: 5, ..Default::default() };
    let mut input = &payload[..len];
    brotli::BrotliCompress(&mut input, &mut out, &params).expect("writing to a Vec cannot fail");
    out
}

fn items(payload: &[u8]) -> Result<Frame, FrameError> {
    let json = |e: serde_json::Error| FrameError::Json(e.to_string());
    match payload.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice::<Bounded<Box<RawValue>, MAX_ITEMS>>(payload)
            .map(|b| Frame::Items(b.0))
            .map_err(json),
        Some(b'{') => {
            serde_json::from_slice::<Box<RawValue>>(payload).map(|item| Frame::Items(vec![item])).map_err(json)
        }
        _ => Err(FrameError::Json("expected an object or an array".to_owned())),
    }
}

/// The join frame the client sends after the socket opens.
#[derive(Debug, Serialize)]
pub struct Join<'a> {
    pub action: &'static str,
    pub uuid: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub room_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect: Option<u8>,
}

/// One inbound item. Unknown fields are ignored; every field may be missing.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Item {
    #[serde(rename = "type")]
    pub kind: String,
    pub event: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub room_id: Option<u64>,
    pub msg_id: Option<String>,
    pub message: Option<String>,
    /// `room/statistics`: the audience (`online`) and the room's other figures.
    pub statistics: Option<Value>,
    /// PK frames: what the client shows of them, as HTML.
    pub message_tip: Option<String>,
    pub user: Option<WireUser>,
    pub queue: Option<Vec<WireUser>>,
    pub gift: Option<Gift>,
    pub question: Option<Question>,
    pub opt: Option<u8>,
    pub msg_ids: Option<Vec<String>>,
    pub uuid: Option<String>,
    pub code: Option<i64>,
    pub info: Option<Value>,
    #[serde(deserialize_with = "lenient_i64")]
    pub time: Option<i64>,
    #[serde(deserialize_with = "lenient_i64")]
    pub create_time: Option<i64>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct WireUser {
    #[serde(deserialize_with = "lenient_u64")]
    pub user_id: Option<u64>,
    pub username: String,
    pub iconurl: Option<String>,
    /// The user's marks in the room: `{type: level|medal|noble, name, level}` (protocols.md, the public clients).
    pub titles: Vec<Title>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct Title {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub level: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Gift {
    pub name: String,
    pub num: Option<u32>,
    pub price: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Question {
    pub question: String,
    pub username: String,
    pub price: Option<u64>,
}

/// The body of `POST /api/chatroom/message/send`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendBody {
    pub room_id: u64,
    pub message: String,
    pub msg_id: String,
}

/// The platform's answers: `{"code": 0, "info": …}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Answer {
    pub code: i64,
    pub info: Value,
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

impl Item {
    /// `type/event`, e.g. `message/new`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.kind, self.event)
    }

    pub fn is_join_ack(&self) -> bool {
        self.kind == "room" && self.event == "join"
    }

    /// The `info` text of an answer (a string, or an object's `message`).
    pub fn info_text(&self) -> String {
        info_text(self.info.as_ref())
    }
}

pub fn info_text(info: Option<&Value>) -> String {
    match info {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn user(wire: &WireUser) -> User {
    let id = wire.user_id.map_or_else(String::new, |id| id.to_string());
    let mut user = User::new(id, wire.username.as_str());
    user.avatar = wire.iconurl.clone().filter(|u| !u.is_empty());
    user.badges = badges(&wire.titles);
    user
}

/// The sender's level, fan medal (`name level`) and noble rank; the badge is the rank, else the medal.
fn badges(titles: &[Title]) -> Option<Box<Badges>> {
    let find = |kind: &str| titles.iter().find(|t| t.kind == kind);
    let clean = |name: &str| name.chars().filter(|c| !c.is_control()).take(24).collect::<String>().trim().to_owned();
    let medal = find("medal").map_or_else(String::new, |t| match t.level {
        Some(level) if !t.name.trim().is_empty() => format!("{} {level}", clean(&t.name)),
        _ => clean(&t.name),
    });
    let noble = find("noble").map_or_else(String::new, |t| clean(&t.name));
    Badges {
        badge: if noble.is_empty() { medal.clone() } else { noble },
        level: find("level").and_then(|t| t.level).and_then(|l| u32::try_from(l).ok()),
        medal,
    }
    .or_none()
}

/// Chat text: U+200B (inserted by some bots to dodge the word filter) removed, leading `@name`
/// tokens as mentions. Everything else passes through untouched.
pub fn chat_content(text: &str) -> Content {
    let text = text.replace('\u{200B}', "");
    let mut segments = Vec::new();
    let mut rest = text.as_str();
    while let Some(after) = rest.strip_prefix('@') {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        if end == 0 {
            break;
        }
        segments.push(Segment::Mention { user: None, name: after[..end].to_owned() });
        rest = &after[end..];
        let spaces = rest.len() - rest.trim_start_matches(' ').len();
        if !rest[spaces..].starts_with('@') {
            break;
        }
        segments.push(Segment::Text(rest[..spaces].to_owned()));
        rest = &rest[spaces..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Text(rest.to_owned()));
    }
    Content(segments)
}

static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"<[^>]*>").expect("valid pattern"));

/// Horn and notice HTML (`<font color=…>`) as plain text, entities decoded.
pub fn html_to_text(html: &str) -> String {
    let stripped = TAG.replace_all(html, "");
    htmlize::unescape(stripped.as_ref()).into_owned()
}

/// Maps one item of this room to events. `raw` is the item as received, for `Unsupported`.
pub fn to_events(item: &Item, room: &RoomAddr, raw: &str) -> Vec<Event> {
    let time = item.time.or(item.create_time).map(Time);
    let sender = item.user.as_ref().map(user);
    let msg_id = item.msg_id.as_deref().filter(|id| !id.is_empty()).map(RemoteId::new);
    let notice = |text: String| vec![Event::new(room.clone(), None, sender.clone(), EventKind::Notice { text })];
    let mut events = match (item.kind.as_str(), item.event.as_str()) {
        ("message", "new" | "danmaku") => {
            let content = chat_content(item.message.as_deref().unwrap_or_default());
            let kind = EventKind::Message(Message { content, ..Message::default() });
            vec![Event::new(room.clone(), msg_id, sender.clone(), kind)]
        }
        ("member", "join_queue") => item
            .queue
            .iter()
            .flatten()
            .map(|u| Event::new(room.clone(), None, Some(user(u)), EventKind::Joined))
            .collect(),
        ("gift", "send") => {
            let gift = item.gift.as_ref();
            let count = gift.and_then(|g| g.num).unwrap_or(1);
            let value = gift.and_then(|g| g.price).map(|p| p.saturating_mul(u64::from(count)));
            let name = gift.map_or_else(String::new, |g| g.name.clone());
            vec![Event::new(room.clone(), None, sender.clone(), EventKind::Gift { name, count, value })]
        }
        ("question", "ask") => {
            let q = item.question.as_ref();
            let who = q.map(|q| q.username.as_str()).filter(|n| !n.is_empty()).unwrap_or("someone");
            let price = q.and_then(|q| q.price).map_or_else(String::new, |p| format!(" ({p} diamonds)"));
            notice(format!("{who} asked{price}: {}", q.map_or("", |q| q.question.as_str())))
        }
        ("admin", "message_clear") if item.opt == Some(2) => item
            .msg_ids
            .iter()
            .flatten()
            .map(|id| Event::new(room.clone(), None, None, EventKind::Recalled { target: RemoteId::new(id.as_str()) }))
            .collect(),
        ("admin", "message_clear") => notice("A moderator cleared the chat.".to_owned()),
        ("notify", "horn") => notice(html_to_text(item.message.as_deref().unwrap_or_default())),
        // PK rounds, ranks, noble and super-fan titles, as the client shows them (`message_tip`, else `message`):
        // notices, which a room's `events` takes with "notice". Without a text to show they stay unknown kinds.
        ("pk" | "global_pk" | "team_pk" | "noble" | "super_fan", _) | ("room", "new_rank" | "last_hour_rank")
            if shown(item).is_some() =>
        {
            notice(shown(item).unwrap_or_default())
        }
        ("member", "followed") => {
            let who = sender.as_ref().map(|s| s.name.as_str()).filter(|n| !n.is_empty()).unwrap_or("someone");
            notice(format!("{who} followed the host."))
        }
        ("room", "open") => notice(or_default(item, "The live broadcast started.")),
        ("room", "close") => notice(or_default(item, "The live broadcast ended.")),
        _ => vec![Event::new(
            room.clone(),
            None,
            None,
            EventKind::Unsupported { kind: item.name(), raw: raw.to_string() },
        )],
    };
    if let Some(time) = time {
        for event in &mut events {
            event.time = time;
        }
    }
    events
}

/// What the client shows of an event: its `message_tip`, else its `message`, as text.
fn shown(item: &Item) -> Option<String> {
    [item.message_tip.as_deref(), item.message.as_deref()]
        .into_iter()
        .flatten()
        .map(html_to_text)
        .find(|t| !t.trim().is_empty())
}

/// `room/statistics`' audience (`statistics.online`), for the status page.
pub fn online(item: &Item) -> Option<u64> {
    if item.kind != "room" || item.event != "statistics" {
        return None;
    }
    item.statistics.as_ref()?.get("online")?.as_u64()
}

fn or_default(item: &Item, default: &str) -> String {
    item.message.as_deref().map(html_to_text).filter(|t| !t.is_empty()).unwrap_or_else(|| default.to_owned())
}
