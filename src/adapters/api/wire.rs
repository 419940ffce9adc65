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

/// The event of a deletion, as matterbridge names it.
pub const DELETE: &str = "msg_delete";
/// The first line of a stream.
pub const CONNECTED: &str = "api_connected";

/// RFC 3339 time (UTC, milliseconds) of a Unix time in milliseconds.
pub fn timestamp(millis: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(millis).unwrap_or_default());
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(1_764_097_200_123), "2025-11-25T19:00:00.123Z");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
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
