//! The simulator's routes: what it answers, and its sockets.

use super::*;

pub(super) async fn socket(State(shared): State<Arc<Shared>>, upgrade: WebSocketUpgrade) -> Response {
    if shared.down.load(Ordering::SeqCst) {
        return axum::response::IntoResponse::into_response(axum::http::StatusCode::SERVICE_UNAVAILABLE);
    }
    let (dropped, muted) = shared.sessions.tokens();
    upgrade.on_upgrade(move |ws| session(ws, shared, dropped, muted))
}

pub(super) async fn session(
    mut ws: WebSocket,
    shared: Arc<Shared>,
    dropped: CancellationToken,
    muted: CancellationToken,
) {
    let conn = shared.next.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    loop {
        tokio::select! {
            _ = dropped.cancelled() => break,
            _ = muted.cancelled() => {
                // Silent until cut: nothing is read (so no ping is answered) and nothing is sent.
                dropped.cancelled().await;
                break;
            }
            packet = rx.recv() => {
                let Some(packet) = packet else { break };
                // A frame as given, not encoded (garbage for the tests).
                let frame = match packet.strip_prefix(RAW_FRAME) {
                    Some(raw) => raw.as_bytes().to_vec(),
                    None => encode_frame(&packet),
                };
                if ws.send(Message::binary(frame)).await.is_err() {
                    break;
                }
            }
            frame = ws.recv() => {
                let bytes = match frame {
                    Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                    Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
                    Some(Ok(_)) => continue,
                    _ => break,
                };
                let Ok(text) = decode_frame(&bytes) else { continue };
                if let Some(login) = text.strip_prefix('*') {
                    if let Err(refusal) = shared.login(login, conn, &tx) {
                        let _ = ws.send(Message::binary(encode_frame(&refusal))).await;
                    }
                } else if !text.is_empty() {
                    shared.handle(conn, &text);
                }
            }
        }
    }
    shared.lock().clients.remove(&conn);
}
