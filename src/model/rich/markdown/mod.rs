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
mod tests;
