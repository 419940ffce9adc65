//! The configuration file: one TOML document with `[general]`, `[accounts.<platform>.<name>]` and
//! `[[bridge]]`. Parsing walks the spanned tree and reports every problem at once (see `settings`).

mod accounts;
mod bridges;
mod general;
mod media;
mod options;
mod provisioned;
mod said;
mod window;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;
use toml::de::DeTable;

pub use crate::settings::{Problem, Problems, Secret};
pub use accounts::{
    AccountConfig, ApiAccount, FishroomAccount, HeiheiAccount, IiroseAccount, MissevanAccount, SendLimit, YunhuAccount,
};
pub use general::{General, StoreUrl, UNIT_STATE_DIR, default_state_dir, effective_uid};
pub use media::MediaSettings;
pub use provisioned::{LeftOut, Provisioned};

use crate::model::{AccountId, EventSet, RoomAddr};
use crate::settings::{Fields, Report};
use crate::template::Template;

/// A whole, valid configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub general: General,
    /// `[media]`: the media store (off without `public_url`).
    pub media: MediaSettings,
    pub accounts: BTreeMap<AccountId, AccountConfig>,
    /// Each account's send rate limit (`send_rate`, `send_burst`; platform defaults otherwise).
    pub limits: BTreeMap<AccountId, SendLimit>,
    pub bridges: Vec<Bridge>,
    /// What is allowed but probably not meant, with where the file says it (`check` prints them).
    pub notes: Vec<Problem>,
    /// Where secrets are written in the file itself: a warning once the file turns out readable by others.
    literals: Vec<Problem>,
    /// The file's text, which bridges provisioned in the store are checked with (`provisioned.rs`).
    source: provisioned::Source,
    /// The bridges of `bridges` that came from the store, not the file (`chatbridge bridges`, the admin API).
    pub provisioned: std::collections::BTreeSet<String>,
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
    /// Shared: the file's bridges are held by the provisioner (to merge the store's with) and by the router, on
    /// every instance — at thousands of bridges, one copy is kilobytes a room.
    pub rooms: Arc<[BridgeRoom]>,
    /// When an account of the bridge has been down for `notice_after`, one line says so in its other rooms, and
    /// one when it is back (`notices`).
    pub notices: Option<std::time::Duration>,
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
    /// Messages from this room whose text matches one of these are not relayed (commands for a bot, say).
    pub ignore_text: Vec<Regex>,
    /// Rewrites of the text of messages from this room, in order, before they are formatted.
    pub replace_text: Vec<Replacement>,
    /// Rewrites of the sender's name of messages from this room, in order, before they are formatted.
    pub replace_nick: Vec<Replacement>,
    /// Senders' names arriving in this room carry a zero-width space after their first character, so that a
    /// client highlighting its user's name wherever it appears (IRC, behind Fishroom) is not pinged by a
    /// relayed message from someone of the same name. On by default in Fishroom rooms only.
    pub anti_ping: bool,
    /// Formatting goes as markdown where the platform shows it (Yunhu); else as plain text.
    pub markdown: bool,
    /// Plain messages waiting for a send token in this room go out merged, one line each, as one message.
    pub coalesce: bool,
    /// How old a message waiting for this room may be before `on_lag` applies.
    pub max_lag: std::time::Duration,
    /// What happens to messages older than `max_lag` when their send token comes.
    pub on_lag: OnLag,
    /// How a media item in the store arrives where the platform cannot show it (`[{kind} {size}] {url}`).
    pub media_format: Template,
    /// `presence = "summary"`: joins and leaves arriving in the room folded into one line this often
    /// (`presence_every`); `None`: each as it comes (as `events` lets them).
    pub presence_every: Option<std::time::Duration>,
    /// Gifts of one sender repeated within this long go as one line with the total (zero: each as it comes).
    pub gift_combo: std::time::Duration,
}

/// `on_lag`: what a room does with messages that waited longer than its `max_lag`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnLag {
    /// Every message is delivered, however late.
    Deliver,
    /// The late ones are replaced by one line saying how many were skipped, and from where.
    Summarise,
}

/// One `[expression, replacement]` of `replace_text` or `replace_nick`: every match is replaced, `$1`,
/// `${name}` standing for the expression's groups (the `regex` crate's syntax; `$$` is a dollar sign).
#[derive(Clone, Debug)]
pub struct Replacement {
    pub pattern: Regex,
    pub with: String,
}

