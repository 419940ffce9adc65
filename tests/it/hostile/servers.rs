//! One hostile server, pointed at by every platform's account in turn: it accepts and goes silent, drips its
//! answer a byte at a time, answers with an endless body, or redirects to another origin. Whatever it does,
//! each account backs off and tries again — never stops, never hangs the daemon, never sends its credentials
//! elsewhere.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatbridge::adapters::AccountState;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::harness::{FAST, start, wait_state};

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Accepts the connection and never says anything.
    Silent,
    /// Answers 200 one byte every 200 ms, for ever.
    Drip,
    /// Answers 200 with an endless body.
    Endless,
    /// Answers 307 to another origin, which records whatever reaches it.
    Redirect,
}

/// Serves `mode` on a loopback port; what reached the redirect target, if any.
async fn hostile(mode: Mode) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_addr = target.local_addr().unwrap();
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = target.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await.unwrap_or(0);
            record.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            match mode {
                Mode::Silent => held.push(stream),
                Mode::Drip => {
                    tokio::spawn(async move {
                        let answer =
                            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{";
                        for byte in answer.iter().cycle() {
                            if stream.write_all(&[*byte]).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    });
                }
                Mode::Endless => {
                    tokio::spawn(async move {
                        let head =
                            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                        if stream.write_all(head).await.is_err() {
                            return;
                        }
                        let chunk = format!("10000\r\n{}\r\n", "[".repeat(0x10000));
                        while stream.write_all(chunk.as_bytes()).await.is_ok() {}
                    });
                }
                Mode::Redirect => {
                    let answer = format!(
                        "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{target_addr}/stolen\r\nContent-Length: 0\r\n\r\n"
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    held.push(stream);
                }
            }
        }
    });
    (format!("127.0.0.1:{}", addr.port()), seen)
}

/// Each platform's account, every URL pointing at `at`.
fn accounts(at: &str) -> Vec<(&'static str, String, String)> {
    let http = format!("http://{at}");
    let ws = format!("ws://{at}/ws");
    vec![
        (
            "fishroom.f",
            format!(
                "[accounts.fishroom.f]\napi_url = \"{http}/api\"\ntoken_id = \"1\"\ntoken_key = \"fish-key-secret\"\nrequest_timeout = \"1s\"\n"
            ),
            "fishroom.f:general".to_owned(),
        ),
        (
            "missevan.m",
            format!(
                "[accounts.missevan.m]\ncookie = \"token=missevan-token-secret\"\napi_url = \"{http}\"\nws_url = \"{ws}\"\nrequest_timeout = \"1s\"\nheartbeat = \"1s\"\nidle_timeout = \"2s\"\n"
            ),
            "missevan.m:868858631".to_owned(),
        ),
        (
            "heihei.h",
            format!(
                "[accounts.heihei.h]\ntoken = \"heihei-token-secret\"\ninit_url = \"{http}/api/init\"\nrequest_timeout = \"1s\"\n"
            ),
            "heihei.h:host/38298237".to_owned(),
        ),
        (
            "yunhu.y",
            format!(
                "[accounts.yunhu.y]\ntoken = \"yunhu-token-secret\"\napi_url = \"{http}\"\nws_url = \"{ws}\"\nrequest_timeout = \"1s\"\nheartbeat = \"1s\"\nidle_timeout = \"2s\"\n"
            ),
            "yunhu.y:group/g".to_owned(),
        ),
        (
            "iirose.i",
            format!(
                "[accounts.iirose.i]\nusername = \"bot\"\npassword = \"iirose-password-secret\"\nws_url = \"{ws}\"\nrequest_timeout = \"1s\"\nheartbeat = \"500ms\"\n"
            ),
            "iirose.i:5ce6a4b520a90".to_owned(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_platform_backs_off_from_a_hostile_server() {
    for mode in [Mode::Silent, Mode::Drip, Mode::Endless, Mode::Redirect] {
        let (at, seen) = hostile(mode).await;
        let accounts = accounts(&at);
        let rooms: Vec<String> = accounts.iter().map(|(_, _, room)| format!("\"{room}\"")).collect();
        let tables: String = accounts.iter().map(|(_, table, _)| format!("\n{table}")).collect();
        let source = format!("{FAST}{tables}\n[[bridge]]\nname = \"b\"\nrooms = [{}]\n", rooms.join(", "));
        let running = start(&source, &[]).await;
        let ids: Vec<&str> = accounts.iter().map(|(id, _, _)| *id).collect();
        for id in &ids {
            wait_state(&running, &[id], |s| matches!(s, AccountState::BackingOff { .. })).await;
        }
        let states = running.daemon().states().borrow().clone();
        for (id, state) in &states {
            assert!(!matches!(state, AccountState::Stopped { .. }), "{mode:?}: {id} stopped: {state:?}");
        }
        let reached = seen.lock().unwrap().clone();
        for secret in ["fish-key-secret", "missevan-token-secret", "heihei-token-secret", "yunhu-token-secret"] {
            assert!(!reached.iter().any(|r| r.contains(secret)), "{mode:?}: {secret} followed a redirect: {reached:?}");
        }
        running.shutdown().await;
    }
}
