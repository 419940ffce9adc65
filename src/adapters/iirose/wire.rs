//! IIROSE's packets (`docs/platforms/iirose.md`); nothing here leaves the adapter.
//!
//! A frame is one packet of text: raw UTF-8 up to 256 bytes, else `0x01` + gzip (zlib accepted on
//! receive). The first character routes the packet; records are joined by `<` (newest first), fields by
//! `>`, and user text in fields is HTML-entity escaped — so split first, then unescape each field.

use std::io::{Read, Write};

use md5::{Digest, Md5};
use serde::Serialize;

pub use super::text::{parse_text, render, with_quote};

/// Payloads longer than this travel gzip-compressed behind a `0x01` byte.
pub const COMPRESS_OVER: usize = 256;
/// Decompressed packets larger than this are refused.
const MAX_PACKET: u64 = 16 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("compressed frame is neither gzip nor zlib")]
    Compression,
    #[error("packet is not UTF-8")]
    Utf8,
}

/// The text of one frame.
pub fn decode_frame(bytes: &[u8]) -> Result<String, FrameError> {
    let Some((&1, compressed)) = bytes.split_first() else {
        return String::from_utf8(bytes.to_vec()).map_err(|_| FrameError::Utf8);
    };
    let mut out = Vec::new();
    let read = if compressed.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(compressed).take(MAX_PACKET).read_to_end(&mut out)
    } else {
        flate2::read::ZlibDecoder::new(compressed).take(MAX_PACKET).read_to_end(&mut out)
    };
    read.map_err(|_| FrameError::Compression)?;
    String::from_utf8(out).map_err(|_| FrameError::Utf8)
}

/// One packet as a frame: compressed when longer than 256 bytes.
pub fn encode_frame(text: &str) -> Vec<u8> {
    if text.len() <= COMPRESS_OVER {
        return text.as_bytes().to_vec();
    }
    let mut encoder = flate2::write::GzEncoder::new(vec![1u8], flate2::Compression::fast());
    encoder.write_all(text.as_bytes()).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// The platform's escaping of text inside fields.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#039;"),
            '\\' => out.push_str("&#092;"),
            c => out.push(c),
        }
    }
    out
}

/// One level of escaping undone. (Decoding until nothing changes, as one client does, would turn a
/// literal `&lt;` someone typed into `<`.)
pub fn unescape(field: &str) -> String {
    htmlize::unescape(field).into_owned()
}

/// Lowercase hex MD5.
pub fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A public chat message (11 fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicMessage {
    pub time: i64,
    pub avatar: String,
    pub name: String,
    pub text: String,
    pub uid: String,
    pub msg_id: String,
}

/// Someone came, went elsewhere or left (`'1`, `'2`, `'3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Joined,
    Moved,
    Left,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Message(PublicMessage),
    System {
        presence: Presence,
        time: i64,
        name: String,
        uid: String,
    },
    /// A record of another shape (status changes, media cards…), kept raw.
    Other(String),
}

/// A private message (11 fields; 17 on the echo of one we sent, which names the receiver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateMessage {
    pub time: i64,
    pub uid: String,
    pub name: String,
    pub avatar: String,
    pub text: String,
    pub anonymous: bool,
    pub msg_id: String,
    /// Present on the echo of a message we sent: whom it went to.
    pub receiver: Option<String>,
}

/// Someone listed in the login dump: uid and name (user records: avatar, gender, name, colour, room, …, uid at 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub uid: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `"public"private`: both lists in time order (the wire sends batches newest first).
    Chat {
        public: Vec<Record>,
        private: Vec<PrivateMessage>,
    },
    /// `%*"` + the dump: logged in. The users it lists, and its recent public history (never relayed as new).
    LoggedIn {
        members: Vec<Member>,
        history: Vec<Record>,
    },
    /// `%*"<code>`, one of the documented refusal codes.
    LoginRefused(String),
    /// `%*"` + something that is neither a documented refusal nor a dump: its first characters.
    LoginUnrecognised(String),
    /// `v0#<uid>_<msgid>`.
    Recalled {
        uid: String,
        msg_id: String,
    },
    /// `v0*<receiver>"<sender>_<msgid>`.
    PrivateRecalled {
        receiver: String,
        sender: String,
        msg_id: String,
    },
    /// `=`: a site-wide broadcast.
    Broadcast {
        name: String,
        text: String,
        uid: String,
    },
    /// `-k`.
    Kicked,
    /// `-*<room>`: another session of this account moved.
    Moved(String),
    /// The empty keep-alive.
    KeepAlive,
    Other {
        kind: String,
        raw: String,
    },
}

