//! The configuration file: one TOML document with `[general]`, `[accounts.<platform>.<name>]` and
//! `[[bridge]]`. Parsing walks the spanned tree and reports every problem at once (see `validate`).

mod accounts;
mod bridges;
mod secret;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use toml::de::DeTable;

pub use accounts::{
    AccountConfig, ApiAccount, FishroomAccount, HeiheiAccount, IiroseAccount, MissevanAccount, SendLimit, YunhuAccount,
};
pub use secret::Secret;
pub use validate::{Problem, Problems};

use crate::model::{AccountId, EventSet, Platform, RoomAddr};
use crate::router::format::Template;
use validate::{Fields, Report};

/// A whole, valid configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub general: General,
    pub accounts: BTreeMap<AccountId, AccountConfig>,
    /// Each account's send rate limit (`send_rate`, `send_burst`; platform defaults otherwise).
    pub limits: BTreeMap<AccountId, SendLimit>,
    pub bridges: Vec<Bridge>,
}

/// `[general]`.
#[derive(Clone, Debug)]
pub struct General {
    pub state_dir: PathBuf,
    /// Where `state_dir` came from, for `check` to say.
    pub state_dir_from: &'static str,
    pub log_format: LogFormat,
    /// On SIGTERM, how long the destination queues may drain.
    pub shutdown_timeout: Duration,
    /// Messages kept in memory per destination room; with the store, more wait there (spilled), without it
    /// the oldest is dropped.
    pub queue_capacity: usize,
    /// Send attempts of one message before it is given up (once `max_age` has passed too).
    pub max_attempts: u32,
    /// How long a message is retried before it moves to the dead letters (once `max_attempts` are made too).
    pub max_age: Duration,
    /// First delay between attempts; it doubles each time, up to `backoff_max`.
    pub retry_delay: Duration,
    /// Reconnect backoff: first delay and cap.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Messages remembered in memory for edits, recalls, replies and loop prevention: with the store a cache of
    /// the most recent (2,000 by default; older ones are read from the store), without it all there is (20,000).
    pub id_map_capacity: usize,
    /// Id-map entries older than this are pruned from the store.
    pub id_map_max_age: Duration,
    /// Queued messages for rooms no longer in the configuration move to the dead letters after this long.
    pub orphan_max_age: Duration,
    /// Gap filling replays missed messages no older than this.
    pub gap_fill_window: Duration,
    /// Where `/health` and `/metrics` are served, if anywhere.
    pub http_listen: Option<std::net::SocketAddr>,
    /// Keep the outbox, the id map and the cursors in `state_dir` (the default), so a restart delivers what a
    /// crash left queued and finds the copies of earlier messages; `false` keeps everything in memory.
    pub durable: bool,
    /// `sync = "full"`: the store survives power loss too (slower); `"normal"`: process crashes.
    pub full_sync: bool,
    /// The limits of every HTTP listener (`http_listen` and the API accounts').
    pub http: crate::listener::Limits,
    /// Messages the outbox may hold before no more are taken in (`max_stored`).
    pub max_stored: u64,
    /// Dead letters kept; past it, the oldest are removed (`max_dead_letters`).
    pub max_dead_letters: u64,
}

/// The unit's state directory (`StateDirectory=chatbridge`).
pub const UNIT_STATE_DIR: &str = "/var/lib/chatbridge";

/// `state_dir` when the file names none — the same for the service and for an admin command run beside it:
/// `$STATE_DIRECTORY` (systemd sets it for the service); else, run as root where the shipped unit keeps its
/// state, `/var/lib/chatbridge`; else `./state`.
pub fn default_state_dir() -> (PathBuf, &'static str) {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
        return (PathBuf::from(dir), "$STATE_DIRECTORY");
    }
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| status.lines().find_map(|l| l.strip_prefix("Uid:").map(str::to_owned)))
        .and_then(|uids| uids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false);
    if root && Path::new(UNIT_STATE_DIR).is_dir() {
        return (PathBuf::from(UNIT_STATE_DIR), "the shipped unit's directory (run as root, $STATE_DIRECTORY unset)");
    }
    (PathBuf::from("state"), "the default ./state ($STATE_DIRECTORY unset)")
}

