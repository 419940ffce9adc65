//! The wire parsers on the seed's own samples and on captured-style frames of every kind.

use serde_json::value::RawValue;

use super::wire::*;
use crate::model::{AccountId, Content, EventKind, Platform, RoomAddr, RoomId, Segment};

const SEED: &str = include_str!("../../../tests/fixtures/wire/missevan/seed_frames.jsonl");
const EVENTS: &str = include_str!("../../../tests/fixtures/wire/missevan/events.jsonl");

fn room(id: &str) -> RoomAddr {
    RoomAddr::new(AccountId::new(Platform::Missevan, "fm"), RoomId::new(id))
}

fn parse(line: &str) -> (Item, Box<RawValue>) {
    let Frame::Items(mut items) = decode_text(line).unwrap() else { panic!("not items") };
    let raw = items.remove(0);
    (serde_json::from_str(raw.get()).unwrap(), raw)
}

#[test]
fn every_seed_frame_parses_and_mojibake_passes_through() {
    let mut kinds = Vec::new();
    for line in crate::corpus::frames(SEED).into_iter() {
        let (item, raw) = parse(line);
        kinds.push(item.name());
        if item.name() == "message/new" {
            let events = to_events(&item, &room("868904499"), raw.get());
            let EventKind::Message(message) = &events[0].kind else { panic!() };
            // Byte for byte: the plain text is the original minus the `@name` token's `@`.
            let original = item.message.as_deref().unwrap();
            let rebuilt: String = message
                .content
                .0
                .iter()
                .map(|s| match s {
                    Segment::Mention { name, .. } => format!("@{name}"),
                    Segment::Text(t) => t.clone(),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(rebuilt, original);
        }
    }
    assert_eq!(kinds.iter().filter(|k| *k == "message/new").count(), 8);
    assert_eq!(kinds.iter().filter(|k| *k == "member/join_queue").count(), 4);
    assert_eq!(kinds.iter().filter(|k| *k == "notify/horn").count(), 2);
}

#[test]
fn seed_horn_html_becomes_plain_text() {
    let horn = crate::corpus::frames(SEED).into_iter().find(|l| l.contains("\"horn\"")).unwrap();
    let (item, raw) = parse(horn);
    let events = to_events(&item, &room("115351164"), raw.get());
    let EventKind::Notice { text } = &events[0].kind else { panic!("{:?}", events[0].kind) };
    assert!(!text.contains('<') && !text.contains("font"), "{text}");
    assert!(text.starts_with("ä¹”çˆ±é…¥æµæµª"), "{text}");
}

#[test]
fn leading_mentions_become_segments_and_zero_width_spaces_go() {
    assert_eq!(
        chat_content("@小明 @阿花 晚上好\u{200B}\u{200B}").0,
        vec![
            Segment::Mention { user: None, name: "小明".into() },
            Segment::Text(" ".into()),
            Segment::Mention { user: None, name: "阿花".into() },
            Segment::Text(" 晚上好".into()),
        ]
    );
    assert_eq!(chat_content("mail me @ home"), Content::text("mail me @ home"));
    assert_eq!(chat_content("@ alone").0, vec![Segment::Text("@ alone".into())]);
}

#[test]
fn every_event_kind_maps() {
    let here = room("868858631");
    let mut mapped = Vec::new();
    for line in crate::corpus::frames(EVENTS).into_iter() {
        let (item, raw) = parse(line);
        if item.is_join_ack() {
            mapped.push(format!("ack {:?} {}", item.code, item.info_text()));
            continue;
        }
        for event in to_events(&item, &here, raw.get()) {
            let who = event.sender.as_ref().map_or(String::new(), |s| format!("{}#{}", s.name, s.id));
            mapped.push(match event.kind {
                EventKind::Message(m) => {
                    format!("message {who} {:?} {:?}", event.origin.remote_id, m.content.to_plain_text())
                }
                EventKind::Joined => format!("joined {who}"),
                EventKind::Gift { name, count, value } => format!("gift {who} {name} {count} {value:?}"),
                EventKind::Notice { text } => format!("notice {text}"),
                EventKind::Recalled { target } => format!("recalled {target}"),
                EventKind::Unsupported { kind, .. } => format!("unsupported {kind}"),
                other => format!("{other:?}"),
            });
        }
    }
    let expected = [
        "ack Some(0) ",
        "ack Some(500030004) 无法找到该聊天室",
        "message 主播#3414815 Some(RemoteId(\"3c1b5a7e-1111-4222-8333-944445555666\")) \"@小明 @阿花 晚上好\"",
        "message fan#123 Some(RemoteId(\"3c1b5a7e-2222-4222-8333-944445555666\")) \"付费弹幕 &lt;b&gt;\"",
        "joined a#1",
        "joined b#2",
        "gift giver#7 小鱼干 3 Some(30)",
        "notice asker asked (30 diamonds): 今天唱什么？",
        "recalled 3c1b5a7e-1111-4222-8333-944445555666",
        "recalled 3c1b5a7e-2222-4222-8333-944445555666",
        "notice A moderator cleared the chat.",
        "notice The live broadcast started.",
        "notice 直播已结束 & 谢谢",
        "unsupported room/statistics",
        "notice PK 开始",
        "notice 新粉 followed the host.",
    ];
    assert_eq!(mapped, expected);
}

#[test]
fn message_time_comes_from_the_frame() {
    let line = crate::corpus::frames(EVENTS).into_iter().find(|l| l.contains("create_time")).unwrap();
    let (item, raw) = parse(line);
    assert_eq!(to_events(&item, &room("868858631"), raw.get())[0].time.0, 1_764_097_200_000);
}

#[test]
fn brotli_frames_round_trip_and_arrays_are_split() {
    let payload = format!("[{}]", crate::corpus::frames(SEED).into_iter().take(3).collect::<Vec<_>>().join(","));
    let frame = encode_binary(payload.as_bytes());
    assert_eq!(frame[0], 1);
    let Frame::Items(items) = decode_binary(&frame).unwrap() else { panic!() };
    assert_eq!(items.len(), 3);
    assert!(matches!(decode_text("❤️"), Ok(Frame::Heartbeat)));
}

#[test]
fn brotli_frames_with_wrong_lengths_are_refused() {
    let payload = br#"{"type":"message","event":"new","message":"hi"}"#;
    let mut frame = encode_binary(payload);
    frame[1] = frame[1].wrapping_add(1);
    assert!(matches!(decode_binary(&frame), Err(FrameError::Length { .. })));
    let mut frame = encode_binary(payload);
    frame[1] = frame[1].wrapping_sub(1);
    assert!(matches!(decode_binary(&frame), Err(FrameError::Length { .. })));
    assert_eq!(decode_binary(&[1, 0]).unwrap_err(), FrameError::Short);
    assert_eq!(decode_binary(&[2, 0, 0, 0]).unwrap_err(), FrameError::Flag(2));
    assert_eq!(decode_binary(&[1, 5, 0, 0, 0xff, 0xff, 0xff]).unwrap_err(), FrameError::Brotli);
}

#[test]
fn unknown_and_odd_json_is_data_or_a_clear_error() {
    let (item, raw) = parse(r#"{"type":"noble","event":"renewal","room_id":"868858631","extra":[1,2]}"#);
    assert_eq!(item.room_id, Some(868858631), "a room id given as a string");
    let events = to_events(&item, &room("868858631"), raw.get());
    assert!(
        matches!(&events[0].kind, EventKind::Unsupported { kind, raw } if kind == "noble/renewal" && raw.contains("extra"))
    );
    assert!(decode_text("42").is_err());
    assert!(decode_text("{not json").is_err());
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let _ = decode_binary(&bytes);
        let _ = decode_text(&String::from_utf8_lossy(&bytes));
        let mut framed = vec![1, bytes.len() as u8, 0, 0];
        framed.extend_from_slice(&bytes);
        let _ = decode_binary(&framed);
    }

    #[test]
    fn arbitrary_items_never_panic(line in "\\PC{0,200}") {
        if let Ok(Frame::Items(items)) = decode_text(&line) {
            for raw in items {
                if let Ok(item) = serde_json::from_str::<Item>(raw.get()) {
                    let _ = to_events(&item, &room("1"), raw.get());
                }
            }
        }
    }
}

const JOIN: &str = include_str!("../../../tests/fixtures/wire/missevan/join.json");
const KEEPALIVE: &str = include_str!("../../../tests/fixtures/wire/missevan/keepalive.txt");
const SEND_REQUEST: &str = include_str!("../../../tests/fixtures/wire/missevan/send_request.json");
const SEND_ANSWER: &str = include_str!("../../../tests/fixtures/wire/missevan/send_answer.json");
const SEND_REFUSED: &str = include_str!("../../../tests/fixtures/wire/missevan/send_refused.json");

/// What the adapter sends has the golden frames' keys; the golden answers read as accepted and refused.
#[test]
fn outbound_frames_and_send_answers_match_the_golden_corpus() {
    use crate::corpus::{assert_json_shape, frames, json};
    let join =
        serde_json::to_value(Join { action: "join", uuid: "u", kind: "room", room_id: 868858631, reconnect: None })
            .unwrap();
    assert_json_shape("join", &[&json(JOIN)], &join, &["action", "uuid", "type", "room_id"]);
    assert_eq!((&join["action"], &join["type"]), (&json(JOIN)["action"], &json(JOIN)["type"]));
    assert_eq!(frames(KEEPALIVE), [HEARTBEAT]);
    assert!(matches!(decode_text(HEARTBEAT), Ok(Frame::Heartbeat)));
    let body = serde_json::to_value(SendBody { room_id: 868858631, message: "m".into(), msg_id: "id".into() }).unwrap();
    assert_json_shape("send", &[&json(SEND_REQUEST)], &body, &["room_id", "message", "msg_id"]);
    let accepted: Answer = serde_json::from_value(json(SEND_ANSWER)).unwrap();
    assert_eq!(accepted.code, 0);
    let refused: Answer = serde_json::from_value(json(SEND_REFUSED)).unwrap();
    assert_eq!((refused.code, info_text(Some(&refused.info)).as_str()), (500150022, "聊天内容含有违规信息"));
}

const TITLES: &str = include_str!("../../../tests/fixtures/wire/missevan/titles.jsonl");

/// Issue #33 §2: the sender's titles become its marks — the noble rank as the badge (else the medal), the medal with
/// its level, the user's level; none where the frame has none.
#[test]
fn sender_titles_become_badge_level_and_medal() {
    let marks: Vec<Option<(String, Option<u32>, String)>> = crate::corpus::frames(TITLES)
        .into_iter()
        .map(|line| {
            let (item, raw) = parse(line);
            let event = to_events(&item, &room("868858631"), raw.get()).remove(0);
            event.sender.unwrap().badges.map(|b| (b.badge, b.level, b.medal))
        })
        .collect();
    assert_eq!(marks[0], Some(("大咖".to_owned(), Some(54), "猫耳 7".to_owned())));
    assert_eq!(marks[1], Some(("猫耳 12".to_owned(), Some(9), "猫耳 12".to_owned())));
    assert_eq!(marks[2], None);
}

/// Ranks, noble and super-fan titles: a notice where the frame carries what the client shows (`message_tip`, else
/// `message`); no public client shows their other fields, so one without a text stays an unknown kind. (These
/// frames are the rule's inputs, not captured shapes.)
#[test]
fn ranks_and_titles_are_notices_only_when_the_frame_says_them() {
    let here = room("868858631");
    let kinds = |line: &str| -> Vec<String> {
        let (item, raw) = parse(line);
        to_events(&item, &here, raw.get())
            .into_iter()
            .map(|e| match e.kind {
                EventKind::Notice { text } => format!("notice {text}"),
                EventKind::Unsupported { kind, .. } => format!("unsupported {kind}"),
                other => format!("{other:?}"),
            })
            .collect()
    };
    let rank = r#"{"type":"room","event":"new_rank","room_id":868858631,"message_tip":"<b>本房间</b> 升至小时榜第 3"}"#;
    assert_eq!(kinds(rank), ["notice 本房间 升至小时榜第 3"]);
    let noble = r#"{"type":"noble","event":"registration","room_id":868858631,"message":"欢迎 大咖 开通贵族"}"#;
    assert_eq!(kinds(noble), ["notice 欢迎 大咖 开通贵族"]);
    let silent = r#"{"type":"super_fan","event":"registration","room_id":868858631,"super_fan":{"num":1}}"#;
    assert_eq!(kinds(silent), ["unsupported super_fan/registration"]);
}
