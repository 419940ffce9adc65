//! HTML (Yunhu's `content_type` 8, inline HTML in markdown) read into rich text: the tags of the model (`b`,
//! `strong`, `i`, `em`, `s`, `del`, `strike`, `code`, `pre`, `a`, `br`, `blockquote`, `img`, paragraphs, headings,
//! lists) kept, others read for their text, `script`, `style`, `head` and `title` dropped. html5gum tokenises (and
//! decodes character references); nothing here builds a document tree.

use html5gum::{Token, Tokenizer};

use super::Builder;
use crate::model::{Content, Style};

pub fn parse(html: &str) -> Content {
    let (html, rest) = super::split_rich(html);
    let mut builder = Builder::default();
    feed(&mut builder, html);
    super::with_rest(builder.finish(), rest)
}

fn attribute(tag: &html5gum::StartTag<()>, name: &str) -> Option<String> {
    tag.attributes.get(name.as_bytes()).map(|v| String::from_utf8_lossy(v).trim().to_owned())
}

/// Reads a piece of HTML into the builder (a whole message, or one inline tag of markdown).
pub(crate) fn feed(builder: &mut Builder, html: &str) {
    for Ok(token) in Tokenizer::new(html) {
        match token {
            Token::StartTag(tag) => {
                let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                start(builder, &name, &tag);
                if tag.self_closing && !matches!(name.as_str(), "br" | "img" | "hr") {
                    end(builder, &name);
                }
            }
            Token::EndTag(tag) => end(builder, &String::from_utf8_lossy(&tag.name).to_ascii_lowercase()),
            Token::String(text) => {
                let text = String::from_utf8_lossy(&text);
                if builder.in_code_block() {
                    builder.text(&text);
                } else {
                    builder.collapsed_text(&text);
                }
            }
            Token::Comment(_) | Token::Doctype(_) | Token::Error(_) => {}
        }
    }
}

fn start(builder: &mut Builder, name: &str, tag: &html5gum::StartTag<()>) {
    match name {
        "b" | "strong" => builder.set(Style::BOLD, true),
        "i" | "em" => builder.set(Style::ITALIC, true),
        "s" | "del" | "strike" => builder.set(Style::STRIKE, true),
        "code" | "kbd" | "samp" | "tt" if !builder.in_code_block() => builder.set(Style::CODE, true),
        "pre" => builder.code_start(None),
        "a" => builder.link_start(&attribute(tag, "href").unwrap_or_default()),
        "br" => builder.line_break(),
        "hr" => {
            builder.block_start();
            builder.text("---");
            builder.line_break();
        }
        "img" => builder.image(&attribute(tag, "src").unwrap_or_default()),
        "blockquote" => builder.quote_start(),
        "ul" => builder.list_start(None),
        "ol" => builder.list_start(Some(attribute(tag, "start").and_then(|s| s.parse().ok()).unwrap_or(1))),
        "li" => builder.item_start(),
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
            builder.block_start();
            builder.set(Style::BOLD, true);
        }
        "p" | "div" | "tr" | "table" | "section" | "article" | "header" | "footer" | "dl" | "dt" | "dd" => {
            builder.block_start()
        }
        "script" | "style" | "head" | "title" | "template" => builder.hide(true),
        _ => {}
    }
}

fn end(builder: &mut Builder, name: &str) {
    match name {
        "b" | "strong" => builder.set(Style::BOLD, false),
        "i" | "em" => builder.set(Style::ITALIC, false),
        "s" | "del" | "strike" => builder.set(Style::STRIKE, false),
        "code" | "kbd" | "samp" | "tt" if !builder.in_code_block() => builder.set(Style::CODE, false),
        "pre" => builder.code_end(),
        "a" => builder.link_end(),
        "blockquote" => builder.quote_end(),
        "ul" | "ol" => builder.list_end(),
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
            builder.set(Style::BOLD, false);
            builder.block_start();
        }
        "p" | "div" | "li" | "tr" | "table" | "section" | "article" | "header" | "footer" | "dl" | "dt" | "dd" => {
            builder.block_start()
        }
        "script" | "style" | "head" | "title" | "template" => builder.hide(false),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::model::{Segment, Style};

    fn styled(text: &str, style: Style) -> Segment {
        Segment::Styled { text: text.into(), style }
    }

    #[test]
    fn the_model_s_tags_are_kept_and_the_rest_read_for_their_text() {
        let content = parse(
            "<html><head><title>t</title><style>p{color:red}</style></head><body>\
             <p>Hello <b>bold</b>, <em>it</em>, <del>gone</del> &amp; <code>x&lt;y</code></p>\
             <p>a <a href=\"https://example.com/?a=1&amp;b=2\">link</a><br>next   line</p>\
             <pre>fn main() {\n    1 &lt; 2\n}</pre>\
             <blockquote>said <b>so</b></blockquote><script>alert(1)</script>\
             <ul><li>one</li><li><span>two</span></li></ul><img src=\"https://i/x.png\"></body></html>",
        );
        assert_eq!(
            content.0,
            vec![
                Segment::Text("Hello ".into()),
                styled("bold", Style::BOLD),
                Segment::Text(", ".into()),
                styled("it", Style::ITALIC),
                Segment::Text(", ".into()),
                styled("gone", Style::STRIKE),
                Segment::Text(" & ".into()),
                styled("x<y", Style::CODE),
                Segment::Text("\na ".into()),
                Segment::Link { url: "https://example.com/?a=1&b=2".into(), text: Some("link".into()) },
                Segment::Text("\nnext line\n".into()),
                Segment::CodeBlock { code: "fn main() {\n    1 < 2\n}".into(), lang: None },
                Segment::Quote { text: "said so".into() },
                Segment::Text("- one\n- two\n".into()),
                Segment::Image { url: "https://i/x.png".into() },
            ]
        );
    }

    #[test]
    fn broken_html_never_panics_and_keeps_its_text() {
        for html in
            ["<b>open", "</b>close</i></a>", "<a href=x>unclosed <b>", "<<<>>>", "&bogus; &#xFFFFFF; <!--", "<pre>"]
        {
            let _ = parse(html);
        }
        assert_eq!(parse("<b>open").0, [styled("open", Style::BOLD)]);
        assert_eq!(parse("</b>close</i>").0, [Segment::Text("close".into())]);
        assert_eq!(parse("1 < 2 & 3").to_plain_text(), "1 < 2 & 3");
    }

    proptest::proptest! {
        #[test]
        fn any_input_reads_without_panicking(html in "(<[a-z/]{0,6}( [a-z]{1,4}=\"[^\"]{0,8}\")?>|[^<]{0,12}){0,30}") {
            let _ = parse(&html);
        }
    }
}