/// `id_map_capacity` without the store: everything an edit or reply can reach.
const ID_MAP_IN_MEMORY: usize = 20_000;
/// `id_map_capacity` with the store: only a cache (a miss is read from the store).
const ID_MAP_CACHED: usize = 2_000;

impl Default for General {
    fn default() -> Self {
        let (state_dir, state_dir_from) = default_state_dir();
        Self {
            state_dir,
            state_dir_from,
            log_format: LogFormat::Auto,
            shutdown_timeout: Duration::from_secs(10),
            queue_capacity: 1000,
            max_attempts: 5,
            max_age: Duration::from_secs(600),
            retry_delay: Duration::from_secs(1),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            id_map_capacity: ID_MAP_CACHED,
            id_map_max_age: Duration::from_secs(30 * 86_400),
            orphan_max_age: Duration::from_secs(7 * 86_400),
            gap_fill_window: Duration::from_secs(3600),
            http_listen: None,
            durable: true,
            full_sync: false,
            http: crate::listener::Limits::default(),
            max_stored: 1_000_000,
            max_dead_letters: 100_000,
        }
    }
}

/// `log_format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON when standard error is not a terminal, else pretty.
    Auto,
    Pretty,
    Json,
}

/// Whether a room feeds its bridge, receives from it, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
    InOut,
}

impl Direction {
    /// What is said in the room goes to the bridge.
    pub fn feeds(self) -> bool {
        matches!(self, Direction::In | Direction::InOut)
    }

    /// What is said elsewhere in the bridge arrives in the room.
    pub fn receives(self) -> bool {
        matches!(self, Direction::Out | Direction::InOut)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::InOut => "inout",
        }
    }
}

/// One `[[bridge]]`.
#[derive(Clone, Debug)]
pub struct Bridge {
    pub name: String,
    pub rooms: Vec<BridgeRoom>,
}

/// One room of a bridge, with the options of its own side.
#[derive(Clone, Debug)]
pub struct BridgeRoom {
    pub addr: RoomAddr,
    pub direction: Direction,
    /// How messages look when they arrive in this room.
    pub format: Template,
    /// The sender field of messages arriving in this room, where its platform has one.
    pub nick_format: Template,
    /// The event kinds this room receives.
    pub events: EventSet,
    /// Senders whose messages from this room are not relayed.
    pub ignore_senders: Vec<Regex>,
}

pub const DEFAULT_FORMAT: &str = "[{platform}] {nick}: {text}";
pub const DEFAULT_NICK_FORMAT: &str = "[{platform}] {nick}";

/// Why a file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(Problems),
}

impl Config {
    /// [`Config::load`] for commands that only read the state (`deadletters`): secrets are not resolved.
    pub fn load_without_secrets(path: &Path) -> Result<Self, LoadError> {
        secret::without_secrets(|| Self::load(path))
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let source =
            std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
        Self::parse(&source, &path.display().to_string()).map_err(LoadError::Invalid)
    }

