//! What IIROSE message text carries: mentions `[*name*]`, room links `[_id_]`, images `[url]`, and the quote chain
//! a reply puts before the new text.

use std::sync::LazyLock;

use regex::Regex;

use crate::model::{Content, Reply, Segment, Time};

const QUOTE_END: &str = " (hr_) ";
const QUOTE_MARK: &str = " (_hr) ";
/// What a markdown message begins with: three backslashes, an asterisk, a line feed (KOISHI-GH `sendMessage.ts`,
/// IIROSEBOT `send_markdown`; it arrives as `&#092;&#092;&#092;*` before the fields are unescaped).
const MARKDOWN: &str = "\\\\\\*\n";

static MARKUP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|\s)\[\*(?P<mention>[^\]]+)\*\](?:\s|$)|(?:^|\s)\[_(?P<room>[0-9A-Za-z]+)_\](?:\s|$)|\[(?P<image>https?://[^\]\s]+)\]")
        .expect("valid pattern")
});

/// Message text as segments, with the quote chain (if any) as the reply: `quoted (_hr) name_time (hr_) new`.
pub fn parse_text(text: &str) -> (Content, Option<Reply>) {
    if text.is_empty() {
        return (Content::default(), None);
    }
    if let Some(card) = super::cards::card(text) {
        return (card, None);
    }
    let (markdown, text) = match text.strip_prefix(MARKDOWN) {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (reply, new) = match text.rsplit_once(QUOTE_END) {
        Some((chain, new)) => {
            // The innermost quote is the last `quoted (_hr) name_time` of the chain.
            let last = chain.rsplit(QUOTE_END).next().unwrap_or(chain);
            let reply = last.rsplit_once(QUOTE_MARK).map(|(quoted, marker)| {
                let (name, time) = marker.rsplit_once('_').unwrap_or((marker, ""));
                let quoted = quoted.rsplit(QUOTE_END).next().unwrap_or(quoted);
                Reply {
                    target: None,
                    quoted_sender: Some(name.to_owned()),
                    quoted_text: Some(quoted.to_owned()),
                    quoted_time: time.parse::<i64>().ok().map(|s| Time(s * 1000)),
                    quoted_image: None,
                }
            });
            (reply, new)
        }
        None => (None, text),
    };
    match new.strip_prefix(MARKDOWN) {
        Some(new) => (markdown_segments(new), reply),
        None if markdown => (markdown_segments(new), reply),
        None => (segments(new), reply),
    }
}

/// A markdown message: IIROSE's own markup (mentions `[*name*]`, room links `[_id_]`, images `[url]`) escaped so
/// that markdown does not read it as emphasis, the markdown read, then the markup in its plain text.
fn markdown_segments(text: &str) -> Content {
    let text = text.trim_start();
    let escaped = MARKUP.replace_all(text, |caps: &regex::Captures<'_>| {
        let mut out = String::new();
        for c in caps[0].chars() {
            if matches!(c, '\\' | '*' | '_' | '[' | ']' | '`' | '~' | '<' | '&') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    });
    let mut out = Vec::new();
    for segment in crate::model::rich::markdown::parse(&escaped).0 {
        match segment {
            Segment::Text(text) => out.extend(segments(&text).0),
            other => out.push(other),
        }
    }
    Content(out)
}

fn segments(text: &str) -> Content {
    if !text.contains('[') {
        return Content::text(text);
    }
    let mut out = Vec::new();
    let mut last = 0;
    for caps in MARKUP.captures_iter(text) {
        let whole = caps.get(0).expect("group 0 always matches");
        if whole.start() > last {
            out.push(Segment::Text(text[last..whole.start()].to_owned()));
        }
        if let Some(name) = caps.name("mention") {
            out.push(Segment::Mention { user: None, name: name.as_str().to_owned() });
        } else if let Some(room) = caps.name("room") {
            out.push(Segment::RoomLink { room: room.as_str().to_owned() });
        } else if let Some(url) = caps.name("image") {
            let url = url.as_str().trim_end_matches("#e");
            // A link ending `.weba` is voice (the protocol notes: koishi appends `?iiroseaudio=.weba`).
            if url.ends_with(".weba") {
                out.push(Segment::Audio { url: url.to_owned(), seconds: None });
            } else {
                out.push(Segment::Image { url: url.to_owned() });
            }
        }
        last = whole.end();
    }
    if last < text.len() {
        out.push(Segment::Text(text[last..].to_owned()));
    }
    Content(out)
}

/// Segments as IIROSE text: ` [*name*] ` mentions, ` [_id_] ` room links, `[url]` images.
pub fn render(content: &Content) -> String {
    let mut out = String::new();
    for segment in &content.0 {
        match segment {
            Segment::Mention { name, .. } => {
                out.push_str(" [*");
                out.push_str(name);
                out.push_str("*] ");
            }
            Segment::RoomLink { room } if room.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                out.push_str(" [_");
                out.push_str(room);
                out.push_str("_] ");
            }
            // `#e` marks the link an image whatever its address looks like (IIROSEBOT's `file_pares`, koishi).
            Segment::Image { url } => {
                out.push('[');
                out.push_str(url);
                if !url.ends_with("#e") {
                    out.push_str("#e");
                }
                out.push(']');
            }
            other => crate::model::push_plain(&mut out, other),
        }
    }
    out
}

/// `quoted (_hr) name_time (hr_) text`.
pub fn with_quote(quoted: &str, name: &str, time: Time, text: &str) -> String {
    let quoted = quoted.lines().next().unwrap_or_default();
    format!("{quoted}{QUOTE_MARK}{name}_{}{QUOTE_END}{text}", time.0 / 1000)
}
