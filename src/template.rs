//! `format` / `nick_format` templates: `{platform} {account} {room} {bridge} {nick} {text}` and the sender's marks
//! `{badge} {level} {medal}` (empty where the platform has none), and `media_format`:
//! `{kind} {size} {url} {name}`; `{{` and `}}` for literal braces. Parsed once at start, rendered without allocation
//! beyond the output.

use std::fmt;

/// A placeholder of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    Platform,
    Account,
    Room,
    Bridge,
    Nick,
    Text,
    Badge,
    Level,
    Medal,
    Kind,
    Size,
    Url,
    Name,
}

const VARS: [(&str, Var); 9] = [
    ("platform", Var::Platform),
    ("account", Var::Account),
    ("room", Var::Room),
    ("bridge", Var::Bridge),
    ("nick", Var::Nick),
    ("text", Var::Text),
    ("badge", Var::Badge),
    ("level", Var::Level),
    ("medal", Var::Medal),
];

/// A `media_format`'s placeholders.
const MEDIA_VARS: [(&str, Var); 4] = [("kind", Var::Kind), ("size", Var::Size), ("url", Var::Url), ("name", Var::Name)];

/// The values of a `media_format`'s placeholders for one media item.
#[derive(Clone, Copy, Debug)]
pub struct MediaVars<'a> {
    /// `image`, `video`, `audio`, `file`.
    pub kind: &'a str,
    /// `1.2 MB`.
    pub size: &'a str,
    pub url: &'a str,
    /// The file's name, where the platform gave one; else the kind.
    pub name: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Var(Var),
}

/// A compiled template. Every room of every bridge holds its own templates, nearly all the same defaults: a clone
/// shares the compiled pieces rather than copying them.
#[derive(Clone, PartialEq, Eq)]
pub struct Template(std::sync::Arc<Compiled>);

#[derive(PartialEq, Eq)]
struct Compiled {
    pieces: Vec<Piece>,
    source: String,
}

/// The values of the placeholders for one message: the source room's, the bridge's and the sender's.
#[derive(Clone, Copy, Debug)]
pub struct Vars<'a> {
    pub platform: &'a str,
    pub account: &'a str,
    pub room: &'a str,
    pub bridge: &'a str,
    pub nick: &'a str,
    pub text: &'a str,
    /// The sender's marks (`""` where none).
    pub badge: &'a str,
    pub level: &'a str,
    pub medal: &'a str,
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, String> {
        Self::parse_among(source, &VARS)
    }

    /// A `media_format`: `{kind} {size} {url} {name}`.
    pub fn parse_media(source: &str) -> Result<Self, String> {
        Self::parse_among(source, &MEDIA_VARS)
    }

    /// Whether the template shows the item's address (`{url}`).
    pub fn has_url(&self) -> bool {
        self.0.pieces.contains(&Piece::Var(Var::Url))
    }

    pub fn render_media(&self, vars: &MediaVars<'_>) -> String {
        let mut out = String::with_capacity(self.0.source.len() + vars.url.len() + 16);
        for piece in &self.0.pieces {
            out.push_str(match piece {
                Piece::Literal(text) => text,
                Piece::Var(Var::Kind) => vars.kind,
                Piece::Var(Var::Size) => vars.size,
                Piece::Var(Var::Url) => vars.url,
                Piece::Var(Var::Name) => vars.name,
                Piece::Var(_) => "",
            });
        }
        out
    }

    fn parse_among(source: &str, known_vars: &[(&str, Var)]) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                literal.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            if tail.starts_with('}') {
                return Err(format!("unmatched `}}` in `{source}` (write `}}}}` for a literal brace)"));
            }
            let Some(end) = tail.find('}') else {
                return Err(format!("unclosed `{{` in `{source}` (write `{{{{` for a literal brace)"));
            };
            let name = &tail[1..end];
            let Some((_, var)) = known_vars.iter().find(|(n, _)| *n == name) else {
                let known: Vec<String> = known_vars.iter().map(|(n, _)| format!("{{{n}}}")).collect();
                return Err(format!("unknown placeholder `{{{name}}}`; known placeholders: {}", known.join(" ")));
            };
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Var(*var));
            rest = &tail[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Self(std::sync::Arc::new(Compiled { pieces, source: source.to_owned() })))
    }

    /// Whether the template shows the message's text (`{text}`).
    pub fn has_text(&self) -> bool {
        self.0.pieces.contains(&Piece::Var(Var::Text))
    }

    pub fn render_into(&self, vars: &Vars<'_>, out: &mut String) {
        for piece in &self.0.pieces {
            out.push_str(match piece {
                Piece::Literal(text) => text,
                Piece::Var(var) => vars.get(*var),
            });
        }
    }

    pub fn render(&self, vars: &Vars<'_>) -> String {
        let mut out = String::with_capacity(self.0.source.len() + vars.text.len() + vars.nick.len() + 16);
        self.render_into(vars, &mut out);
        out
    }

    /// The template split around its first `{text}`: what comes before and after it, rendered.
    /// Used where the text is a list of segments rather than a string.
    pub fn render_around_text(&self, vars: &Vars<'_>) -> Option<(String, String)> {
        let at = self.0.pieces.iter().position(|p| *p == Piece::Var(Var::Text))?;
        let mut before = String::new();
        let mut after = String::new();
        for (i, piece) in self.0.pieces.iter().enumerate() {
            let out = if i < at { &mut before } else { &mut after };
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Var(_) if i == at => {}
                Piece::Var(var) => out.push_str(vars.get(*var)),
            }
        }
        Some((before, after))
    }
}

