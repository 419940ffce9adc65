//! The protobuf frames: hand-written bytes from the schema, every content type, recalls, edits, streams.

use prost::Message as _;

use super::proto::{Any, MsgContent, PushMessage, Sender, StreamMessage, WsInfo, WsWrapper};
use super::wire::{Frame, decode, kind};
use crate::model::{EventKind, Segment};

fn wrapped(cmd: &str, value: Vec<u8>) -> Vec<u8> {
    WsWrapper {
        info: Some(WsInfo { seq: "1".into(), cmd: cmd.into() }),
        data: Some(Any { type_url: String::new(), value }),
    }
    .encode_to_vec()
}

#[test]
fn a_heartbeat_ack_written_byte_by_byte_decodes() {
    // WsWrapper { info (1): WsInfo { seq (1): "7", cmd (2): "heartbeat_ack" } }
    let mut bytes = vec![0x0a, 0x12, 0x0a, 0x01, b'7', 0x12, 0x0d];
    bytes.extend_from_slice(b"heartbeat_ack");
    assert_eq!(decode(&bytes), Ok(Frame::HeartbeatAck));
}

#[test]
fn a_push_written_byte_by_byte_decodes_with_the_push_field_numbers() {
    // PushMessage { msg_id (1): "ab", chat_id (4): "g1", chat_type (5): 2, content (6): { text (1): "hi" },
    //               content_type (7): 1, timestamp (8): 1000, quote_msg_id (11): "q" }
    let push = [
        0x0a, 0x02, b'a', b'b', 0x22, 0x02, b'g', b'1', 0x28, 0x02, 0x32, 0x04, 0x0a, 0x02, b'h', b'i', 0x38, 0x01,
        0x40, 0xe8, 0x07, 0x5a, 0x01, b'q',
    ];
    let Ok(Frame::Push(push)) = decode(&wrapped("push_message", push.to_vec())) else { panic!() };
    assert_eq!((push.msg_id.as_str(), push.chat_id.as_str(), push.chat_type), ("ab", "g1", 2));
    assert_eq!((push.timestamp, push.quote_msg_id.as_str()), (1000, "q"));
    assert_eq!(push.content.unwrap().text, "hi");
}

fn push(content_type: u64, content: MsgContent) -> PushMessage {
    PushMessage {
        msg_id: "m1".into(),
        sender: Some(Sender { chat_id: "u1".into(), chat_type: 1, name: "小明".into(), ..Sender::default() }),
        chat_id: "g1".into(),
        chat_type: 2,
        content: Some(content),
        content_type,
        timestamp: 1_700_000_000_000,
        ..PushMessage::default()
    }
}

