//! `[accounts.iirose.<name>]`: the keys, their defaults, the room address form and the send limits of IIROSE accounts.

use std::time::Duration;

use reqwest::Url;

use crate::model::AccountId;
use crate::settings::{Fields, Report, Secret, secret, url_list};

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

pub const IIROSE_DEFAULT_WS: &str = "wss://m2.iirose.com:8778";

/// The default send limit: (messages per second, burst).
pub const SEND_LIMIT: (f64, u32) = (3.0, 10);

/// What a room address of this platform looks like, for the error that names one that is not.
pub const ROOM_FORM: &str = "an IIROSE room id (letters and digits) or `user/<uid>`";

/// Whether `room` (the part after `iirose.<name>:`) has this platform's form.
pub fn is_room(room: &str) -> bool {
    // A room id (hex, like `5ce6a4b520a90`) or `user/<uid>` for private chat.
    let id = room.strip_prefix("user/").unwrap_or(room);
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Reads the account's table; `None` when it has problems (all of them reported).
fn parse(_id: &AccountId, mut fields: Fields<'_, '_>, what: &str, report: &mut Report<'_>) -> Option<IiroseAccount> {
    let username = fields.required_str("username", what, report).map(|(s, _)| s.to_owned());
    let password = secret(&mut fields, "password", what, report);
    let ws_urls = url_list(&mut fields, "ws_url", IIROSE_DEFAULT_WS, report);
    let color = match fields.str("color", report) {
        None => Some("66ccff".to_owned()),
        Some((c, _)) if c.len() == 6 && c.bytes().all(|b| b.is_ascii_hexdigit()) => Some(c.to_ascii_lowercase()),
        Some((c, span)) => {
            report.error(&span, format!("`color` is `{c}`; expected 6 hex digits like \"66ccff\""));
            None
        }
    };
    let max_text_len = fields.positive_int("max_text_len", report).map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let (heartbeat, idle_timeout) = fields.heartbeat_and_idle(report, Duration::from_secs(30), |hb| hb * 3);
    let echo_timeout = fields.duration("echo_timeout", report).unwrap_or(Duration::from_secs(10));
    let request_timeout = fields.duration("request_timeout", report).unwrap_or(Duration::from_secs(10));
    fields.deny_unknown(what, report);
    Some(IiroseAccount {
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

/// The account's own servers (`Account::servers`).
fn servers(account: &IiroseAccount) -> Vec<&reqwest::Url> {
    account.ws_urls.iter().collect()
}

crate::adapters::config::factory_row!(IiroseAccount, super::IiroseAdapter, Iirose);
