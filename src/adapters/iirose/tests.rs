//! The IIROSE parsers on the seed's receive samples, escaping, batches, compression and quote syntax.

use super::wire::*;
use crate::model::{Content, Segment, Style, Time};

const SEED: &str = include_str!("../../../tests/fixtures/wire/iirose/seed_receive.txt");
const SEED_SEND: &str = include_str!("../../../tests/fixtures/wire/iirose/seed_send.txt");
const LOGIN: &str = include_str!("../../../tests/fixtures/wire/iirose/login.txt");
const DUMP: &str = include_str!("../../../tests/fixtures/wire/iirose/login_dump.txt");
const REFUSALS: &str = include_str!("../../../tests/fixtures/wire/iirose/login_refusals.txt");
const KEEPALIVE: &str = include_str!("../../../tests/fixtures/wire/iirose/keepalive.txt");
const PRESENCE: &str = include_str!("../../../tests/fixtures/wire/iirose/presence.txt");
const MARKDOWN: &str = include_str!("../../../tests/fixtures/wire/iirose/markdown.txt");

fn one(text: &str) -> Packet {
    let mut packets = parse_packet(text);
    assert_eq!(packets.len(), 1, "{packets:?}");
    packets.remove(0)
}

#[test]
fn every_seed_receive_sample_parses() {
    let packets: Vec<Packet> = crate::corpus::frames(SEED).into_iter().map(one).collect();
    let Packet::Chat { public, private } = &packets[0] else { panic!("{:?}", packets[0]) };
    assert!(private.is_empty());
    let Record::Message(m) = &public[0] else { panic!() };
    assert_eq!((m.time, m.name.as_str(), m.text.as_str()), (1762612113, "上学", "啊呜~ 这是哪里呢"));
    assert_eq!((m.uid.as_str(), m.msg_id.as_str()), ("679a51f1d4893", "134878579237"));

    let Packet::Chat { public, private } = &packets[1] else { panic!() };
    assert!(public.is_empty());
    assert_eq!(private[0].uid, "679a67a46f713");
    assert_eq!(private[0].text, "你好啊我回复你了");
    assert!(!private[0].anonymous && private[0].receiver.is_none());

    assert_eq!(
        packets[2],
        Packet::Broadcast {
            name: "上学".into(), text: "饿啊 测试广播消息".into(), uid: "679a51f1d4893".into()
        }
    );
    assert_eq!(packets[3], Packet::Recalled { uid: "679a51f1d4893".into(), msg_id: "535908832441".into() });
    assert_eq!(
        packets[4],
        Packet::PrivateRecalled {
            receiver: "679a67a46f713".into(),
            sender: "679a51f1d4893".into(),
            msg_id: "781685462895".into()
        }
    );

    let Packet::Chat { public, .. } = &packets[5] else { panic!() };
    let Record::Message(m) = &public[0] else { panic!() };
    let (content, reply) = parse_text(&m.text);
    assert_eq!(content, Content::text("第二条消息"));
    let reply = reply.expect("a quote");
    assert_eq!(reply.quoted_sender.as_deref(), Some("上学"));
    assert_eq!(reply.quoted_text.as_deref(), Some("第一条消息"));
    assert_eq!(reply.quoted_time, Some(Time(1762414014000)));

    let Packet::Chat { public, .. } = &packets[6] else { panic!() };
    let Record::Message(m) = &public[0] else { panic!() };
    assert_eq!(
        parse_text(&m.text).0.0,
        vec![Segment::Mention { user: None, name: "小学".into() }, Segment::Text(" 你好".into())]
    );

    let Packet::Chat { public, .. } = &packets[7] else { panic!() };
    let Record::Message(m) = &public[0] else { panic!() };
    assert_eq!(
        parse_text(&m.text).0.0,
        vec![
            Segment::Text("我们这里是 ".into()),
            Segment::RoomLink { room: "5fdcb9b634621".into() },
            Segment::Text(" ".into())
        ]
    );

    let Packet::Chat { private, .. } = &packets[8] else { panic!() };
    assert!(private[0].anonymous, "the `@` type");
    assert_eq!(private[0].msg_id, "292047017691");

    // Mailbox notices (likes, follows) are not chat.
    assert!(matches!(&packets[9], Packet::Other { kind, .. } if kind == "@*"));
    assert!(matches!(&packets[10], Packet::Other { .. }));
}

