//! The matterbridge-compatible HTTP API, as a bot written for matterbridge would use it.

use std::time::Duration;

use chatbridge::sim::yunhu::Request;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::harness::{
    FAST, Running, YUNHU_TOKEN, account, fishroom, free_port, next_post, next_request, start, yunhu, yunhu_account,
};

pub const TOKEN: &str = "api-secret-token";

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn post(&self, body: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let request = self.http.post(format!("{}/api/message", self.base)).body(body.to_owned());
        match token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base)).header("Authorization", format!("Bearer {TOKEN}"))
    }
}

/// An API account serving gateway `b`, bridged with Fishroom `general`.
async fn with_fishroom() -> (Api, chatbridge::sim::fishroom::FishroomSim, Running) {
    let port = free_port();
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}\n[accounts.api.bots]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\nhistory = 100\n{}\n[[bridge]]\nname = \"b\"\nrooms = [\"api.bots:b\", \"fishroom.tuna:general\"]\n",
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["api.bots", "fishroom.tuna"]).await;
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        http: chatbridge::adapters::http_client(Duration::from_secs(5)),
    };
    (api, fish, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_and_refuses_as_documented() {
    let (api, fish, running) = with_fishroom().await;
    assert_eq!(api.get("/api/health").send().await.unwrap().text().await.unwrap(), "OK");
    let good = r#"{"text": "hello from a bot", "username": "bot", "gateway": "b"}"#;
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(api.post(good, None).send().await.unwrap()), 400, "no Authorization header");
    assert_eq!(status(api.post(good, Some("wrong")).send().await.unwrap()), 401, "a wrong token");
    let answer = api.post(r#"{"text": "x", "gateway": "nope"}"#, Some(TOKEN)).send().await.unwrap();
    assert_eq!(answer.status(), 400);
    assert!(answer.text().await.unwrap().contains("unknown gateway `nope`"));
    let answer = api.post(r#"{"gateway": "b"}"#, Some(TOKEN)).send().await.unwrap();
    assert_eq!(answer.status(), 400);
    assert!(answer.text().await.unwrap().contains("missing `text`"));
    let answer = api.post("text=hi", Some(TOKEN)).send().await.unwrap();
    assert_eq!(answer.status(), 400);
    assert!(answer.text().await.unwrap().contains("not a JSON message"));

    let mut at_fish = fish.subscribe();
    let stored: Value = api.post(good, Some(TOKEN)).send().await.unwrap().json().await.unwrap();
    assert!(!stored["id"].as_str().unwrap().is_empty(), "the stored message carries its id: {stored}");
    assert_eq!((stored["gateway"].as_str(), stored["protocol"].as_str()), (Some("b"), Some("api")));
    let post = next_post(&mut at_fish).await;
    assert_eq!((post.sender.as_str(), post.content.as_str()), ("[api] b\u{200B}ot", "hello from a bot"));
    running.shutdown().await;
}

/// Reads NDJSON lines from a streaming response.
struct Lines {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Lines {
    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return serde_json::from_slice(&line).unwrap();
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk()).await.unwrap().unwrap();
            self.buffer.extend_from_slice(&chunk.expect("the stream goes on"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_gets_every_message() {
    let (api, fish, running) = with_fishroom().await;
    let mut streams = Vec::new();
    for _ in 0..2 {
        let response = api.get("/api/stream").send().await.unwrap();
        let mut lines = Lines { response, buffer: Vec::new() };
        assert_eq!(lines.next().await["event"], "api_connected");
        streams.push(lines);
    }
    fish.say("general", "irc", "alice", "one");
    fish.say("general", "irc", "alice", "two");
    for stream in &mut streams {
        let (a, b) = (stream.next().await, stream.next().await);
        assert_eq!((a["text"].as_str(), b["text"].as_str()), (Some("one"), Some("two")));
        // The sender's name alone, as docs/api.md says (and matterbridge does); the platform is in `protocol`.
        assert_eq!(a["username"], "alice");
        assert_eq!(a["protocol"], "fishroom");
        assert_eq!(a["gateway"], "b");
    }
    // Polling readers each have their own cursor.
    for client in ["x", "y"] {
        let unread: Vec<Value> =
            api.get(&format!("/api/messages?client={client}")).send().await.unwrap().json().await.unwrap();
        assert_eq!(unread.len(), 2, "{client}: {unread:?}");
    }
    let again: Vec<Value> = api.get("/api/messages?client=x").send().await.unwrap().json().await.unwrap();
    assert!(again.is_empty(), "read once per reader");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_resumes_from_its_last_id() {
    let (api, fish, running) = with_fishroom().await;
    let connect = || async {
        let url = format!("{}/api/websocket", api.base.replace("http://", "ws://"));
        connect_ws(&url).await
    };
    let mut ws = connect().await;
    assert!(next_ws(&mut ws).await["event"] == "api_connected");
    fish.say("general", "irc", "alice", "seen");
    let seen = next_ws(&mut ws).await;
    drop(ws);
    fish.say("general", "irc", "alice", "missed while away");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let url =
        format!("{}/api/websocket?last_id={}", api.base.replace("http://", "ws://"), seen["id"].as_str().unwrap());
    let mut ws = connect_ws(&url).await;
    assert_eq!(next_ws(&mut ws).await["event"], "api_connected");
    assert_eq!(next_ws(&mut ws).await["text"], "missed while away");
    // And posting goes the other way on the same socket.
    let mut at_fish = fish.subscribe();
    let post = json!({"text": "from the socket", "username": "wsbot", "gateway": "b"}).to_string();
    ws.send(WsMessage::text(post)).await.unwrap();
    assert_eq!(next_post(&mut at_fish).await.content, "from the socket");
    running.shutdown().await;
}

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect_ws(url: &str) -> Ws {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("Authorization", format!("Bearer {TOKEN}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

pub async fn next_ws(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
        if let WsMessage::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_through_the_api_reach_bridged_rooms() {
    let port = free_port();
    let sim = yunhu().await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}\n[accounts.api.bots]\nlisten = \"127.0.0.1:{port}\"\n{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"api.bots:b\", \"yunhu.me:group/big\", \"fishroom.tuna:general\"]\n",
        yunhu_account("me", &sim, YUNHU_TOKEN, ""),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["api.bots", "yunhu.me", "fishroom.tuna"]).await;
    let http = chatbridge::adapters::http_client(Duration::from_secs(5));
    let post = |body: Value| http.post(format!("http://127.0.0.1:{port}/api/message")).json(&body).send();
    let (mut requests, mut at_fish) = (sim.subscribe(), fish.subscribe());

    let stored: Value =
        post(json!({"text": "helo", "username": "bot", "gateway": "b"})).await.unwrap().json().await.unwrap();
    let copy = match next_request(&mut requests).await {
        Request::Send(sent) => sent,
        other => panic!("{other:?}"),
    };
    assert_eq!(next_post(&mut at_fish).await.content, "helo");

    let id = stored["id"].as_str().unwrap();
    post(json!({"text": "hello", "username": "bot", "gateway": "b", "id": id})).await.unwrap();
    assert_eq!(
        next_request(&mut requests).await,
        Request::Edit { msg_id: copy.msg_id.clone(), text: "[api] bot: hello".into() }
    );
    assert_eq!(next_post(&mut at_fish).await.content, "hello (edited)");

    post(json!({"event": "msg_delete", "gateway": "b", "id": id})).await.unwrap();
    assert_eq!(next_request(&mut requests).await, Request::Recall { msg_id: copy.msg_id, chat_id: "big".into() });
    running.shutdown().await;
}
