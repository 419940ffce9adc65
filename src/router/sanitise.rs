//! What a sender can put in a nick or a text, cleaned before anything is formatted with it: no control characters
//! (a newline in a nick would start a line that reads as another sender's; a text keeps its line breaks and tabs),
//! no bidirectional overrides, embeddings, isolates or marks (text that runs backwards can hide what it says, or
//! turn `[irc] bob` around), and nicks no longer than [`NICK_CHARS`].

use crate::model::{Content, Event, EventKind, Segment};

/// The longest nick relayed, in characters; a longer one ends with `…`.
pub const NICK_CHARS: usize = 64;

fn unwanted(c: char, in_text: bool) -> bool {
    (c.is_control() && !(in_text && matches!(c, '\n' | '\t')))
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

fn clean(text: &mut String, in_text: bool) {
    if text.chars().any(|c| unwanted(c, in_text)) {
        text.retain(|c| !unwanted(c, in_text));
    }
}

/// A nick: control characters and direction marks removed, at most [`NICK_CHARS`] characters.
pub fn nick(name: &mut String) {
    clean(name, false);
    if let Some((cut, _)) = name.char_indices().nth(NICK_CHARS) {
        name.truncate(cut);
        name.pop();
        name.push('…');
    }
}

/// A text: control characters but line breaks and tabs, and direction marks, removed.
pub fn text(text: &mut String) {
    clean(text, true);
}

fn content(content: &mut Content) {
    for segment in &mut content.0 {
        match segment {
            Segment::Text(t) | Segment::Styled { text: t, .. } | Segment::Quote { text: t } => text(t),
            Segment::CodeBlock { code, lang } => {
                text(code);
                if let Some(lang) = lang {
                    nick(lang);
                }
            }
            Segment::Mention { name, .. } => nick(name),
            Segment::Link { text: Some(t), .. } => text(t),
            _ => {}
        }
    }
}

/// Everything of an event that is formatted into a copy.
pub fn event(event: &mut Event) {
    if let Some(sender) = &mut event.sender {
        nick(&mut sender.name);
    }
    match &mut event.kind {
        EventKind::Message(message) => content(&mut message.content),
        EventKind::Edited { content: edited, .. } => content(edited),
        EventKind::Notice { text: notice } => text(notice),
        EventKind::Gift { name, .. } => nick(name),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks_lose_line_breaks_and_direction_marks_and_are_capped() {
        let mut name = "mal\nlory\u{202E}\u{2066}\r\u{0007}".to_owned();
        nick(&mut name);
        assert_eq!(name, "mallory");
        let mut long = "x".repeat(200);
        nick(&mut long);
        assert_eq!(long.chars().count(), NICK_CHARS);
        assert!(long.ends_with('…'));
        let mut fine = "小明 (Bob)".to_owned();
        nick(&mut fine);
        assert_eq!(fine, "小明 (Bob)", "ordinary names are left as they are");
    }

    #[test]
    fn texts_keep_their_lines_and_lose_the_rest() {
        let mut said = "one\r\ntwo\tthree\u{0000}\u{001B}[31m\u{202E}!".to_owned();
        text(&mut said);
        assert_eq!(said, "one\ntwo\tthree[31m!");
    }
}