#[test]
fn escaping_round_trips_once_and_twice() {
    for text in ["<b>\"hi\" & 'bye'</b> \\ a>b", "&lt; typed literally", "plain", "&amp;amp;"] {
        assert_eq!(unescape(&escape(text)), text);
        assert_eq!(unescape(&unescape(&escape(&escape(text)))), text, "double escaping");
    }
    assert_eq!(escape("<>\"'\\&"), "&lt;&gt;&quot;&#039;&#092;&amp;");
    assert_eq!(unescape("&#39;&#92;&#x2F;"), "'\\/");
}

#[test]
fn fields_are_split_before_they_are_unescaped() {
    let text = escape("a>b<c\"d");
    let packet = format!("\"1700000000>av>name>{text}>fff>fff>1>>uid1>t>111111111111");
    let Packet::Chat { public, .. } = one(&packet) else { panic!() };
    let Record::Message(m) = &public[0] else { panic!("{public:?}") };
    assert_eq!(m.text, "a>b<c\"d");
}

#[test]
fn batches_come_out_oldest_first() {
    let record = |t: i64, id: &str| format!("{t}>av>n>text {id}>fff>fff>1>>uid>t>{id}");
    let packet = format!("\"{}<{}<{}", record(30, "c"), record(20, "b"), record(10, "a"));
    let Packet::Chat { public, .. } = one(&packet) else { panic!() };
    let ids: Vec<&str> = public
        .iter()
        .map(|r| match r {
            Record::Message(m) => m.msg_id.as_str(),
            _ => "?",
        })
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
}

