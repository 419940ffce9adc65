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
}

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
    fields.deny_unknown(what, report);
    Some(ApiAccount { listen: listen?, token: token.ok()?, history: usize::try_from(history).unwrap_or(usize::MAX) })
}

crate::adapters::config::factory_row!(ApiAccount, super::ApiAdapter, Api);
