//! `[general]`: the daemon's own settings, and which of them a reload can apply without a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::LogFormat;
use crate::settings::{Fields, Report};

/// `[general]`.
#[derive(Clone, Debug, PartialEq)]
pub struct General {
    pub state_dir: PathBuf,
    /// Where `state_dir` came from, for `check` to say.
    pub state_dir_from: &'static str,
    pub log_format: LogFormat,
    /// The log filter when `RUST_LOG` is not set (`info`, `chatbridge=debug,info`, …); a reload applies it.
    pub log_level: String,
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
    /// `store = "postgres://…"`: the state in PostgreSQL instead of SQLite in `state_dir`.
    pub store: Option<StoreUrl>,
    /// With `store`: this instance's name among those sharing the database (default: the host name).
    pub instance: String,
    /// With `store`: how long an account's lease lasts without renewal (renewed every third of it).
    pub lease_ttl: Duration,
    /// The status page and the admin API ask for it (a login, or `Authorization: Bearer`); unset, they are open to
    /// whoever reaches `http_listen`, which must then be on loopback.
    pub admin_token: Option<crate::settings::Secret>,
    /// `state_webhook`: each account state change is POSTed there, signed with `state_webhook_secret`.
    pub state_webhook: Option<(reqwest::Url, crate::settings::Secret)>,
}

/// The machine's host name (`general.instance` when the file names none).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "chatbridge".to_owned())
}

/// `general.store`: a PostgreSQL connection string (a secret: it may carry a password), with the
/// specification it was read from, for commands that read the configuration without secrets and resolve
/// only this one.
#[derive(Clone, PartialEq)]
pub struct StoreUrl {
    pub url: crate::settings::Secret,
    spec: String,
}

impl StoreUrl {
    /// The connection string, resolved now if the configuration was read without secrets.
    pub fn resolve(&self) -> Result<crate::settings::Secret, String> {
        if self.url.expose() == "unresolved" {
            crate::settings::Secret::resolve(&self.spec)
        } else {
            Ok(self.url.clone())
        }
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreUrl(***)")
    }
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
    let root = effective_uid() == Some(0);
    if root && Path::new(UNIT_STATE_DIR).is_dir() {
        return (PathBuf::from(UNIT_STATE_DIR), "the shipped unit's directory (run as root, $STATE_DIRECTORY unset)");
    }
    (PathBuf::from("state"), "the default ./state ($STATE_DIRECTORY unset)")
}

/// This process's effective user id, from `/proc/self/status`.
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(1)?.parse().ok()
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
            log_level: "info".to_owned(),
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
            store: None,
            instance: host_name(),
            lease_ttl: Duration::from_secs(15),
            admin_token: None,
            state_webhook: None,
        }
    }
}