/// How deeply `z` multi-forwards may nest; deeper pieces are dropped as malformed.
const MAX_FORWARD_DEPTH: usize = 4;
/// Packets one forward carries at most (the server batches a room's recent messages, a few dozen).
pub const MAX_FORWARDED: usize = 1000;

/// The start of the login answer, shared by the dump and the refusals.
pub const LOGIN_ANSWER: &str = "%*\"";

/// Parses one packet; a `z` multi-forward yields the packets it carries. Never recurses: forwards are
/// unpacked with a work list, at most `MAX_FORWARD_DEPTH` deep.
pub fn parse_packet(text: &str) -> Vec<Packet> {
    if !text.starts_with('z') {
        return vec![parse_one(text)];
    }
    let mut out = Vec::new();
    let mut pending = vec![(text.to_owned(), 0usize)];
    while let Some((text, depth)) = pending.pop() {
        let Some(rest) = text.strip_prefix('z') else {
            out.push(parse_one(&text));
            continue;
        };
        if depth >= MAX_FORWARD_DEPTH {
            let kind = "z".to_owned();
            out.push(Packet::Other { kind, raw: preview(&text, 64) });
            continue;
        }
        // Pushed in reverse so that the pieces come out in their order; past MAX_FORWARDED, one skipped packet.
        let mut pieces = rest.split('"').filter(|p| !p.is_empty());
        let taken: Vec<&str> = pieces.by_ref().take(MAX_FORWARDED).collect();
        if pieces.next().is_some() {
            out.push(Packet::Other { kind: "z".to_owned(), raw: format!("over {MAX_FORWARDED} forwarded packets") });
        }
        for piece in taken.into_iter().rev() {
            pending.push((unescape(piece), depth + 1));
        }
    }
    out
}

/// The first `limit` characters of `text`, for logs.
pub fn preview(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The documented refusals: `0` name taken, `1` no such user, `2` wrong password, `4` daily limit,
/// `5` wrong room password, `n0` room cannot be entered, `x…` banned — each alone in the packet.
fn is_refusal(code: &str) -> bool {
    matches!(code, "0" | "1" | "2" | "4" | "5" | "n0")
        || (code.starts_with('x') && code.len() <= 64 && !code.contains(['<', '>', '"']))
}

/// `%*"` + a refusal code, or `%*"` + the dump: `users and rooms"online users and history"loading info`,
/// each part `<`-separated records of `>`-separated fields (docs/platforms/iirose.md, "Login").
fn login_answer(rest: &str) -> Packet {
    if is_refusal(rest) {
        return Packet::LoginRefused(rest.to_owned());
    }
    if !rest.contains('>') {
        return Packet::LoginUnrecognised(preview(rest, 32));
    }
    let mut members = Vec::new();
    let mut history = Vec::new();
    for record in rest.split(['"', '<']).filter(|r| !r.is_empty()) {
        let f = fields(record);
        match f.len() {
            11 | 12 if f[0].bytes().all(|b| b.is_ascii_digit()) => history.push(public_record(&f)),
            n if n >= 9 && f[0].contains('/') => {
                members.push(Member { uid: unescape(f[8]), name: unescape(f[2]) });
            }
            _ => {}
        }
    }
    sort_records(&mut history);
    Packet::LoggedIn { members, history }
}

fn parse_one(text: &str) -> Packet {
    if text.is_empty() {
        return Packet::KeepAlive;
    }
    if let Some(rest) = text.strip_prefix(LOGIN_ANSWER) {
        return login_answer(rest);
    }
    if let Some(rest) = text.strip_prefix("v0#") {
        let rest = rest.trim_end_matches('"');
        if let Some((uid, msg_id)) = rest.rsplit_once('_') {
            return Packet::Recalled { uid: uid.to_owned(), msg_id: msg_id.to_owned() };
        }
    }
    if let Some(rest) = text.strip_prefix("v0*")
        && let Some((receiver, sent)) = rest.split_once('"')
        && let Some((sender, msg_id)) = sent.trim_end_matches('"').rsplit_once('_')
    {
        return Packet::PrivateRecalled { receiver: receiver.into(), sender: sender.into(), msg_id: msg_id.into() };
    }
    if let Some(chat) = text.strip_prefix('"') {
        let (public, private) = chat.split_once('"').unwrap_or((chat, ""));
        let mut public: Vec<Record> = records(public).map(|f| public_record(&f)).collect();
        let mut private: Vec<PrivateMessage> = records(private).filter_map(|f| private_record(&f)).collect();
        sort_records(&mut public);
        private.sort_by_key(|m| m.time);
        return Packet::Chat { public, private };
    }
    if let Some(rest) = text.strip_prefix('=') {
        let f = fields(rest);
        let get = |i: usize| f.get(i).map_or_else(String::new, |f| unescape(f));
        return Packet::Broadcast { name: get(0), text: get(1), uid: get(7) };
    }
    if text == "-k" {
        return Packet::Kicked;
    }
    if let Some(room) = text.strip_prefix("-*") {
        return Packet::Moved(room.to_owned());
    }
    let kind: String = text.chars().take(2).collect();
    Packet::Other { kind, raw: text.to_owned() }
}

fn records(part: &str) -> impl Iterator<Item = Vec<&str>> + '_ {
    part.split('<').filter(|r| !r.is_empty()).map(fields)
}

