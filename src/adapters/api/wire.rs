//! The messages of the HTTP API, with matterbridge's JSON field names.

use serde::{Deserialize, Serialize};

/// One message as API clients see it and post it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiMessage {
    pub text: String,
    pub channel: String,
    pub username: String,
    pub userid: String,
    pub avatar: String,
    pub account: String,
    pub event: String,
    pub protocol: String,
    pub gateway: String,
    pub parent_id: String,
    pub timestamp: String,
    pub id: String,
    #[serde(rename = "Extra")]
    pub extra: Option<serde_json::Value>,
}

/// An [`ApiMessage`] as the bridge writes it, borrowing what it says: the same fields in the same order, so the
/// same JSON, without a `String` made for each field of each message.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ApiMessageOut<'a> {
    pub text: &'a str,
    pub channel: &'a str,
    pub username: &'a str,
    pub userid: &'a str,
    pub avatar: &'a str,
    pub account: &'a str,
    pub event: &'a str,
    pub protocol: &'a str,
    pub gateway: &'a str,
    pub parent_id: &'a str,
    pub timestamp: &'a str,
    pub id: &'a str,
    #[serde(rename = "Extra")]
    pub extra: Option<&'a serde_json::Value>,
}

impl<'a> From<&'a ApiMessage> for ApiMessageOut<'a> {
    fn from(m: &'a ApiMessage) -> Self {
        Self {
            text: &m.text,
            channel: &m.channel,
            username: &m.username,
            userid: &m.userid,
            avatar: &m.avatar,
            account: &m.account,
            event: &m.event,
            protocol: &m.protocol,
            gateway: &m.gateway,
            parent_id: &m.parent_id,
            timestamp: &m.timestamp,
            id: &m.id,
            extra: m.extra.as_ref(),
        }
    }
}

/// The event of a deletion, as matterbridge names it.
pub const DELETE: &str = "msg_delete";
/// The event of an action (`/me`), as matterbridge names it.
pub const ACTION: &str = "user_action";
/// The `parent_id` of a reply whose parent has no copy here, as matterbridge says it (`config.ParentIDNotFound`).
pub const PARENT_NOT_FOUND: &str = "msg-parent-not-found";
/// The first line of a stream.
pub const CONNECTED: &str = "api_connected";

/// A time as Go writes a `time.Time` in JSON, the form matterbridge's clients parse: RFC 3339 with as many
/// fractional digits as needed (none to nine; `time.RFC3339Nano`), in UTC.
pub fn timestamp(at: std::time::SystemTime) -> String {
    use std::fmt::Write;
    thread_local! {
        /// The last second written, and its text up to the seconds: every message of a second shares it.
        static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut text = SECOND.with_borrow_mut(|(second, text)| {
        if *second != since.as_secs() {
            // "….Z" without its "Z".
            let mut whole = humantime::format_rfc3339_seconds(at).to_string();
            whole.pop();
            (*second, *text) = (since.as_secs(), whole);
        }
        let mut out = String::with_capacity(text.len() + 11);
        out.push_str(text);
        out
    });
    // "….123450000" → "….12345"; no fraction at all for a whole second.
    let mut nanos = since.subsec_nanos();
    if nanos > 0 {
        let mut digits = 9;
        while nanos.is_multiple_of(10) {
            nanos /= 10;
            digits -= 1;
        }
        let _ = write!(text, ".{nanos:0digits$}");
    }
    text.push('Z');
    text
}

/// The time now, as [`timestamp`] writes it.
pub fn now() -> String {
    timestamp(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_as_go_writes_them() {
        let at = |nanos: u64| std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos);
        assert_eq!(timestamp(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(at(1_764_097_200_123_000_000)), "2025-11-25T19:00:00.123Z");
        assert_eq!(timestamp(at(1_764_097_200_123_456_789)), "2025-11-25T19:00:00.123456789Z");
        assert_eq!(timestamp(at(951_782_400_000_100_000)), "2000-02-29T00:00:00.0001Z");
        // The second's text is kept between calls: a new second, and an earlier one again, are written anew.
        assert_eq!(timestamp(at(1_764_097_200_500_000_000)), "2025-11-25T19:00:00.5Z");
        assert_eq!(timestamp(at(1_764_097_201_000_000_001)), "2025-11-25T19:00:01.000000001Z");
        assert_eq!(timestamp(at(1_764_097_200_999_999_999)), "2025-11-25T19:00:00.999999999Z");
    }

    /// What the bridge writes from borrowed fields is what the message itself serialises to, byte for byte.
    #[test]
    fn written_messages_are_the_messages_json() {
        let m = ApiMessage {
            text: "a \"quoted\" <b>line</b>\n".into(),
            channel: "api".into(),
            username: "小明".into(),
            userid: "u1".into(),
            avatar: "https://example.invalid/a.png".into(),
            account: "api.read".into(),
            event: ACTION.into(),
            protocol: "api".into(),
            gateway: "g".into(),
            parent_id: PARENT_NOT_FOUND.into(),
            timestamp: "2026-12-07T22:00:00.5Z".into(),
            id: "0190-id".into(),
            extra: Some(serde_json::json!({"file": [1, 2]})),
        };
        for m in [m.clone(), ApiMessage { extra: None, ..m }, ApiMessage::default()] {
            assert_eq!(serde_json::to_string(&ApiMessageOut::from(&m)).unwrap(), serde_json::to_string(&m).unwrap());
        }
    }

    #[test]
    fn field_names_are_matterbridge_s() {
        let m = ApiMessage { text: "hi".into(), parent_id: "p".into(), ..ApiMessage::default() };
        let json = serde_json::to_value(&m).unwrap();
        for key in [
            "text",
            "channel",
            "username",
            "userid",
            "avatar",
            "account",
            "event",
            "protocol",
            "gateway",
            "parent_id",
            "timestamp",
            "id",
            "Extra",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
    }
}
