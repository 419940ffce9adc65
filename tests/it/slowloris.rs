//! Listeners that one client cannot starve (issue #30 §4): 600 connections dribbling headers from 127.0.0.2, 600
//! more spread over ten other addresses knocking at the API without a token, and a hundred authenticated posts
//! dribbling their bodies, all at once — while a good client on 127.0.0.1 keeps at least 99 % of its requests to
//! `/health` and to the API answered within a second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::harness::*;

const TOKEN: &str = "slowloris-test-token";

/// Connects from `from` to `to` and sends `head`, then one byte of `dribble` every `every`, for as long as the
/// connection lasts; then connects again, until `stop`. Counts the connections it made.
async fn dribbler(
    from: &str,
    to: SocketAddr,
    head: String,
    dribble: &'static [u8],
    every: Duration,
    stop: Arc<AtomicBool>,
    made: Arc<AtomicUsize>,
) {
    let from: SocketAddr = format!("{from}:0").parse().unwrap();
    while !stop.load(Ordering::Relaxed) {
        let socket = TcpSocket::new_v4().unwrap();
        if socket.bind(from).is_err() {
            return;
        }
        let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(2), socket.connect(to)).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        made.fetch_add(1, Ordering::Relaxed);
        if stream.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        for byte in dribble.iter().cycle() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(every).await;
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            // Closed by the server: its read side says so.
            let mut probe = [0u8; 64];
            if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await {
                break;
            }
        }
    }
}

/// One request on a new connection from 127.0.0.1: whether it was answered 200 within a second.
async fn good_request(to: SocketAddr, request: &str) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(to).await.ok()?;
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.starts_with(b"HTTP/1.1 ") && answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        Some(answer.starts_with(b"HTTP/1.1 200"))
    };
    matches!(tokio::time::timeout(Duration::from_secs(1), attempt).await, Ok(Some(true)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_unauthenticated_clients_cannot_keep_good_ones_out() {
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let (status_port, api_port) = (free_port(), free_port());
    let source = format!(
        "{}http_listen = \"127.0.0.1:{status_port}\"\n\n[accounts.api.bots]\nlisten = \"127.0.0.1:{api_port}\"\n\
         token = \"{TOKEN}\"\n{}\n[[bridge]]\nname = \"b\"\nrooms = [\"api.bots:b\", \"fishroom.tuna:general\"]\n",
        FAST,
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["fishroom.tuna", "api.bots"]).await;
    let status: SocketAddr = format!("127.0.0.1:{status_port}").parse().unwrap();
    let api: SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(0));
    let mut attackers = tokio::task::JoinSet::new();
    let slow = Duration::from_millis(400);
    // Headers dribbled from one address (no token needed for /health).
    for _ in 0..600 {
        let head = "GET /health HTTP/1.1\r\nHost: bridge\r\n".to_owned();
        attackers.spawn(dribbler("127.0.0.2", status, head, b"X-Pad: y\r\n", slow, stop.clone(), made.clone()));
    }
    // Headers dribbled at the API from ten addresses, sixty each: more than the cap, under each address's share.
    for n in 0..600 {
        let from = format!("127.0.0.{}", 3 + n % 10);
        let head = "GET /api/messages HTTP/1.1\r\nHost: bridge\r\n".to_owned();
        let (stop, made) = (stop.clone(), made.clone());
        attackers.spawn(async move { dribbler(&from, api, head, b"X-Pad: y\r\n", slow, stop, made).await });
    }
    // Authenticated posts whose bodies dribble.
    for _ in 0..100 {
        let head = format!(
            "POST /api/message HTTP/1.1\r\nHost: bridge\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        );
        attackers.spawn(dribbler("127.0.0.13", api, head, b"{", slow, stop.clone(), made.clone()));
    }
    // Let the attack take hold, then the good client's requests, one connection each.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let health = "GET /health HTTP/1.1\r\nHost: bridge\r\nConnection: close\r\n\r\n".to_owned();
    let authenticated = format!(
        "GET /api/health HTTP/1.1\r\nHost: bridge\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    let (mut answered, mut asked) = (0, 0);
    let began = Instant::now();
    for n in 0..200 {
        let (to, request) = if n % 2 == 0 { (status, &health) } else { (api, &authenticated) };
        asked += 1;
        if good_request(to, request).await {
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = began.elapsed();
    stop.store(true, Ordering::Relaxed);
    attackers.abort_all();
    assert!(made.load(Ordering::Relaxed) >= 1300, "the attack ran: {} connections", made.load(Ordering::Relaxed));
    assert!(answered * 100 >= asked * 99, "{answered} of {asked} good requests answered within 1 s (over {took:?})");
    running.shutdown().await;
}
