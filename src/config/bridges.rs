//! `[[bridge]]`: the short form (`rooms = [...]`) and the long form (`[[bridge.room]]`), with the checks
//! that need the whole file (undefined accounts, room forms, Fishroom's one receiving room per token).

use std::collections::{BTreeMap, HashSet};

use regex::Regex;
use toml::de::DeValue;

use super::{
    AccountConfig, Bridge, BridgeRoom, DEFAULT_FORMAT, DEFAULT_NICK_FORMAT, Direction, OnLag, Replacement, accounts,
};
use crate::model::{AccountId, EventFilter, EventSet, Platform, RoomAddr};
use crate::settings::{Fields, Report, Span, Value};
use crate::template::Template;

/// Options a bridge gives its rooms as defaults, and a room may override.
#[derive(Clone)]
struct RoomOptions {
    format: Template,
    nick_format: Template,
    events: EventSet,
    ignore_senders: Vec<Regex>,
    ignore_text: Vec<Regex>,
    replace_text: Vec<Replacement>,
    replace_nick: Vec<Replacement>,
    /// Unset: on for Fishroom rooms, off elsewhere.
    anti_ping: Option<bool>,
    coalesce: bool,
    max_lag: std::time::Duration,
    on_lag: OnLag,
}

/// `max_lag`'s default: a conversation relayed later than this is hardly a conversation.
const MAX_LAG: std::time::Duration = std::time::Duration::from_secs(120);

impl Default for RoomOptions {
    fn default() -> Self {
        Self {
            format: Template::parse(DEFAULT_FORMAT).expect("the default format is valid"),
            nick_format: Template::parse(DEFAULT_NICK_FORMAT).expect("the default nick format is valid"),
            events: EventSet::default(),
            ignore_senders: Vec::new(),
            ignore_text: Vec::new(),
            replace_text: Vec::new(),
            replace_nick: Vec::new(),
            anti_ping: None,
            coalesce: true,
            max_lag: MAX_LAG,
            on_lag: OnLag::Deliver,
        }
    }
}

struct Known<'a> {
    accounts: &'a BTreeMap<AccountId, AccountConfig>,
    declared: &'a [AccountId],
}

pub(super) fn parse(
    value: Option<&Value<'_>>,
    accounts: &BTreeMap<AccountId, AccountConfig>,
    declared: &[AccountId],
    report: &mut Report<'_>,
) -> Vec<Bridge> {
    let Some(value) = value else { return Vec::new() };
    let DeValue::Array(items) = value.get_ref() else {
        report.error(&value.span(), "`bridge` must be an array of tables: write each as [[bridge]]");
        return Vec::new();
    };
    let known = Known { accounts, declared };
    let mut bridges = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut limited: BTreeMap<AccountId, Vec<(RoomAddr, Span)>> = BTreeMap::new();
    let mut all_rooms: Vec<(RoomAddr, Span)> = Vec::new();
    for item in items.iter() {
        let Some(fields) = Fields::of(item, "[[bridge]]", report) else { continue };
        if let Some(DeValue::String(name)) = fields.peek("name")
            && !names.insert(name.to_string())
        {
            report.error(&item.span(), format!("a second bridge is named `{name}`; bridge names must be unique"));
        }
        let Some((bridge, spans)) = parse_bridge(fields, &known, report) else { continue };
        for (room, span) in bridge.rooms.iter().zip(spans) {
            all_rooms.push((room.addr.clone(), span.clone()));
            if one_room_rule(room) {
                let rooms = limited.entry(room.addr.account.clone()).or_default();
                if !rooms.iter().any(|(r, _)| r == &room.addr) {
                    rooms.push((room.addr.clone(), span));
                }
            }
        }
        bridges.push(bridge);
    }
    // Heihei IM is receive-only: the platform documents no client-side IM send.
    for bridge in &bridges {
        for room in &bridge.rooms {
            if room.addr.platform() == Platform::Heihei
                && room.addr.room.as_str().starts_with("im/")
                && room.direction.receives()
                && let Some((_, span)) = all_rooms.iter().find(|(r, _)| r == &room.addr)
            {
                report.error(span, format!("`{}` is a Heihei IM conversation, which can only be read (the platform documents no way to send IM): give it direction = \"in\"", room.addr));
            }
        }
    }
    // An IIROSE session logs into a room: private conversations alone give it none.
    let mut iirose_rooms: BTreeMap<AccountId, (bool, Span)> = BTreeMap::new();
    for (room, span) in &all_rooms {
        if room.platform() == Platform::Iirose {
            let entry = iirose_rooms.entry(room.account.clone()).or_insert((false, span.clone()));
            entry.0 |= !room.room.is_conversation();
        }
    }
    for (account, (has_room, span)) in iirose_rooms {
        if !has_room {
            report.error(&span, format!("account `{account}` has only private conversations: an IIROSE session logs into a room, so give it one room address too"));
        }
    }
    for (account, rooms) in limited {
        if let [(first, _), (second, span), ..] = rooms.as_slice() {
            let (a, b) = (&first.room, &second.room);
            let message = match account.platform() {
                Platform::Fishroom => format!(
                    "account `{account}` would receive from two rooms, `{a}` and `{b}`: a Fishroom server keeps one \
                     queue per token and throws away other rooms' messages when a token polls for one room, so \
                     each receiving room needs its own token (its own account); a send-only room \
                     (direction = \"out\") may share it"
                ),
                _ => format!(
                    "account `{account}` would be in two rooms, `{a}` and `{b}`: an IIROSE session is in one room \
                     at a time, so use one account per room (private conversations `user/…` may be added freely)"
                ),
            };
            report.error(span, message);
        }
    }
    bridges
}

