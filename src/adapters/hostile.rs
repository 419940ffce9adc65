//! Every wire parser against hostile input: long runs of each character a parser routes or nests on, deep
//! nesting, and large random inputs. None may panic, overflow the stack or take time out of proportion to
//! the input; each must answer (a value or an error). Runs in every `cargo test`, with bounded sizes and
//! case counts, as the fuzz stage CI asks for.

use proptest::prelude::*;

use super::{fishroom, heihei, iirose, missevan, yunhu};

/// Each parser on one input, as text and as bytes.
fn all_parsers(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(text) = iirose::wire::decode_frame(bytes) {
        for packet in iirose::wire::parse_packet(&text) {
            if let iirose::wire::Packet::Chat { public, .. } = packet {
                for record in public {
                    if let iirose::wire::Record::Message(m) = record {
                        let _ = iirose::wire::parse_text(&m.text);
                    }
                }
            }
        }
    }
    let _ = iirose::wire::parse_packet(&text);
    let _ = iirose::wire::parse_text(&text);
    let _ = missevan::wire::decode_text(&text);
    let _ = missevan::wire::decode_binary(bytes);
    let _ = missevan::wire::chat_content(&text);
    let _ = missevan::wire::html_to_text(&text);
    if let Ok(items) = heihei::wire::decode_frame(&text) {
        for item in items.into_iter().flatten() {
            let _ = heihei::wire::map(&item, &Default::default());
        }
    }
    if let Ok(items) = fishroom::wire::parse_poll(bytes) {
        for item in items.into_iter().flatten() {
            let _ = fishroom::wire::content_of(&item);
        }
    }
    if let Ok(yunhu::wire::Frame::Push(push) | yunhu::wire::Frame::Edit(push)) = yunhu::wire::decode(bytes) {
        let _ = yunhu::wire::kind(&push, false);
    }
}

/// The characters the parsers route, split or nest on.
const PREFIXES: &[&str] = &[
    "z", "\"", "%", "%*\"", "*", "v0#", "v0*", "=", "-", "<", ">", "&", "&amp;", "'", "@", "~", "m", " (hr_) ",
    " (_hr) ", "[", "]", "{", "}", "[*", "\\", ":", ",", "\u{0}", "\u{1}",
];

#[test]
fn long_runs_of_every_prefix_are_answered() {
    for prefix in PREFIXES {
        for count in [2_000, 100_000] {
            all_parsers(prefix.repeat(count).as_bytes());
        }
    }
}

#[test]
fn deep_nesting_is_refused_not_followed() {
    // JSON a million levels deep: serde_json stops at 128.
    let deep = format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
    all_parsers(deep.as_bytes());
    let objects = "{\"msg\":".repeat(100_000);
    all_parsers(objects.as_bytes());
    // A heihei item whose `msg` string holds another frame, ten times over (each level doubles the escapes).
    let mut frame = r#"{"msgType":"text","text":"x"}"#.to_owned();
    for _ in 0..10 {
        frame = serde_json::json!([{ "msg": frame }]).to_string();
    }
    all_parsers(frame.as_bytes());
    // Protobuf: field 1 holding field 1 holding … (prost stops at 100 levels).
    let mut nested = Vec::new();
    for _ in 0..10_000 {
        let mut outer = vec![0x0a];
        let mut len = nested.len();
        while len >= 0x80 {
            outer.push((len as u8) | 0x80);
            len >>= 7;
        }
        outer.push(len as u8);
        outer.extend_from_slice(&nested);
        nested = outer;
        if nested.len() > 1 << 20 {
            break;
        }
    }
    all_parsers(&nested);
    // IIROSE forwards nested inside forwards.
    let forwards = (0..40).fold("-k".to_owned(), |inner, _| format!("z{}", iirose::wire::escape(&inner)));
    all_parsers(forwards.as_bytes());
}

#[test]
fn compressed_headers_that_lie_are_refused() {
    // Missevan: a header declaring 16 MiB over a few bytes; IIROSE: gzip that is not.
    assert!(missevan::wire::decode_binary(&[1, 0xff, 0xff, 0xff, 0x0b, 0x00]).is_err());
    assert!(iirose::wire::decode_frame(&[1, 0x1f, 0x8b, 0, 0, 0]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn large_random_bytes_are_answered(bytes in proptest::collection::vec(any::<u8>(), 0..65_536)) {
        all_parsers(&bytes);
    }

    #[test]
    fn large_inputs_made_of_the_routing_characters_are_answered(
        parts in proptest::collection::vec(proptest::sample::select(PREFIXES), 0..20_000)
    ) {
        all_parsers(parts.concat().as_bytes());
    }
}
