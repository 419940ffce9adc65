//! The IIROSE simulator against `tests/fixtures/wire/iirose/`.

use std::collections::BTreeSet;

use tokio_tungstenite::tungstenite::Message;

use super::{Client, connect, next, send};
use crate::adapters::iirose::wire::{decode_frame, encode_frame};
use crate::corpus::frames;
use crate::sim::iirose::{IiroseSim, IiroseSimConfig, SimUser};

const LOGIN: &str = include_str!("../../../tests/fixtures/wire/iirose/login.txt");
const DUMP: &str = include_str!("../../../tests/fixtures/wire/iirose/login_dump.txt");
const REFUSALS: &str = include_str!("../../../tests/fixtures/wire/iirose/login_refusals.txt");
const RECEIVE: &str = include_str!("../../../tests/fixtures/wire/iirose/seed_receive.txt");
const SEND: &str = include_str!("../../../tests/fixtures/wire/iirose/seed_send.txt");
const PRESENCE: &str = include_str!("../../../tests/fixtures/wire/iirose/presence.txt");

const ROOM: &str = "5ce6a4b520a90";

/// A record's shape: its field count and which fields are empty.
fn record(record: &str) -> Vec<bool> {
    record.split('>').map(str::is_empty).collect()
}

/// A packet's shape: its routing prefix and each record's shape; recalls by their skeleton (each run of
/// letters and digits as one `a`).
fn packet(text: &str) -> (String, Vec<Vec<bool>>) {
    for prefix in ["\"\"", "\"", "=", "v0#", "v0*"] {
        if let Some(body) = text.strip_prefix(prefix) {
            if prefix.starts_with('v') {
                let mut skeleton = String::new();
                for c in body.chars() {
                    let c = if c.is_ascii_alphanumeric() { 'a' } else { c };
                    if !(c == 'a' && skeleton.ends_with('a')) {
                        skeleton.push(c);
                    }
                }
                return (format!("{prefix}{skeleton}"), Vec::new());
            }
            return (prefix.to_owned(), body.split('<').map(record).collect());
        }
    }
    panic!("a packet of no known kind: {text}")
}

/// What kind of record of the dump: a user (14 fields, an avatar path first), a room (8 fields, an id
/// path first), a public message (11, a time first).
fn dump_record(record: &str) -> String {
    let f: Vec<&str> = record.split('>').collect();
    match f.len() {
        14 if f[0].contains('/') => "user".into(),
        8 if f[0].bytes().all(|b| b.is_ascii_hexdigit() || b == b'_') => "room".into(),
        11 if f[0].bytes().all(|b| b.is_ascii_digit()) => "message".into(),
        n => format!("other record of {n} fields"),
    }
}

/// The dump's shape: its prefix, and the kinds of record in each `"`-separated part.
fn dump(text: &str) -> (String, Vec<BTreeSet<String>>) {
    let body = text.strip_prefix("%*\"").expect("the dump starts with %*\"");
    let parts = body.split('"').map(|part| part.split('<').filter(|r| !r.is_empty()).map(dump_record).collect());
    ("%*\"".to_owned(), parts.collect())
}

async fn packet_of(client: &mut Client) -> String {
    match next(client).await {
        Message::Binary(bytes) => decode_frame(&bytes).expect("a decodable frame"),
        Message::Text(text) => text.to_string(),
        other => panic!("{other:?}"),
    }
}

async fn say(client: &mut Client, text: &str) {
    send(client, Message::binary(encode_frame(text))).await;
}

fn golden_login(name: &str, password_md5: &str, room: &str) -> String {
    let [login] = frames(LOGIN)[..] else { panic!() };
    let mut json: serde_json::Value = serde_json::from_str(&login[1..]).unwrap();
    json["n"] = name.into();
    json["p"] = password_md5.into();
    json["r"] = room.into();
    format!("*{json}")
}

