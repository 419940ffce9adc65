//! The Fishroom simulator against `tests/fixtures/wire/fishroom/`.

use std::time::Duration;

use serde_json::Value;

use crate::corpus::{assert_json_shape, frames, json, split};
use crate::sim::fishroom::{FishroomSim, FishroomSimConfig};

const MIXED: &str = include_str!("../../../tests/fixtures/wire/fishroom/poll_mixed.json");
const EMPTY: &str = include_str!("../../../tests/fixtures/wire/fishroom/poll_empty.json");
const FORBIDDEN: &str = include_str!("../../../tests/fixtures/wire/fishroom/forbidden.txt");
const NOT_FOUND: &str = include_str!("../../../tests/fixtures/wire/fishroom/room_not_found.txt");
const POST: &str = include_str!("../../../tests/fixtures/wire/fishroom/post_request.json");
const POSTED: &str = include_str!("../../../tests/fixtures/wire/fishroom/post_answer.json");
const BAD: &str = include_str!("../../../tests/fixtures/wire/fishroom/bad_requests.jsonl");
const STATUS: &str = include_str!("../../../tests/fixtures/wire/fishroom/status.json");

#[tokio::test]
async fn the_fishroom_simulator_speaks_the_golden_frames() {
    let sim = FishroomSim::start(FishroomSimConfig {
        rooms: vec!["tuna".into()],
        tokens: vec![("12345678".into(), "abcdefghijklmnop".into(), "bridge".into())],
        poll_timeout: Duration::from_millis(200),
        ..FishroomSimConfig::default()
    })
    .await
    .unwrap();
    let http = super::http();
    let api = sim.api_url();
    let authed = |request: reqwest::RequestBuilder| {
        request
            .header("X-TOKEN-ID", "12345678")
            .header("X-TOKEN-KEY", "abcdefghijklmnop")
            .header("Accept", "Application/JSON")
    };
    let text = |file: &'static str| split(file).1.trim().to_owned();

    let status = http.get(format!("{api}/status")).send().await.unwrap();
    assert_eq!(status.status().as_u16(), 418);
    assert_eq!(status.json::<Value>().await.unwrap(), json(STATUS));

    // Polls: empty after the wait, the golden shape with messages, 403 and 404 bodies as the server's.
    let poll = || authed(http.get(format!("{api}/messages")).query(&[("room", "tuna")])).send();
    assert_eq!(poll().await.unwrap().json::<Value>().await.unwrap(), json(EMPTY));
    sim.say("tuna", "telegram", "小明", "有人在吗？");
    let answer: Value = poll().await.unwrap().json().await.unwrap();
    let fields = [
        "channel",
        "sender",
        "receiver",
        "room",
        "mtype",
        "content",
        "media_url",
        "rich_text",
        "date",
        "time",
        "botmsg",
        "opt",
        "route",
    ];
    let required: Vec<String> =
        std::iter::once("messages".to_owned()).chain(fields.iter().map(|f| format!("messages[].{f}"))).collect();
    let required: Vec<&str> = required.iter().map(String::as_str).collect();
    assert_json_shape("poll", &[&json(MIXED)], &answer, &required);
    let forbidden = http
        .get(format!("{api}/messages"))
        .query(&[("room", "tuna")])
        .header("X-TOKEN-ID", "1")
        .header("X-TOKEN-KEY", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status().as_u16(), 403);
    assert_eq!(forbidden.text().await.unwrap(), text(FORBIDDEN));
    let unknown = authed(http.get(format!("{api}/messages")).query(&[("room", "nowhere")])).send().await.unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    assert_eq!(unknown.text().await.unwrap(), text(NOT_FOUND));

    // Posts: the golden body as it is, then each 400 in the order the handler checks.
    let post = |body: String| authed(http.post(format!("{api}/messages/tuna/"))).body(body).send();
    let answer = post(text(POST)).await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap(), json(POSTED));
    assert_eq!((sim.posted()[0].sender.as_str(), sim.posted()[0].content.as_str()), ("nickname", "message content"));
    let echo: Value = poll().await.unwrap().json().await.unwrap();
    assert_json_shape("echo", &[&json(MIXED)], &echo, &required);
    assert_eq!(echo["messages"][0]["channel"], "api-bridge", "the poster's own echo");
    let bad: Vec<Value> = frames(BAD).into_iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    for (body, expected) in
        [(String::new(), &bad[0]), ("{not json".into(), &bad[1]), (r#"{"content": ""}"#.into(), &bad[2])]
    {
        let answer = post(body).await.unwrap();
        assert_eq!(answer.status().as_u16(), 400);
        assert_eq!(&answer.json::<Value>().await.unwrap(), expected);
    }
    let missing = authed(http.post(format!("{api}/messages/nowhere/"))).body(text(POST)).send().await.unwrap();
    assert_eq!((missing.status().as_u16(), missing.text().await.unwrap()), (404, text(NOT_FOUND)));
}
