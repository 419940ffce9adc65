//! Formatting in and out: markdown (read with pulldown-cmark) and HTML (tokenised by html5gum) become the rich-text
//! segments of [`Content`]; content is written back as markdown for the platforms that show it. Both readers fill
//! one [`Builder`], so markdown with inline HTML in it reads as one text.

pub mod html;
pub mod markdown;

use super::{Content, Segment, Style};

/// Formatted text is read as formatting up to this many bytes; the rest is kept as plain text. Chat messages are
/// far shorter (the platforms' own clients cap theirs at a few thousand characters), and a parser's events for
/// megabytes of markup cost many times the text (16 MB of markdown once took 530 MB).
pub const RICH_MAX: usize = 64 << 10;

/// `text` cut at [`RICH_MAX`] (on a character boundary): what is read as formatting, and the rest.
pub(crate) fn split_rich(text: &str) -> (&str, &str) {
    if text.len() <= RICH_MAX {
        return (text, "");
    }
    let mut at = RICH_MAX;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    text.split_at(at)
}

/// What is past [`RICH_MAX`], added to `content` as plain text.
pub(crate) fn with_rest(mut content: Content, rest: &str) -> Content {
    if !rest.is_empty() {
        content.0.push(Segment::Text(rest.to_owned()));
    }
    content
}

/// Where text goes while a block is being read.
enum Target {
    Out,
    Quote,
    Code,
    Link,
}

/// Collects segments while a reader walks formatted text: the style in force, and the link, code block or quoted
/// block being read. Whatever the input, it never panics; tags that are not closed end with the text.
#[derive(Default)]
pub(crate) struct Builder {
    out: Vec<Segment>,
    bold: u16,
    italic: u16,
    strike: u16,
    code: u16,
    /// A link being read: its url and text.
    link: Option<(String, String)>,
    /// A code block being read: its language and lines.
    code_block: Option<(Option<String>, String)>,
    /// A quoted block being read (nested quotes and what they hold read as its lines).
    quote: Option<String>,
    quote_depth: u16,
    /// Open lists: the next number of an ordered one, `None` for bullets.
    lists: Vec<Option<u64>>,
    /// Elements whose text is not shown (HTML `script`, `style`, `head`, `title`).
    hidden: u16,
}

impl Builder {
    fn target(&self) -> Target {
        if self.quote.is_some() {
            Target::Quote
        } else if self.code_block.is_some() {
            Target::Code
        } else if self.link.is_some() {
            Target::Link
        } else {
            Target::Out
        }
    }

    fn style(&self) -> Style {
        Style { bold: self.bold > 0, italic: self.italic > 0, strike: self.strike > 0, code: self.code > 0 }
    }

    pub(crate) fn in_code_block(&self) -> bool {
        self.code_block.is_some()
    }

    /// Whether the text being read is at the start of a line (where collapsed HTML whitespace is dropped).
    fn at_line_start(&self) -> bool {
        let ends = |s: &str| s.is_empty() || s.ends_with('\n');
        match self.target() {
            Target::Quote => self.quote.as_deref().is_none_or(ends),
            Target::Code => true,
            Target::Link => self.link.as_ref().is_none_or(|(_, t)| t.is_empty()),
            Target::Out => match self.out.last() {
                None => true,
                Some(Segment::Text(t) | Segment::Styled { text: t, .. }) => ends(t),
                Some(Segment::CodeBlock { .. } | Segment::Quote { .. }) => true,
                Some(_) => false,
            },
        }
    }

    pub(crate) fn text(&mut self, text: &str) {
        if text.is_empty() || self.hidden > 0 {
            return;
        }
        let style = self.style();
        match self.target() {
            Target::Quote => self.quote.get_or_insert_default().push_str(text),
            Target::Code => self.code_block.get_or_insert_default().1.push_str(text),
            Target::Link => self.link.get_or_insert_default().1.push_str(text),
            Target::Out => match self.out.last_mut() {
                Some(Segment::Text(last)) if style.is_plain() => last.push_str(text),
                Some(Segment::Styled { text: last, style: s }) if *s == style => last.push_str(text),
                _ if style.is_plain() => self.out.push(Segment::Text(text.to_owned())),
                _ => self.out.push(Segment::Styled { text: text.to_owned(), style }),
            },
        }
    }

    /// HTML text outside `pre`: runs of white space read as one space, none at the start of a line.
    pub(crate) fn collapsed_text(&mut self, text: &str) {
        let mut collapsed = String::with_capacity(text.len());
        let mut space = self.at_line_start();
        for c in text.chars() {
            if c.is_ascii_whitespace() {
                if !space {
                    collapsed.push(' ');
                    space = true;
                }
            } else {
                collapsed.push(c);
                space = false;
            }
        }
        self.text(&collapsed);
    }

    pub(crate) fn inline_code(&mut self, code: &str) {
        self.code += 1;
        self.text(code);
        self.code -= 1;
    }

    /// A line break, plain whatever style it is read in.
    pub(crate) fn line_break(&mut self) {
        match self.target() {
            Target::Out => self.push_plain_break(),
            _ => self.text("\n"),
        }
    }

