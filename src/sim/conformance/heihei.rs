//! The Heihei simulator against `tests/fixtures/wire/heihei/`.

use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::{connect, next};
use crate::corpus::{assert_json_shape, frames, json};
use crate::sim::heihei::{HeiheiSim, HeiheiSimConfig};

const SEED: &str = include_str!("../../../tests/fixtures/wire/heihei/seed_messages.jsonl");
const FRAME_ARRAY: &str = include_str!("../../../tests/fixtures/wire/heihei/frame_array.json");
const FRAME_ENVELOPE: &str = include_str!("../../../tests/fixtures/wire/heihei/frame_envelope.json");
const INIT: &str = include_str!("../../../tests/fixtures/wire/heihei/init_answer.json");
const SEND_REQUEST: &str = include_str!("../../../tests/fixtures/wire/heihei/send_request.txt");
const SEND_ANSWERS: &str = include_str!("../../../tests/fixtures/wire/heihei/send_answers.jsonl");
const GET_LIVE: &str = include_str!("../../../tests/fixtures/wire/heihei/get_live_answer.json");
const JOIN_LIVE: &str = include_str!("../../../tests/fixtures/wire/heihei/join_live_answer.json");
const LIST_LIVE: &str = include_str!("../../../tests/fixtures/wire/heihei/list_live_by_user_answer.json");

const TOKEN: &str = "hh-token";
const HOST: u64 = 38298237;

/// The seed's inner messages of one `msgType`.
fn seed(kind: &str) -> Vec<Value> {
    frames(SEED)
        .into_iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|m| m["msgType"] == kind)
        .collect()
}

#[tokio::test]
async fn the_heihei_simulator_speaks_the_golden_frames() {
    let sim = HeiheiSim::start(HeiheiSimConfig { token: TOKEN.into(), user_id: 777, hosts: vec![HOST] }).await.unwrap();
    let http = super::http();
    let base = sim.init_url().trim_end_matches("/api/init").to_owned();
    let init_args = [
        ("ap", "heihei"),
        ("version", "1"),
        ("local", "zh_CN"),
        ("uuid", "u"),
        ("apiVersion", "1.0"),
        ("deveiceType", "android"),
    ];

    // init: the golden answer's shape; an unknown token is refused as the seed's codes say.
    let init = |token: &'static str| {
        let request = http.get(sim.init_url()).query(&init_args).query(&[("token", token)]);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let answer = init(TOKEN).await;
    assert_json_shape(
        "init",
        &[&json(INIT)],
        &answer,
        &["errorcode", "errormsg", "message.sendMsg", "message.channel", "live.joinLive", "live.listLiveByUser"],
    );
    let answers: Vec<Value> = frames(SEND_ANSWERS).into_iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let refused = init("wrong").await;
    assert_eq!(refused, answers[2], "720 token无效");

    // The live calls of discovery.
    let live = sim.start_live(HOST);
    fn form(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut form = vec![("token", TOKEN.to_owned())];
        form.extend(extra.iter().cloned());
        form
    }
    let call = |path: &str, form: Vec<(&str, String)>| http.post(format!("{base}/api/{path}")).form(&form).send();
    let list: Value =
        call("live/list-live-by-user", form(&[("userId", HOST.to_string())])).await.unwrap().json().await.unwrap();
    assert_json_shape(
        "listLiveByUser",
        &[&json(LIST_LIVE)],
        &list,
        &["errorcode", "lives[].liveId", "lives[].roomId", "lives[].status"],
    );
    let get: Value =
        call("live/get-live", form(&[("liveId", live.live_id.to_string())])).await.unwrap().json().await.unwrap();
    assert_json_shape("getLive", &[&json(GET_LIVE)], &get, &["errorcode", "live.liveId", "live.roomId", "live.status"]);
    let join: Value =
        call("live/join-live", form(&[("liveId", live.live_id.to_string())])).await.unwrap().json().await.unwrap();
    assert_json_shape("joinLive", &[&json(JOIN_LIVE)], &join, &["errorcode", "live.liveId", "live.roomId"]);

    // The channel socket: both frame forms, inner messages shaped as the seed's.
    let mut client = connect(format!("{}?token={TOKEN}", answer["message"]["channel"].as_str().unwrap())).await;
    let texts = seed("text");
    let texts: Vec<&Value> = texts.iter().collect();
    let mut forms = Vec::new();
    for text in ["one", "two"] {
        sim.say(HOST, 122, "张三", text);
        let Message::Text(frame) = next(&mut client).await else { panic!("text frames") };
        let frame: Value = serde_json::from_str(&frame).unwrap();
        let inner = match &frame {
            Value::Array(items) => {
                assert_json_shape("array frame", &[&json(FRAME_ARRAY)], &frame, &["[].msg"]);
                forms.push("array");
                serde_json::from_str(items[0]["msg"].as_str().expect("msg is a JSON string")).unwrap()
            }
            Value::Object(_) => {
                let golden = json(FRAME_ENVELOPE);
                let outer = |v: &Value| {
                    let mut v = v.clone();
                    v.as_object_mut().unwrap().remove("msg");
                    v
                };
                assert_json_shape("envelope", &[&outer(&golden)], &outer(&frame), &["timeStamp", "type", "liveId"]);
                forms.push("envelope");
                frame["msg"].clone()
            }
            other => panic!("{other}"),
        };
        assert_json_shape(
            "text",
            &texts,
            &inner,
            &["msgType", "fromUserId", "fromUserName", "text", "msgId", "roomId"],
        );
    }
    forms.sort_unstable();
    assert_eq!(forms, ["array", "envelope"]);
    // WS-level pings are answered.
    futures_util::SinkExt::send(&mut client, Message::Ping(b"ping".to_vec().into())).await.unwrap();
    let pong = tokio::time::timeout(super::WAIT, async {
        loop {
            if let Some(Ok(Message::Pong(data))) = futures_util::StreamExt::next(&mut client).await {
                return data;
            }
        }
    })
    .await
    .expect("a pong");
    assert_eq!(&pong[..], b"ping");

    // sendMsg: the golden form (its values replaced by this run's) and every golden answer.
    let [golden_form] = frames(SEND_REQUEST)[..] else { panic!() };
    let fields: Vec<(&str, String)> = golden_form
        .split('&')
        .map(|kv| kv.split_once('=').unwrap())
        .map(|(k, v)| {
            let v = match k {
                "token" => TOKEN.to_owned(),
                "roomId" => live.room_id.to_string(),
                "liveId" => live.live_id.to_string(),
                _ => v.to_owned(),
            };
            (k, v)
        })
        .collect();
    let sent: Value = call("msg/send-msg", fields.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(sent, answers[0]);
    assert_eq!(sim.sent()[0].text, "hello");
    let without_text: Vec<(&str, String)> = fields.iter().filter(|(k, _)| *k != "text").cloned().collect();
    assert_eq!(call("msg/send-msg", without_text).await.unwrap().json::<Value>().await.unwrap(), answers[1]);
    let bad_token: Vec<(&str, String)> =
        fields.iter().map(|(k, v)| (*k, if *k == "token" { "wrong".to_owned() } else { v.clone() })).collect();
    assert_eq!(call("msg/send-msg", bad_token).await.unwrap().json::<Value>().await.unwrap(), answers[2]);
    let bad_room: Vec<(&str, String)> =
        fields.iter().map(|(k, v)| (*k, if *k == "roomId" { "1".to_owned() } else { v.clone() })).collect();
    assert_eq!(call("msg/send-msg", bad_room).await.unwrap().json::<Value>().await.unwrap(), answers[3]);
}
