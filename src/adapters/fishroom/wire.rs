//! Fishroom's JSON as it travels (`docs/platforms/fishroom.md`); nothing here leaves the adapter.

use serde::{Deserialize, Serialize};

use crate::model::{Content, Segment, Style};

/// The answer of `GET /api/messages?room=`.
#[derive(Debug, Deserialize)]
pub struct PollAnswer {
    /// Kept as raw values so one bad item does not cost the others; at most [`MAX_ITEMS`] (the server's queue
    /// holds 15 a token), counted as they are read.
    pub messages: crate::adapters::bounded::Bounded<Box<serde_json::value::RawValue>, MAX_ITEMS>,
}

/// Items of one poll answer: the server keeps 15 a token; more is refused before they are built.
pub const MAX_ITEMS: usize = 100;

/// One message of the feed (all fields may be `null`; unknown fields are ignored).
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, Eq)]
#[serde(default)]
pub struct FishMessage {
    pub channel: Option<String>,
    pub sender: Option<String>,
    pub receiver: Option<String>,
    pub room: Option<String>,
    pub mtype: Option<String>,
    pub content: Option<String>,
    pub media_url: Option<String>,
    /// IRC formatting: `[[{"color": …, "style": ["bold", "italic", "underline"]}, "text"], …]` (`models.py
    /// RichTextField`), the texts together making `content`. Kept as a value: a malformed one costs only itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rich_text: Option<serde_json::Value>,
    pub date: Option<String>,
    pub time: Option<String>,
    pub botmsg: Option<bool>,
}

/// The body of `POST /api/messages/<room>/`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PostBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<&'a str>,
    pub content: &'a str,
}

/// The JSON error and success bodies: `{"message": "..."}`.
#[derive(Debug, Deserialize)]
pub struct StatusBody {
    pub message: String,
}

/// Parses a poll answer: an error for a body that is not `{"messages": [...]}`, else one result per item,
/// so that one bad item costs only itself.
pub fn parse_poll(body: &[u8]) -> Result<Vec<Result<FishMessage, String>>, String> {
    let answer: PollAnswer = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(answer.messages.0.iter().map(|item| serde_json::from_str(item.get()).map_err(|e| e.to_string())).collect())
}

/// What a feed message says, as segments: the text (bold and italic where its `rich_text` says so), then the media
/// it carries.
pub fn content_of(message: &FishMessage) -> Content {
    let mut segments = Vec::new();
    if let Some(text) = message.content.as_deref().filter(|t| !t.is_empty()) {
        match message.rich_text.as_ref().and_then(|rich| styled(rich, text)) {
            Some(styled) => segments.extend(styled),
            None => segments.push(Segment::Text(text.to_owned())),
        }
    }
    if let Some(url) = message.media_url.as_deref().filter(|u| !u.is_empty()) {
        let url = url.to_owned();
        let media = match message.mtype.as_deref() {
            Some("photo" | "animation") => Segment::Image { url },
            Some("sticker") => Segment::Sticker { url, id: None },
            Some("audio") => Segment::Audio { url, seconds: None },
            Some("video") => Segment::Video { url },
            Some("file") => Segment::File { url, name: None, size: None },
            _ => Segment::Link { url, text: None },
        };
        if !segments.is_empty() {
            segments.push(Segment::Text(" ".to_owned()));
        }
        segments.push(media);
    }
    Content(segments)
}