impl Replacement {
    /// `text` with every rewrite of `list` applied in order.
    pub fn apply_all<'a>(list: &[Replacement], text: &'a str) -> std::borrow::Cow<'a, str> {
        let mut out = std::borrow::Cow::Borrowed(text);
        for rewrite in list {
            if let std::borrow::Cow::Owned(changed) = rewrite.pattern.replace_all(&out, rewrite.with.as_str()) {
                out = std::borrow::Cow::Owned(changed);
            }
        }
        out
    }
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
        crate::settings::without_secrets(|| Self::load(path))
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let source =
            std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
        let mut config = Self::parse(&source, &path.display().to_string()).map_err(LoadError::Invalid)?;
        // Installed for a service with a user of its own, the file is readable by all: no secret belongs in it.
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?.permissions(),
        );
        if mode & 0o044 != 0 {
            for mut literal in std::mem::take(&mut config.literals) {
                literal.message = format!(
                    "{} (mode {:04o}): put it in secrets.env and write `env:NAME` here, or use `cred:NAME` (docs/operations.md#secrets)",
                    literal.message,
                    mode & 0o7777
                );
                config.notes.push(literal);
            }
            config.notes.sort_by_key(|note| (note.line, note.column));
        }
        Ok(config)
    }

    /// Checks a configuration given as text; `file` names it in problems.
    pub fn parse(source: &str, file: &str) -> Result<Self, Problems> {
        Self::parse_parts(source, file, &[])
    }

    /// [`Config::parse`] of a text whose parts from each `(offset, label)` on are other documents (provisioned
    /// bridges appended to the file).
    fn parse_parts(source: &str, file: &str, parts: &[(usize, String)]) -> Result<Self, Problems> {
        let mut report = Report::new(source, file);
        for (start, label) in parts {
            report.segment(*start, label.clone());
        }
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
            Some(value) => Fields::of(value, "[general]", &mut report).map(|f| general::parse_general(f, &mut report)),
            None => Some(General::default()),
        };
        let media = match top.get("media") {
            Some(value) => Fields::of(value, "[media]", &mut report).map(|f| media::parse(f, &mut report)),
            None => Some(MediaSettings::default()),
        };
        let accounts::Parsed { accounts, limits, declared, spans } = match top.get("accounts") {
            Some(value) => accounts::parse_accounts(value, &mut report),
            None => Default::default(),
        };
        let bridge_span = top.span_of("bridge");
        let media_span = top.span_of("media").unwrap_or(0..0);
        let bridges = bridges::parse(top.get("bridge"), &accounts, &declared, &mut report);
        accounts::unused(&spans, &bridges, &mut report);
        top.deny_unknown("the top level", &mut report);
        if bridge_span.is_none() {
            if general.as_ref().is_some_and(|g| g.durable) && !accounts.is_empty() {
                report.warn(
                    &(0..0),
                    "there is no [[bridge]] in the file: only bridges provisioned in the store run (`chatbridge bridges add`, or the admin API)",
                );
            } else {
                report.error(
                    &(0..0),
                    "there is no [[bridge]]: nothing would be relayed (an account is started only for the bridges it is in)",
                );
            }
        }
        if let (Some(general), Some(media)) = (&general, &media)
            && media.enabled()
            && general.http_listen.is_none()
        {
            report.error(
                &media_span,
                "[media] `public_url` is set but `general.http_listen` is not: the media store is served there (behind the address `public_url` names); set `http_listen`",
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
            if let Some(api) = account.get::<ApiAccount>() {
                listeners.push((api.listen, format!("{id}'s `listen`")));
            }
        }
        for (i, (addr, what)) in listeners.iter().enumerate() {
            if let Some((_, first)) = listeners[..i].iter().find(|(other, _)| other == addr && addr.port() != 0) {
                report
                    .error(&(0..0), format!("{what} is {addr}, which {first} uses already: give each its own address"));
            }
        }
        let literals = report.literal_secrets();
        report.locate(root.get_ref());
        let notes = report.finish_with_warnings()?;
        Ok(Config {
            general: general.unwrap_or_default(),
            media: media.unwrap_or_default(),
            accounts,
            limits,
            bridges,
            notes,
            literals,
            source: provisioned::Source::new(source, file),
            provisioned: Default::default(),
        })
    }

    /// An account's send limit (`send_rate`, `send_burst`, or its platform's default).
    pub fn limit(&self, id: &AccountId) -> SendLimit {
        self.limits.get(id).copied().unwrap_or_else(|| SendLimit::default_for(id.platform()))
    }

    /// Every `(room, bridge)` a message can be queued for, as the store names them.
    pub fn destinations(&self) -> std::collections::HashSet<(String, String)> {
        self.bridges.iter().flat_map(|b| b.rooms.iter().map(move |r| (r.addr.to_string(), b.name.clone()))).collect()
    }
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
