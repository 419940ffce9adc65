//! `[accounts.yunhu.<name>]`: the keys, their defaults, the room address form and the send limits of Yunhu accounts.

use std::time::Duration;

use reqwest::Url;

use crate::model::{AccountId, RoomId};
use crate::settings::{Fields, Report, Secret, secret, url};

/// `[accounts.yunhu.<name>]`: a Yunhu (云湖) user, by its token.
#[derive(Clone, Debug, PartialEq)]
pub struct YunhuAccount {
    pub token: Secret,
    pub api_url: Url,
    pub ws_url: Url,
    /// Our user id (learned from `/v1/user/info` otherwise).
    pub user_id: Option<String>,
    /// The login frame's `platform` (case-sensitive: windows, macos, android, linux, ios, fuchsia, Web).
    pub platform: String,
    pub device_id: String,
    pub heartbeat: Duration,
    /// No frame for this long: the socket is dead.
    pub idle_timeout: Duration,
    /// A streamed message is relayed when no part has come for this long.
    pub stream_settle: Duration,
    /// Formatting (bold, italic, code, links with a text, quotes) goes as Markdown (`content_type` 3); off: as
    /// plain text. Plain messages go as text either way.
    pub markdown: bool,
    pub request_timeout: Duration,
    /// Media of the media store go as Yunhu images, files, videos and voice (uploaded to Qiniu with a token from
    /// the Yunhu API, as Yunhu's own clients do); off: as links.
    pub media: bool,
    /// Where uploads go (Qiniu's upload host for Yunhu's buckets).
    pub upload_url: Url,
}

pub const YUNHU_DEFAULT_API: &str = "https://chat-go.jwzhd.com";
pub const YUNHU_DEFAULT_WS: &str = "wss://chat-ws-go.jwzhd.com/ws";
/// Qiniu's upload host for Yunhu's buckets (the default of public Yunhu clients when its region query fails).
pub const YUNHU_DEFAULT_UPLOAD: &str = "https://upload-z2.qiniup.com";
const YUNHU_PLATFORMS: [&str; 7] = ["windows", "macos", "android", "linux", "ios", "fuchsia", "Web"];

/// The default send limit: (messages per second, burst).
pub const SEND_LIMIT: (f64, u32) = (5.0, 10);

/// What a room address of this platform looks like, for the error that names one that is not.
pub const ROOM_FORM: &str = "a Yunhu chat: `group/<id>`, `user/<id>` or `bot/<id>`";

/// A chat of the configuration: its room, id and type (1 user, 2 group, 3 bot), parsed once from the room address
/// (`group/<id>`, `user/<id>`, `bot/<id>`) and used as it is by the gateway and the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chat {
    pub room: RoomId,
    pub id: String,
    pub kind: u64,
}

impl Chat {
    pub fn parse(room: &RoomId) -> Option<Self> {
        let (kind, id) = room.as_str().split_once('/')?;
        let kind = match kind {
            "user" => 1,
            "group" => 2,
            "bot" => 3,
            _ => return None,
        };
        let valid = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then(|| Self { room: room.clone(), id: id.to_owned(), kind })
    }
}

/// Whether `room` (the part after `yunhu.<name>:`) has this platform's form.
pub fn is_room(room: &str) -> bool {
    Chat::parse(&RoomId::new(room)).is_some()
}

/// Reads the account's table; `None` when it has problems (all of them reported).
fn parse(id: &AccountId, mut fields: Fields<'_, '_>, what: &str, report: &mut Report<'_>) -> Option<YunhuAccount> {
    let token = secret(&mut fields, "token", what, report);
    let api_url = url(&mut fields, "api_url", YUNHU_DEFAULT_API, report);
    let ws_url = url(&mut fields, "ws_url", YUNHU_DEFAULT_WS, report);
    let user_id = fields.str("user_id", report).map(|(s, _)| s.to_owned());
    let platform = match fields.str("platform", report) {
        None => Some("windows".to_owned()),
        Some((p, _)) if YUNHU_PLATFORMS.contains(&p) => Some(p.to_owned()),
        Some((p, span)) => {
            let known = YUNHU_PLATFORMS.join(", ");
            report.error(&span, format!("`platform` is `{p}`; expected one of {known} (case-sensitive)"));
            None
        }
    };
    let device_id =
        fields.str("device_id", report).map_or_else(|| format!("chatbridge-{}", id.name()), |(s, _)| s.to_owned());
    let (heartbeat, idle_timeout) =
        fields.heartbeat_and_idle(report, Duration::from_secs(30), |_| Duration::from_secs(70));
    let stream_settle = fields.duration("stream_settle", report).unwrap_or(Duration::from_secs(2));
    let markdown = fields.bool("markdown", report).unwrap_or(true);
    let request_timeout = fields.duration("request_timeout", report).unwrap_or(Duration::from_secs(10));
    let media = fields.bool("media", report).unwrap_or(true);
    let upload_url = url(&mut fields, "upload_url", YUNHU_DEFAULT_UPLOAD, report);
    fields.deny_unknown(what, report);
    Some(YunhuAccount {
        token: token?,
        api_url: api_url?,
        ws_url: ws_url?,
        user_id,
        platform: platform?,
        device_id,
        heartbeat,
        idle_timeout,
        stream_settle,
        markdown,
        request_timeout,
        media,
        upload_url: upload_url?,
    })
}

/// The account's own servers (`Account::servers`).
fn servers(account: &YunhuAccount) -> Vec<&reqwest::Url> {
    vec![&account.api_url, &account.ws_url]
}

crate::adapters::config::factory_row!(YunhuAccount, super::YunhuAdapter, Yunhu);