#[tokio::test]
async fn the_iirose_simulator_speaks_the_golden_frames() {
    let user = |uid: &str, name: &str, password: &str| SimUser {
        uid: uid.into(),
        name: name.into(),
        password: password.into(),
    };
    let sim = IiroseSim::start(IiroseSimConfig {
        rooms: vec![ROOM.into(), "5fdcb9b634621".into()],
        users: vec![user("679a51f1d4893", "上学", "password"), user("679a67a46f713", "小学", "secret")],
    })
    .await
    .unwrap();
    let refusals: BTreeSet<&str> = frames(REFUSALS).into_iter().collect();
    let md5 = crate::adapters::iirose::wire::md5_hex;

    // Refusals: each answer is a golden one, and the right one.
    for (login, code) in [
        (golden_login("上学", &md5("wrong"), ROOM), "%*\"2"),
        (golden_login("nobody", &md5("password"), ROOM), "%*\"1"),
        (golden_login("上学", &md5("password"), "0000000000000"), "%*\"n0"),
    ] {
        let mut client = connect(sim.ws_url()).await;
        say(&mut client, &login).await;
        let answer = packet_of(&mut client).await;
        assert!(refusals.contains(answer.as_str()), "{answer} is no golden refusal");
        assert_eq!(answer, code);
    }

    // The golden login frame as it is logs in; the dump has the golden dump's shape.
    sim.say(ROOM, "679a67a46f713", "小学", "said before the login");
    let mut client = connect(sim.ws_url()).await;
    let [login] = frames(LOGIN)[..] else { panic!() };
    say(&mut client, login).await;
    let [golden_dump] = frames(DUMP)[..] else { panic!() };
    assert_eq!(dump(&packet_of(&mut client).await), dump(golden_dump));

    // A second session with the same name is refused as the platform does.
    let mut twin = connect(sim.ws_url()).await;
    say(&mut twin, login).await;
    assert_eq!(packet_of(&mut twin).await, "%*\"0");

    let received = frames(RECEIVE);
    // A public message, a private one, a broadcast, a recall.
    sim.say(ROOM, "679a67a46f713", "小学", "你好 <b>&");
    assert_eq!(packet(&packet_of(&mut client).await), packet(received[0]));
    sim.say_private("上学", "679a67a46f713", "小学", "悄悄话", false);
    assert_eq!(packet(&packet_of(&mut client).await), packet(received[1]));
    sim.broadcast("小学", "广播");
    assert_eq!(packet(&packet_of(&mut client).await), packet(received[2]));
    sim.recall(ROOM, "679a67a46f713", "134878579237");
    assert_eq!(packet(&packet_of(&mut client).await), packet(received[3]));
    for (index, joined) in [(0, true), (1, false)] {
        sim.presence(ROOM, "679a67a46f713", "小学", joined);
        assert_eq!(packet(&packet_of(&mut client).await), packet(frames(PRESENCE)[index]));
    }

    // The golden client frames as they are: the public message is echoed with its `i`, the private one
    // and both recalls are taken.
    let sends = frames(SEND);
    say(&mut client, sends[0]).await;
    let echo = packet_of(&mut client).await;
    assert_eq!(packet(&echo), packet(received[0]));
    assert!(echo.ends_with(">134878579237"), "{echo}");
    say(&mut client, sends[1]).await;
    let _own_private_echo = packet_of(&mut client).await;
    say(&mut client, sends[3]).await;
    assert_eq!(packet(&packet_of(&mut client).await), packet(received[3]));
    say(&mut client, sends[4]).await;
    assert_eq!(packet_of(&mut client).await, received[4], "the private recall, as the seed shows it");
    say(&mut client, sends[8]).await;
    let anonymous = packet_of(&mut client).await;
    assert_eq!(anonymous.split('>').nth(6), Some("@"), "{anonymous}");
    let said = sim.said();
    let texts: Vec<(&str, Option<&str>)> = said.iter().map(|s| (s.text.as_str(), s.to.as_deref())).collect();
    assert_eq!(
        texts,
        [
            ("啊呜~ 这是哪里呢", None),
            ("echo  你好啊我回复你了", Some("679a67a46f713")),
            ("你好", Some("679a67a46f713"))
        ]
    );
    let recalls: Vec<String> = sim.recalls().into_iter().map(|(_, _, id)| id).collect();
    assert_eq!(recalls, ["535908832441", "781685462895"]);
}
