//! `[accounts.<platform>.<name>]`: one schema per platform, and the room address forms each accepts.

use std::time::Duration;

use reqwest::Url;

use super::secret::Secret;
use super::validate::{Fields, Report, Span};
use crate::model::{AccountId, Platform, RoomId};

/// The settings of one account.
#[derive(Clone, Debug, PartialEq)]
pub enum AccountConfig {
    Fishroom(FishroomAccount),
    Missevan(MissevanAccount),
    Iirose(IiroseAccount),
    Heihei(HeiheiAccount),
    Yunhu(YunhuAccount),
    Api(ApiAccount),
}

impl AccountConfig {
    pub fn platform(&self) -> Platform {
        match self {
            AccountConfig::Fishroom(_) => Platform::Fishroom,
            AccountConfig::Missevan(_) => Platform::Missevan,
            AccountConfig::Iirose(_) => Platform::Iirose,
            AccountConfig::Heihei(_) => Platform::Heihei,
            AccountConfig::Yunhu(_) => Platform::Yunhu,
            AccountConfig::Api(_) => Platform::Api,
        }
    }
}

/// `[accounts.missevan.<name>]`: a Missevan (猫耳FM) user, by the cookies of a logged-in browser.
#[derive(Clone, Debug, PartialEq)]
pub struct MissevanAccount {
    /// `FM_SESS=…; FM_SESS.sig=…; token=…` (the session cookies are fetched when missing).
    pub cookie: Secret,
    pub api_url: Url,
    pub ws_url: Url,
    /// Longer texts are split into parts of at most this many characters.
    pub max_text_len: usize,
    /// Keep-alive period of the chat socket (30 s on the site).
    pub heartbeat: Duration,
    /// No frame for this long: the socket is dead, reconnect (90 s).
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
}

/// `[accounts.iirose.<name>]`: an IIROSE (蔷薇花园) member, in one room.
#[derive(Clone, Debug, PartialEq)]
pub struct IiroseAccount {
    pub username: String,
    /// Sent as lowercase hex MD5 (used as is when it already is 32 hex digits).
    pub password: Secret,
    /// Tried in order.
    pub ws_urls: Vec<Url>,
    /// The message colour, 6 hex digits.
    pub color: String,
    pub max_text_len: Option<usize>,
    pub heartbeat: Duration,
    /// A session that hears nothing for this long — no packet, no answer to the websocket pings sent with
    /// each keep-alive — is taken as lost and logged in again.
    pub idle_timeout: Duration,
    /// How long a sent message may wait for its echo (the delivery confirmation).
    pub echo_timeout: Duration,
    pub request_timeout: Duration,
}

/// `[accounts.heihei.<name>]`: a Heihei (黑黑) user, by its login token.
#[derive(Clone, Debug, PartialEq)]
pub struct HeiheiAccount {
    pub token: Secret,
    /// The endpoint map comes from here.
    pub init_url: Url,
    /// Overrides the `message.channel` websocket of the endpoint map.
    pub channel_url: Option<Url>,
    /// Overrides the API root (`…/api`) of the endpoint map.
    pub api_url: Option<Url>,
    /// Our own user id, for recognising our echoes (learned from them otherwise).
    pub user_id: Option<u64>,
    /// Websocket ping period; three unanswered pings mean a dead socket.
    pub ping_interval: Duration,
    /// How long a message for a host who is off air may wait for the next broadcast.
    pub offair_max_age: Duration,
    pub request_timeout: Duration,
}

/// `[accounts.api.<name>]`: an HTTP API for bots and tools, compatible with matterbridge's.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiAccount {
    pub listen: std::net::SocketAddr,
    /// Clients must send `Authorization: Bearer <token>` when set.
    pub token: Option<Secret>,
    /// Messages kept per gateway for clients that read late or reconnect.
    pub history: usize,
}

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
    /// Send texts that carry Markdown (`**`, `` ` ``, `[text](url)`, headings, lists) as Markdown.
    pub markdown: bool,
    pub request_timeout: Duration,
}

pub const YUNHU_DEFAULT_API: &str = "https://chat-go.jwzhd.com";
pub const YUNHU_DEFAULT_WS: &str = "wss://chat-ws-go.jwzhd.com/ws";
const YUNHU_PLATFORMS: [&str; 7] = ["windows", "macos", "android", "linux", "ios", "fuchsia", "Web"];

