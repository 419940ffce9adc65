//! Markdown in (Yunhu's `content_type` 3, IIROSE's markdown messages) with pulldown-cmark, and out for the
//! platforms that show it: plain text escaped so that it reads as it was written, formatting as CommonMark.

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

use super::Builder;
use crate::model::{Content, Segment, Style, push_plain};

/// Markdown read into rich text: emphasis, strong, strikethrough, inline code, code blocks, block quotes and links
/// kept; headings read as bold lines, list items as `- ` or `1. ` lines, images as images, inline HTML as HTML.
pub fn parse(text: &str) -> Content {
    let (text, rest) = super::split_rich(text);
    super::with_rest(parse_whole(text), rest)
}

fn parse_whole(text: &str) -> Content {
    let mut b = Builder::default();
    let mut in_image = 0u16;
    for event in Parser::new_ext(text, Options::ENABLE_STRIKETHROUGH) {
        match event {
            Event::Start(tag) => match tag {
                Tag::Paragraph => b.block_start(),
                Tag::Heading { .. } => {
                    b.block_start();
                    b.set(Style::BOLD, true);
                }
                Tag::BlockQuote(_) => b.quote_start(),
                Tag::CodeBlock(kind) => b.code_start(match kind {
                    CodeBlockKind::Fenced(info) => info.split_whitespace().next().map(str::to_owned),
                    CodeBlockKind::Indented => None,
                }),
                Tag::List(first) => b.list_start(first),
                Tag::Item => b.item_start(),
                Tag::Emphasis => b.set(Style::ITALIC, true),
                Tag::Strong => b.set(Style::BOLD, true),
                Tag::Strikethrough => b.set(Style::STRIKE, true),
                Tag::Link { dest_url, .. } => b.link_start(&dest_url),
                Tag::Image { dest_url, .. } => {
                    b.image(&dest_url);
                    in_image += 1;
                }
                _ => {}
            },
            Event::End(tag) => match tag {
                TagEnd::Heading(_) => b.set(Style::BOLD, false),
                TagEnd::BlockQuote(_) => b.quote_end(),
                TagEnd::CodeBlock => b.code_end(),
                TagEnd::List(_) => b.list_end(),
                TagEnd::Emphasis => b.set(Style::ITALIC, false),
                TagEnd::Strong => b.set(Style::BOLD, false),
                TagEnd::Strikethrough => b.set(Style::STRIKE, false),
                TagEnd::Link => b.link_end(),
                TagEnd::Image => in_image = in_image.saturating_sub(1),
                _ => {}
            },
            // An image's alternative text is not shown beside the image.
            Event::Text(_) | Event::Code(_) if in_image > 0 => {}
            Event::Text(text) => b.text(&text),
            Event::Code(code) => b.inline_code(&code),
            Event::SoftBreak | Event::HardBreak => b.line_break(),
            Event::Html(html) | Event::InlineHtml(html) => super::html::feed(&mut b, &html),
            Event::Rule => {
                b.block_start();
                b.text("---");
            }
            _ => {}
        }
    }
    b.finish()
}

/// Content as markdown: [`push`] for each segment, no white space at the end.
pub fn render(content: &Content) -> String {
    let mut out = String::new();
    for segment in &content.0 {
        push(&mut out, segment);
    }
    let kept = out.trim_end().len();
    out.truncate(kept);
    out
}

fn at_line_start(out: &str) -> bool {
    out.is_empty() || out.ends_with('\n')
}

fn new_line(out: &mut String) {
    if !at_line_start(out) {
        out.push('\n');
    }
}

/// Appends one segment as markdown.
pub fn push(out: &mut String, segment: &Segment) {
    match segment {
        Segment::Text(text) => escape(out, text),
        Segment::Styled { text, style } => styled(out, text, *style),
        Segment::CodeBlock { code, lang } => {
            new_line(out);
            let fence = "`".repeat(longest_run(code, '`').max(2) + 1);
            let lang: String =
                lang.as_deref().unwrap_or("").chars().filter(|c| c.is_alphanumeric() || "+-#.".contains(*c)).collect();
            out.push_str(&fence);
            out.push_str(&lang);
            out.push('\n');
            out.push_str(code.trim_end_matches('\n'));
            out.push('\n');
            out.push_str(&fence);
            out.push('\n');
        }
        Segment::Quote { text } => {
            new_line(out);
            for line in text.trim_end_matches('\n').split('\n') {
                out.push_str("> ");
                escape_line(out, line, true);
                out.push_str("  \n");
            }
            // A blank line ends the quote: what follows is not read as more of it.
            out.push('\n');
        }
        Segment::Mention { name, .. } => {
            out.push('@');
            escape(out, name);
        }
        Segment::Link { url, text: Some(text) } if text != url => {
            out.push('[');
            escape(out, text);
            out.push_str("](");
            for c in url.chars() {
                match c {
                    ' ' => out.push_str("%20"),
                    '(' => out.push_str("%28"),
                    ')' => out.push_str("%29"),
                    '<' => out.push_str("%3C"),
                    '>' => out.push_str("%3E"),
                    c if c.is_control() => {}
                    c => out.push(c),
                }
            }
            out.push(')');
        }
        Segment::Link { url, .. }
            if url.contains(':') && !url.contains(|c: char| c.is_whitespace() || c == '<' || c == '>') =>
        {
            out.push('<');
            out.push_str(url);
            out.push('>');
        }
        other => {
            let mut plain = String::new();
            push_plain(&mut plain, other);
            if !at_line_start(out) && !plain.starts_with(' ') && matches!(other, Segment::Image { .. }) {
                out.push(' ');
            }
            escape(out, plain.trim_start());
        }
    }
}

