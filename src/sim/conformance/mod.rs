//! Each simulator against the golden corpus (`crate::corpus`): driven as a real client would drive the
//! platform, its frames for each situation must have the golden frames' shape, and it must accept the
//! golden client frames as they are. A simulator that drifts from the corpus fails here.

mod fishroom;
mod heihei;
mod iirose;
mod missevan;
mod yunhu;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

pub(super) type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a simulator may take to answer.
const WAIT: Duration = Duration::from_secs(5);

pub(super) async fn connect(request: impl tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin) -> Client {
    tokio_tungstenite::connect_async(request).await.expect("the simulator accepts the socket").0
}

/// The next data frame (text or binary), skipping control frames.
pub(super) async fn next(client: &mut Client) -> Message {
    loop {
        let frame = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("the simulator answers in time")
            .expect("the socket stays open")
            .expect("a readable frame");
        if matches!(frame, Message::Text(_) | Message::Binary(_)) {
            return frame;
        }
    }
}

pub(super) async fn send(client: &mut Client, frame: Message) {
    client.send(frame).await.expect("the simulator takes the frame");
}

/// An HTTP client as the adapters build theirs.
pub(super) fn http() -> reqwest::Client {
    crate::adapters::http_client(WAIT)
}