#[test]
fn system_lines_are_joins_moves_and_leaves() {
    let line = |code: &str| format!("1700000000>av>carol>'{code}>fff>fff>1>>uidc>t>room>n");
    // Newest first, as batches come.
    let packet = format!("\"{}<{}<{}", line("3"), line("2abc"), line("1"));
    let Packet::Chat { public, .. } = one(&packet) else { panic!() };
    let kinds: Vec<Presence> = public
        .iter()
        .map(|r| match r {
            Record::System { presence, .. } => *presence,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, [Presence::Joined, Presence::Moved, Presence::Left]);
}

#[test]
fn frames_are_gzipped_over_256_bytes_and_zlib_is_accepted() {
    let short = "\"short";
    assert_eq!(encode_frame(short), short.as_bytes());
    let long = "x".repeat(300);
    let frame = encode_frame(&long);
    assert_eq!(frame[0], 1);
    assert_eq!(&frame[1..3], &[0x1f, 0x8b]);
    assert_eq!(decode_frame(&frame).unwrap(), long);
    let mut zlib = flate2::write::ZlibEncoder::new(vec![1u8], flate2::Compression::fast());
    std::io::Write::write_all(&mut zlib, long.as_bytes()).unwrap();
    assert_eq!(decode_frame(&zlib.finish().unwrap()).unwrap(), long);
    assert_eq!(decode_frame(&[1, 2, 3]), Err(FrameError::Compression));
    assert_eq!(decode_frame(&[0xff, 0xfe]), Err(FrameError::Utf8));
}

#[test]
fn login_dump_history_is_kept_apart_and_errors_are_named() {
    let dump = "%*\"cartoon/1>2>me>fff>r1>>>>uid0>>>n>>'1<r0_r1>room>fff>0000>>d&&1&&&&&&&&&&&&>>\"\
                1700000001>av>n>old news>fff>fff>1>>uid>t>123456789012\"";
    let Packet::LoggedIn { members, history } = one(dump) else { panic!() };
    assert!(matches!(&history[..], [Record::Message(m)] if m.text == "old news"));
    assert_eq!(members, vec![Member { uid: "uid0".into(), name: "me".into() }]);
    for code in ["0", "1", "2", "4", "5", "n0", "x", "x1700000000"] {
        assert_eq!(one(&format!("%*\"{code}")), Packet::LoginRefused(code.into()));
    }
    // Undocumented answers are neither a refusal nor a dump.
    for other in ["3", "", "99", "n1", "hello"] {
        assert!(matches!(one(&format!("%*\"{other}")), Packet::LoginUnrecognised(_)), "{other}");
    }
    // A `%` packet without `*"` is not the login answer.
    assert!(matches!(one("%u>me>room"), Packet::Other { .. }));
    for (code, cause) in [
        ("0", "name is taken"),
        ("1", "no such user"),
        ("2", "wrong password"),
        ("4", "daily"),
        ("5", "room password"),
        ("x1", "banned"),
    ] {
        assert!(login_error(code).contains(cause), "{code}: {}", login_error(code));
    }
}

#[test]
fn long_runs_of_any_prefix_character_parse_without_recursing() {
    // Once, 2,000 leading `z` overflowed the stack (one call per `z`); deep forwards are cut instead.
    for prefix in ["z", "\"", "%", "*", "v", "0", "#", "=", "-", "<", ">", "&", "'", "@", "~", "m"] {
        for len in [2_000, 200_000] {
            let packets = parse_packet(&prefix.repeat(len));
            assert!(!packets.is_empty(), "{prefix} x {len}");
        }
    }
    let nested = (0..10).fold("-k".to_owned(), |inner, _| format!("z{}", escape(&inner)));
    let packets = parse_packet(&nested);
    assert!(matches!(&packets[..], [Packet::Other { kind, .. }] if kind == "z"), "{packets:?}");
}

#[test]
fn multi_forward_packets_are_dispatched_again() {
    let inner = format!("\"1700000000>av>n>{}>fff>fff>1>>uid>t>111111111111", escape("hi"));
    let packets = parse_packet(&format!("z{}\"{}", escape(&inner), escape("-k")));
    assert!(matches!(&packets[0], Packet::Chat { public, .. } if public.len() == 1));
    assert_eq!(packets[1], Packet::Kicked);
}

#[test]
fn markdown_messages_read_as_formatting_with_their_markup() {
    let Packet::Chat { public, .. } = one(crate::corpus::split(MARKDOWN).1) else { panic!() };
    let Record::Message(m) = &public[0] else { panic!() };
    let bold = |t: &str| Segment::Styled { text: t.into(), style: Style::BOLD };
    assert_eq!(
        parse_text(&m.text).0.0,
        vec![
            bold("网易云热评："),
            Segment::Text("\n".into()),
            bold("好听"),
            Segment::Text(" 对".into()),
            Segment::Mention { user: None, name: "小学".into() },
            Segment::Text("说 ——".into()),
            Segment::Styled { text: "(昨天)".into(), style: Style::ITALIC },
            Segment::Text(" ".into()),
            Segment::Image { url: "https://r.iirose.com/i/a_b_c.png".into() },
        ]
    );
    // Without the prefix the same text is plain: asterisks are what someone typed.
    assert_eq!(parse_text("**not bold**").0, Content::text("**not bold**"));
}

#[test]
fn images_and_voice_in_brackets_are_media() {
    assert_eq!(
        parse_text("[https://r.iirose.com/i/a.png#e] [https://r.iirose.com/v/b.mp3?iiroseaudio=.weba]").0,
        Content(vec![
            Segment::Image { url: "https://r.iirose.com/i/a.png".into() },
            Segment::Text(" ".into()),
            Segment::Audio { url: "https://r.iirose.com/v/b.mp3?iiroseaudio=.weba".into(), seconds: None },
        ])
    );
}

#[test]
fn outbound_markup_and_quotes() {
    let content = Content(vec![
        Segment::Text("hi".into()),
        Segment::Mention { user: None, name: "小学".into() },
        Segment::Text("look".into()),
        Segment::Image { url: "https://i/1.png".into() },
    ]);
    assert_eq!(render(&content), "hi [*小学*] look[https://i/1.png#e]");
    let text = with_quote("第一条消息", "上学", Time(1762414014000), "第二条消息");
    assert_eq!(text, "第一条消息 (_hr) 上学_1762414014 (hr_) 第二条消息");
    let (content, reply) = parse_text(&text);
    assert_eq!(content, Content::text("第二条消息"));
    assert_eq!(reply.unwrap().quoted_text.as_deref(), Some("第一条消息"));
    // Nested chains quote the innermost message.
    let (_, reply) = parse_text("q1 (_hr) u_1_1 (hr_) q2 (_hr) u2_2 (hr_) new");
    let reply = reply.unwrap();
    assert_eq!((reply.quoted_sender.as_deref(), reply.quoted_text.as_deref()), (Some("u2"), Some("q2")));
    assert_eq!(md5_hex("password"), "5f4dcc3b5aa765d61d8327deb882cf99");
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        if let Ok(text) = decode_frame(&bytes) {
            for packet in parse_packet(&text) {
                if let Packet::Chat { public, .. } = packet {
                    for record in public {
                        if let Record::Message(m) = record {
                            let _ = parse_text(&m.text);
                        }
                    }
                }
            }
        }
        let mut compressed = vec![1u8];
        compressed.extend_from_slice(&bytes);
        let _ = decode_frame(&compressed);
    }

    #[test]
    fn arbitrary_packets_never_panic(text in "[\"<>%*v0#_z=\\-k'a-z0-9 ()&;]{0,120}") {
        for packet in parse_packet(&text) {
            if let Packet::Chat { public, .. } = packet {
                for record in public {
                    if let Record::Message(m) = record {
                        let _ = parse_text(&m.text);
                    }
                }
            }
        }
    }
}

