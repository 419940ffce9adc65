//! The Missevan simulator against `tests/fixtures/wire/missevan/`.

use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{Client, connect, next, send};
use crate::corpus::{assert_json_shape, frames, json};
use crate::sim::missevan::{MissevanSim, MissevanSimConfig};

const EVENTS: &str = include_str!("../../../tests/fixtures/wire/missevan/events.jsonl");
const SEED: &str = include_str!("../../../tests/fixtures/wire/missevan/seed_frames.jsonl");
const JOIN: &str = include_str!("../../../tests/fixtures/wire/missevan/join.json");
const KEEPALIVE: &str = include_str!("../../../tests/fixtures/wire/missevan/keepalive.txt");
const SEND_REQUEST: &str = include_str!("../../../tests/fixtures/wire/missevan/send_request.json");
const SEND_ANSWER: &str = include_str!("../../../tests/fixtures/wire/missevan/send_answer.json");
const SEND_REFUSED: &str = include_str!("../../../tests/fixtures/wire/missevan/send_refused.json");

const ROOM: u64 = 868858631;
const TOKEN: &str = "6402a37343c4d6ac29ff1ea1|afa35b312f0ddb95|1677894515|cd4e90e7a0221278";

/// The golden items of one `type/event`.
fn golden(kind: &str) -> Vec<Value> {
    frames(EVENTS)
        .into_iter()
        .chain(frames(SEED))
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|item| format!("{}/{}", item["type"].as_str().unwrap(), item["event"].as_str().unwrap()) == kind)
        .collect()
}

/// The next frame's items, checking the documented framing: text JSON, or byte 0 = 1 (Brotli), bytes 1-3
/// the decoded length (24-bit little-endian), then the Brotli stream — decoded here with the brotli crate
/// directly, not with the adapter's decoder.
async fn items(client: &mut Client) -> Vec<Value> {
    let text = match next(client).await {
        Message::Text(text) => text.to_string(),
        Message::Binary(bytes) => {
            assert_eq!(bytes[0], 1, "the Brotli flag");
            let declared = usize::from(bytes[1]) | usize::from(bytes[2]) << 8 | usize::from(bytes[3]) << 16;
            let mut out = Vec::new();
            brotli::BrotliDecompress(&mut &bytes[4..], &mut out).expect("a Brotli stream");
            assert_eq!(out.len(), declared, "the declared length is the decoded length");
            String::from_utf8(out).unwrap()
        }
        other => panic!("{other:?}"),
    };
    match serde_json::from_str::<Value>(&text).unwrap() {
        Value::Array(items) => items,
        item => vec![item],
    }
}

#[tokio::test]
async fn the_missevan_simulator_speaks_the_golden_frames() {
    let sim = MissevanSim::start(MissevanSimConfig {
        rooms: vec![ROOM],
        users: vec![(TOKEN.into(), 3414815, "bridgebot".into())],
        forbidden_word: Some("违规".into()),
        ..MissevanSimConfig::default()
    })
    .await
    .unwrap();
    // The base cookie: `GET /api/user/info` sets `FM_SESS` (seed 000 "base cookie").
    let http = super::http();
    let info = http
        .get(format!("{}/api/user/info", sim.api_url()))
        .header("cookie", format!("token={TOKEN}"))
        .send()
        .await
        .unwrap();
    let session = info
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.strip_prefix("FM_SESS=")?.split(';').next().map(str::to_owned))
        .next()
        .expect("an FM_SESS cookie");
    let cookie = format!("FM_SESS={session}; token={TOKEN}");
    let socket = |room: u64| {
        let mut request = format!("{}?room_id={room}", sim.ws_url()).into_client_request().unwrap();
        request.headers_mut().insert("cookie", cookie.parse().unwrap());
        request
    };

    // The golden join as it is: acknowledged as the golden acks are; a room that is not the URL's is refused.
    let mut client = connect(socket(ROOM)).await;
    send(&mut client, Message::text(crate::corpus::split(JOIN).1.trim())).await;
    let ack = items(&mut client).await.remove(0);
    let acks = golden("room/join");
    assert_json_shape("join ack", &[&acks[0]], &ack, &["type", "event", "uuid", "code"]);
    assert_eq!((&ack["code"], &ack["uuid"]), (&Value::from(0), &json(JOIN)["uuid"]));
    let mut elsewhere = connect(socket(1)).await;
    send(&mut elsewhere, Message::text(r#"{"action":"join","uuid":"x","type":"room","room_id":1}"#)).await;
    let refused = items(&mut elsewhere).await.remove(0);
    assert_json_shape("join refused", &[&acks[1]], &refused, &["type", "event", "uuid", "code", "info"]);
    assert_eq!(refused["code"], acks[1]["code"]);

    // The keep-alive is echoed as it is.
    let [heart] = frames(KEEPALIVE)[..] else { panic!() };
    send(&mut client, Message::text(heart)).await;
    assert_eq!(next(&mut client).await, Message::text(heart));

    // Chat in both frame forms (the simulator alternates text and Brotli).
    let chats = golden("message/new");
    let chats: Vec<&Value> = chats.iter().collect();
    for text in ["one", "two"] {
        sim.say(ROOM, 42, "小明", text);
        let item = items(&mut client).await.remove(0);
        assert_json_shape(
            "message/new",
            &chats,
            &item,
            &["type", "event", "room_id", "msg_id", "message", "user.user_id", "user.username"],
        );
    }

    // The golden send request as it is: accepted with the golden answer's shape, then the content filter.
    let post = |body: String| {
        http.post(format!("{}/api/chatroom/message/send", sim.api_url()))
            .header("cookie", &cookie)
            .header("content-type", "application/json;charset=UTF-8")
            .body(body)
            .send()
    };
    let answer: Value = post(crate::corpus::split(SEND_REQUEST).1.to_owned()).await.unwrap().json().await.unwrap();
    assert_json_shape(
        "send answer",
        &[&json(SEND_ANSWER)],
        &answer,
        &["code", "info.msg_id", "info.user.user_id", "ok"],
    );
    assert_eq!(answer["info"]["msg_id"], json(SEND_REQUEST)["msg_id"]);
    assert_eq!(sim.sent()[0].message, json(SEND_REQUEST)["message"]);
    let mut request = json(SEND_REQUEST);
    request["message"] = "违规的话".into();
    let answer: Value = post(request.to_string()).await.unwrap().json().await.unwrap();
    assert_json_shape("send refused", &[&json(SEND_REFUSED)], &answer, &["code", "info"]);
    assert_eq!(answer["code"], json(SEND_REFUSED)["code"]);
}
