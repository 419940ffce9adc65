//! matterbridge's API, field by field: a client written against matterbridge's `bridge/api` sees the same request
//! and response shapes (the golden message `tests/fixtures/wire/api/matterbridge_message.json`), the same
//! relayed fields (origin `account`, `channel` and `protocol`; `userid`, `avatar`, `Extra`, `user_action`,
//! `msg-parent-not-found`), the same answers to odd requests, and websocket posts shared with the account's other
//! websocket clients. `docs/api.md` lists what differs on purpose.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::api::{TOKEN, Ws, connect_ws, next_ws};
use crate::harness::{FAST, Running, account, fishroom, free_port, next_post, start};

const GOLDEN: &str = include_str!("../fixtures/wire/api/matterbridge_message.json");

/// Two API accounts (`one`, `two`) and a Fishroom room in one bridge, `g`.
struct Two {
    one: String,
    two: String,
    http: reqwest::Client,
    fish: chatbridge::sim::fishroom::FishroomSim,
    _running: Running,
}

impl Two {
    async fn start() -> Self {
        let (one, two) = (free_port(), free_port());
        let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
        let source = format!(
            "{FAST}\n[accounts.api.one]\nlisten = \"127.0.0.1:{one}\"\ntoken = \"{TOKEN}\"\n\
             [accounts.api.two]\nlisten = \"127.0.0.1:{two}\"\ntoken = \"{TOKEN}\"\n{}\n\
             [[bridge]]\nname = \"g\"\nnick_format = \"{{nick}}\"\nanti_ping = false\n\
             rooms = [\"api.one:g\", \"api.two:g\", \"fishroom.tuna:general\"]\n",
            account("tuna", &fish, "11", "key"),
        );
        let running = start(&source, &["api.one", "api.two", "fishroom.tuna"]).await;
        let http = chatbridge::adapters::http_client(Duration::from_secs(5));
        Self { one: format!("127.0.0.1:{one}"), two: format!("127.0.0.1:{two}"), http, fish, _running: running }
    }

    async fn post(&self, at: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("http://{at}/api/message"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{body}");
        response.json().await.unwrap()
    }

    async fn websocket(&self, at: &str) -> Ws {
        let mut ws = connect_ws(&format!("ws://{at}/api/websocket")).await;
        assert_eq!(next_ws(&mut ws).await["event"], "api_connected");
        ws
    }
}

/// The golden message's keys and JSON types.
fn shape(message: &Value) -> BTreeMap<String, &'static str> {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::String(_) => "string",
        Value::Object(_) => "object",
        _ => "other",
    };
    message.as_object().unwrap().iter().map(|(k, v)| (k.clone(), kind(v))).collect()
}