fn segments(p: &PushMessage) -> Vec<Segment> {
    match kind(p, false) {
        EventKind::Message(m) => m.content.0,
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_content_type_maps_to_segments() {
    let text = |t: &str| MsgContent { text: t.into(), ..MsgContent::default() };
    assert_eq!(segments(&push(1, text("hello"))), [Segment::Text("hello".into())]);
    let bold = |t: &str| Segment::Styled { text: t.into(), style: crate::model::Style::BOLD };
    assert_eq!(segments(&push(3, text("**bold** & b"))), [bold("bold"), Segment::Text(" & b".into())], "markdown");
    assert_eq!(segments(&push(8, text("<b>a</b> &amp; b"))), [bold("a"), Segment::Text(" & b".into())], "html");
    let image = MsgContent { image_url: "https://img/1.png".into(), ..MsgContent::default() };
    assert_eq!(segments(&push(2, image)), [Segment::Image { url: "https://img/1.png".into() }]);
    let file = MsgContent {
        file_url: "https://f/a.zip".into(),
        file_name: "a.zip".into(),
        file_size: 3,
        ..MsgContent::default()
    };
    assert_eq!(
        segments(&push(4, file)),
        [Segment::File { url: "https://f/a.zip".into(), name: Some("a.zip".into()), size: Some(3) }]
    );
    let video = MsgContent { video_url: "https://v/1.mp4".into(), ..MsgContent::default() };
    assert_eq!(segments(&push(10, video)), [Segment::Video { url: "https://v/1.mp4".into() }]);
    let audio = MsgContent { audio_url: "https://a/1.m4a".into(), audio_time: 4, ..MsgContent::default() };
    assert_eq!(segments(&push(11, audio)), [Segment::Audio { url: "https://a/1.m4a".into(), seconds: Some(4) }]);
    let sticker = MsgContent { sticker_url: "https://s/1.gif".into(), sticker_item_id: 9, ..MsgContent::default() };
    assert_eq!(segments(&push(7, sticker)), [Segment::Sticker { url: "https://s/1.gif".into(), id: Some("9".into()) }]);
    let tip = MsgContent { tip: "a call".into(), ..MsgContent::default() };
    assert_eq!(segments(&push(13, tip)), [Segment::Text("a call".into())]);
}

#[test]
fn mentions_quotes_recalls_and_edits() {
    let content = MsgContent {
        text: "@阿花 @bob hi".into(),
        mentioned_id: vec!["u2".into(), "u3".into()],
        quote_msg_text: "bob: earlier".into(),
        ..MsgContent::default()
    };
    let mut p = push(1, content);
    p.quote_msg_id = "m0".into();
    let EventKind::Message(m) = kind(&p, false) else { panic!() };
    assert!(
        matches!(&m.content.0[0], Segment::Mention { user: Some(id), name } if id.as_str() == "u2" && name == "阿花")
    );
    assert!(
        matches!(&m.content.0[2], Segment::Mention { user: Some(id), name } if id.as_str() == "u3" && name == "bob")
    );
    let reply = m.reply.unwrap();
    assert_eq!((reply.target.unwrap().as_str(), reply.quoted_text.unwrap().as_str()), ("m0", "bob: earlier"));

    p.delete_timestamp = 5;
    assert!(matches!(kind(&p, false), EventKind::Recalled { target } if target.as_str() == "m1"));
    p.delete_timestamp = 0;
    assert!(matches!(kind(&p, true), EventKind::Edited { target, .. } if target.as_str() == "m1"));
    p.chat_type = 1;
    assert!(matches!(kind(&p, false), EventKind::Message(m) if m.private), "user chats are private");
}

#[test]
fn streams_and_unknown_commands() {
    let part = StreamMessage { msg_id: "m1".into(), content: " more".into(), ..StreamMessage::default() };
    assert!(
        matches!(decode(&wrapped("stream_message", part.encode_to_vec())), Ok(Frame::Stream(s)) if s.content == " more")
    );
    assert_eq!(decode(&wrapped("draft_input", vec![1, 2, 3])), Ok(Frame::Other { cmd: "draft_input".into() }));
    assert!(decode(&wrapped("push_message", vec![0xff, 0xff])).is_err());
    assert!(decode(&[0xff, 0xff, 0xff]).is_err());
}

proptest::proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let _ = decode(&bytes);
        for cmd in ["push_message", "edit_message", "stream_message"] {
            if let Ok(Frame::Push(p) | Frame::Edit(p)) = decode(&wrapped(cmd, bytes.clone())) {
                let _ = kind(&p, cmd == "edit_message");
            }
        }
    }

    #[test]
    fn truncated_pushes_never_panic(cut in 0usize..200) {
        let content = MsgContent { text: "@a hello".into(), mentioned_id: vec!["x".into()], image_url: "https://i".into(), ..MsgContent::default() };
        let frame = wrapped("push_message", push(1, content).encode_to_vec());
        if let Ok(Frame::Push(p)) = decode(&frame[..cut.min(frame.len())]) {
            let _ = kind(&p, false);
        }
    }
}

const PUSH: &str = include_str!("../../../tests/fixtures/wire/yunhu/push_message.pb.json");
const ACK: &str = include_str!("../../../tests/fixtures/wire/yunhu/heartbeat_ack.pb.json");
const STREAM: &str = include_str!("../../../tests/fixtures/wire/yunhu/stream_message.pb.json");
const USER_INFO: &str = include_str!("../../../tests/fixtures/wire/yunhu/user_info.pb.json");
const STATUS: &str = include_str!("../../../tests/fixtures/wire/yunhu/status_answer.pb.json");
const SEND: &str = include_str!("../../../tests/fixtures/wire/yunhu/send_message.pb.json");
const EDIT: &str = include_str!("../../../tests/fixtures/wire/yunhu/edit_message.pb.json");
const RECALL: &str = include_str!("../../../tests/fixtures/wire/yunhu/recall_message.pb.json");
const LOGIN: &str = include_str!("../../../tests/fixtures/wire/yunhu/ws_login.json");
const HEARTBEAT: &str = include_str!("../../../tests/fixtures/wire/yunhu/ws_heartbeat.json");