/// Rooms of which an account may have only one: Fishroom rooms it receives from, IIROSE rooms (private
/// conversations `user/…` aside).
fn one_room_rule(room: &BridgeRoom) -> bool {
    match room.addr.platform() {
        Platform::Fishroom => room.direction.feeds(),
        Platform::Iirose => !room.addr.room.is_conversation(),
        _ => false,
    }
}

fn parse_bridge(mut fields: Fields<'_, '_>, known: &Known<'_>, report: &mut Report<'_>) -> Option<(Bridge, Vec<Span>)> {
    let bridge_span = fields.span.clone();
    let name = fields.required_str("name", "a bridge", report).and_then(|(s, span)| {
        if s.trim().is_empty() {
            report.error(
                &span,
                "a bridge's `name` is empty; give it one (it names the bridge in logs, metrics and the store)",
            );
            return None;
        }
        Some(s.to_owned())
    });
    let defaults = parse_options(&mut fields, &RoomOptions::default(), report);
    let mut rooms: Vec<(BridgeRoom, Span)> = Vec::new();
    let mut all_parsed = true;
    if let Some(list) = fields.str_list("rooms", report) {
        for (text, span) in list {
            match parse_address(text, &span, known, report) {
                Some(addr) => rooms.push((room_with(addr, Direction::InOut, defaults.clone()), span)),
                None => all_parsed = false,
            }
        }
    }
    let short_form = !rooms.is_empty() || !all_parsed;
    if let Some(value) = fields.get("room") {
        if short_form {
            report.error(
                &value.span(),
                "this bridge has both `rooms = [...]` and [[bridge.room]] tables; use one form (the long one gives each room its options)",
            );
        }
        match value.get_ref() {
            DeValue::Array(items) => {
                for item in items.iter() {
                    match Fields::of(item, "[[bridge.room]]", report)
                        .and_then(|f| parse_room(f, &defaults, known, report))
                    {
                        Some(room) => rooms.push(room),
                        None => all_parsed = false,
                    }
                }
            }
            _ => report.error(&value.span(), "`room` must be an array of tables: write each as [[bridge.room]]"),
        }
    }
    fields.deny_unknown("[[bridge]]", report);
    let name = name?;
    for (i, (room, span)) in rooms.iter().enumerate() {
        if rooms[..i].iter().any(|(r, _)| r.addr == room.addr) {
            report.error(span, format!("room `{}` is in bridge `{name}` twice", room.addr));
        }
    }
    if !all_parsed {
        return None;
    }
    if rooms.len() < 2 {
        let n = rooms.len();
        report.error(&bridge_span, format!("bridge `{name}` has {n} room(s); a bridge joins at least two rooms"));
        return None;
    }
    if !rooms.iter().any(|(r, _)| r.direction.feeds()) || !rooms.iter().any(|(r, _)| r.direction.receives()) {
        report.error(&bridge_span, format!("bridge `{name}` relays nothing: it needs a room that feeds it (in/inout) and one that receives (out/inout)"));
        return None;
    }
    let (rooms, spans) = rooms.into_iter().unzip();
    Some((Bridge { name, rooms }, spans))
}