fn longest_run(text: &str, of: char) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == of { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

fn styled(out: &mut String, text: &str, style: Style) {
    let core = text.trim();
    if core.is_empty() || style.is_plain() {
        return escape(out, text);
    }
    // White space inside the markers would keep them from being read as markers.
    escape(out, &text[..text.len() - text.trim_start().len()]);
    let markers: String = [(style.bold, "**"), (style.italic, "*"), (style.strike, "~~")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, m)| *m)
        .collect();
    out.push_str(&markers);
    if style.code {
        let core = core.replace('\n', " ");
        let fence = "`".repeat(longest_run(&core, '`') + 1);
        let pad = if core.starts_with('`') || core.ends_with('`') { " " } else { "" };
        out.push_str(&fence);
        out.push_str(pad);
        out.push_str(&core);
        out.push_str(pad);
        out.push_str(&fence);
    } else {
        escape(out, core);
    }
    out.extend(markers.chars().rev());
    escape(out, &text[text.trim_end().len()..]);
}

/// Plain text as markdown that reads the same: its punctuation escaped where markdown would read it as markup, line
/// breaks as hard breaks.
pub fn escape(out: &mut String, text: &str) {
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push_str("  \n");
        }
        let line_start = at_line_start(out);
        escape_line(out, line, line_start);
    }
}

