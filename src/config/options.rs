//! The options a bridge gives its rooms and a room may override (`format` … `on_lag`): parsed, with their
//! regular expressions and rewrites compiled, and a room's settings built from them.

use regex::Regex;

use super::{BridgeRoom, DEFAULT_FORMAT, DEFAULT_NICK_FORMAT, Direction, OnLag, Replacement};
use crate::model::{EventFilter, EventSet, Platform, RoomAddr};
use crate::settings::{Fields, Report};
use crate::template::Template;

/// Options a bridge gives its rooms as defaults, and a room may override.
#[derive(Clone)]
pub(super) struct RoomOptions {
    format: Template,
    nick_format: Template,
    /// Whether `nick_format` was written (else an API room's is the sender's name alone, as matterbridge's).
    nick_format_given: bool,
    events: EventSet,
    ignore_senders: Vec<Regex>,
    ignore_text: Vec<Regex>,
    replace_text: Vec<Replacement>,
    replace_nick: Vec<Replacement>,
    /// Unset: on for Fishroom rooms, off elsewhere.
    anti_ping: Option<bool>,
    markdown: bool,
    coalesce: bool,
    max_lag: std::time::Duration,
    on_lag: OnLag,
    media_format: Template,
    /// `presence = "summary"`: folded every this long.
    presence_summary: bool,
    presence_every: std::time::Duration,
    gift_combo: std::time::Duration,
}

/// `media_format`'s default: the item's kind and size, then its link.
pub const DEFAULT_MEDIA_FORMAT: &str = "[{kind} {size}] {url}";

/// `max_lag`'s default: a conversation relayed later than this is hardly a conversation.
const MAX_LAG: std::time::Duration = std::time::Duration::from_secs(120);

impl Default for RoomOptions {
    fn default() -> Self {
        Self {
            format: Template::parse(DEFAULT_FORMAT).expect("the default format is valid"),
            nick_format: Template::parse(DEFAULT_NICK_FORMAT).expect("the default nick format is valid"),
            nick_format_given: false,
            events: EventSet::default(),
            ignore_senders: Vec::new(),
            ignore_text: Vec::new(),
            replace_text: Vec::new(),
            replace_nick: Vec::new(),
            anti_ping: None,
            markdown: true,
            coalesce: true,
            max_lag: MAX_LAG,
            on_lag: OnLag::Deliver,
            media_format: Template::parse_media(DEFAULT_MEDIA_FORMAT).expect("the default media format is valid"),
            presence_summary: false,
            presence_every: std::time::Duration::from_secs(60),
            gift_combo: std::time::Duration::from_secs(3),
        }
    }
}

pub(super) fn room_with(addr: RoomAddr, direction: Direction, options: RoomOptions) -> BridgeRoom {
    // IRC behind Fishroom highlights a user's name wherever it appears; the other platforms ping by mention only.
    let anti_ping = options.anti_ping.unwrap_or(addr.platform() == Platform::Fishroom);
    let api = addr.platform() == Platform::Api;
    BridgeRoom {
        addr,
        direction,
        anti_ping,
        markdown: options.markdown,
        format: options.format,
        // An API client gets the sender's name in `username` (and the platform in `protocol`), as matterbridge's.
        nick_format: if !options.nick_format_given && api {
            Template::parse("{nick}").expect("a valid template")
        } else {
            options.nick_format
        },
        events: options.events,
        ignore_senders: options.ignore_senders,
        ignore_text: options.ignore_text,
        replace_text: options.replace_text,
        replace_nick: options.replace_nick,
        coalesce: options.coalesce,
        max_lag: options.max_lag,
        on_lag: options.on_lag,
        media_format: options.media_format,
        presence_every: options.presence_summary.then_some(options.presence_every),
        gift_combo: options.gift_combo,
    }
}

/// The room options (`format` … `on_lag`): taken over from `defaults` where not given.
pub(super) fn parse_options(
    fields: &mut Fields<'_, '_>,
    defaults: &RoomOptions,
    report: &mut Report<'_>,
) -> RoomOptions {
    let mut options = defaults.clone();
    let mut given = false;
    for (key, slot) in [("format", &mut options.format), ("nick_format", &mut options.nick_format)] {
        if let Some((text, span)) = fields.str(key, report) {
            match Template::parse(text) {
                Ok(template) if key == "format" && !template.has_text() => report.error(
                    &span,
                    format!("`format` is `{text}`, without `{{text}}`: every message would arrive without what was said; add `{{text}}`"),
                ),
                Ok(template) => {
                    *slot = template;
                    if key == "nick_format" {
                        given = true;
                    }
                }
                Err(e) => report.error(&span, format!("`{key}`: {e}")),
            }
        }
    }
    options.nick_format_given |= given;
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
    if let Some(on) = fields.bool("markdown", report) {
        options.markdown = on;
    }
    if let Some(on) = fields.bool("coalesce", report) {
        options.coalesce = on;
    }
    if let Some(lag) = fields.duration("max_lag", report) {
        options.max_lag = lag;
    }
    match fields.str("presence", report) {
        None => {}
        Some(("each", _)) => options.presence_summary = false,
        Some(("summary", _)) => options.presence_summary = true,
        Some((other, span)) => report.error(&span, format!("`presence` is `{other}`; expected each or summary")),
    }
    if let Some(window) = fields.duration("gift_combo", report) {
        options.gift_combo = window.min(std::time::Duration::from_secs(10));
    }
    if let Some(every) = fields.duration("presence_every", report) {
        options.presence_every = every.max(std::time::Duration::from_secs(1));
    }
    match fields.str("on_lag", report) {
        None => {}
        Some(("deliver", _)) => options.on_lag = OnLag::Deliver,
        Some(("summarise" | "summarize", _)) => options.on_lag = OnLag::Summarise,
        Some((other, span)) => report.error(&span, format!("`on_lag` is `{other}`; expected deliver or summarise")),
    }
    if let Some((text, span)) = fields.str("media_format", report) {
        match Template::parse_media(text) {
            Ok(template) if !template.has_url() => report.error(
                &span,
                format!("`media_format` is `{text}`, without `{{url}}`: a media item would arrive without its link; add `{{url}}`"),
            ),
            Ok(template) => options.media_format = template,
            Err(e) => report.error(&span, format!("`media_format`: {e}")),
        }
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
