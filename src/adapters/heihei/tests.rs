//! The frame parser on every message example of the seed (transcribed from its JavaScript-style literals
//! into `tests/fixtures/wire/heihei/seed_messages.jsonl`), in both frame forms.

use serde_json::{Value, json};

use super::wire::*;
use crate::model::{EventKind, Segment};

const SEED: &str = include_str!("../../../tests/fixtures/wire/heihei/seed_messages.jsonl");

fn messages() -> Vec<Value> {
    crate::corpus::frames(SEED).into_iter().map(|l| serde_json::from_str(l).expect("fixture lines are JSON")).collect()
}

/// One line of the mapping, for comparing with the expected list.
fn describe(mapped: Mapped) -> String {
    match mapped {
        Mapped::Room { room_id, kind, sender, .. } => {
            let who = sender.map_or(String::new(), |s| format!("{}#{} ", s.name, s.id));
            let what = match kind {
                EventKind::Message(m) => format!("message {}", m.content.to_plain_text()),
                EventKind::Notice { text } => format!("notice {text}"),
                EventKind::Gift { name, count, value } => format!("gift {name} {count} {value:?}"),
                EventKind::Unsupported { kind, .. } => format!("unsupported {kind}"),
                other => format!("{other:?}"),
            };
            format!("room {room_id:?} {who}{what}")
        }
        Mapped::StopLive { room_id, live_id } => format!("stop {room_id:?} {live_id:?}"),
        Mapped::Im { from, content, .. } => format!("im {from} {:?}", content.0),
    }
}

#[test]
fn every_seed_message_maps_through_the_double_encoded_form() {
    let frame = json!(messages().iter().map(|m| json!({"msg": m.to_string()})).collect::<Vec<_>>()).to_string();
    let mapped: Vec<String> = decode_frame(&frame)
        .unwrap()
        .into_iter()
        .map(|item| describe(map(&item.expect("each item parses"), &Default::default())))
        .collect();
    let expected = [
        "room None notice 弹窗提示内容 \n 我是黑黑",
        "room Some(123) 谁送的#1233 gift gift #12 128 None",
        "room Some(123) 张三#122 message hello",
        "room Some(123) 张三#122 message hello",
        "room Some(123) 张三#122 notice hello",
        "room None notice hello",
        "room None unsupported action/join-chat",
        "room None 张三#122 unsupported action/due-chat-notify",
        "room None unsupported action/chat-user-status",
        "room None unsupported action/chat-topic",
        "stop Some(122) Some(13456)",
        "room Some(123213) notice user 12112 was muted.",
        "room None unsupported action/pause-chat",
        "room None unsupported action/goon-chat",
        "room Some(123213) notice user 12112 may speak again.",
        "room None notice The broadcast is now called “新标题”.",
        "room None 张三#122 notice 您关注的张三开播了",
        "room None 小宋手机号1#10031 unsupported action/cancel-due-chat",
        "room None 小宋手机号1#10031 unsupported action/message",
    ];
    assert_eq!(&mapped[..expected.len()], expected);
    let ims = &mapped[expected.len()..];
    assert_eq!(ims.len(), 9);
    assert!(ims.iter().all(|l| l.starts_with("im 10045 ")), "{ims:?}");
}

