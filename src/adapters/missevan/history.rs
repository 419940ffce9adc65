//! Gap filling: the chat-room history API (`GET /api/v2/chatroom/history/message?room_id=`, answering
//! `{code: 0, info: {history: [{msg_id, create_time, message, user}]}}`). After a reconnect or restart, what
//! the room said since its cursor (the `create_time` of the last message read) is relayed before anything
//! live; the router drops what it relayed already (by `msg_id`). The same history tells a replayed send
//! whether its `msg_id` already arrived.

use reqwest::header::COOKIE;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::Shared;
use super::wire::Item;
use crate::adapters::retry::describe;

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    info: Option<Info>,
}

#[derive(Deserialize)]
struct Info {
    #[serde(default)]
    history: Vec<Box<RawValue>>,
}

/// The room's recent messages, oldest first, each with its raw JSON; items that cannot be read are
/// counted in `malformed` and left out.
pub(super) async fn fetch(shared: &Shared, room_id: u64) -> Result<(Vec<(Item, String)>, usize), String> {
    let url = format!(
        "{}/api/v2/chatroom/history/message?room_id={room_id}",
        shared.config.api_url.as_str().trim_end_matches('/')
    );
    let cookies = shared.session.cookies().await.map_err(|e| e.to_string())?;
    let response = shared.http.get(&url).header(COOKIE, cookies.header.clone()).send().await.map_err(describe)?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the history API answered {status}"));
    }
    let answer: Answer = crate::adapters::retry::read_json(response, super::MAX_ANSWER)
        .await
        .map_err(|e| format!("the history: {e}"))?;
    if answer.code != 0 {
        return Err(format!("the history API answered code {}", answer.code));
    }
    let mut malformed = 0;
    let mut items = Vec::new();
    for raw in answer.info.map(|i| i.history).unwrap_or_default() {
        match serde_json::from_str::<Item>(raw.get()) {
            Ok(mut item) => {
                // History entries are chat messages without the socket's type and event.
                if item.kind.is_empty() {
                    item.kind = "message".into();
                    item.event = "new".into();
                }
                items.push((item, raw.get().to_owned()));
            }
            Err(_) => malformed += 1,
        }
    }
    // Listed newest first; reversed, then sorted stably by time to be safe, so equal times keep their order.
    items.reverse();
    items.sort_by_key(|(item, _)| item.create_time.or(item.time).unwrap_or_default());
    Ok((items, malformed))
}