pub(super) fn parse_general(mut fields: Fields<'_, '_>, report: &mut Report<'_>) -> General {
    let mut general = General::default();
    if let Some((dir, span)) = fields.str("state_dir", report) {
        general.state_dir = PathBuf::from(dir);
        general.state_dir_from = "general.state_dir";
        if general.state_dir.is_relative() {
            report.warn(
                &span,
                format!(
                    "`state_dir` `{dir}` is relative: it is found from the working directory of whoever starts the                      daemon (under systemd `/`, which the unit makes read-only); give an absolute path"
                ),
            );
        }
    }
    if let Some((text, span)) = fields.str("log_format", report) {
        match text {
            "auto" => general.log_format = LogFormat::Auto,
            "pretty" => general.log_format = LogFormat::Pretty,
            "json" => general.log_format = LogFormat::Json,
            other => report.error(&span, format!("`log_format` is `{other}`; expected auto, pretty or json")),
        }
    }
    if let Some((text, span)) = fields.str("log_level", report) {
        match crate::settings::check_filter(text) {
            Ok(()) => general.log_level = text.to_owned(),
            Err(e) => report.error(
                &span,
                format!("`log_level` is `{text}`: {e}; expected a filter like \"info\" or \"chatbridge=debug,info\""),
            ),
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
    if let Some(n) = fields.positive_int("http_max_connections_per_address", report) {
        general.http.max_per_address = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(rate) = fields.non_negative("http_min_rate", report) {
        general.http.min_rate = rate as u64;
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
    if let Some((spec, span)) = fields.str("store", report) {
        match crate::settings::Secret::resolve(spec) {
            Ok(url) if url.expose() == "unresolved" => general.store = Some(StoreUrl { url, spec: spec.to_owned() }),
            Ok(url) if !(url.expose().starts_with("postgres://") || url.expose().starts_with("postgresql://")) => {
                report.error(
                    &span,
                    "`store` is not a postgres:// URL (leave it out to keep the state in SQLite in `state_dir`)",
                )
            }
            Ok(url) => match store_url(&url) {
                Ok(()) => general.store = Some(StoreUrl { url, spec: spec.to_owned() }),
                Err(e) => report.error(&span, format!("`store` {e}")),
            },
            Err(e) => report.error(&span, format!("secret `store` cannot be read: {e}")),
        }
        if !general.durable {
            report.error(&span, "`store` keeps the state, which `durable = false` turns off: set one or the other");
        }
    }
    if let Some((name, span)) = fields.str("instance", report) {
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            report.error(&span, "`instance` must be a name of 1 to 100 printable characters");
        } else {
            general.instance = name.to_owned();
        }
        if general.store.is_none() {
            report.warn(&span, "`instance` names this daemon among those sharing a PostgreSQL `store`; without `store` it has no effect");
        }
    }
    if let Some(ttl) = fields.duration("lease_ttl", report) {
        if ttl < Duration::from_secs(3) {
            let span = fields.span_of("lease_ttl").unwrap_or(fields.span.clone());
            report.error(&span, "`lease_ttl` must be at least 3s (leases are renewed every third of it)");
        } else {
            general.lease_ttl = ttl;
        }
    }
    match fields.positive_int("id_map_capacity", report) {
        Some(n) => general.id_map_capacity = usize::try_from(n).unwrap_or(usize::MAX),
        None if !general.durable => general.id_map_capacity = ID_MAP_IN_MEMORY,
        None => {}
    }
    super::window::parse(&mut fields, &mut general, report);
    fields.deny_unknown("[general]", report);
    general
}

/// Whether a resolved `store` is a connection string the store can use: libpq's TLS options (`sslmode=verify-ca`,
/// `verify-full`, `sslrootcert=`) are read as the store reads them, and the certificate file must be there.
fn store_url(url: &crate::settings::Secret) -> Result<(), String> {
    let (source, root) = crate::settings::libpq_options(url.expose());
    let config =
        source.parse::<tokio_postgres::Config>().map_err(|e| format!("is not a PostgreSQL connection string ({e})"))?;
    if let Some(root) = root {
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
            return Err("names an `sslrootcert` but says `sslmode=disable`".into());
        }
        std::fs::metadata(&root)
            .map_err(|e| format!("names `sslrootcert={}`, which cannot be read: {e}", root.display()))?;
    }
    Ok(())
}

impl General {
    /// The keys whose change a reload cannot apply to the running daemon (they shape the store, the listeners or
    /// every account's connection): with any of them changed, a reload restarts the daemon in-process. Every
    /// other key of `[general]` applies to the next message.
    pub fn restart_keys(&self, new: &General) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut differs = |key: &'static str, changed: bool| {
            if changed {
                keys.push(key);
            }
        };
        differs("state_dir", self.state_dir != new.state_dir);
        differs("log_format", self.log_format != new.log_format);
        differs("queue_capacity", self.queue_capacity != new.queue_capacity);
        differs("backoff_min", self.backoff_min != new.backoff_min);
        differs("backoff_max", self.backoff_max != new.backoff_max);
        differs("id_map_capacity", self.id_map_capacity != new.id_map_capacity);
        differs("id_map_max_age", self.id_map_max_age != new.id_map_max_age);
        differs("orphan_max_age", self.orphan_max_age != new.orphan_max_age);
        differs("gap_fill_window", self.gap_fill_window != new.gap_fill_window);
        differs("http_listen", self.http_listen != new.http_listen);
        differs("durable", self.durable != new.durable);
        differs("sync", self.full_sync != new.full_sync);
        differs(
            "http_header_timeout, http_body_timeout, http_max_connections, http_max_connections_per_address, http_min_rate",
            self.http != new.http,
        );
        differs("max_stored", self.max_stored != new.max_stored);
        differs("max_dead_letters", self.max_dead_letters != new.max_dead_letters);
        differs("store", self.store != new.store);
        differs("instance", self.instance != new.instance);
        differs("lease_ttl", self.lease_ttl != new.lease_ttl);
        let token = |general: &General| general.admin_token.as_ref().map(|t| t.expose().to_owned());
        differs("admin_token", token(self) != token(new));
        let webhook =
            |general: &General| general.state_webhook.as_ref().map(|(u, s)| (u.clone(), s.expose().to_owned()));
        differs("state_webhook", webhook(self) != webhook(new));
        keys
    }
}
