//! `[accounts.fishroom.<name>]`: the keys, their defaults, the room address form and the send limits of Fishroom accounts.

use std::time::Duration;

use reqwest::Url;

use crate::model::AccountId;
use crate::settings::{Fields, Report, Secret, secret, url};

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

/// The default send limit: (messages per second, burst).
pub const SEND_LIMIT: (f64, u32) = (10.0, 20);

/// What a room address of this platform looks like, for the error that names one that is not.
pub const ROOM_FORM: &str = "a Fishroom room name of letters, digits, `_` and `-`";

/// Whether `room` (the part after `fishroom.<name>:`) has this platform's form.
pub fn is_room(room: &str) -> bool {
    // Fishroom's route accepts `[a-zA-Z0-9_-]+`.
    !room.is_empty() && room.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Reads the account's table; `None` when it has problems (all of them reported).
fn parse(_id: &AccountId, mut fields: Fields<'_, '_>, what: &str, report: &mut Report<'_>) -> Option<FishroomAccount> {
    let api_url = url(&mut fields, "api_url", FISHROOM_DEFAULT_API, report);
    let token_id = fields.required_str("token_id", what, report).map(|(s, _)| s.to_owned());
    let token_key = secret(&mut fields, "token_key", what, report);
    let token_name = fields.str("token_name", report).map(|(s, _)| s.to_owned());
    let request_timeout = fields.duration("request_timeout", report).unwrap_or(Duration::from_secs(30));
    fields.deny_unknown(what, report);
    Some(FishroomAccount { api_url: api_url?, token_id: token_id?, token_key: token_key?, token_name, request_timeout })
}

/// The account's own servers (`Account::servers`).
fn servers(account: &FishroomAccount) -> Vec<&reqwest::Url> {
    vec![&account.api_url]
}

crate::adapters::config::factory_row!(FishroomAccount, super::FishroomAdapter, Fishroom);
