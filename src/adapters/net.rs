//! The platforms' transports: websockets opened with small buffers and Nagle off, HTTP clients that never use a
//! proxy and never follow a redirect to another origin, and the one TLS provider.

use std::time::Duration;

use super::WsStream;

/// A websocket's read buffer: tungstenite allocates and zeroes it up front (128 KiB by default), per
/// connection, and keeps it while the socket is idle. Chat frames are small; a larger frame is read in several
/// steps. This is an account's socket, which carries all its rooms.
pub const WS_READ_BUFFER: usize = 8 * 1024;

/// The read buffer of a socket that carries one room (Missevan's): an account may hold thousands of them, nearly
/// all idle, and a room's frames are a few hundred bytes (`tests/fixtures/wire/missevan`). At 8 KiB the buffer
/// was most of an idle room's memory (docs/performance.md, "Memory per room").
pub const WS_ROOM_READ_BUFFER: usize = 2 * 1024;

/// The largest websocket message a platform may send (the library's default is 64 MiB). The platforms' frames
/// are a few KiB — a chat line and its notices, compressed where the platform compresses — so 4 MiB is room
/// enough, and a hostile server costs at most that much a message before the decoders' own caps.
pub const WS_MAX_MESSAGE: usize = 4 << 20;

/// Opens a platform's websocket with Nagle's algorithm off (a chat client writes small frames — a message,
/// a heartbeat — that should leave at once, not wait for the acknowledgement of the previous one), a
/// small read buffer (`read_buffer`: [`WS_READ_BUFFER`] or [`WS_ROOM_READ_BUFFER`]) and messages of at most
/// [`WS_MAX_MESSAGE`].
pub async fn connect_ws<R>(
    request: R,
    read_buffer: usize,
) -> Result<
    (WsStream, tokio_tungstenite::tungstenite::handshake::client::Response),
    tokio_tungstenite::tungstenite::Error,
>
where
    R: tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
{
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .max_message_size(Some(WS_MAX_MESSAGE))
        .max_frame_size(Some(WS_MAX_MESSAGE));
    tokio_tungstenite::connect_async_with_config(request, Some(config), true).await
}

/// Builds an HTTP client that never uses a system proxy (so loopback traffic stays on loopback) and
/// gives every request a timeout.
///
/// Accounts with the same timeout share one client (a client holds its own TLS set-up and certificate store,
/// which is most of an idle daemon's memory).
pub fn http_client(timeout: Duration) -> reqwest::Client {
    static CLIENTS: std::sync::Mutex<Vec<(Duration, reqwest::Client)>> = std::sync::Mutex::new(Vec::new());
    install_crypto_provider();
    let mut clients = CLIENTS.lock().expect("the client cache lock is never poisoned");
    if let Some((_, client)) = clients.iter().find(|(t, _)| *t == timeout) {
        return client.clone();
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("chatbridge/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::custom(same_origin_redirects))
        .build()
        .expect("the TLS provider is installed and the client settings are static");
    clients.push((timeout, client.clone()));
    client
}

/// Redirects are followed only within the origin of the first request, five at most. reqwest strips only the
/// standard credential headers when a redirect leaves the origin; the platforms' own (`X-TOKEN-KEY`, `token`,
/// tokens in forms that a 307 sends again) would follow, so a redirect elsewhere is an error instead.
fn same_origin_redirects(attempt: reqwest::redirect::Attempt<'_>) -> reqwest::redirect::Action {
    let first = attempt.previous().first().map(reqwest::Url::origin);
    if first.is_some_and(|first| first != attempt.url().origin()) {
        let to = attempt.url().origin().ascii_serialization();
        return attempt.error(format!("a redirect to another origin ({to}) was refused: credentials go nowhere else"));
    }
    if attempt.previous().len() > 5 {
        return attempt.error("more than five redirects");
    }
    attempt.follow()
}

/// Installs the one rustls crypto provider this build carries (ring); idempotent.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tls_client_builds() {
        // Two crypto providers in the tree, or none installed, make this panic at run time.
        let client = http_client(Duration::from_secs(1));
        drop(client);
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }

    /// A server that answers every request with a redirect to `to`, and one that records what reaches it.
    async fn redirecting(to: String) -> std::net::SocketAddr {
        let app = axum::Router::new().fallback(move || {
            let to = to.clone();
            async move { (axum::http::StatusCode::TEMPORARY_REDIRECT, [(axum::http::header::LOCATION, to)]) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    #[tokio::test]
    async fn credentials_never_follow_a_redirect_to_another_origin() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let record = std::sync::Arc::clone(&seen);
        let target = axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: String| {
            let record = std::sync::Arc::clone(&record);
            async move {
                record.lock().unwrap().push(format!("{headers:?} {body}"));
                "ok"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, target).await });
        // Another port is another origin: the token, the key and the body stay home.
        let hostile = redirecting(format!("http://{other}/stolen")).await;
        let client = http_client(Duration::from_secs(2));
        let answer = client
            .post(format!("http://{hostile}/api/messages/room/"))
            .header("X-TOKEN-KEY", "fish-key-secret")
            .header("token", "yunhu-token-secret")
            .body("message body")
            .send()
            .await;
        let error = answer.expect_err("a cross-origin redirect is an error");
        assert!(format!("{error:?}").contains("another origin"), "{error:?}");
        assert!(seen.lock().unwrap().is_empty(), "nothing reached the other origin: {:?}", seen.lock().unwrap());
        // Within the origin, redirects are followed, and a loop is cut.
        let app = axum::Router::new()
            .route("/start", axum::routing::get(|| async { axum::response::Redirect::temporary("/landing") }))
            .route("/landing", axum::routing::get(|| async { "landed" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let home = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let answer = client.get(format!("http://{home}/start")).send().await.unwrap();
        assert_eq!(answer.text().await.unwrap(), "landed");
        let looping = redirecting("/again".to_owned()).await;
        let answer = client.get(format!("http://{looping}/start")).send().await;
        assert!(matches!(&answer, Err(e) if format!("{e:?}").contains("more than five")), "a loop is cut: {answer:?}");
    }

    #[tokio::test]
    async fn platform_websockets_send_at_once_and_read_frames_larger_than_their_buffer() {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let big = "字".repeat(40_000); // 120 KB in one frame, sixty times the read buffer
        let sent = big.clone();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
            socket.send(Message::text(sent)).await.unwrap();
            socket.next().await
        });
        let (mut socket, _) = connect_ws(format!("ws://{addr}/"), WS_ROOM_READ_BUFFER).await.unwrap();
        let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = socket.get_ref() else { panic!("plain TCP") };
        assert!(tcp.nodelay().unwrap(), "Nagle's algorithm is off");
        let frame = socket.next().await.unwrap().unwrap();
        assert_eq!(frame.into_text().unwrap().as_str(), big);
        socket.close(None).await.unwrap();
        let _ = server.await;
    }
}
