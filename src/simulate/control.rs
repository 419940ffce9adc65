//! The simulators' control API, for trying a configuration by hand: `POST /say` has a user say something in a
//! room of any platform, `GET /sent` lists what the bridge sent to each. Loopback only.
//!
//! ```sh
//! curl -s localhost:PORT/say -d '{"platform": "yunhu", "room": 0, "user": "alice", "text": "hello"}'
//! curl -s localhost:PORT/sent
//! ```

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Simulators;
use crate::sim::yunhu::Request;

const HELP: &str = "chatbridge sim: control API\n\n\
POST /say   {\"platform\": \"fishroom|missevan|iirose|heihei|yunhu\", \"room\": 0, \"user\": \"alice\", \"text\": \"hello\"}\n\
            a user says TEXT in room number ROOM of the platform (the rooms of the written configuration, from 0;\n\
            IIROSE has one public room, 0)\n\
GET  /sent  what the bridge sent to each platform, in order\n";

/// What `POST /say` takes.
#[derive(Deserialize)]
struct Say {
    platform: String,
    #[serde(default)]
    room: usize,
    #[serde(default = "visitor")]
    user: String,
    text: String,
}

fn visitor() -> String {
    "visitor".to_owned()
}

/// Serves the control API on 127.0.0.1:`port` (0: a free one); returns where.
pub(super) async fn serve(sims: Arc<Simulators>, port: u16) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/", get(|| async { HELP }))
        .route("/say", post(say))
        .route("/sent", get(sent))
        .with_state(sims);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

async fn say(State(sims): State<Arc<Simulators>>, body: axum::body::Bytes) -> Response {
    let said: Say = match serde_json::from_slice(&body) {
        Ok(said) => said,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n\n{HELP}")).into_response(),
    };
    match sims.say_in(&said.platform, said.room, &said.user, &said.text) {
        Ok(room) => Json(json!({"said": said.text, "platform": said.platform, "room": room})).into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
    }
}

async fn sent(State(sims): State<Arc<Simulators>>) -> Json<Value> {
    let fishroom: Vec<Value> = sims
        .fishroom
        .posted()
        .into_iter()
        .map(|p| json!({"room": p.room, "sender": p.sender, "text": p.content}))
        .collect();
    let missevan: Vec<Value> =
        sims.missevan.sent().into_iter().map(|m| json!({"room": m.room_id.to_string(), "text": m.message})).collect();
    let iirose: Vec<Value> = sims
        .iirose
        .said()
        .into_iter()
        .map(|s| json!({"room": s.to.map_or(s.room, |to| format!("user/{to}")), "sender": s.name, "text": s.text}))
        .collect();
    let heihei: Vec<Value> =
        sims.heihei.sent().into_iter().map(|m| json!({"room": m.room_id.to_string(), "text": m.text})).collect();
    let yunhu: Vec<Value> = sims
        .yunhu
        .requests()
        .into_iter()
        .map(|request| match request {
            Request::Send(sent) => json!({"room": sent.chat_id, "text": sent.text}),
            Request::Edit { msg_id, text } => json!({"edit": msg_id, "text": text}),
            Request::Recall { msg_id, chat_id } => json!({"room": chat_id, "recall": msg_id}),
        })
        .collect();
    Json(json!({"fishroom": fishroom, "missevan": missevan, "iirose": iirose, "heihei": heihei, "yunhu": yunhu}))
}

impl Simulators {
    /// `user` says `text` in room `room` (the configuration's numbering) of `platform`; the room's name.
    pub fn say_in(&self, platform: &str, room: usize, user: &str, text: &str) -> Result<String, String> {
        let rooms = self.names.len();
        if room >= rooms {
            return Err(format!("room {room}: the simulators have rooms 0 to {}", rooms - 1));
        }
        // A stable id for the name, so that one name is one user.
        let id = user.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) % 1_000_000 + 1000;
        match platform {
            "fishroom" => {
                self.fishroom.say(&self.names[room], "irc", user, text);
                Ok(self.names[room].clone())
            }
            "missevan" => {
                self.missevan.say(self.live_rooms[room], id, user, text);
                Ok(self.live_rooms[room].to_string())
            }
            "iirose" if room == 0 => {
                self.iirose.say("5ce6a4b520a90", &format!("{id:013x}"), user, text);
                Ok("5ce6a4b520a90".to_owned())
            }
            "iirose" => Err("IIROSE's simulator has one public room, 0 (the others are private chats)".to_owned()),
            "heihei" => {
                self.heihei.say(self.hosts[room], id, user, text);
                Ok(format!("host/{}", self.hosts[room]))
            }
            "yunhu" => {
                let group = format!("g{room}");
                self.yunhu.say(&group, (&id.to_string(), user), text);
                Ok(format!("group/{group}"))
            }
            other => Err(format!("unknown platform `{other}`: fishroom, missevan, iirose, heihei or yunhu")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_user_says_something_through_the_control_api_and_it_is_refused_when_wrong() {
        let sims = Arc::new(super::super::start(2).await.unwrap());
        let addr = serve(Arc::clone(&sims), 0).await.unwrap();
        let http = crate::adapters::http_client(std::time::Duration::from_secs(5));
        let help = http.get(format!("http://{addr}/")).send().await.unwrap().text().await.unwrap();
        assert!(help.contains("POST /say") && help.contains("GET  /sent"));
        let say = |body: Value| http.post(format!("http://{addr}/say")).body(body.to_string()).send();
        let answer = say(json!({"platform": "fishroom", "room": 1, "user": "alice", "text": "hi"})).await.unwrap();
        assert_eq!(answer.status(), 200);
        let answer: Value = answer.json().await.unwrap();
        assert_eq!(answer["room"], "room1");
        for wrong in [json!({"platform": "irc", "text": "x"}), json!({"platform": "yunhu", "room": 9, "text": "x"})] {
            assert_eq!(say(wrong).await.unwrap().status(), 400);
        }
        let sent: Value = http.get(format!("http://{addr}/sent")).send().await.unwrap().json().await.unwrap();
        for platform in ["fishroom", "missevan", "iirose", "heihei", "yunhu"] {
            assert!(sent[platform].is_array(), "{platform}: {sent}");
        }
    }
}