    /// Checks a configuration given as text; `file` names it in problems.
    pub fn parse(source: &str, file: &str) -> Result<Self, Problems> {
        let mut report = Report::new(source, file);
        let root = match DeTable::parse(source) {
            Ok(root) => root,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let mut message = e.message().trim().to_owned();
                // The parser's "duplicate key" points at the key without naming it.
                if message == "duplicate key"
                    && let Some(key) = source.get(span.start..).and_then(|rest| {
                        let key = rest.split(['=', '\n']).next()?.trim();
                        (!key.is_empty()).then_some(key)
                    })
                {
                    message = format!("duplicate key `{key}`: it is set more than once in the same table");
                }
                report.error(&span, message);
                return Err(report.finish().expect_err("a problem was just reported"));
            }
        };
        let mut top = Fields::new(root.get_ref(), root.span());
        let general = match top.get("general") {
            Some(value) => Fields::of(value, "[general]", &mut report).map(|f| parse_general(f, &mut report)),
            None => Some(General::default()),
        };
        let (accounts, limits, declared) = match top.get("accounts") {
            Some(value) => parse_accounts(value, &mut report),
            None => Default::default(),
        };
        let bridge_span = top.span_of("bridge");
        let bridges = bridges::parse(top.get("bridge"), &accounts, &declared, &mut report);
        top.deny_unknown("the top level", &mut report);
        if bridge_span.is_none() {
            report.error(
                &(0..0),
                "there is no [[bridge]]: nothing would be relayed (an account is started only for the bridges it is in)",
            );
        }
        // Two listeners on one address: the second fails at run time with "address already in use".
        let mut listeners: Vec<(std::net::SocketAddr, String)> = Vec::new();
        if let Some(general) = &general
            && let Some(addr) = general.http_listen
        {
            listeners.push((addr, "general.http_listen".to_owned()));
        }
        for (id, account) in &accounts {
            if let AccountConfig::Api(api) = account {
                listeners.push((api.listen, format!("{id}'s `listen`")));
            }
        }
        for (i, (addr, what)) in listeners.iter().enumerate() {
            if let Some((_, first)) = listeners[..i].iter().find(|(other, _)| other == addr && addr.port() != 0) {
                report
                    .error(&(0..0), format!("{what} is {addr}, which {first} uses already: give each its own address"));
            }
        }
        report.finish()?;
        Ok(Config { general: general.unwrap_or_default(), accounts, limits, bridges })
    }

    /// One line per bridge, for `chatbridge check`.
    /// Every `(room, bridge)` a message can be queued for, as the store names them.
    pub fn destinations(&self) -> std::collections::HashSet<(String, String)> {
        self.bridges.iter().flat_map(|b| b.rooms.iter().map(move |r| (r.addr.to_string(), b.name.clone()))).collect()
    }

    /// What is allowed but probably not meant: said by `check`, which still accepts the file.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (id, account) in &self.accounts {
            if let AccountConfig::Api(api) = account
                && api.token.is_none()
                && !api.listen.ip().is_loopback()
            {
                out.push(format!(
                    "{id} listens on {} without a `token`: anyone who can reach that address can post to every bridge it is in and read what they say",
                    api.listen
                ));
            }
        }
        out
    }

    pub fn summary(&self) -> Vec<String> {
        self.bridges
            .iter()
            .map(|bridge| {
                let rooms: Vec<String> =
                    bridge.rooms.iter().map(|r| format!("{} ({})", r.addr, r.direction.as_str())).collect();
                format!("bridge {}: {} rooms: {}", bridge.name, rooms.len(), rooms.join(", "))
            })
            .collect()
    }
}

