//! Message content: a list of segments. Media travel as URLs, never as bytes. Formatting is a small rich-text
//! form (`docs/architecture.md`, "Formatting"): styled text, code blocks, quoted blocks and links; a line break is
//! a `\n` in text.

use super::UserId;

/// How a piece of text is set: any mix of bold, italic, struck through and inline code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Style {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bold: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub italic: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub strike: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub code: bool,
}

impl Style {
    pub const BOLD: Style = Style { bold: true, italic: false, strike: false, code: false };
    pub const ITALIC: Style = Style { bold: false, italic: true, strike: false, code: false };
    pub const STRIKE: Style = Style { bold: false, italic: false, strike: true, code: false };
    pub const CODE: Style = Style { bold: false, italic: false, strike: false, code: true };

    pub fn is_plain(self) -> bool {
        self == Style::default()
    }
}

/// One piece of a message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Segment {
    /// Plain text (already unescaped: no HTML entities, no platform markup).
    Text(String),
    /// Text set in a style (bold, italic, struck through, inline code).
    Styled {
        text: String,
        style: Style,
    },
    /// A block of code, kept line for line (without its fences).
    CodeBlock {
        code: String,
        lang: Option<String>,
    },
    /// A quoted block set apart in the text (not a reply: the lines someone marked as quoted).
    Quote {
        text: String,
    },
    /// `@name`; `user` is the platform's id of the mentioned user when known.
    Mention {
        user: Option<UserId>,
        name: String,
    },
    /// A reference to another room.
    RoomLink {
        room: String,
    },
    Image {
        url: String,
    },
    Audio {
        url: String,
        seconds: Option<u32>,
    },
    Video {
        url: String,
    },
    File {
        url: String,
        name: Option<String>,
        size: Option<u64>,
    },
    Sticker {
        url: String,
        id: Option<String>,
    },
    Link {
        url: String,
        text: Option<String>,
    },
}

/// What a message says.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Content(pub Vec<Segment>);

impl Content {
    pub fn text(text: impl Into<String>) -> Self {
        Self(vec![Segment::Text(text.into())])
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|s| matches!(s, Segment::Text(t) | Segment::Styled { text: t, .. } if t.is_empty()))
    }

    /// Whether any of it is formatted (styled text, a code block, a quoted block, a link with a text of its own).
    pub fn is_rich(&self) -> bool {
        self.0.iter().any(Segment::is_rich)
    }

    /// The content as plain text, media written as `[image] url` and mentions as `@name`.
    pub fn to_plain_text(&self) -> String {
        let mut out = String::new();
        for segment in &self.0 {
            push_plain(&mut out, segment);
        }
        // A block ends its line; at the end there is no line to end.
        if matches!(self.0.last(), Some(Segment::CodeBlock { .. } | Segment::Quote { .. })) {
            out.pop();
        }
        out
    }
}

impl Segment {
    /// Formatting: what a destination that shows rich text shows differently from plain text.
    pub fn is_rich(&self) -> bool {
        match self {
            Segment::Styled { style, .. } => !style.is_plain(),
            Segment::CodeBlock { .. } | Segment::Quote { .. } => true,
            Segment::Link { url, text: Some(text) } => text != url,
            _ => false,
        }
    }
}

/// Starts a new line unless the text is empty or already at one.
fn new_line(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

/// Appends one segment as plain text, the form used where a destination cannot show it natively: styles dropped
/// but for struck-through text (`~~text~~`: striking changes what it says), code blocks as their lines, quoted
/// blocks with `> ` before each line, links as `text (url)`.
pub fn push_plain(out: &mut String, segment: &Segment) {
    let media = |out: &mut String, label: &str, url: &str| {
        if !out.is_empty() && !out.ends_with([' ', '\n']) {
            out.push(' ');
        }
        out.push('[');
        out.push_str(label);
        out.push_str("] ");
        out.push_str(url);
    };
    match segment {
        Segment::Text(text) => out.push_str(text),
        Segment::Styled { text, style } if style.strike && !style.code && !text.is_empty() => {
            out.push_str("~~");
            out.push_str(text);
            out.push_str("~~");
        }
        Segment::Styled { text, .. } => out.push_str(text),
        Segment::CodeBlock { code, .. } => {
            new_line(out);
            out.push_str(code.trim_end_matches('\n'));
            out.push('\n');
        }
        Segment::Quote { text } => {
            new_line(out);
            for (i, line) in text.trim_end_matches('\n').split('\n').enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str("> ");
                out.push_str(line);
            }
            out.push('\n');
        }
        Segment::Mention { name, .. } => {
            out.push('@');
            out.push_str(name);
        }
        Segment::RoomLink { room } => out.push_str(room),
        Segment::Image { url } => media(out, "image", url),
        Segment::Audio { url, .. } => media(out, "audio", url),
        Segment::Video { url } => media(out, "video", url),
        Segment::File { url, name, .. } => {
            let label = name.as_deref().map_or_else(|| "file".to_owned(), |n| format!("file {n}"));
            media(out, &label, url);
        }
        Segment::Sticker { url, .. } => media(out, "sticker", url),
        Segment::Link { url, text: Some(text) } if text != url => {
            out.push_str(text);
            out.push_str(" (");
            out.push_str(url);
            out.push(')');
        }
        Segment::Link { url, .. } => out.push_str(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_renders_media_and_mentions() {
        let content = Content(vec![
            Segment::Text("look".into()),
            Segment::Image { url: "https://i/x.png".into() },
            Segment::Text(" ".into()),
            Segment::Mention { user: None, name: "bob".into() },
            Segment::File { url: "https://f".into(), name: Some("a.txt".into()), size: None },
            Segment::Link { url: "https://l".into(), text: Some("site".into()) },
        ]);
        assert_eq!(content.to_plain_text(), "look [image] https://i/x.png @bob [file a.txt] https://fsite (https://l)");
    }

    #[test]
    fn formatting_reads_as_plain_text() {
        let content = Content(vec![
            Segment::Text("see ".into()),
            Segment::Styled { text: "this".into(), style: Style::BOLD },
            Segment::Text(", not ".into()),
            Segment::Styled { text: "that".into(), style: Style::STRIKE },
            Segment::Text(":".into()),
            Segment::CodeBlock { code: "let x = 1;\nlet y = 2;\n".into(), lang: Some("rust".into()) },
            Segment::Text("\nas ".into()),
            Segment::Styled { text: "x".into(), style: Style::CODE },
            Segment::Text(" said".into()),
            Segment::Quote { text: "one\ntwo".into() },
        ]);
        assert_eq!(
            content.to_plain_text(),
            "see this, not ~~that~~:\nlet x = 1;\nlet y = 2;\n\nas x said\n> one\n> two"
        );
        assert!(content.is_rich());
        assert!(!Content::text("**not parsed**").is_rich());
        assert!(!Content(vec![Segment::Link { url: "u".into(), text: Some("u".into()) }]).is_rich());
    }

    #[test]
    fn empty_content_is_detected() {
        assert!(Content::default().is_empty());
        assert!(Content::text("").is_empty());
        assert!(!Content(vec![Segment::Image { url: "u".into() }]).is_empty());
    }
}
