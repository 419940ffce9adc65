//! The simulator's routes: what it answers, and its sockets.

use super::*;

pub(super) fn protobuf(message: &impl prost::Message) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/x-protobuf")], message.encode_to_vec()).into_response()
}

pub(super) async fn user_info(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let data = shared.user(&headers).map(|(id, name)| UserData { id, name, ..UserData::default() });
    protobuf(&UserInfo { status: Some(ok()), data })
}

pub(super) async fn send_message(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(user) = shared.user(&headers) else { return StatusCode::UNAUTHORIZED.into_response() };
    let Ok(request) = SendMessageRequest::decode(body) else { return StatusCode::BAD_REQUEST.into_response() };
    let c = request.content.clone().unwrap_or_default();
    shared.record(Request::Send(Sent {
        msg_id: request.msg_id.clone(),
        chat_id: request.chat_id.clone(),
        chat_type: request.chat_type,
        content_type: request.content_type,
        text: c.text.clone(),
        mentioned_id: c.mentioned_id.clone(),
        quote_msg_id: request.quote_msg_id.clone(),
        quote_msg_text: c.quote_msg_text.clone(),
        media_key: [&c.image, &c.video, &c.audio, &c.file_key]
            .into_iter()
            .find(|k| !k.is_empty())
            .cloned()
            .unwrap_or_default(),
        file_name: c.file_name.clone(),
        file_size: c.file_size,
    }));
    let content = MsgContent {
        text: c.text,
        mentioned_id: c.mentioned_id,
        quote_msg_text: c.quote_msg_text,
        ..MsgContent::default()
    };
    let push = shared.message(
        &request.msg_id,
        &request.chat_id,
        request.chat_type,
        (&user.0, &user.1),
        1,
        request.content_type,
        content,
        &request.quote_msg_id,
    );
    shared.publish("push_message", &push);
    if shared.lose_answers.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        return StatusCode::BAD_GATEWAY.into_response();
    }
    protobuf(&SendMessageResponse { status: Some(ok()) })
}

pub(super) async fn edit_message(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if shared.user(&headers).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(request) = EditMessageRequest::decode(body) else { return StatusCode::BAD_REQUEST.into_response() };
    let text = request.content.map(|c| c.text).unwrap_or_default();
    shared.record(Request::Edit { msg_id: request.msg_id.clone(), text: text.clone() });
    shared.edit(&request.msg_id, &text);
    protobuf(&EditMessageResponse { status: Some(ok()) })
}

pub(super) async fn recall(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if shared.user(&headers).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(request) = RecallMessageRequest::decode(body) else { return StatusCode::BAD_REQUEST.into_response() };
    shared.record(Request::Recall { msg_id: request.msg_id.clone(), chat_id: request.chat_id.clone() });
    shared.recall(&request.msg_id);
    protobuf(&RecallMessageResponse { status: Some(ok()) })
}

pub(super) async fn recall_batch(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if shared.user(&headers).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(request) = RecallBatchRequest::decode(body) else { return StatusCode::BAD_REQUEST.into_response() };
    for msg_id in &request.msg_id {
        shared.record(Request::Recall { msg_id: msg_id.clone(), chat_id: request.chat_id.clone() });
        shared.recall(msg_id);
    }
    protobuf(&RecallMessageResponse { status: Some(ok()) })
}

pub(super) async fn list_by_seq(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if shared.user(&headers).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(request) = ListMessageBySeqRequest::decode(body) else { return StatusCode::BAD_REQUEST.into_response() };
    let inner = shared.lock();
    let msg: Vec<HistoryMsg> = inner
        .history
        .get(&request.chat_id)
        .into_iter()
        .flatten()
        .filter(|m| m.msg_seq >= request.msg_seq)
        .map(|m| {
            let sender = m.sender.clone().unwrap_or_default();
            let content = m.content.clone().unwrap_or_default();
            HistoryMsg {
                msg_id: m.msg_id.clone(),
                sender: Some(HistorySender {
                    chat_id: sender.chat_id,
                    chat_type: sender.chat_type,
                    name: sender.name,
                    avatar_url: sender.avatar_url,
                }),
                content_type: m.content_type,
                content: Some(HistoryContent {
                    text: content.text,
                    quote_msg_text: content.quote_msg_text,
                    ..HistoryContent::default()
                }),
                send_time: m.timestamp as u64,
                quote_msg_id: m.quote_msg_id.clone(),
                msg_seq: m.msg_seq,
                ..HistoryMsg::default()
            }
        })
        .collect();
    let total = msg.len() as u64;
    protobuf(&ListMessageResponse { status: Some(ok()), msg, total })
}

pub(super) async fn socket(State(shared): State<Arc<Shared>>, upgrade: WebSocketUpgrade) -> Response {
    let (dropped, _) = shared.sessions.tokens();
    upgrade.on_upgrade(move |ws| session(ws, shared, dropped))
}

pub(super) async fn session(mut ws: WebSocket, shared: Arc<Shared>, dropped: CancellationToken) {
    let mut frames: Option<broadcast::Receiver<Vec<u8>>> = None;
    loop {
        tokio::select! {
            _ = dropped.cancelled() => return,
            frame = async {
                match &mut frames {
                    Some(rx) => rx.recv().await.ok(),
                    None => std::future::pending().await,
                }
            } => {
                let Some(frame) = frame else { return };
                if ws.send(Message::binary(frame)).await.is_err() {
                    return;
                }
            }
            incoming = ws.recv() => {
                let Some(Ok(Message::Text(text))) = incoming else {
                    if matches!(incoming, Some(Ok(_))) { continue } else { return }
                };
                let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
                let seq = frame["seq"].as_str().unwrap_or_default().to_owned();
                match frame["cmd"].as_str() {
                    Some("login") => {
                        let (user, token) = (frame["data"]["userId"].as_str(), frame["data"]["token"].as_str());
                        let known = shared.config.users.iter().any(|(t, id, _)| Some(t.as_str()) == token && Some(id.as_str()) == user);
                        if !known {
                            let _ = ws.send(Message::text("数据不合法")).await;
                            return;
                        }
                        shared.lock().logins += 1;
                        frames = Some(shared.frames.subscribe());
                    }
                    Some("heartbeat") if frames.is_some() => {
                        // The ack is the envelope's `info` alone: no payload is documented or read.
                        let ack = WsWrapper { info: Some(WsInfo { seq: seq.clone(), cmd: "heartbeat_ack".into() }), data: None }
                            .encode_to_vec();
                        if ws.send(Message::binary(ack)).await.is_err() {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}