fn escape_line(out: &mut String, line: &str, line_start: bool) {
    let mut line = line;
    if line_start {
        // Indentation would make a code block, `#` a heading, `>` a quote, `-`, `+` or `1.` a list.
        line = line.trim_start_matches([' ', '\t']);
        if line.starts_with(['#', '>', '-', '+', '=']) {
            out.push('\\');
        } else if let Some(digits) = line.find(|c: char| !c.is_ascii_digit())
            && digits > 0
            && line[digits..].starts_with(['.', ')'])
        {
            out.push_str(&line[..digits]);
            out.push('\\');
            line = &line[digits..];
        }
    }
    for c in line.chars() {
        if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '~' | '&' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rich::Builder;

    fn styled(text: &str, style: Style) -> Segment {
        Segment::Styled { text: text.into(), style }
    }

    #[test]
    fn markdown_reads_into_the_model() {
        let content = parse(
            "# Title\nsome **bold**, *it*, ~~gone~~ and `x_y`\nsee [the site](https://example.com) or <https://a.b>\n\n\
             ```rust\nfn main() {}\n```\n\n> quoted *line*\n> two\n\n- one\n- two\n\n3. three\n\n![alt](https://i/x.png)",
        );
        assert_eq!(
            content.0,
            vec![
                styled("Title", Style::BOLD),
                Segment::Text("\nsome ".into()),
                styled("bold", Style::BOLD),
                Segment::Text(", ".into()),
                styled("it", Style::ITALIC),
                Segment::Text(", ".into()),
                styled("gone", Style::STRIKE),
                Segment::Text(" and ".into()),
                styled("x_y", Style::CODE),
                Segment::Text("\nsee ".into()),
                Segment::Link { url: "https://example.com".into(), text: Some("the site".into()) },
                Segment::Text(" or ".into()),
                Segment::Link { url: "https://a.b".into(), text: None },
                Segment::CodeBlock { code: "fn main() {}".into(), lang: Some("rust".into()) },
                Segment::Quote { text: "quoted line\ntwo".into() },
                Segment::Text("- one\n- two\n3. three\n".into()),
                Segment::Image { url: "https://i/x.png".into() },
            ]
        );
    }

    #[test]
    fn inline_html_in_markdown_reads_as_html() {
        assert_eq!(
            parse("a <b>b</b><br>c").0,
            [Segment::Text("a ".into()), styled("b", Style::BOLD), Segment::Text("\nc".into())]
        );
    }

    #[test]
    fn plain_text_written_as_markdown_reads_back_the_same() {
        for text in [
            "*not bold* _nor this_ `nor code` [nor](link) <nor html> ~~nor struck~~ &amp; a|b \\",
            "# not a heading\n> not a quote\n- not a list\n+ nor this\n1. nor this\n2) nor this\n    not code\n===",
            "2024. was a year",
        ] {
            let mut md = String::new();
            escape(&mut md, text);
            let expected = text.replace("\n    ", "\n");
            assert_eq!(parse(&md).to_plain_text(), expected, "{md}");
        }
    }

    #[test]
    fn formatting_is_written_as_markdown() {
        let content = Content(vec![
            Segment::Text("[yunhu] bob: ".into()),
            styled("very bold ", Style::BOLD),
            styled("both", Style { bold: true, italic: true, ..Style::default() }),
            Segment::Text(" ".into()),
            styled("a`b", Style::CODE),
            Segment::Text(" ".into()),
            Segment::Link { url: "https://e.com/a_(b)".into(), text: Some("the *site*".into()) },
            Segment::Text(":".into()),
            Segment::CodeBlock { code: "```\ninner\n```".into(), lang: Some("md".into()) },
            Segment::Quote { text: "# q".into() },
            Segment::Text("after".into()),
        ]);
        let md = render(&content);
        assert_eq!(
            md,
            "\\[yunhu\\] bob: **very bold** ***both*** ``a`b`` [the \\*site\\*](https://e.com/a\\_%28b%29):\n\
             ````md\n```\ninner\n```\n````\n> \\# q  \n\nafter"
                .replace("a\\_%28", "a_%28")
        );
        let back = parse(&md);
        assert_eq!(back.to_plain_text(), content.to_plain_text().replace("a_(b)", "a_%28b%29"));
        assert!(back.0.contains(&styled("very bold", Style::BOLD)));
        assert!(back.0.contains(&Segment::CodeBlock { code: "```\ninner\n```".into(), lang: Some("md".into()) }));
    }

    #[test]
    fn broken_markdown_never_panics() {
        for md in ["**open", "[a](", "```\nunclosed", "> > > deep", "<b>open <a href=x>", "* * *", "1. \n2."] {
            let _ = parse(md);
        }
        let _ = Builder::default().finish();
    }

    /// A hostile server may send a markup character a hundred thousand times over: it is read like anything else,
    /// without a panic or a stack overflow (the builder counts nesting rather than recursing).
    #[test]
    fn long_runs_of_markup_characters_are_read() {
        for unit in ["*", "_", "[", "](", "`", "> ", "<b>", "<a href=x>", "~~", "- ", "\n"] {
            let text = unit.repeat(100_000 / unit.len());
            let _ = parse(&text);
            let _ = crate::model::rich::html::parse(&text);
            let mut out = String::new();
            escape(&mut out, &text);
        }
    }

    /// One styled word or a separator, for the round trip below.
    fn piece() -> impl proptest::strategy::Strategy<Value = Segment> {
        use proptest::prelude::*;
        let word = "[a-zA-Z0-9一-龥]([a-zA-Z0-9一-龥*_`#>\\[\\]<~&|!.-]{0,8}[a-zA-Z0-9一-龥])?";
        prop_oneof![
            word.prop_map(Segment::Text),
            (word, 0u8..16).prop_map(|(text, bits)| {
                let style =
                    Style { bold: bits & 1 != 0, italic: bits & 2 != 0, strike: bits & 4 != 0, code: bits & 8 != 0 };
                if style.is_plain() { Segment::Text(text) } else { Segment::Styled { text, style } }
            }),
            Just(Segment::Text("\n".into())),
        ]
    }

    /// Neighbouring segments of one style as one, white space around line breaks and at the ends dropped, blank
    /// lines as one break: what markdown keeps of a text.
    fn normal(segments: Vec<Segment>) -> Vec<Segment> {
        let mut out: Vec<Segment> = Vec::new();
        for s in segments {
            match (out.last_mut(), s) {
                (Some(Segment::Text(a)), Segment::Text(b)) => a.push_str(&b),
                (Some(Segment::Styled { text: a, style: x }), Segment::Styled { text: b, style: y }) if *x == y => {
                    a.push_str(&b)
                }
                (_, s) => out.push(s),
            }
        }
        let breaks = regex::Regex::new(r"[ \n]*\n[ \n]*").unwrap();
        for s in &mut out {
            if let Segment::Text(t) = s {
                *t = breaks.replace_all(t, "\n").into_owned();
            }
        }
        if let Some(Segment::Text(t)) = out.first_mut() {
            *t = t.trim_start().to_owned();
        }
        if let Some(Segment::Text(t)) = out.last_mut() {
            *t = t.trim_end().to_owned();
        }
        out.retain(|s| !matches!(s, Segment::Text(t) if t.is_empty()));
        out
    }

    proptest::proptest! {
        #[test]
        fn written_markdown_reads_back_as_written(pieces in proptest::collection::vec(piece(), 1..12)) {
            // Words apart: markdown cannot set two styled runs side by side without a space in every case.
            let mut content = Vec::new();
            for (i, piece) in pieces.into_iter().enumerate() {
                if i > 0 {
                    content.push(Segment::Text(" ".into()));
                }
                content.push(piece);
            }
            let content = Content(content);
            let md = render(&content);
            let back = parse(&md);
            proptest::prop_assert_eq!(normal(back.0), normal(content.0), "markdown: {:?}", md);
        }
    }
}