/// The golden frames, encoded by hand from their field numbers (not by prost), decode as their
/// provenance says.
#[test]
fn golden_server_frames_decode_as_documented() {
    use crate::corpus::{json, protobuf};
    assert_eq!(decode(&protobuf(&json(ACK))), Ok(Frame::HeartbeatAck));
    let Ok(Frame::Push(push)) = decode(&protobuf(&json(PUSH))) else { panic!("a push") };
    assert_eq!(push.msg_id, "a2b3c4d5e6f70123456789abcdef0123");
    let sender = push.sender.clone().unwrap();
    assert_eq!((sender.chat_id.as_str(), sender.name.as_str(), sender.chat_type), ("7654321", "小明", 1));
    // The group's tag is the sender's badge (issue #33 §2: `{badge}`).
    let marked = super::wire::sender(&push).unwrap();
    assert_eq!(marked.badges.map(|b| b.badge).as_deref(), Some("群主"));
    assert_eq!(
        super::wire::sender(&super::proto::PushMessage { sender: Some(Sender::default()), ..push.clone() })
            .unwrap()
            .badges,
        None
    );
    assert_eq!((push.chat_id.as_str(), push.chat_type, push.content_type), ("big-group", 2, 1));
    let content = push.content.clone().unwrap();
    assert_eq!((content.text.as_str(), content.mentioned_id.as_slice()), ("@云朵 你好", &["1234567".to_owned()][..]));
    assert_eq!(content.quote_msg_text, "云朵: 上一条");
    assert_eq!(
        (push.timestamp, push.msg_seq, push.delete_timestamp, push.edit_timestamp),
        (1764097200000, 42, 1764097300000, 1764097250000)
    );
    assert_eq!(push.quote_msg_id, "f0e1d2c3b4a596877869504132231405");
    assert_eq!(push.cmd.unwrap().name, "/help");
    let Ok(Frame::Stream(part)) = decode(&protobuf(&json(STREAM))) else { panic!("a stream part") };
    assert_eq!((part.msg_id.as_str(), part.content.as_str()), ("a2b3c4d5e6f70123456789abcdef0123", " more text"));
    let info = super::proto::UserInfo::decode(protobuf(&json(USER_INFO)).as_slice()).unwrap();
    assert_eq!((info.status.unwrap().code, info.data.unwrap().id.as_str()), (1, "1234567"));
    let answer = super::proto::SendMessageResponse::decode(protobuf(&json(STATUS)).as_slice()).unwrap();
    assert_eq!(answer.status.unwrap().code, 1);
}

/// What the adapter sends uses the golden field numbers and wire types.
#[test]
fn outbound_requests_have_the_golden_shape() {
    use super::proto::{EditMessageRequest, RecallBatchRequest, RecallMessageRequest, SendContent, SendMessageRequest};
    use crate::corpus::{assert_json_shape, assert_protobuf_shape, json};
    let content = SendContent {
        text: "hi".into(),
        mentioned_id: vec!["1".into()],
        quote_msg_text: "a: b".into(),
        ..SendContent::default()
    };
    let send = SendMessageRequest {
        msg_id: "m".into(),
        chat_id: "c".into(),
        chat_type: 2,
        content: Some(content.clone()),
        content_type: 3,
        quote_msg_id: "q".into(),
        ..SendMessageRequest::default()
    };
    assert_protobuf_shape(
        "send",
        &json(SEND),
        &send.encode_to_vec(),
        &["2", "3", "4", "5", "5.1", "5.6", "5.8", "6", "8"],
    );
    let edit = EditMessageRequest {
        msg_id: "m".into(),
        chat_id: "c".into(),
        chat_type: 2,
        content: Some(content),
        content_type: 1,
        quote_msg_id: "q".into(),
    };
    assert_protobuf_shape("edit", &json(EDIT), &edit.encode_to_vec(), &["2", "3", "4", "5", "5.1", "6"]);
    let recall = RecallMessageRequest { msg_id: "m".into(), chat_id: "c".into(), chat_type: 2 };
    assert_protobuf_shape("recall", &json(RECALL), &recall.encode_to_vec(), &["2", "3", "4"]);
    let batch = RecallBatchRequest { msg_id: vec!["m".into(), "n".into()], chat_id: "c".into(), chat_type: 2 };
    assert_protobuf_shape("recall batch", &json(RECALL), &batch.encode_to_vec(), &["2", "3", "4"]);
    let login: serde_json::Value = serde_json::from_str(&super::wire::login("s", "1", "t", "windows", "d")).unwrap();
    assert_json_shape(
        "login",
        &[&json(LOGIN)],
        &login,
        &["seq", "cmd", "data.userId", "data.token", "data.platform", "data.deviceId"],
    );
    assert_eq!(login["cmd"], json(LOGIN)["cmd"]);
    let heartbeat: serde_json::Value = serde_json::from_str(&super::wire::heartbeat("s")).unwrap();
    assert_json_shape("heartbeat", &[&json(HEARTBEAT)], &heartbeat, &["seq", "cmd", "data"]);
    assert_eq!(heartbeat["cmd"], json(HEARTBEAT)["cmd"]);
}

const SEND_IMAGE: &str = include_str!("../../../tests/fixtures/wire/yunhu/send_image.pb.json");
const SEND_FILE: &str = include_str!("../../../tests/fixtures/wire/yunhu/send_file.pb.json");
const SEND_VIDEO: &str = include_str!("../../../tests/fixtures/wire/yunhu/send_video.pb.json");
const SEND_AUDIO: &str = include_str!("../../../tests/fixtures/wire/yunhu/send_audio.pb.json");
const UPLOAD_TOKEN: &str = include_str!("../../../tests/fixtures/wire/yunhu/upload_token.json");