/// Split on `>`; each field is unescaped after, when it is used.
fn fields(record: &str) -> Vec<&str> {
    record.split('>').collect()
}

fn time_of(record: &Record) -> i64 {
    match record {
        Record::Message(m) => m.time,
        Record::System { time, .. } => *time,
        Record::Other(_) => i64::MAX,
    }
}

/// Oldest first; records without a time keep their place at the end.
/// Batches and the dump list records newest first: reversed, then sorted stably by time to be safe, so
/// records of the same second keep their order.
fn sort_records(records: &mut [Record]) {
    records.reverse();
    records.sort_by_key(time_of);
}

fn public_record(f: &[&str]) -> Record {
    let time = f.first().and_then(|t| t.parse().ok());
    let presence = f.get(3).and_then(|t| match unescape(t).as_bytes() {
        [b'\'', b'1', ..] => Some(Presence::Joined),
        [b'\'', b'2', ..] => Some(Presence::Moved),
        [b'\'', b'3', ..] => Some(Presence::Left),
        _ => None,
    });
    match (time, presence) {
        (Some(time), Some(presence)) if f.len() >= 11 => {
            Record::System { presence, time, name: unescape(f[2]), uid: unescape(f[8]) }
        }
        (Some(time), None) if f.len() == 11 => Record::Message(PublicMessage {
            time,
            avatar: unescape(f[1]),
            name: unescape(f[2]),
            text: unescape(f[3]),
            uid: unescape(f[8]),
            msg_id: unescape(f[10]),
        }),
        _ => Record::Other(f.iter().map(|f| unescape(f)).collect::<Vec<_>>().join(">")),
    }
}

fn private_record(f: &[&str]) -> Option<PrivateMessage> {
    if f.len() < 11 {
        return None;
    }
    Some(PrivateMessage {
        time: f[0].parse().ok()?,
        uid: unescape(f[1]),
        name: unescape(f[2]),
        avatar: unescape(f[3]),
        text: unescape(f[4]),
        anonymous: f[6] == "@",
        msg_id: unescape(f[10]),
        receiver: f.get(11).filter(|r| !r.is_empty()).map(|r| unescape(r)),
    })
}

/// The login packet: `*` + JSON.
#[derive(Debug, Serialize)]
pub struct Login<'a> {
    pub r: &'a str,
    pub n: &'a str,
    pub p: &'a str,
    pub st: &'static str,
    pub mo: &'static str,
    pub mb: &'static str,
    pub mu: &'static str,
    pub fp: String,
}

/// A public (`g` absent) or private message.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Say {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub g: Option<String>,
    pub m: String,
    pub mc: String,
    pub i: String,
}

/// What a `%*"` code means.
pub fn login_error(code: &str) -> String {
    let cause = match code {
        "0" => "the name is taken (another session uses it)",
        "1" => "no such user",
        "2" => "wrong password",
        "4" => "the daily login attempts are used up",
        "5" => "wrong room password",
        "n0" => "the room cannot be entered",
        c if c.starts_with('x') => "the account is banned",
        _ => "unknown login error",
    };
    format!("IIROSE refused the login: {cause} (code {code})")
}