fn parse_room(
    mut fields: Fields<'_, '_>,
    defaults: &RoomOptions,
    known: &Known<'_>,
    report: &mut Report<'_>,
) -> Option<(BridgeRoom, Span)> {
    let address = fields.required_str("room", "a [[bridge.room]]", report);
    let direction = match fields.str("direction", report) {
        None => Some(Direction::InOut),
        Some(("in", _)) => Some(Direction::In),
        Some(("out", _)) => Some(Direction::Out),
        Some(("inout", _)) => Some(Direction::InOut),
        Some((other, span)) => {
            report.error(&span, format!("`direction` is `{other}`; expected in, out or inout"));
            None
        }
    };
    let options = parse_options(&mut fields, defaults, report);
    fields.deny_unknown("[[bridge.room]]", report);
    let (text, span) = address?;
    let addr = parse_address(text, &span, known, report)?;
    Some((room_with(addr, direction?, options), span))
}

fn room_with(addr: RoomAddr, direction: Direction, options: RoomOptions) -> BridgeRoom {
    // IRC behind Fishroom highlights a user's name wherever it appears; the other platforms ping by mention only.
    let anti_ping = options.anti_ping.unwrap_or(addr.platform() == Platform::Fishroom);
    BridgeRoom {
        addr,
        direction,
        anti_ping,
        format: options.format,
        nick_format: options.nick_format,
        events: options.events,
        ignore_senders: options.ignore_senders,
        ignore_text: options.ignore_text,
        replace_text: options.replace_text,
        replace_nick: options.replace_nick,
        coalesce: options.coalesce,
        max_lag: options.max_lag,
        on_lag: options.on_lag,
    }
}

/// The room options (`format` … `on_lag`): taken over from `defaults` where not given.
fn parse_options(fields: &mut Fields<'_, '_>, defaults: &RoomOptions, report: &mut Report<'_>) -> RoomOptions {
    let mut options = defaults.clone();
    for (key, slot) in [("format", &mut options.format), ("nick_format", &mut options.nick_format)] {
        if let Some((text, span)) = fields.str(key, report) {
            match Template::parse(text) {
                Ok(template) => *slot = template,
                Err(e) => report.error(&span, format!("`{key}`: {e}")),
            }
        }
    }
    if let Some(list) = fields.str_list("events", report) {
        let mut kinds = Vec::new();
        for (text, span) in list {
            match text.parse::<EventFilter>() {
                Ok(kind) => kinds.push(kind),
                Err(()) => {
                    let known: Vec<_> = EventFilter::ALL.iter().map(|k| k.as_str()).collect();
                    report.error(&span, format!("unknown event kind `{text}`; known kinds: {}", known.join(", ")));
                }
            }
        }
        options.events = EventSet::of(kinds);
    }
    if let Some(list) = regexes(fields, "ignore_senders", report) {
        options.ignore_senders = list;
    }
    if let Some(list) = regexes(fields, "ignore_text", report) {
        options.ignore_text = list;
    }
    if let Some(on) = fields.bool("anti_ping", report) {
        options.anti_ping = Some(on);
    }
    if let Some(on) = fields.bool("coalesce", report) {
        options.coalesce = on;
    }
    if let Some(lag) = fields.duration("max_lag", report) {
        options.max_lag = lag;
    }
    match fields.str("on_lag", report) {
        None => {}
        Some(("deliver", _)) => options.on_lag = OnLag::Deliver,
        Some(("summarise" | "summarize", _)) => options.on_lag = OnLag::Summarise,
        Some((other, span)) => report.error(&span, format!("`on_lag` is `{other}`; expected deliver or summarise")),
    }
    for (key, slot) in [("replace_text", &mut options.replace_text), ("replace_nick", &mut options.replace_nick)] {
        if let Some(list) = replacements(fields, key, report) {
            *slot = list;
        }
    }
    options
}