/// Every field matterbridge sends, of the type it sends (`Extra` an object or null), and a timestamp Go's
/// `time.Time` parses (RFC 3339, up to nine fractional digits).
fn assert_matterbridge_shape(message: &Value) {
    let (provenance, body) = GOLDEN.split_once('\n').unwrap();
    assert!(provenance.starts_with("# matterbridge"), "the golden message says where it comes from");
    let golden: Value = serde_json::from_str(body).unwrap();
    let (mut want, mut got) = (shape(&golden), shape(message));
    for shapes in [&mut want, &mut got] {
        shapes.insert("Extra".into(), "object or null");
    }
    assert_eq!(got, want, "{message}");
    let timestamp = message["timestamp"].as_str().unwrap();
    let rfc3339nano = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$").unwrap();
    assert!(rfc3339nano.is_match(timestamp), "{timestamp}");
    assert!(!timestamp.contains(".") || !timestamp.trim_end_matches('Z').ends_with('0'), "trailing zeros: {timestamp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_messages_carry_matterbridge_s_fields() {
    let two = Two::start().await;
    let mut at_two = two.websocket(&two.two).await;
    // From another platform: the origin's account, channel and protocol, the sender's id.
    two.fish.say("general", "irc", "alice", "from irc");
    let relayed = next_ws(&mut at_two).await;
    assert_matterbridge_shape(&relayed);
    let fields =
        |m: &Value, keys: &[&str]| keys.iter().map(|k| m[*k].as_str().unwrap_or("").to_owned()).collect::<Vec<_>>();
    assert_eq!(
        fields(&relayed, &["text", "username", "account", "channel", "protocol", "gateway", "event", "parent_id"]),
        ["from irc", "alice", "fishroom.tuna", "general", "fishroom", "g", "", ""]
    );
    // From an API client: userid, avatar, Extra and the action event passed on as posted.
    let extra = json!({"file": [{"Name": "a.txt", "URL": "https://f/a.txt"}]});
    let mut at_fish = two.fish.subscribe();
    let posted = two
        .post(
            &two.one,
            json!({"text": "waves", "username": "bot", "userid": "b-1", "avatar": "https://a/b.png",
                   "event": "user_action", "gateway": "g", "Extra": extra}),
        )
        .await;
    assert_matterbridge_shape(&posted);
    let relayed = next_ws(&mut at_two).await;
    assert_matterbridge_shape(&relayed);
    assert_eq!(
        fields(&relayed, &["text", "username", "userid", "avatar", "event", "account", "channel", "protocol"]),
        ["waves", "bot", "b-1", "https://a/b.png", "user_action", "api.one", "g", "api"]
    );
    assert_eq!(relayed["Extra"], extra);
    // Where actions are not shown, the text says it in italics (plain text on Fishroom).
    assert_eq!(next_post(&mut at_fish).await.content, "waves");
    // A reply to a message this bridge never saw: matterbridge's "msg-parent-not-found".
    two.post(&two.one, json!({"text": "re", "username": "bot", "gateway": "g", "parent_id": "nobody-knows"})).await;
    assert_eq!(next_ws(&mut at_two).await["parent_id"], "msg-parent-not-found");
    // A reply to one it relayed: the copy's id there.
    let first = two.post(&two.one, json!({"text": "first", "username": "bot", "gateway": "g"})).await;
    let copy = next_ws(&mut at_two).await;
    two.post(&two.one, json!({"text": "re", "username": "bot", "gateway": "g", "parent_id": first["id"]})).await;
    assert_eq!(next_ws(&mut at_two).await["parent_id"], copy["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ids_edit_only_messages_of_this_bridge() {
    let two = Two::start().await;
    let mut at_two = two.websocket(&two.two).await;
    // An id the bridge never gave: a new message (matterbridge ignores client ids), with an id of ours.
    let posted = two.post(&two.one, json!({"text": "hello", "username": "bot", "gateway": "g", "id": "mine-1"})).await;
    assert_ne!(posted["id"], "mine-1");
    let relayed = next_ws(&mut at_two).await;
    assert_eq!(relayed["text"], "hello", "not marked edited");
    // The id it gave: an edit of that message, arriving under the copy's id.
    two.post(&two.one, json!({"text": "hello again", "username": "bot", "gateway": "g", "id": posted["id"]})).await;
    let edited = next_ws(&mut at_two).await;
    assert_eq!((edited["text"].as_str(), &edited["id"]), (Some("hello again"), &relayed["id"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_requests_are_answered_as_matterbridge_answers_them() {
    let two = Two::start().await;
    let get = |path: &str, auth: &str| {
        two.http.get(format!("http://{}{path}", two.one)).header("Authorization", auth.to_owned()).send()
    };
    // The scheme in any case (RFC 9110; echo accepts it).
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let answer = get("/api/health", &format!("{scheme} {TOKEN}")).await.unwrap();
        assert_eq!((answer.status().as_u16(), answer.text().await.unwrap()), (200, "OK".into()), "{scheme}");
    }
    let bearer = format!("Bearer {TOKEN}");
    let answer = get("/api/nothing", &bearer).await.unwrap();
    assert_eq!(answer.status().as_u16(), 404);
    assert_eq!(answer.json::<Value>().await.unwrap(), json!({"message": "Not Found"}));
    let answer = two.http.delete(format!("http://{}/api/message", two.one)).header("Authorization", &bearer).send();
    let answer = answer.await.unwrap();
    assert_eq!(answer.status().as_u16(), 405);
    assert_eq!(answer.json::<Value>().await.unwrap(), json!({"message": "Method Not Allowed"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_post_reaches_the_account_s_other_websocket_clients_and_not_itself() {
    let two = Two::start().await;
    let mut poster = two.websocket(&two.one).await;
    let mut listener = two.websocket(&two.one).await;
    let mut elsewhere = two.websocket(&two.two).await;
    let post = json!({"text": "over the socket", "username": "wsbot", "gateway": "g"}).to_string();
    poster.send(WsMessage::text(post)).await.unwrap();
    let shared = next_ws(&mut listener).await;
    assert_matterbridge_shape(&shared);
    assert_eq!((shared["text"].as_str(), shared["username"].as_str()), (Some("over the socket"), Some("wsbot")));
    assert_eq!(next_ws(&mut elsewhere).await["text"], "over the socket", "and the bridge relayed it");
    // An HTTP post is not shared so (matterbridge does not either); the poster never gets its own back.
    two.post(&two.one, json!({"text": "over http", "username": "bot", "gateway": "g"})).await;
    assert_eq!(next_ws(&mut elsewhere).await["text"], "over http");
    two.fish.say("general", "irc", "alice", "after");
    assert_eq!(next_ws(&mut listener).await["text"], "after", "nothing between: the HTTP post was not shared");
    assert_eq!(next_ws(&mut poster).await["text"], "after", "nothing between: its own post did not come back");
}
