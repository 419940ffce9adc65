//! `[accounts.api.<name>]`: the keys, their defaults, the room address form and the send limits of the HTTP API accounts.

use crate::model::AccountId;
use crate::settings::{Fields, Report, Secret};

/// `[accounts.api.<name>]`: an HTTP API for bots and tools, compatible with matterbridge's.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiAccount {
    pub listen: std::net::SocketAddr,
    /// Clients must send `Authorization: Bearer <token>` when set.
    pub token: Option<Secret>,
    /// Messages kept per gateway for clients that read late or reconnect.
    pub history: usize,
    /// At most this many bytes of them (the oldest go first): a count alone let 1,000 posts of 2 MB take 3 GB.
    pub history_bytes: usize,
    /// How fast its clients may post (`post_rate` a second, bursts of `post_burst`): past it a post is answered
    /// 429 with `Retry-After`. Two clients that post what they read would otherwise loop without end.
    pub post_limit: crate::bucket::SendLimit,
}

/// `history_bytes`'s default.
pub const HISTORY_BYTES: usize = 16 << 20;
/// `post_rate` and `post_burst`'s defaults: well above what a bot relays, well below a loop.
pub const POST_LIMIT: crate::bucket::SendLimit = crate::bucket::SendLimit { per_second: 20.0, burst: 60 };

/// The default send limit: (messages per second, burst).
pub const SEND_LIMIT: (f64, u32) = (0.0, 1);

/// What a room address of this platform looks like, for the error that names one that is not.
pub const ROOM_FORM: &str = "an API gateway name (no spaces)";

/// Whether `room` (the part after `api.<name>:`) has this platform's form.
pub fn is_room(room: &str) -> bool {
    // A bridge's name.
    !room.is_empty() && !room.contains(char::is_whitespace)
}

/// Reads the account's table; `None` when it has problems (all of them reported).
fn parse(_id: &AccountId, mut fields: Fields<'_, '_>, what: &str, report: &mut Report<'_>) -> Option<ApiAccount> {
    let listen = match fields.required_str("listen", what, report) {
        Some((text, span)) => match text.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                report.error(&span, format!("`listen` is `{text}`; expected an address like \"127.0.0.1:4242\""));
                None
            }
        },
        None => None,
    };
    let token = match fields.str("token", report) {
        None => Ok(None),
        Some((spec, span)) => {
            report.note_literal(&span, "token", spec);
            Secret::resolve(spec).map(Some).map_err(|e| {
                report.error(&span, format!("secret `token` cannot be read: {e}"));
            })
        }
    };
    let history = fields.positive_int("history", report).unwrap_or(1000);
    let history_bytes = fields
        .positive_int("history_bytes", report)
        .map_or(HISTORY_BYTES, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut post_limit = POST_LIMIT;
    if let Some(rate) = fields.non_negative("post_rate", report) {
        post_limit.per_second = rate;
    }
    if let Some(burst) = fields.positive_int("post_burst", report) {
        post_limit.burst = u32::try_from(burst).unwrap_or(u32::MAX);
    }
    fields.deny_unknown(what, report);
    Some(ApiAccount {
        listen: listen?,
        token: token.ok()?,
        history: usize::try_from(history).unwrap_or(usize::MAX),
        history_bytes,
        post_limit,
    })
}

/// The account's own servers (`Account::servers`).
fn servers(_account: &ApiAccount) -> Vec<&reqwest::Url> {
    Vec::new()
}

crate::adapters::config::factory_row!(ApiAccount, super::ApiAdapter, Api);
