//! Splitting a message longer than its platform allows into parts, never inside a link, a mention or a code block
//! that fits a part.

use crate::model::{Content, Segment, Style, push_plain};

/// Splits content longer than `max` characters into text parts, breaking at a newline or space near
/// the end of each part where there is one, and never inside a link, a mention or a code block unless that alone
/// is longer than a part.
pub fn split(content: Content, max: Option<usize>) -> Vec<Content> {
    let Some(max) = max.filter(|m| *m > 0) else { return vec![content] };
    let (text, kept) = text_and_unbroken(&content);
    if text.chars().count() <= max {
        return vec![content];
    }
    let mut parts = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let start = text.len() - rest.len();
        let hard_end = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let mut end = if hard_end == rest.len() || rest[hard_end..].starts_with(char::is_whitespace) {
            hard_end
        } else {
            match rest[..hard_end].rfind(['\n', ' ']) {
                Some(i) if i > hard_end / 2 => i + 1,
                _ => hard_end,
            }
        };
        // A cut inside a link, a mention or a code block moves before it, unless it begins the part.
        if let Some((from, _)) = kept.iter().find(|(from, to)| *from < start + end && start + end < *to)
            && *from > start
        {
            end = from - start;
        }
        parts.push(Content::text(rest[..end].trim_end()));
        rest = rest[end..].trim_start_matches([' ', '\n']);
    }
    parts.retain(|p| !p.0.is_empty());
    parts
}

/// Links in text (`http://`, `https://`) and fenced code blocks.
static UNBROKEN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"(?s)```.*?```|(?i)\bhttps?://[^\s<>]+").expect("a valid expression")
});

/// The content as text, and the byte ranges of it that a split must not cut: mentions, links, code blocks.
fn text_and_unbroken(content: &Content) -> (String, Vec<(usize, usize)>) {
    let mut text = String::new();
    let mut kept = Vec::new();
    for segment in &content.0 {
        let from = text.len();
        push_plain(&mut text, segment);
        match segment {
            Segment::Text(_) => {
                kept.extend(UNBROKEN.find_iter(&text[from..]).map(|m| (from + m.start(), from + m.end())));
            }
            Segment::Mention { .. }
            | Segment::Link { .. }
            | Segment::RoomLink { .. }
            | Segment::CodeBlock { .. }
            | Segment::Styled { style: Style { code: true, .. }, .. } => kept.push((from, text.len())),
            _ => {}
        }
    }
    (text, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_spaces_near_the_limit_and_keeps_every_character() {
        let parts = split(Content::text("一二三四五 六七八九十 abc"), Some(6));
        let texts: Vec<String> = parts.iter().map(Content::to_plain_text).collect();
        assert_eq!(texts, ["一二三四五", "六七八九十", "abc"]);
        assert_eq!(split(Content::text("short"), Some(6)).len(), 1);
        assert_eq!(split(Content::text("no limit at all"), None).len(), 1);
    }

    #[test]
    fn a_split_never_cuts_a_link_a_mention_or_a_code_block_that_fits_a_part() {
        let texts = |content: Content, max| -> Vec<String> {
            split(content, Some(max)).iter().map(Content::to_plain_text).collect()
        };
        let url = "https://example.com/a/long/path";
        assert_eq!(texts(Content::text(format!("see {url} now")), 34), ["see", url, "now"]);
        let mention = Segment::Mention { user: None, name: "a_rather_long_name".into() };
        let content = Content(vec![Segment::Text("hello there ".into()), mention, Segment::Text(" bye".into())]);
        assert_eq!(texts(content, 25), ["hello there", "@a_rather_long_name bye"]);
        let code = "```\nlet x = 1;\n```";
        assert_eq!(texts(Content::text(format!("look:{code} ok")), 20), ["look:", code, "ok"]);
        // What is longer than a part is cut, as it must be.
        let long = "https://example.com/".to_owned() + &"x".repeat(30);
        assert_eq!(texts(Content::text(long.clone()), 20).concat(), long);
    }

    proptest::proptest! {
        #[test]
        fn parts_respect_the_limit_and_lose_no_text(text in "\\PC{0,200}", max in 1usize..40) {
            let parts = split(Content::text(text.clone()), Some(max));
            let mut joined = String::new();
            for part in &parts {
                let part = part.to_plain_text();
                proptest::prop_assert!(part.chars().count() <= max);
                joined.push_str(&part);
            }
            let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            proptest::prop_assert_eq!(squash(&joined), squash(&text));
        }
    }
}
