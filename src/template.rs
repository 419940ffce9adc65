//! `format` / `nick_format` templates: `{platform} {account} {room} {bridge} {nick} {text}`, with
//! `{{` and `}}` for literal braces. Parsed once at start, rendered without allocation beyond the output.

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
}

const VARS: [(&str, Var); 6] = [
    ("platform", Var::Platform),
    ("account", Var::Account),
    ("room", Var::Room),
    ("bridge", Var::Bridge),
    ("nick", Var::Nick),
    ("text", Var::Text),
];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Var(Var),
}

/// A compiled template.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
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
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, String> {
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
            let Some((_, var)) = VARS.iter().find(|(n, _)| *n == name) else {
                let known: Vec<String> = VARS.iter().map(|(n, _)| format!("{{{n}}}")).collect();
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
        Ok(Self { pieces, source: source.to_owned() })
    }

    /// Whether the template shows the message's text (`{text}`).
    pub fn has_text(&self) -> bool {
        self.pieces.contains(&Piece::Var(Var::Text))
    }

    pub fn render_into(&self, vars: &Vars<'_>, out: &mut String) {
        for piece in &self.pieces {
            out.push_str(match piece {
                Piece::Literal(text) => text,
                Piece::Var(var) => vars.get(*var),
            });
        }
    }

    pub fn render(&self, vars: &Vars<'_>) -> String {
        let mut out = String::with_capacity(self.source.len() + vars.text.len() + vars.nick.len() + 16);
        self.render_into(vars, &mut out);
        out
    }

    /// The template split around its first `{text}`: what comes before and after it, rendered.
    /// Used where the text is a list of segments rather than a string.
    pub fn render_around_text(&self, vars: &Vars<'_>) -> Option<(String, String)> {
        let at = self.pieces.iter().position(|p| *p == Piece::Var(Var::Text))?;
        let mut before = String::new();
        let mut after = String::new();
        for (i, piece) in self.pieces.iter().enumerate() {
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
        }
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.source)
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
        }
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