#[test]
fn im_content_takes_its_inner_type() {
    let ims: Vec<Mapped> = messages()
        .into_iter()
        .filter(|m| m["msgType"] == "IM")
        .map(|m| map(&Inbound { live_id: None, msg: serde_json::from_value(m).unwrap() }, &Default::default()))
        .collect();
    let content = |i: usize| match &ims[i] {
        Mapped::Im { content, .. } => content.0.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(content(0), vec![Segment::Text("hello word!".into())]);
    assert!(matches!(&content(2)[..], [Segment::Audio { seconds: Some(15), .. }]));
    assert!(matches!(&content(5)[..], [Segment::Text(_), Segment::Image { .. }]));
    assert!(matches!(&content(7)[..], [Segment::Image { .. }]));
    assert!(matches!(&content(8)[..], [Segment::Video { .. }]));
    assert!(matches!(&content(4)[..], [Segment::Text(t)] if t.contains("due chat")));
}

#[test]
fn the_envelope_form_carries_the_live_id() {
    let frame = json!({"timeStamp": 1400939322323u64, "type": "toLive", "liveId": 123,
        "msg": {"msgType": "system", "text": "hello", "msgId": 1}})
    .to_string();
    let items = decode_frame(&frame).unwrap();
    let item = items[0].as_ref().unwrap();
    assert_eq!(item.live_id, Some(123));
    assert!(matches!(map(item, &Default::default()), Mapped::Room { live_id: Some(123), .. }));
}

#[test]
fn malformed_items_are_skipped_and_the_rest_kept() {
    let good = json!({"msg": json!({"msgType": "text", "text": "kept", "roomId": 1}).to_string()});
    let frame = json!([{"msg": "{not json"}, 42, {"msg": "{}"}, good]).to_string();
    let items = decode_frame(&frame).unwrap();
    assert_eq!(items.len(), 4);
    assert!(items[0].is_err() && items[1].is_err() && items[2].is_err());
    assert!(items[3].is_ok());
    assert!(decode_frame("not json").is_err());
    assert!(decode_frame("42").is_err());
}

proptest::proptest! {
    #[test]
    fn arbitrary_frames_never_panic(text in "\\PC{0,200}") {
        if let Ok(items) = decode_frame(&text) {
            for item in items.into_iter().flatten() {
                let _ = map(&item, &Default::default());
            }
        }
    }

    #[test]
    fn arbitrary_inner_json_never_panics(inner in "[{}\\[\\]\":,a-zA-Z0-9 ]{0,80}") {
        let frame = json!([{ "msg": inner }]).to_string();
        if let Ok(items) = decode_frame(&frame) {
            for item in items.into_iter().flatten() {
                let _ = map(&item, &Default::default());
            }
        }
    }
}

const FRAME_ARRAY: &str = include_str!("../../../tests/fixtures/wire/heihei/frame_array.json");
const FRAME_ENVELOPE: &str = include_str!("../../../tests/fixtures/wire/heihei/frame_envelope.json");
const INIT: &str = include_str!("../../../tests/fixtures/wire/heihei/init_answer.json");
const SEND_ANSWERS: &str = include_str!("../../../tests/fixtures/wire/heihei/send_answers.jsonl");
const SEND_REQUEST: &str = include_str!("../../../tests/fixtures/wire/heihei/send_request.txt");
const GET_LIVE: &str = include_str!("../../../tests/fixtures/wire/heihei/get_live_answer.json");
const JOIN_LIVE: &str = include_str!("../../../tests/fixtures/wire/heihei/join_live_answer.json");
const LIST_LIVE: &str = include_str!("../../../tests/fixtures/wire/heihei/list_live_by_user_answer.json");

#[test]
fn golden_frames_and_answers_parse_as_their_provenance_says() {
    use crate::corpus::{frames, json, split};
    for frame in [split(FRAME_ARRAY).1, split(FRAME_ENVELOPE).1] {
        let items = decode_frame(frame.trim()).unwrap();
        let [Ok(item)] = &items[..] else { panic!("{items:?}") };
        assert_eq!(describe(map(item, &Default::default())), "room Some(123) 张三#122 message hello");
    }
    assert_eq!(decode_frame(split(FRAME_ENVELOPE).1.trim()).unwrap()[0].as_ref().unwrap().live_id, Some(123));
    let init: InitAnswer = serde_json::from_value(json(INIT)).unwrap();
    assert_eq!(init.errorcode, 0);
    for key in ["sendMsg", "channel", "messageList"] {
        assert!(init.message.get(key).and_then(Value::as_str).is_some(), "{key}");
    }
    for key in ["getLive", "joinLive", "quitLive", "listLiveByUser"] {
        assert!(init.live.get(key).and_then(Value::as_str).is_some(), "{key}");
    }
    let codes: Vec<i64> =
        frames(SEND_ANSWERS).into_iter().map(|l| serde_json::from_str::<Answer>(l).unwrap().errorcode).collect();
    assert_eq!(codes, [0, 700, 720, 733]);
    let get: Answer = serde_json::from_value(json(GET_LIVE)).unwrap();
    let live = get.live.expect("getLive names the live");
    assert_eq!((live.live_id, live.room_id), (Some(842017421), Some(842017421)));
    let join: Answer = serde_json::from_value(json(JOIN_LIVE)).unwrap();
    assert_eq!(join.live.expect("joinLive names the live").room_id, Some(123213));
    let list: Answer = serde_json::from_value(json(LIST_LIVE)).unwrap();
    assert_eq!(list.lives.iter().map(|l| l.live_id).collect::<Vec<_>>(), [Some(23128979), Some(333128979)]);
    // The send form has the seed's four fields.
    let [form] = frames(SEND_REQUEST)[..] else { panic!() };
    let keys: Vec<&str> = form.split('&').map(|kv| kv.split_once('=').unwrap().0).collect();
    assert_eq!(keys, ["token", "text", "roomId", "liveId"]);
}

const GIFTS: &str = include_str!("../../../tests/fixtures/wire/heihei/gifts.jsonl");

/// Issue #33 §2: a live gift is named and counted as its frame says, and teaches the name to IM gifts, which carry
/// only the id; an id never named stays an id.
#[test]
fn gifts_are_named_from_live_gifts_and_the_gift_list() {
    let names = super::gifts::GiftNames::default();
    let frames: Vec<Value> =
        crate::corpus::frames(GIFTS).into_iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let inbound = |v: &Value| Inbound { live_id: None, msg: serde_json::from_value(v.clone()).unwrap() };
    let im_text = |mapped: Mapped| match mapped {
        Mapped::Im { content, .. } => content.to_plain_text(),
        other => panic!("{other:?}"),
    };
    assert_eq!(describe(map(&inbound(&frames[0]), &names)), "room Some(123) 谁送的#1233 gift asjkdfa 128 None");
    assert_eq!(names.name(12).as_deref(), Some("asjkdfa"), "learned from the live gift");
    assert_eq!(im_text(map(&inbound(&frames[1]), &names)), "我送你kiss雨 [gift: gift #113]", "never named: the id");
    let mut live = frames[0].clone();
    live["giftId"] = json!(113);
    live["gift"]["name"] = json!("kiss雨");
    live["amount"] = json!(3);
    assert_eq!(describe(map(&inbound(&live), &names)), "room Some(123) 谁送的#1233 gift kiss雨 3 None");
    assert_eq!(im_text(map(&inbound(&frames[1]), &names)), "我送你kiss雨 [gift: kiss雨]");
    // A live gift without its name (the older form) takes the learned one.
    let mut bare = frames[0].clone();
    bare.as_object_mut().unwrap().remove("gift");
    bare["giftId"] = json!(113);
    assert_eq!(describe(map(&inbound(&bare), &names)), "room Some(123) 谁送的#1233 gift kiss雨 128 None");
}