pub const HEIHEI_DEFAULT_INIT: &str = "https://api.wmlives.cn/api/init";

pub const IIROSE_DEFAULT_WS: &str = "wss://m2.iirose.com:8778";

pub const MISSEVAN_DEFAULT_API: &str = "https://fm.missevan.com";
pub const MISSEVAN_DEFAULT_WS: &str = "wss://im.missevan.com/ws";

/// `[accounts.fishroom.<name>]`: a token of a Fishroom server's HTTP API.
#[derive(Clone, Debug, PartialEq)]
pub struct FishroomAccount {
    /// The API root, e.g. `https://fishroom.tuna.moe/api`.
    pub api_url: Url,
    pub token_id: String,
    pub token_key: Secret,
    /// The token's display name on the server; its own posts come back with channel `api-<name>`.
    pub token_name: Option<String>,
    /// How long one HTTP request (a long-poll included) may take.
    pub request_timeout: Duration,
}

pub const FISHROOM_DEFAULT_API: &str = "https://fishroom.tuna.moe/api";

/// How fast the bridge may send through one account: a token bucket of `burst` messages refilled at
/// `per_second` (0: no limit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SendLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl SendLimit {
    /// Conservative defaults: none of these platforms publishes its limits, so they stay well under what a
    /// busy human sends (live-room chats are the strictest), and the API, served locally, has none.
    pub fn default_for(platform: Platform) -> Self {
        let (per_second, burst) = match platform {
            Platform::Missevan => (2.0, 5),
            Platform::Heihei => (2.0, 5),
            Platform::Iirose => (3.0, 10),
            Platform::Yunhu => (5.0, 10),
            Platform::Fishroom => (10.0, 20),
            Platform::Api => (0.0, 1),
        };
        Self { per_second, burst }
    }

    pub fn is_limited(&self) -> bool {
        self.per_second > 0.0
    }
}

/// `send_rate` and `send_burst`, which every account table accepts.
pub(crate) fn send_limit(platform: Platform, fields: &mut Fields<'_, '_>, report: &mut Report<'_>) -> SendLimit {
    let mut limit = SendLimit::default_for(platform);
    if let Some(rate) = fields.non_negative("send_rate", report) {
        limit.per_second = rate;
    }
    if let Some(burst) = fields.positive_int("send_burst", report) {
        limit.burst = u32::try_from(burst).unwrap_or(u32::MAX);
    }
    limit
}