fn parse_general(mut fields: Fields<'_, '_>, report: &mut Report<'_>) -> General {
    let mut general = General::default();
    if let Some((dir, _)) = fields.str("state_dir", report) {
        general.state_dir = PathBuf::from(dir);
        general.state_dir_from = "general.state_dir";
    }
    if let Some((text, span)) = fields.str("log_format", report) {
        match text {
            "auto" => general.log_format = LogFormat::Auto,
            "pretty" => general.log_format = LogFormat::Pretty,
            "json" => general.log_format = LogFormat::Json,
            other => report.error(&span, format!("`log_format` is `{other}`; expected auto, pretty or json")),
        }
    }
    let durations: [(&'static str, &mut Duration); 8] = [
        ("shutdown_timeout", &mut general.shutdown_timeout),
        ("max_age", &mut general.max_age),
        ("id_map_max_age", &mut general.id_map_max_age),
        ("orphan_max_age", &mut general.orphan_max_age),
        ("gap_fill_window", &mut general.gap_fill_window),
        ("retry_delay", &mut general.retry_delay),
        ("backoff_min", &mut general.backoff_min),
        ("backoff_max", &mut general.backoff_max),
    ];
    for (key, slot) in durations {
        if let Some(d) = fields.duration(key, report) {
            *slot = d;
        }
    }
    if general.backoff_min > general.backoff_max {
        let span =
            fields.span_of("backoff_min").or_else(|| fields.span_of("backoff_max")).unwrap_or(fields.span.clone());
        report.error(
            &span,
            format!(
                "`backoff_min` ({}) is longer than `backoff_max` ({}); the first reconnect delay cannot exceed the cap",
                humantime::format_duration(general.backoff_min),
                humantime::format_duration(general.backoff_max)
            ),
        );
    }
    if let Some(n) = fields.positive_int("queue_capacity", report) {
        general.queue_capacity = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(n) = fields.positive_int("max_attempts", report) {
        general.max_attempts = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some((text, span)) = fields.str("http_listen", report) {
        match text.parse() {
            Ok(addr) => general.http_listen = Some(addr),
            Err(_) => {
                report.error(&span, format!("`http_listen` is `{text}`; expected an address like \"127.0.0.1:9780\""))
            }
        }
    }
    for (key, slot) in [
        ("http_header_timeout", &mut general.http.header_timeout),
        ("http_body_timeout", &mut general.http.body_timeout),
    ] {
        if let Some(d) = fields.duration(key, report) {
            *slot = d;
        }
    }
    if let Some(n) = fields.positive_int("max_stored", report) {
        general.max_stored = n;
    }
    if let Some(n) = fields.positive_int("max_dead_letters", report) {
        general.max_dead_letters = n;
    }
    if let Some(n) = fields.positive_int("http_max_connections", report) {
        general.http.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(value) = fields.get("durable") {
        match value.get_ref() {
            toml::de::DeValue::Boolean(b) => general.durable = *b,
            _ => report.error(&value.span(), "`durable` must be true or false"),
        }
    }
    if let Some((text, span)) = fields.str("sync", report) {
        match text {
            "normal" => general.full_sync = false,
            "full" => general.full_sync = true,
            other => report.error(&span, format!("`sync` is `{other}`; expected normal or full")),
        }
    }
    match fields.positive_int("id_map_capacity", report) {
        Some(n) => general.id_map_capacity = usize::try_from(n).unwrap_or(usize::MAX),
        None if !general.durable => general.id_map_capacity = ID_MAP_IN_MEMORY,
        None => {}
    }
    fields.deny_unknown("[general]", report);
    general
}

/// Returns the valid accounts and every declared account id (valid or not), so that a room naming a
/// broken account is not reported a second time as naming an undefined one.
fn parse_accounts(
    value: &validate::Value<'_>,
    report: &mut Report<'_>,
) -> (BTreeMap<AccountId, AccountConfig>, BTreeMap<AccountId, SendLimit>, Vec<AccountId>) {
    let mut accounts = BTreeMap::new();
    let mut limits = BTreeMap::new();
    let mut declared = Vec::new();
    let Some(platforms) = validate::table(value, "[accounts]", report) else {
        return (accounts, limits, declared);
    };
    for (platform_key, platform_value) in platforms.iter() {
        let name = platform_key.get_ref().as_ref();
        let Ok(platform) = name.parse::<Platform>() else {
            let known = Platform::known_list();
            report.error(&platform_key.span(), format!("unknown platform `{name}`; known platforms: {known}"));
            continue;
        };
        let Some(names) = validate::table(platform_value, &format!("[accounts.{platform}]"), report) else {
            continue;
        };
        for (account_key, account_value) in names.iter() {
            let id = AccountId::new(platform, account_key.get_ref().as_ref());
            declared.push(id.clone());
            let Some(mut fields) = Fields::of(account_value, &format!("[accounts.{id}]"), report) else { continue };
            let limit = accounts::send_limit(platform, &mut fields, report);
            if let Some(account) = accounts::parse_account(&id, fields, report) {
                limits.insert(id.clone(), limit);
                accounts.insert(id, account);
            }
        }
    }
    (accounts, limits, declared)
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(source in "\\PC{0,300}") {
            let _ = Config::parse(&source, "fuzz.toml");
        }

        #[test]
        fn mangled_valid_files_never_panic(cut in 0usize..600, junk in "[\\[\\]{}=\"':.a-z0-9 \n]{0,8}") {
            let valid = include_str!("../../tests/fixtures/config/valid/long_form.toml");
            let mut cut = cut.min(valid.len());
            while !valid.is_char_boundary(cut) {
                cut -= 1;
            }
            let source = format!("{}{junk}{}", &valid[..cut], &valid[cut..]);
            let _ = Config::parse(&source, "fuzz.toml");
        }
    }
}