/// Media messages name the uploaded key where seed 004's send schema puts it, with the golden field numbers.
#[test]
fn media_messages_have_the_golden_shape() {
    use super::proto::SendMessageRequest;
    use super::upload::{Kind, message_parts, token_of};
    use crate::corpus::{assert_protobuf_shape, json};
    let file = |mime: &str| crate::link::MediaFile {
        url: "https://media.example.org/media/x".into(),
        size: 5000,
        mime: mime.into(),
        sha256: "ab".repeat(32),
        path: "/nonexistent".into(),
    };
    let cases = [
        (
            Kind::Image,
            "image/png",
            SEND_IMAGE,
            &["2", "3", "4", "5", "5.9", "6", "9", "9.1", "9.2", "9.3", "9.7", "9.8", "9.9"][..],
        ),
        (Kind::File, "application/pdf", SEND_FILE, &["5.4", "5.5", "5.18", "6"][..]),
        (Kind::Video, "video/mp4", SEND_VIDEO, &["5.19", "6", "9.1", "9.3", "9.7", "9.8", "9.9"][..]),
        (Kind::Audio, "audio/ogg", SEND_AUDIO, &["5.21", "5.22", "6", "9.1", "9.3", "9.8"][..]),
    ];
    for (kind, mime, golden, fields) in cases {
        let (content, media) = message_parts(kind, "k.png", "h", &file(mime), "a.pdf".into(), Some(4));
        let request = SendMessageRequest {
            msg_id: "m".into(),
            chat_id: "c".into(),
            chat_type: 2,
            content: Some(content),
            content_type: kind.content_type(),
            media,
            ..SendMessageRequest::default()
        };
        assert_protobuf_shape(&format!("{kind:?}"), &json(golden), &request.encode_to_vec(), fields);
        assert_eq!(json(golden)["6"], kind.content_type(), "{kind:?}: the golden content type");
    }
    assert_eq!(token_of(&json(UPLOAD_TOKEN)).unwrap(), "sim-ak:5b2e0c:eyJzY29wZSI6ImNoYXQ2OCJ9");
    assert!(token_of(&serde_json::json!({"code": -1, "msg": "token invalid"})).is_err());
}

const KINDS: &str = include_str!("../../../tests/fixtures/wire/yunhu/content_kinds.jsonl");

/// Issue #33 §2: a post (its title bold, its Markdown kept), a form (its fields as lines), the buttons under a message
/// (their labels), a call (its text and status) and a tip, each read into what a fan elsewhere can read.
#[test]
fn posts_forms_buttons_calls_and_tips_become_readable_text() {
    let rendered: Vec<String> = crate::corpus::frames(KINDS)
        .into_iter()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let content = crate::sim::yunhu::content_from_fields(&v["content"]);
            let p = push(v["content_type"].as_u64().unwrap(), content);
            crate::model::Content(segments(&p)).to_plain_text()
        })
        .collect();
    assert_eq!(rendered[0], "周末活动\n报名截止周五\n- 地点：广场", "{rendered:?}");
    assert_eq!(rendered[1], "活动报名\n[form]\n昵称: 小明\n人数: 3\n备注");
    assert_eq!(rendered[2], "投票吗？\n[buttons: 赞成 | 反对 | 详情]");
    assert_eq!(rendered[3], "[call] 语音通话 — 通话时长 01:23");
    assert_eq!(rendered[4], "小明 撤回了一条消息");
    // The post's title is bold, its Markdown read for formatting.
    let post = crate::corpus::frames(KINDS)[0];
    let v: serde_json::Value = serde_json::from_str(post).unwrap();
    let c = MsgContent {
        post_title: v["content"]["post_title"].as_str().unwrap().into(),
        post_content: v["content"]["post_content"].as_str().unwrap().into(),
        post_content_type: "2".into(),
        ..MsgContent::default()
    };
    let bold = crate::model::Style::BOLD;
    let segs = segments(&push(6, c));
    assert!(matches!(&segs[0], Segment::Styled { text, style } if text == "周末活动" && *style == bold), "{segs:?}");
    assert!(segs.iter().any(|s| matches!(s, Segment::Styled { text, style } if text == "报名" && *style == bold)));
}

proptest::proptest! {
    /// Whatever a server puts in a form or the buttons, reading them never panics and stays bounded.
    #[test]
    fn arbitrary_forms_and_buttons_stay_bounded(form in "\\PC{0,300}", buttons in "\\PC{0,300}") {
        let c = MsgContent { form: form.clone(), buttons: buttons.clone(), ..MsgContent::default() };
        let text = crate::model::Content(segments(&push(5, c))).to_plain_text();
        proptest::prop_assert!(text.chars().count() <= 25 * 210 + 40);
    }
}