/// Parses one account table. `None` when it has problems (all of them reported).
pub(crate) fn parse_account(
    id: &AccountId,
    mut fields: Fields<'_, '_>,
    report: &mut Report<'_>,
) -> Option<AccountConfig> {
    let what = &format!("[accounts.{id}]");
    let account = match id.platform() {
        Platform::Fishroom => {
            let api_url = url(&mut fields, "api_url", FISHROOM_DEFAULT_API, report);
            let token_id = fields.required_str("token_id", what, report).map(|(s, _)| s.to_owned());
            let token_key = secret(&mut fields, "token_key", what, report);
            let token_name = fields.str("token_name", report).map(|(s, _)| s.to_owned());
            let request_timeout = fields.duration("request_timeout", report).unwrap_or(Duration::from_secs(30));
            fields.deny_unknown(what, report);
            AccountConfig::Fishroom(FishroomAccount {
                api_url: api_url?,
                token_id: token_id?,
                token_key: token_key?,
                token_name,
                request_timeout,
            })
        }
        Platform::Missevan => {
            let cookie = secret(&mut fields, "cookie", what, report);
            let api_url = url(&mut fields, "api_url", MISSEVAN_DEFAULT_API, report);
            let ws_url = url(&mut fields, "ws_url", MISSEVAN_DEFAULT_WS, report);
            let max_text_len = fields.positive_int("max_text_len", report).unwrap_or(200);
            let heartbeat = fields.duration("heartbeat", report).unwrap_or(Duration::from_secs(30));
            let idle_timeout = fields.duration("idle_timeout", report).unwrap_or(Duration::from_secs(90));
            let request_timeout = fields.duration("request_timeout", report).unwrap_or(Duration::from_secs(10));
            fields.deny_unknown(what, report);
            AccountConfig::Missevan(MissevanAccount {
                cookie: cookie?,
                api_url: api_url?,
                ws_url: ws_url?,
                max_text_len: usize::try_from(max_text_len).unwrap_or(usize::MAX),
                heartbeat,
                idle_timeout,
                request_timeout,
            })
        }
        Platform::Iirose => {
            let username = fields.required_str("username", what, report).map(|(s, _)| s.to_owned());
            let password = secret(&mut fields, "password", what, report);
            let ws_urls = url_list(&mut fields, "ws_url", IIROSE_DEFAULT_WS, report);
            let color = match fields.str("color", report) {
                None => Some("66ccff".to_owned()),
                Some((c, _)) if c.len() == 6 && c.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Some(c.to_ascii_lowercase())
                }
                Some((c, span)) => {
                    report.error(&span, format!("`color` is `{c}`; expected 6 hex digits like \"66ccff\""));
                    None
                }
            };
            let max_text_len =
                fields.positive_int("max_text_len", report).map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            let heartbeat = fields.duration("heartbeat", report).unwrap_or(Duration::from_secs(30));
            let idle_timeout = fields.duration("idle_timeout", report).unwrap_or(heartbeat * 3);
            let echo_timeout = fields.duration("echo_timeout", report).unwrap_or(Duration::from_secs(10));
            let request_timeout = fields.duration("request_timeout", report).unwrap_or(Duration::from_secs(10));
            fields.deny_unknown(what, report);
            AccountConfig::Iirose(IiroseAccount {
                username: username?,
                password: password?,
                ws_urls: ws_urls?,
                color: color?,
                max_text_len,
                heartbeat,
                idle_timeout,
                echo_timeout,
                request_timeout,
            })
        }
        Platform::Heihei => {
            let token = secret(&mut fields, "token", what, report);
            let init_url = url(&mut fields, "init_url", HEIHEI_DEFAULT_INIT, report);
            let channel_url = optional_url(&mut fields, "channel_url", report);
            let api_url = optional_url(&mut fields, "api_url", report);
            let user_id = fields.positive_int("user_id", report);
            let ping_interval = fields.duration("ping_interval", report).unwrap_or(Duration::from_secs(5));
            let offair_max_age = fields.duration("offair_max_age", report).unwrap_or(Duration::from_secs(600));
            let request_timeout = fields.duration("request_timeout", report).unwrap_or(Duration::from_secs(10));
            fields.deny_unknown(what, report);
            AccountConfig::Heihei(HeiheiAccount {
                token: token?,
                init_url: init_url?,
                channel_url: channel_url?,
                api_url: api_url?,
                user_id,
                ping_interval,
                offair_max_age,
                request_timeout,
            })
        }
        Platform::Api => {
            let listen = match fields.required_str("listen", what, report) {
                Some((text, span)) => match text.parse() {
                    Ok(addr) => Some(addr),
                    Err(_) => {
                        report
                            .error(&span, format!("`listen` is `{text}`; expected an address like \"127.0.0.1:4242\""));
                        None
                    }
                },
                None => None,
            };
            let token = match fields.str("token", report) {
                None => Ok(None),
                Some((spec, span)) => Secret::resolve(spec).map(Some).map_err(|e| {
                    report.error(&span, format!("secret `token` cannot be read: {e}"));
                }),
            };
            let history = fields.positive_int("history", report).unwrap_or(1000);
            fields.deny_unknown(what, report);
            AccountConfig::Api(ApiAccount {
                listen: listen?,
                token: token.ok()?,
                history: usize::try_from(history).unwrap_or(usize::MAX),
            })
        }
        Platform::Yunhu => {
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
            let device_id = fields
                .str("device_id", report)
                .map_or_else(|| format!("chatbridge-{}", id.name()), |(s, _)| s.to_owned());
            let heartbeat = fields.duration("heartbeat", report).unwrap_or(Duration::from_secs(30));
            let idle_timeout = fields.duration("idle_timeout", report).unwrap_or(Duration::from_secs(70));
            let stream_settle = fields.duration("stream_settle", report).unwrap_or(Duration::from_secs(2));
            let markdown = fields.bool("markdown", report).unwrap_or(false);
            let request_timeout = fields.duration("request_timeout", report).unwrap_or(Duration::from_secs(10));
            fields.deny_unknown(what, report);
            AccountConfig::Yunhu(YunhuAccount {
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
            })
        }
    };
    Some(account)
}

fn url(fields: &mut Fields<'_, '_>, key: &'static str, default: &str, report: &mut Report<'_>) -> Option<Url> {
    match optional_url(fields, key, report)? {
        Some(url) => Some(url),
        None => Some(Url::parse(default).expect("default URLs are valid")),
    }
}