impl Vars<'_> {
    fn get(&self, var: Var) -> &str {
        match var {
            Var::Platform => self.platform,
            Var::Account => self.account,
            Var::Room => self.room,
            Var::Bridge => self.bridge,
            Var::Nick => self.nick,
            Var::Text => self.text,
            Var::Badge => self.badge,
            Var::Level => self.level,
            Var::Medal => self.medal,
            Var::Kind | Var::Size | Var::Url | Var::Name => "",
        }
    }
}

/// One copy of each template a configuration uses: thousands of bridges may each write the same `format`, and
/// each would otherwise hold its own compiled copy in every instance.
#[derive(Default)]
pub struct Sharing(std::collections::HashMap<String, Template>);

impl Sharing {
    /// Makes `template` the copy of an equal one seen before, or keeps it as the one to share.
    pub fn share(&mut self, template: &mut Template) {
        let kept = self.0.entry(template.0.source.clone()).or_insert_with(|| template.clone());
        if *kept == *template {
            *template = kept.clone();
        }
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.0.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars<'static> {
        Vars {
            platform: "fishroom",
            account: "fishroom.tuna",
            room: "general",
            bridge: "fans",
            nick: "alice",
            text: "hi",
            badge: "",
            level: "",
            medal: "",
        }
    }

    #[test]
    fn the_senders_marks_are_placeholders_empty_where_none() {
        let t = Template::parse("[{badge}|Lv{level}|{medal}] {nick}").unwrap();
        assert_eq!(t.render(&vars()), "[|Lv|] alice");
        let marked = Vars { badge: "大咖", level: "54", medal: "猫耳 7", ..vars() };
        assert_eq!(t.render(&marked), "[大咖|Lv54|猫耳 7] alice");
        assert!(Template::parse("{rank}").unwrap_err().contains("{badge} {level} {medal}"));
    }

    #[test]
    fn equal_templates_share_one_copy_and_different_ones_stay_apart() {
        let mut sharing = Sharing::default();
        let (mut a, mut b, mut c) = (
            Template::parse("{text}").unwrap(),
            Template::parse("{text}").unwrap(),
            Template::parse("{nick}: {text}").unwrap(),
        );
        assert!(!std::sync::Arc::ptr_eq(&a.0, &b.0));
        for t in [&mut a, &mut b, &mut c] {
            sharing.share(t);
        }
        assert!(std::sync::Arc::ptr_eq(&a.0, &b.0));
        assert!(!std::sync::Arc::ptr_eq(&a.0, &c.0));
        assert_eq!(c.render(&vars()), "alice: hi");
    }

    #[test]
    fn renders_every_placeholder() {
        let t = Template::parse("{platform}|{account}|{room}|{bridge}|{nick}|{text}").unwrap();
        assert_eq!(t.render(&vars()), "fishroom|fishroom.tuna|general|fans|alice|hi");
    }

    #[test]
    fn doubled_braces_are_literal() {
        let t = Template::parse("{{{nick}}} {text}").unwrap();
        assert_eq!(t.render(&vars()), "{alice} hi");
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        assert!(Template::parse("{name}").unwrap_err().contains("unknown placeholder `{name}`"));
        assert!(Template::parse("{nick").unwrap_err().contains("unclosed"));
        assert!(Template::parse("nick}").unwrap_err().contains("unmatched"));
    }

    #[test]
    fn media_formats_take_their_own_placeholders() {
        let t = Template::parse_media("[{kind} {size}] {name} {url}").unwrap();
        let vars = MediaVars { kind: "image", size: "1.2 MB", url: "https://m/x", name: "cat.png" };
        assert_eq!(t.render_media(&vars), "[image 1.2 MB] cat.png https://m/x");
        assert!(t.has_url());
        assert!(Template::parse_media("{nick}").unwrap_err().contains("{kind} {size} {url} {name}"));
        assert!(Template::parse("{url}").is_err(), "a message's format has no {{url}}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_templates_parse_or_refuse_without_panicking(source in "\\PC{0,64}") {
            if let Ok(t) = Template::parse(&source) {
                let _ = t.render(&vars());
                let _ = t.render_around_text(&vars());
            }
        }
    }

    #[test]
    fn splits_around_text() {
        let t = Template::parse("[{platform}] {nick}: {text} ({bridge})").unwrap();
        let (before, after) = t.render_around_text(&vars()).unwrap();
        assert_eq!((before.as_str(), after.as_str()), ("[fishroom] alice: ", " (fans)"));
        assert!(Template::parse("{nick}").unwrap().render_around_text(&vars()).is_none());
    }
}