#[test]
fn the_golden_login_dump_logs_in_with_its_users_and_history() {
    let [dump] = crate::corpus::frames(DUMP)[..] else { panic!("one dump") };
    let Packet::LoggedIn { members, history } = one(dump) else { panic!("the dump is a login") };
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    // Both users of the first part, and this room's user again in the second.
    assert_eq!(names, ["上学", "小学", "上学"]);
    assert_eq!(members[0].uid, "679a51f1d4893");
    // History comes out oldest first, unescaped after splitting; room records are not messages.
    let texts: Vec<&str> = history
        .iter()
        .map(|r| match r {
            Record::Message(m) => m.text.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(texts, ["早上好 & 晚上好", "啊呜~ 这是哪里呢"]);
}

#[test]
fn every_golden_refusal_is_a_refusal_with_its_cause() {
    let refusals = crate::corpus::frames(REFUSALS);
    assert_eq!(refusals.len(), 7);
    for frame in refusals {
        let Packet::LoginRefused(code) = one(frame) else { panic!("{frame} is a refusal") };
        assert!(!login_error(&code).contains("unknown"), "{code}");
    }
}

#[test]
fn golden_keepalive_and_presence_lines() {
    assert_eq!(crate::corpus::frames(KEEPALIVE), [""]);
    assert_eq!(one(""), Packet::KeepAlive);
    let [join, leave, moved] = crate::corpus::frames(PRESENCE)[..] else { panic!() };
    assert!(matches!(one(moved), Packet::Chat { public, .. }
        if matches!(&public[..], [Record::System { presence: Presence::Moved, .. }])));
    assert!(matches!(one(join), Packet::Chat { public, .. }
        if matches!(&public[..], [Record::System { presence: Presence::Joined, uid, .. }] if uid == "679a67a46f713")));
    assert!(matches!(one(leave), Packet::Chat { public, .. }
        if matches!(&public[..], [Record::System { presence: Presence::Left, .. }])));
}

/// The adapter's own frames have the golden frames' keys, in JSON, and the same prefixes.
#[test]
fn outbound_frames_have_the_golden_shape() {
    let [login] = crate::corpus::frames(LOGIN)[..] else { panic!() };
    let golden: serde_json::Value = serde_json::from_str(login.strip_prefix('*').expect("`*` + JSON")).unwrap();
    let ours = Login {
        r: "r",
        n: "上学",
        p: &md5_hex("password"),
        st: "n",
        mo: "",
        mb: "",
        mu: "01",
        fp: format!("@{}", md5_hex("上学")),
    };
    let ours = serde_json::to_value(&ours).unwrap();
    crate::corpus::assert_json_shape("login", &[&golden], &ours, &["r", "n", "p", "st", "mo", "mb", "mu", "fp"]);
    assert_eq!((&ours["p"], &ours["fp"], &ours["mu"]), (&golden["p"], &golden["fp"], &golden["mu"]));

    let sends = crate::corpus::frames(SEED_SEND);
    let public: serde_json::Value = serde_json::from_str(sends[0]).unwrap();
    let private: serde_json::Value = serde_json::from_str(sends[1]).unwrap();
    let say = |g: Option<&str>| {
        serde_json::to_value(Say {
            g: g.map(str::to_owned),
            m: "x".into(),
            mc: "614530".into(),
            i: "134878579237".into(),
        })
        .unwrap()
    };
    crate::corpus::assert_json_shape("public", &[&public], &say(None), &["m", "mc", "i"]);
    crate::corpus::assert_json_shape("private", &[&private], &say(Some("679a67a46f713")), &["g", "m", "mc", "i"]);
    // Recalls: `v0#<id>` in a room, `v0*<uid>#<id>` in a private chat.
    assert!(sends[3].starts_with("v0#") && sends[4].starts_with("v0*") && sends[4].contains('#'));
    // Quotes and mentions are written as the seed writes them.
    assert_eq!(
        with_quote("第一条消息", "上学", Time(1762414014000), "第二条消息"),
        serde_json::from_str::<serde_json::Value>(sends[5]).unwrap()["m"]
    );
    let mention = Content(vec![Segment::Mention { user: None, name: "小学".into() }, Segment::Text(" 你好".into())]);
    assert_eq!(render(&mention), serde_json::from_str::<serde_json::Value>(sends[6]).unwrap()["m"]);
}
