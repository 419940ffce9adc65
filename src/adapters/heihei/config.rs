//! `[accounts.heihei.<name>]`: the keys, their defaults, the room address form and the send limits of Heihei accounts.

use std::time::Duration;

use reqwest::Url;

use crate::model::AccountId;
use crate::settings::{Fields, Report, Secret, optional_url, secret, url};

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

pub const HEIHEI_DEFAULT_INIT: &str = "https://api.wmlives.cn/api/init";

/// The default send limit: (messages per second, burst).
pub const SEND_LIMIT: (f64, u32) = (2.0, 5);

/// What a room address of this platform looks like, for the error that names one that is not.
pub const ROOM_FORM: &str = "a Heihei room: `host/<userId>`, `live/<liveId>` or `im/<userId>`";

/// A Heihei room, parsed once from its address and used as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeiheiRoom {
    /// `host/<userId>`: the host's current broadcast, whichever it is.
    Host(u64),
    /// `live/<liveId>`: one broadcast.
    Live(u64),
    /// `im/<userId>`: private messages with a user.
    Im(u64),
}

impl HeiheiRoom {
    pub fn parse(room: &str) -> Option<Self> {
        let (kind, id) = room.split_once('/')?;
        if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let id = id.parse().ok()?;
        match kind {
            "host" => Some(Self::Host(id)),
            "live" => Some(Self::Live(id)),
            "im" => Some(Self::Im(id)),
            _ => None,
        }
    }
}

/// Whether `room` (the part after `heihei.<name>:`) has this platform's form.
pub fn is_room(room: &str) -> bool {
    HeiheiRoom::parse(room).is_some()
}

/// Reads the account's table; `None` when it has problems (all of them reported).
fn parse(_id: &AccountId, mut fields: Fields<'_, '_>, what: &str, report: &mut Report<'_>) -> Option<HeiheiAccount> {
    let token = secret(&mut fields, "token", what, report);
    let init_url = url(&mut fields, "init_url", HEIHEI_DEFAULT_INIT, report);
    let channel_url = optional_url(&mut fields, "channel_url", report);
    let api_url = optional_url(&mut fields, "api_url", report);
    let user_id = fields.positive_int("user_id", report);
    let ping_interval = fields.duration("ping_interval", report).unwrap_or(Duration::from_secs(5));
    let offair_max_age = fields.duration("offair_max_age", report).unwrap_or(Duration::from_secs(600));
    let request_timeout = fields.duration("request_timeout", report).unwrap_or(Duration::from_secs(10));
    fields.deny_unknown(what, report);
    Some(HeiheiAccount {
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

/// The account's own servers (`Account::servers`).
fn servers(account: &HeiheiAccount) -> Vec<&reqwest::Url> {
    [Some(&account.init_url), account.channel_url.as_ref(), account.api_url.as_ref()].into_iter().flatten().collect()
}

crate::adapters::config::factory_row!(HeiheiAccount, super::HeiheiAdapter, Heihei);
