//! `[accounts.missevan.<name>]`: the keys, their defaults, the room address form and the send limits of Missevan accounts.

use std::time::Duration;

use reqwest::Url;

use crate::model::AccountId;
use crate::settings::{Fields, Report, Secret, secret, url};

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

pub const MISSEVAN_DEFAULT_API: &str = "https://fm.missevan.com";
pub const MISSEVAN_DEFAULT_WS: &str = "wss://im.missevan.com/ws";

/// The default send limit: (messages per second, burst).
pub const SEND_LIMIT: (f64, u32) = (2.0, 5);

/// What a room address of this platform looks like, for the error that names one that is not.
pub const ROOM_FORM: &str = "a Missevan live room id (digits)";

/// A live room, by its id: parsed once from the room address, used as it is by the gateway and the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MissevanRoom(pub u64);

impl MissevanRoom {
    pub fn parse(room: &str) -> Option<Self> {
        let digits = !room.is_empty() && room.len() <= 19 && room.bytes().all(|b| b.is_ascii_digit());
        digits.then(|| room.parse().ok().map(Self)).flatten()
    }
}

/// Whether `room` (the part after `missevan.<name>:`) has this platform's form.
pub fn is_room(room: &str) -> bool {
    MissevanRoom::parse(room).is_some()
}

/// Reads the account's table; `None` when it has problems (all of them reported).
fn parse(_id: &AccountId, mut fields: Fields<'_, '_>, what: &str, report: &mut Report<'_>) -> Option<MissevanAccount> {
    let cookie = secret(&mut fields, "cookie", what, report);
    let api_url = url(&mut fields, "api_url", MISSEVAN_DEFAULT_API, report);
    let ws_url = url(&mut fields, "ws_url", MISSEVAN_DEFAULT_WS, report);
    let max_text_len = fields.positive_int("max_text_len", report).unwrap_or(200);
    let (heartbeat, idle_timeout) =
        fields.heartbeat_and_idle(report, Duration::from_secs(30), |_| Duration::from_secs(90));
    let request_timeout = fields.duration("request_timeout", report).unwrap_or(Duration::from_secs(10));
    fields.deny_unknown(what, report);
    Some(MissevanAccount {
        cookie: cookie?,
        api_url: api_url?,
        ws_url: ws_url?,
        max_text_len: usize::try_from(max_text_len).unwrap_or(usize::MAX),
        heartbeat,
        idle_timeout,
        request_timeout,
    })
}

/// The account's own servers (`Account::servers`).
fn servers(account: &MissevanAccount) -> Vec<&reqwest::Url> {
    vec![&account.api_url, &account.ws_url]
}

crate::adapters::config::factory_row!(MissevanAccount, super::MissevanAdapter, Missevan);