/// `Some(None)` when the key is absent, `None` when it is wrong (reported).
fn optional_url(fields: &mut Fields<'_, '_>, key: &'static str, report: &mut Report<'_>) -> Option<Option<Url>> {
    let Some((text, span)) = fields.str(key, report) else {
        return Some(None);
    };
    // A websocket key takes ws or wss, every other URL http or https.
    let expected: &[&str] =
        if key.starts_with("ws_") || key == "channel_url" { &["ws", "wss"] } else { &["http", "https"] };
    match Url::parse(text) {
        Ok(url) if expected.contains(&url.scheme()) => Some(Some(url)),
        Ok(url) => {
            report.error(&span, format!("`{key}` has scheme `{}`; expected {}", url.scheme(), expected.join(" or ")));
            None
        }
        Err(e) => {
            report.error(&span, format!("`{key}` is not a URL: {e}"));
            None
        }
    }
}

/// A URL or a list of them, tried in order.
fn url_list(
    fields: &mut Fields<'_, '_>,
    key: &'static str,
    default: &str,
    report: &mut Report<'_>,
) -> Option<Vec<Url>> {
    let Some(list) = fields.str_list(key, report) else {
        return Some(vec![Url::parse(default).expect("default URLs are valid")]);
    };
    if list.is_empty() {
        report.error(&fields.span, format!("`{key}` is an empty list"));
        return None;
    }
    let mut urls = Vec::with_capacity(list.len());
    for (text, span) in list {
        match Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "ws" | "wss") => urls.push(url),
            Ok(url) => report.error(&span, format!("`{key}` has scheme `{}`; expected ws or wss", url.scheme())),
            Err(e) => report.error(&span, format!("`{key}` is not a URL: {e}")),
        }
    }
    Some(urls)
}

fn secret(fields: &mut Fields<'_, '_>, key: &'static str, what: &str, report: &mut Report<'_>) -> Option<Secret> {
    let (spec, span) = fields.required_str(key, what, report)?;
    match Secret::resolve(spec) {
        Ok(secret) => Some(secret),
        Err(e) => {
            report.error(&span, format!("secret `{key}` cannot be read: {e}"));
            None
        }
    }
}

/// Checks the room part of an address against the platform's form.
pub(crate) fn parse_room(platform: Platform, room: &str, span: &Span, report: &mut Report<'_>) -> Option<RoomId> {
    let ok = match platform {
        // Fishroom's route accepts `[a-zA-Z0-9_-]+`.
        Platform::Fishroom => {
            !room.is_empty() && room.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }
        // A room id (hex, like `5ce6a4b520a90`) or `user/<uid>` for private chat.
        Platform::Iirose => {
            let id = room.strip_prefix("user/").unwrap_or(room);
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        // `host/<userId>`, `live/<liveId>`, `im/<userId>`.
        Platform::Heihei => ["host/", "live/", "im/"].iter().any(|p| {
            room.strip_prefix(p)
                .is_some_and(|id| !id.is_empty() && id.len() <= 19 && id.bytes().all(|b| b.is_ascii_digit()))
        }),
        // A bridge's name.
        Platform::Api => !room.is_empty() && !room.contains(char::is_whitespace),
        // `group/<id>`, `user/<id>`, `bot/<id>`.
        Platform::Yunhu => ["group/", "user/", "bot/"].iter().any(|p| {
            room.strip_prefix(p).is_some_and(|id| {
                !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        }),
        // A live room id.
        Platform::Missevan => !room.is_empty() && room.len() <= 19 && room.bytes().all(|b| b.is_ascii_digit()),
    };
    if !ok {
        let form = match platform {
            Platform::Fishroom => "a Fishroom room name of letters, digits, `_` and `-`",
            Platform::Missevan => "a Missevan live room id (digits)",
            Platform::Iirose => "an IIROSE room id (letters and digits) or `user/<uid>`",
            Platform::Heihei => "a Heihei room: `host/<userId>`, `live/<liveId>` or `im/<userId>`",
            Platform::Yunhu => "a Yunhu chat: `group/<id>`, `user/<id>` or `bot/<id>`",
            Platform::Api => "an API gateway name (no spaces)",
        };
        report.error(span, format!("room `{room}` is not {form}"));
        return None;
    }
    Some(RoomId::new(room))
}
