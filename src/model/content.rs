//! Message content: a list of segments. Media travel as URLs, never as bytes.

use super::UserId;

/// One piece of a message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Segment {
    /// Plain text (already unescaped: no HTML entities, no platform markup).
    Text(String),
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
        self.0.iter().all(|s| matches!(s, Segment::Text(t) if t.is_empty()))
    }

    /// The content as plain text, media written as `[image] url` and mentions as `@name`.
    pub fn to_plain_text(&self) -> String {
        let mut out = String::new();
        for segment in &self.0 {
            push_plain(&mut out, segment);
        }
        out
    }
}

/// Appends one segment as plain text, the form used where a destination cannot show it natively.
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
    fn empty_content_is_detected() {
        assert!(Content::default().is_empty());
        assert!(Content::text("").is_empty());
        assert!(!Content(vec![Segment::Image { url: "u".into() }]).is_empty());
    }
}