/// `rich_text` as segments, when it is the documented list and its texts make `content` (else the plain text
/// stands: colours and underlining have no place in the model and are dropped).
fn styled(rich: &serde_json::Value, content: &str) -> Option<Vec<Segment>> {
    let mut out: Vec<Segment> = Vec::new();
    let mut whole = String::new();
    for item in rich.as_array()? {
        let [style, text] = item.as_array()?.as_slice() else { return None };
        let text = text.as_str()?;
        whole.push_str(text);
        let names = style.get("style").and_then(|s| s.as_array());
        let has = |name: &str| names.is_some_and(|list| list.iter().any(|s| s.as_str() == Some(name)));
        let style = Style { bold: has("bold"), italic: has("italic"), ..Style::default() };
        match out.last_mut() {
            Some(Segment::Text(last)) if style.is_plain() => last.push_str(text),
            Some(Segment::Styled { text: last, style: s }) if *s == style => last.push_str(text),
            _ if text.is_empty() => {}
            _ if style.is_plain() => out.push(Segment::Text(text.to_owned())),
            _ => out.push(Segment::Styled { text: text.to_owned(), style }),
        }
    }
    (whole == content).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_message_object() {
        let body = r#"{"messages":[{"channel":"telegram","sender":"alice","receiver":"-100123","room":"tuna",
            "mtype":"photo","content":"cat","media_url":"https://img/cat.jpg","rich_text":null,"date":"2026-11-25",
            "time":"19:00:00","botmsg":false,"opt":{},"route":null}]}"#;
        let answer: PollAnswer = serde_json::from_str(body).unwrap();
        let message: FishMessage = serde_json::from_str(answer.messages.0[0].get()).unwrap();
        assert_eq!(message.sender.as_deref(), Some("alice"));
        assert_eq!(
            content_of(&message).0,
            vec![
                Segment::Text("cat".into()),
                Segment::Text(" ".into()),
                Segment::Image { url: "https://img/cat.jpg".into() }
            ]
        );
    }

    #[test]
    fn irc_formatting_reads_as_styles() {
        let message = |rich: serde_json::Value, content: &str| FishMessage {
            content: Some(content.into()),
            rich_text: Some(rich),
            ..FishMessage::default()
        };
        // As `TextFormatter.parseIRC` gives "a \x02bold\x02 \x1d\x02both\x0f \x033red": colour dropped.
        let rich = serde_json::json!([
            [{"color": "", "style": []}, "a "],
            [{"color": "", "style": ["bold"]}, "bold"],
            [{"color": "", "style": []}, " "],
            [{"color": "", "style": ["italic", "bold"]}, "both"],
            [{"color": [3, null], "style": ["underline"]}, " red"],
        ]);
        assert_eq!(
            content_of(&message(rich.clone(), "a bold both red")).0,
            vec![
                Segment::Text("a ".into()),
                Segment::Styled { text: "bold".into(), style: Style::BOLD },
                Segment::Text(" ".into()),
                Segment::Styled { text: "both".into(), style: Style { bold: true, italic: true, ..Style::default() } },
                Segment::Text(" red".into()),
            ]
        );
        // Texts that do not make the content, or a shape that is not the documented one: the content stands.
        for rich in [rich, serde_json::json!({"bold": true}), serde_json::json!([["x"]]), serde_json::json!([[{}, 1]])]
        {
            assert_eq!(content_of(&message(rich, "something else")).0, vec![Segment::Text("something else".into())]);
        }
    }

    #[test]
    fn media_types_map_to_segments() {
        let of = |mtype: &str| {
            let m = FishMessage { mtype: Some(mtype.into()), media_url: Some("u".into()), ..Default::default() };
            content_of(&m).0.pop().unwrap()
        };
        assert!(matches!(of("sticker"), Segment::Sticker { .. }));
        assert!(matches!(of("file"), Segment::File { .. }));
        assert!(matches!(of("audio"), Segment::Audio { .. }));
        assert!(matches!(of("video"), Segment::Video { .. }));
        assert!(matches!(of("location"), Segment::Link { .. }));
    }

    const MIXED: &str = include_str!("../../../tests/fixtures/wire/fishroom/poll_mixed.json");

    #[test]
    fn captured_feed_maps_every_kind() {
        let body = crate::corpus::split(MIXED).1.as_bytes();
        let items: Vec<FishMessage> = parse_poll(body).unwrap().into_iter().map(Result::unwrap).collect();
        assert_eq!(items.len(), 8);
        // Text passes through untouched: no HTML unescaping on a plain-text platform.
        assert_eq!(content_of(&items[0]), Content::text("有人在吗？ <b>not bold</b> &amp; co"));
        assert_eq!(content_of(&items[1]).0, vec![Segment::Image { url: "https://ex.example/photo/abc.jpg".into() }]);
        assert!(matches!(content_of(&items[2]).0[..], [Segment::Sticker { .. }]));
        // IRC formatting: bold kept, colour dropped.
        assert_eq!(content_of(&items[3]).0, [Segment::Styled { text: "bold and red".into(), style: Style::BOLD }]);
        assert_eq!(items[4].mtype.as_deref(), Some("event"));
        assert_eq!(items[6].channel.as_deref(), Some("api-chatbridge"));
        assert_eq!(items[7].sender, None);
        assert!(matches!(content_of(&items[7]).0[..], [Segment::Text(_), Segment::Text(_), Segment::Video { .. }]));
        let empty = crate::corpus::split(include_str!("../../../tests/fixtures/wire/fishroom/poll_empty.json")).1;
        assert!(parse_poll(empty.as_bytes()).unwrap().is_empty());
        let forbidden = crate::corpus::split(include_str!("../../../tests/fixtures/wire/fishroom/forbidden.txt")).1;
        assert!(parse_poll(forbidden.as_bytes()).is_err());
    }

    #[test]
    fn the_post_body_and_answers_are_the_golden_ones() {
        use crate::corpus::{assert_json_shape, frames, json};
        let golden = json(include_str!("../../../tests/fixtures/wire/fishroom/post_request.json"));
        let ours = serde_json::to_value(PostBody { sender: Some("alice"), content: "hi" }).unwrap();
        assert_json_shape("post", &[&golden], &ours, &["sender", "content"]);
        let ok: StatusBody =
            serde_json::from_value(json(include_str!("../../../tests/fixtures/wire/fishroom/post_answer.json")))
                .unwrap();
        assert_eq!(ok.message, "OK");
        for line in frames(include_str!("../../../tests/fixtures/wire/fishroom/bad_requests.jsonl")) {
            let body: StatusBody = serde_json::from_str(line).unwrap();
            assert!(body.message.starts_with("Cannot") || body.message.starts_with("Unable"), "{}", body.message);
        }
    }

    #[test]
    fn one_bad_item_costs_only_itself() {
        let items = parse_poll(br#"{"messages": [42, {"content": "ok"}, {"sender": 7}]}"#).unwrap();
        assert_eq!(items.len(), 3);
        assert!(items[0].is_err() && items[2].is_err());
        assert_eq!(items[1].as_ref().unwrap().content.as_deref(), Some("ok"));
        assert!(parse_poll(b"<html>502 Bad Gateway</html>").is_err());
        assert!(parse_poll(br#"{"message": "no list"}"#).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_poll(&body);
        }

        #[test]
        fn truncated_answers_never_panic(cut in 0usize..400) {
            let body = r#"{"messages":[{"channel":"telegram","sender":"你好","room":"tuna","mtype":"photo","content":"<b>cat</b> &amp;","media_url":"https://img/cat.jpg","rich_text":[[{"color":""},"x"]],"date":"2026-11-25","time":"19:00:00","botmsg":false,"opt":{},"route":null}]}"#.as_bytes();
            let _ = parse_poll(&body[..cut.min(body.len())]);
        }
    }

    #[test]
    fn nulls_and_missing_fields_are_accepted() {
        let m: FishMessage = serde_json::from_str(r#"{"sender":null,"content":"x","extra":1}"#).unwrap();
        assert_eq!(m.sender, None);
        assert_eq!(content_of(&m), Content::text("x"));
    }
}
