//! The simulator's routes: what it answers, and its sockets.

use super::*;

pub(super) async fn user_info(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if shared.is_down() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let user = shared.user_of_token(&headers);
    // Random, as the site's are: a session value in a log would be a leak a test can find.
    let id = format!("fmsess{:016x}{:04}", fastrand::u64(..), shared.counter.fetch_add(1, Ordering::Relaxed));
    shared.lock().sessions.insert(id.clone(), Session { user: user.clone(), created: Instant::now() });
    let info = match &user {
        Some((user_id, name)) => json!({"user": {"user_id": user_id, "username": name, "iconurl": ""}}),
        None => json!({"user": null}),
    };
    let cookies = axum::response::AppendHeaders([
        (header::SET_COOKIE, format!("FM_SESS={id}; Path=/; HttpOnly")),
        (header::SET_COOKIE, format!("FM_SESS.sig=sig-{id}; Path=/; HttpOnly")),
    ]);
    (cookies, axum::Json(json!({"code": 0, "info": info}))).into_response()
}

/// The room's recent chat messages, newest first, as the site's history API lists them.
pub(super) async fn history(
    State(shared): State<Arc<Shared>>,
    Query(args): Query<HashMap<String, String>>,
) -> Response {
    if shared.is_down() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let room = args.get("room_id").and_then(|r| r.parse::<u64>().ok()).unwrap_or_default();
    let history: Vec<Value> = shared
        .lock()
        .history
        .get(&room)
        .map(|h| {
            h.iter()
                .rev()
                .map(|item| {
                    json!({"msg_id": item["msg_id"], "create_time": item["create_time"], "message": item["message"],
                        "user": item["user"], "room_id": room})
                })
                .collect()
        })
        .unwrap_or_default();
    axum::Json(json!({"code": 0, "info": {"history": history}})).into_response()
}

pub(super) async fn send_message(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    if shared.is_down() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let Some(Some((user_id, username))) = shared.session(&headers) else {
        return (StatusCode::FORBIDDEN, axum::Json(json!({"code": 100010006, "info": "请先登录"}))).into_response();
    };
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return axum::Json(json!({"code": 100010001, "info": "参数错误"})).into_response();
    };
    let room_id = body["room_id"].as_u64().unwrap_or_default();
    let message = body["message"].as_str().unwrap_or_default().to_owned();
    let msg_id = body["msg_id"].as_str().unwrap_or_default().to_owned();
    if !shared.rooms.contains_key(&room_id) {
        return axum::Json(json!({"code": 500030004, "info": "无法找到该聊天室"})).into_response();
    }
    if shared.config.forbidden_word.as_ref().is_some_and(|w| message.contains(w.as_str())) {
        return axum::Json(json!({"code": 500150022, "info": "聊天内容含有违规信息"})).into_response();
    }
    let sent = SentMessage { room_id, message: message.clone(), msg_id: msg_id.clone(), user_id };
    shared.lock().sent.push(sent.clone());
    let _ = shared.sent_tx.send(sent);
    let item = chat(room_id, &msg_id, &message, user_id, &username);
    shared.remember(room_id, &item);
    if let Some(tx) = shared.rooms.get(&room_id) {
        let _ = tx.send(Push::Items(vec![item]));
    }
    let lost = shared.lose_answers.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if lost {
        return StatusCode::BAD_GATEWAY.into_response();
    }
    let user = json!({"user_id": user_id, "username": username, "iconurl": "", "titles": []});
    axum::Json(json!({"code": 0, "info": {"msg_id": msg_id, "user": user}, "noble": null, "bubble": null, "ok": 1}))
        .into_response()
}

pub(super) async fn socket(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(args): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if shared.is_down() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if shared.session(&headers).is_none() {
        return (StatusCode::FORBIDDEN, "session required").into_response();
    }
    let Some(room) = args.get("room_id").and_then(|r| r.parse::<u64>().ok()) else {
        return (StatusCode::BAD_REQUEST, "room_id required").into_response();
    };
    let (dropped, muted) = shared.sessions.tokens();
    upgrade.on_upgrade(move |ws| chat_socket(ws, shared, room, dropped, muted))
}

pub(super) async fn chat_socket(
    mut ws: WebSocket,
    shared: Arc<Shared>,
    url_room: u64,
    dropped: CancellationToken,
    muted: CancellationToken,
) {
    let idle = tokio::time::sleep(shared.config.idle_timeout);
    tokio::pin!(idle);
    let mut pushes: Option<broadcast::Receiver<Push>> = None;
    loop {
        tokio::select! {
            _ = dropped.cancelled() => return,
            _ = &mut idle => return,
            _ = muted.cancelled() => {
                // Silent until cut: the socket stays open and answers nothing.
                dropped.cancelled().await;
                return;
            }
            push = recv(&mut pushes) => {
                let Some(push) = push else { continue };
                if ws.send(encode(&shared, push)).await.is_err() {
                    return;
                }
            }
            message = ws.recv() => {
                let Some(Ok(message)) = message else { return };
                idle.as_mut().reset(tokio::time::Instant::now() + shared.config.idle_timeout);
                let Message::Text(text) = message else { continue };
                if text.as_str() == HEARTBEAT {
                    if ws.send(Message::text(HEARTBEAT)).await.is_err() {
                        return;
                    }
                    continue;
                }
                let Ok(join) = serde_json::from_str::<Value>(&text) else { continue };
                if join["action"] != "join" {
                    continue;
                }
                let room = join["room_id"].as_u64().unwrap_or_default();
                let known = room == url_room && shared.rooms.contains_key(&room);
                // As the site acknowledges: the room on success, the reason on a refusal.
                let ack = if known {
                    json!({"type": "room", "event": "join", "uuid": join["uuid"], "code": 0, "room_id": room})
                } else {
                    json!({"type": "room", "event": "join", "uuid": join["uuid"], "code": 500030004,
                        "info": "无法找到该聊天室"})
                };
                if known {
                    shared.lock().joins.push((room, join["reconnect"] == 1));
                    pushes = shared.rooms.get(&room).map(broadcast::Sender::subscribe);
                }
                if ws.send(Message::text(ack.to_string())).await.is_err() {
                    return;
                }
            }
        }
    }
}

pub(super) async fn recv(pushes: &mut Option<broadcast::Receiver<Push>>) -> Option<Push> {
    match pushes {
        Some(rx) => rx.recv().await.ok(),
        None => std::future::pending().await,
    }
}

/// Items alternate between text and Brotli binary frames, as both occur on the real socket.
pub(super) fn encode(shared: &Shared, push: Push) -> Message {
    match push {
        Push::Raw(RawFrame::Text(text)) => Message::text(text),
        Push::Raw(RawFrame::Binary(bytes)) => Message::binary(bytes),
        Push::Items(mut items) => {
            let payload = if items.len() == 1 { items.remove(0).to_string() } else { Value::Array(items).to_string() };
            if shared.frames.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
                Message::text(payload)
            } else {
                Message::binary(encode_binary(payload.as_bytes()))
            }
        }
    }
}
