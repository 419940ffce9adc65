//! Markdown read and written back.

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