/// `[expression, replacement]` pairs; an expression that does not compile, or a replacement naming a group the
/// expression does not have, is reported with its position.
fn replacements(fields: &mut Fields<'_, '_>, key: &'static str, report: &mut Report<'_>) -> Option<Vec<Replacement>> {
    let pairs = fields.str_pairs(key, report)?;
    let mut out = Vec::with_capacity(pairs.len());
    for ((pattern, pattern_span), (with, with_span)) in pairs {
        let pattern = match Regex::new(pattern) {
            Ok(re) => re,
            Err(e) => {
                report.error(
                    &pattern_span,
                    format!("`{key}` expression `{pattern}` is not a regular expression: {}", reason(&e)),
                );
                continue;
            }
        };
        if let Some(group) = unknown_group(&pattern, with) {
            report.error(
                &with_span,
                format!(
                    "`{key}` replacement `{with}` refers to group `{group}`, which `{pattern}` does not have \
                     (write `$$` for a dollar sign)"
                ),
            );
            continue;
        }
        out.push(Replacement { pattern, with: with.to_owned() });
    }
    Some(out)
}

/// The first group a replacement refers to (`$1`, `$name`, `${name}`) that the expression does not have.
fn unknown_group(pattern: &Regex, with: &str) -> Option<String> {
    let mut rest = with;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            rest = after;
            continue;
        }
        let (name, after) = match rest.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => return None,
            },
            None => {
                let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        rest = after;
        if name.is_empty() {
            continue;
        }
        let known = match name.parse::<usize>() {
            Ok(n) => n < pattern.captures_len(),
            Err(_) => pattern.capture_names().flatten().any(|n| n == name),
        };
        if !known {
            return Some(name.to_owned());
        }
    }
    None
}

/// A regular expression's error without the pattern and caret lines it repeats.
fn reason(e: &regex::Error) -> String {
    let message = e.to_string();
    message.lines().last().unwrap_or_default().trim_start_matches("error: ").to_owned()
}

/// A list of regular expressions; each one that does not compile is reported with its position.
fn regexes(fields: &mut Fields<'_, '_>, key: &'static str, report: &mut Report<'_>) -> Option<Vec<Regex>> {
    let list = fields.str_list(key, report)?;
    let mut out = Vec::with_capacity(list.len());
    for (text, span) in list {
        match Regex::new(text) {
            Ok(re) => out.push(re),
            Err(e) => {
                // The parser's message spans lines (pattern, caret, reason): keep the reason.
                report.error(&span, format!("`{key}` entry `{text}` is not a regular expression: {}", reason(&e)));
            }
        }
    }
    Some(out)
}

/// `<platform>.<account>:<room>`, naming a defined account.
fn parse_address(text: &str, span: &Span, known: &Known<'_>, report: &mut Report<'_>) -> Option<RoomAddr> {
    let parsed = text.split_once(':').and_then(|(account, room)| {
        let (platform, name) = account.split_once('.')?;
        (!platform.is_empty() && !name.is_empty()).then_some((platform, name, room))
    });
    let Some((platform, name, room)) = parsed else {
        report.error(
            span,
            format!(
                "malformed room address `{text}`: expected `<platform>.<account>:<room>`, e.g. `fishroom.tuna:general`"
            ),
        );
        return None;
    };
    let Ok(platform) = platform.parse::<Platform>() else {
        report.error(
            span,
            format!(
                "room address `{text}` names unknown platform `{platform}`; known platforms: {}",
                Platform::known_list()
            ),
        );
        return None;
    };
    let account = AccountId::new(platform, name);
    if !known.declared.contains(&account) {
        report.error(
            span,
            format!("room address `{text}` names account `{account}`, which is not defined: add [accounts.{account}]"),
        );
        return None;
    }
    let room = accounts::parse_room(platform, room, span, report)?;
    // A declared account with problems of its own has been reported already.
    known.accounts.contains_key(&account).then(|| RoomAddr::new(account, room))
}
