//! The load tool's counting, against a deliberately lossy fake endpoint, and in-process against chatbridge.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::routing::{get, post};
use chatbridge::load::{LoadOptions, LoadReport, in_process_config, run};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::harness::{free_port, start};

/// A fake bridge: every 10th message is lost, every 7th (of those kept) comes twice.
async fn lossy_endpoint() -> String {
    let (tx, _) = broadcast::channel::<String>(10_000);
    let count = Arc::new(AtomicUsize::new(0));
    let app =
        Router::new()
            .route(
                "/api/message",
                post(
                    |State((tx, count)): State<(broadcast::Sender<String>, Arc<AtomicUsize>)>,
                     body: axum::Json<Value>| async move {
                        let text = body["text"].as_str().unwrap_or_default().to_owned();
                        let n: usize = text.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                        count.fetch_add(1, Ordering::Relaxed);
                        let message = json!({"text": format!("[fake] load: {text}"), "gateway": "g"}).to_string();
                        if n % 10 != 9 {
                            let _ = tx.send(message.clone());
                            if n.is_multiple_of(7) {
                                let _ = tx.send(message);
                            }
                        }
                        "{}"
                    },
                ),
            )
            .with_state((tx.clone(), count));
    serve_fake(app, tx).await
}

/// Serves a fake's posting side with a websocket that hands every frame sent on `tx` to its readers.
async fn serve_fake(posting: Router, tx: broadcast::Sender<String>) -> String {
    let reading = get(|State(tx): State<broadcast::Sender<String>>, upgrade: WebSocketUpgrade| async move {
        let mut rx = tx.subscribe();
        upgrade.on_upgrade(|mut ws| async move {
            let _ = ws.send(Message::text(json!({"event": "api_connected"}).to_string())).await;
            while let Ok(frame) = rx.recv().await {
                if ws.send(Message::text(frame)).await.is_err() {
                    return;
                }
            }
        })
    })
    .with_state(tx);
    let app = posting.route("/api/websocket", reading);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn options(post_url: String, read_url: String, messages: usize) -> LoadOptions {
    LoadOptions {
        post_url,
        read_url,
        post_gateway: "load".into(),
        token: None,
        messages,
        concurrency: 4,
        rate: None,
        grace: Duration::from_millis(500),
        pid: None,
        time_limit: None,
    }
}

/// A fake bridge that answers every 13th post with 500 (delivering it all the same) and delivers every 20th
/// message only after the one posted next.
async fn unruly_endpoint() -> String {
    type Shared = (broadcast::Sender<String>, Arc<std::sync::Mutex<Option<String>>>);
    let (tx, _) = broadcast::channel::<String>(10_000);
    let held: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let app = Router::new()
        .route(
            "/api/message",
            post(|State((tx, held)): State<Shared>, body: axum::Json<Value>| async move {
                let text = body["text"].as_str().unwrap_or_default().to_owned();
                let n: usize = text.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                let message = json!({"text": text, "gateway": "g"}).to_string();
                let earlier = held.lock().unwrap().take();
                if n % 20 == 3 {
                    *held.lock().unwrap() = Some(message);
                } else {
                    let _ = tx.send(message);
                }
                if let Some(earlier) = earlier {
                    let _ = tx.send(earlier);
                }
                if n % 13 == 12 { axum::http::StatusCode::INTERNAL_SERVER_ERROR } else { axum::http::StatusCode::OK }
            }),
        )
        .with_state((tx.clone(), held));
    serve_fake(app, tx).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_posts_and_messages_out_of_a_sender_s_order_are_counted() {
    let url = unruly_endpoint().await;
    let mut opts = options(url.clone(), url, 100);
    opts.concurrency = 1;
    let report = run(opts).await.unwrap();
    let failed = (0..100).filter(|n| n % 13 == 12).count();
    // Held back: 3, 23, 43, 63, 83 (each arrives after the next); the last post's successor never comes.
    assert_eq!((report.failed, report.out_of_order, report.delivered), (failed, 5, 100), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posting_stops_at_the_time_limit() {
    let url = lossy_endpoint().await;
    let mut opts = options(url.clone(), url, 10_000);
    opts.rate = Some(100.0);
    opts.time_limit = Some(Duration::from_millis(300));
    let report = run(opts).await.unwrap();
    assert!(report.sent > 0 && report.sent < 100, "{report}");
    assert_eq!(report.delivered + report.lost, report.sent, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_and_duplicated_messages_are_counted() {
    let url = lossy_endpoint().await;
    let report: LoadReport = run(options(url.clone(), url, 100)).await.unwrap();
    let lost = (0..100).filter(|n| n % 10 == 9).count();
    let duplicated = (0..100).filter(|n| n % 10 != 9 && n % 7 == 0).count();
    assert_eq!((report.sent, report.lost, report.duplicated), (100, lost, duplicated), "{report}");
    assert_eq!(report.delivered, 100 - lost);
    assert!(report.p99_ms >= report.p50_ms && report.max_ms >= report.p99_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatbridge_in_process_loses_nothing() {
    let (post_port, read_port) = (free_port(), free_port());
    let running = start(&in_process_config(post_port, read_port, None), &["api.post", "api.read"]).await;
    let mut opts = options(format!("http://127.0.0.1:{post_port}"), format!("http://127.0.0.1:{read_port}"), 500);
    opts.pid = Some(std::process::id());
    let report = run(opts).await.unwrap();
    assert_eq!((report.delivered, report.lost, report.duplicated), (500, 0, 0), "{report}");
    assert!(report.cpu_ms_per_message.is_some() && report.peak_rss_kib.is_some());
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_platforms_configuration_connects_every_account() {
    let sims = chatbridge::simulate::start(2).await.unwrap();
    let running = start(&sims.config, &["fishroom.sim", "missevan.sim", "iirose.sim", "heihei.sim", "yunhu.sim"]).await;
    assert!(running.daemon().status_addr().is_some(), "the configuration serves /health");
    running.shutdown().await;
}

/// `chatbridge sim`'s control API drives the simulators by hand: a user says something on one platform, and what
/// the bridge sent to the others is listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_control_api_says_and_lists_what_was_sent() {
    let sims = std::sync::Arc::new(chatbridge::simulate::start(2).await.unwrap());
    let running = start(&sims.config, &["fishroom.sim", "missevan.sim", "iirose.sim", "heihei.sim", "yunhu.sim"]).await;
    let control = chatbridge::simulate::control(std::sync::Arc::clone(&sims), 0).await.unwrap();
    let http = chatbridge::adapters::http_client(std::time::Duration::from_secs(5));
    let said = http
        .post(format!("http://{control}/say"))
        .body(r#"{"platform": "yunhu", "room": 1, "user": "alice", "text": "typed by hand"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(said.status(), 200);
    let mut sent = serde_json::Value::Null;
    for _ in 0..100 {
        sent = http.get(format!("http://{control}/sent")).send().await.unwrap().json().await.unwrap();
        if sent["fishroom"].as_array().is_some_and(|p| p.iter().any(|m| m["text"] == "typed by hand")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let to_fishroom = sent["fishroom"].as_array().unwrap().iter().find(|m| m["text"] == "typed by hand").cloned();
    assert_eq!(to_fishroom.map(|m| m["room"].clone()), Some("room1".into()), "{sent}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_take_fixed_ports_when_asked() {
    // Six consecutive free ports from a random base below the kernel's ephemeral range (32768 and up here), so
    // that no outgoing connection of a parallel test takes one between the check and the daemon's start (never a
    // port fixed in the test).
    let mut started = None;
    for _ in 0..20 {
        let base = 20_000 + fastrand::u16(..12_000);
        if std::net::TcpListener::bind(("127.0.0.1", base + 5)).is_err() {
            continue;
        }
        if let Ok(sims) = chatbridge::simulate::start_on(1, base).await {
            started = Some((base, sims));
            break;
        }
    }
    let (base, sims) = started.expect("six consecutive loopback ports were free");
    for (n, what) in ["fishroom", "missevan", "iirose", "heihei", "yunhu"].into_iter().enumerate() {
        let port = base + n as u16;
        assert!(sims.config.contains(&format!("127.0.0.1:{port}")), "{what} on {port}: {}", sims.config);
    }
    assert!(sims.config.contains(&format!("http_listen = \"127.0.0.1:{}\"", base + 5)), "{}", sims.config);
    let running = start(&sims.config, &["fishroom.sim", "missevan.sim", "iirose.sim", "heihei.sim", "yunhu.sim"]).await;
    assert_eq!(running.daemon().status_addr().map(|a| a.port()), Some(base + 5));
    running.shutdown().await;
}
