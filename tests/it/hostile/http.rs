//! The daemon's HTTP listeners against slow, silent and greedy clients.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{FAST, Running, account, fishroom, free_port, start};

const TOKEN: &str = "api-secret-token";

async fn api(general: &str) -> (u16, Running, chatbridge::sim::fishroom::FishroomSim) {
    let port = free_port();
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{general}\n[accounts.api.bots]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n{}\n[[bridge]]\nname = \"b\"\nrooms = [\"api.bots:b\", \"fishroom.tuna:general\"]\n",
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["api.bots", "fishroom.tuna"]).await;
    (port, running, fish)
}

/// Reads until the server closes the connection (bounded): what it sent before closing.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server closed the connection in time");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_clients_are_cut() {
    // The minimum rate (which would cut the last client first) is another test's: here the deadlines.
    let (port, running, _fish) =
        api("http_header_timeout = \"1s\"\nhttp_body_timeout = \"1s\"\nhttp_min_rate = 0\n").await;
    // Connected and silent: closed once the header deadline passes.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    until_closed(&mut silent).await;
    // Headers a byte at a time that never end (slowloris): closed too.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    slow.write_all(b"POST /api/message HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    until_closed(&mut slow).await;
    // A body announced and never sent: answered 408 instead of waited for.
    let mut greedy = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!(
        "POST /api/message HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{\"text\":"
    );
    greedy.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), greedy.read(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_the_rest_served() {
    let (port, running, _fish) = api("http_max_connections = 4\n").await;
    let health = format!("GET /api/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    // Four connections that said nothing: at the cap, a newcomer takes the oldest one's place and is served.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    let mut newcomer = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    newcomer.write_all(health.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), newcomer.read(&mut answer)).await.expect("answered").unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"), "the newcomer is served");
    assert_eq!(until_closed(&mut idle[0]).await, "", "the oldest idle connection made room");
    drop((idle, newcomer));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Four connections whose requests passed the token check hold their places: a fifth is closed unanswered.
    let mut admitted = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.write_all(health.as_bytes()).await.unwrap();
        let n =
            tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await.expect("answered").unwrap();
        assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
        admitted.push(stream);
    }
    let mut fifth = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = fifth.write_all(health.as_bytes()).await;
    assert_eq!(until_closed(&mut fifth).await, "");
    // One of the four goes away: a request is served again.
    drop(admitted.pop());
    let http = chatbridge::adapters::http_client(Duration::from_secs(5));
    let mut served = false;
    for _ in 0..100 {
        let answer = http
            .get(format!("http://127.0.0.1:{port}/api/health"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .send()
            .await;
        if let Ok(answer) = answer
            && answer.status() == 200
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a freed place is used again");
    drop(admitted);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_the_size_limit_are_refused_on_every_api_path() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::{Bytes, Message};
    let (port, running, fish) = api("").await;
    // A body of `size` bytes exactly.
    let sized = |size: usize, gateway: &str| {
        let envelope = serde_json::json!({"text": "", "username": "bot", "gateway": gateway}).to_string().len();
        serde_json::json!({"text": "x".repeat(size - envelope), "username": "bot", "gateway": gateway}).to_string()
    };
    const LIMIT: usize = 2 << 20;
    let http = chatbridge::adapters::http_client(Duration::from_secs(5));
    let post = |body: String| {
        http.post(format!("http://127.0.0.1:{port}/api/message"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .body(body)
            .send()
    };
    // At the limit the body is read and judged (an unknown gateway), one byte past it it is refused unread.
    let at_limit = post(sized(LIMIT, "nope")).await.unwrap();
    assert_eq!(at_limit.status(), 400);
    assert!(at_limit.text().await.unwrap().contains("unknown gateway"));
    assert_eq!(post(sized(LIMIT + 1, "b")).await.unwrap().status(), 413);
    let body = sized(3 << 20, "b");
    assert_eq!(post(body.clone()).await.unwrap().status(), 413);
    // The same message over the websocket, in 64 KiB fragments: the connection is closed, nothing relayed.
    let mut request = format!("ws://127.0.0.1:{port}/api/websocket").into_client_request().unwrap();
    request.headers_mut().insert("Authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let bytes = Bytes::from(body.into_bytes());
    let pieces: Vec<Bytes> =
        (0..bytes.len()).step_by(64 * 1024).map(|at| bytes.slice(at..(at + 64 * 1024).min(bytes.len()))).collect();
    let last = pieces.len() - 1;
    let mut sent_all = true;
    for (n, piece) in pieces.into_iter().enumerate() {
        let opcode = if n == 0 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
        if socket.send(Message::Frame(Frame::message(piece, opcode, n == last))).await.is_err() {
            sent_all = false;
            break;
        }
    }
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok() || !sent_all, "the oversized message closed the connection");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fish.posted().is_empty(), "nothing relayed");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_stops_reading_is_cut() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (port, source_port, status_port) = (free_port(), free_port(), free_port());
    let source = format!(
        "{FAST}http_listen = \"127.0.0.1:{status_port}\"\n\n[accounts.api.bots]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\nhistory = 5\n\
         \n[accounts.api.source]\nlisten = \"127.0.0.1:{source_port}\"\ntoken = \"{TOKEN}\"\n\
         \n[[bridge]]\nname = \"b\"\nrooms = [\"api.bots:b\", \"api.source:b\"]\n",
    );
    let running = start(&source, &["api.bots", "api.source"]).await;
    let connect = || {
        let mut request = format!("ws://127.0.0.1:{port}/api/websocket").into_client_request().unwrap();
        request.headers_mut().insert("Authorization", format!("Bearer {TOKEN}").parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    let (stuck, _) = connect().await.unwrap();
    let (mut reader, _) = connect().await.unwrap();
    // Far more than the socket buffers hold: the stuck client's session blocks in its send.
    let big = "字".repeat(100_000);
    let http = chatbridge::adapters::http_client(Duration::from_secs(30));
    for n in 0..40 {
        let body = serde_json::json!({"text": format!("{n} {big}"), "username": "bot", "gateway": "b"});
        let answer = http
            .post(format!("http://127.0.0.1:{source_port}/api/message"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let mut seen = 0;
    while seen < 40 {
        let frame = tokio::time::timeout(Duration::from_secs(30), reader.next()).await.expect("the reader is served");
        let frame = frame.expect("open").expect("readable");
        if frame.to_text().unwrap_or_default().contains(&big[..30]) {
            seen += 1;
        }
    }
    // The stuck client is cut (without anything read from it, which would unblock it): one client left.
    let clients = || async {
        let metrics = http.get(format!("http://127.0.0.1:{status_port}/metrics")).send().await.unwrap();
        let text = metrics.text().await.unwrap();
        text.lines().find_map(|l| l.strip_prefix("chatbridge_api_websocket_clients ")?.parse::<u64>().ok())
    };
    let mut left = None;
    for _ in 0..400 {
        left = clients().await;
        if left == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, Some(1), "the stuck client's session ended");
    drop(stuck);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_past_the_cap_are_refused() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (port, running, _fish) = api("http_max_connections = 2\n").await;
    let connect = || {
        let mut request = format!("ws://127.0.0.1:{port}/api/websocket").into_client_request().unwrap();
        request.headers_mut().insert("Authorization", format!("Bearer {TOKEN}").parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    let first = connect().await.unwrap();
    let second = connect().await.unwrap();
    let third = connect().await;
    assert!(matches!(&third, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 503), "{third:?}");
    drop(first);
    let mut again = Err(());
    for _ in 0..100 {
        if let Ok(socket) = connect().await {
            again = Ok(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_ok(), "a freed place is used again");
    drop(second);
    running.shutdown().await;
}