    fn push_plain_break(&mut self) {
        match self.out.last_mut() {
            Some(Segment::Text(last)) => {
                let kept = last.trim_end_matches([' ', '\t']).len();
                last.truncate(kept);
                last.push('\n');
            }
            _ => self.out.push(Segment::Text("\n".to_owned())),
        }
    }

    /// A paragraph, heading or list item begins: on a line of its own.
    pub(crate) fn block_start(&mut self) {
        if self.at_line_start() {
            return;
        }
        match self.target() {
            Target::Out => self.push_plain_break(),
            Target::Link => {}
            _ => self.text("\n"),
        }
    }

    pub(crate) fn set(&mut self, style: Style, on: bool) {
        let step = |n: &mut u16| *n = if on { n.saturating_add(1) } else { n.saturating_sub(1) };
        if style.bold {
            step(&mut self.bold);
        }
        if style.italic {
            step(&mut self.italic);
        }
        if style.strike {
            step(&mut self.strike);
        }
        if style.code {
            step(&mut self.code);
        }
    }

    pub(crate) fn list_start(&mut self, first: Option<u64>) {
        self.lists.push(first);
    }

    pub(crate) fn list_end(&mut self) {
        self.lists.pop();
    }

    pub(crate) fn item_start(&mut self) {
        self.block_start();
        let marker = match self.lists.last_mut() {
            Some(Some(n)) => {
                let marker = format!("{n}. ");
                *n = n.saturating_add(1);
                marker
            }
            _ => "- ".to_owned(),
        };
        let style = (self.bold, self.italic, self.strike, self.code);
        (self.bold, self.italic, self.strike, self.code) = (0, 0, 0, 0);
        self.text(&marker);
        (self.bold, self.italic, self.strike, self.code) = style;
    }

    pub(crate) fn link_start(&mut self, url: &str) {
        if self.link.is_none() && matches!(self.target(), Target::Out | Target::Quote) {
            self.link = Some((url.to_owned(), String::new()));
        }
    }

    pub(crate) fn link_end(&mut self) {
        let Some((url, text)) = self.link.take() else { return };
        match self.target() {
            Target::Quote => {
                let mut plain = String::new();
                super::push_plain(&mut plain, &link(url, text));
                self.text(&plain);
            }
            _ if url.is_empty() => self.text(&text),
            _ => self.out.push(link(url, text)),
        }
    }

    pub(crate) fn image(&mut self, url: &str) {
        if url.is_empty() || self.hidden > 0 {
            return;
        }
        match self.target() {
            Target::Out => self.out.push(Segment::Image { url: url.to_owned() }),
            _ => self.text(url),
        }
    }

    pub(crate) fn code_start(&mut self, lang: Option<String>) {
        if matches!(self.target(), Target::Out) {
            self.code_block = Some((lang.filter(|l| !l.is_empty()), String::new()));
        } else {
            self.block_start();
        }
    }

    pub(crate) fn code_end(&mut self) {
        if self.quote.is_some() {
            return;
        }
        if let Some((lang, code)) = self.code_block.take() {
            let code = code.trim_end_matches('\n').to_owned();
            if !code.is_empty() {
                self.out.push(Segment::CodeBlock { code, lang });
            }
        }
    }

    pub(crate) fn quote_start(&mut self) {
        self.quote_depth = self.quote_depth.saturating_add(1);
        if self.quote.is_none() {
            self.quote = Some(String::new());
        } else {
            self.block_start();
        }
    }

    pub(crate) fn quote_end(&mut self) {
        self.quote_depth = self.quote_depth.saturating_sub(1);
        if self.quote_depth == 0
            && let Some(text) = self.quote.take()
        {
            let text = text.trim_end().to_owned();
            if !text.is_empty() {
                self.out.push(Segment::Quote { text });
            }
        }
    }

    pub(crate) fn hide(&mut self, on: bool) {
        self.hidden = if on { self.hidden.saturating_add(1) } else { self.hidden.saturating_sub(1) };
    }

    /// The content read: open blocks closed, no line breaks at either end, no empty text.
    pub(crate) fn finish(mut self) -> Content {
        self.link_end();
        self.quote_depth = 1;
        self.quote_end();
        self.code_end();
        let mut out = self.out;
        out.retain(|s| !matches!(s, Segment::Text(t) | Segment::Styled { text: t, .. } if t.is_empty()));
        if let Some(Segment::Text(first)) = out.first_mut() {
            let trimmed = first.trim_start_matches('\n').len();
            first.replace_range(..first.len() - trimmed, "");
        }
        if let Some(Segment::Text(last)) = out.last_mut() {
            let kept = last.trim_end().len();
            last.truncate(kept);
        }
        out.retain(|s| !matches!(s, Segment::Text(t) if t.is_empty()));
        Content(out)
    }
}

/// A link; its text kept only where it says more than the url.
fn link(url: String, text: String) -> Segment {
    let text = (!text.is_empty() && text != url).then_some(text);
    Segment::Link { url, text }
}
