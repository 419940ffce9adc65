//! Servers that flood: with nonsense answers, with frames that hold millions of bad items.

use std::process::Stdio;
use std::time::Duration;

use chatbridge::sim::missevan::RawFrame;

use crate::binary::{bin, read_all, sigterm, temp_dir, wait_exit, write_config};
use crate::harness::{FAST, Pair, account, eventually, fishroom, free_port, missevan, missevan_account};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_answering_html_is_not_polled_in_a_loop() {
    let pair = Pair::start().await;
    let running = pair.run().await;
    // Every poll is answered at once with 200 and an HTML page.
    for _ in 0..5_000 {
        pair.tuna.inject_raw("11", "<html><body>Welcome to nginx!</body></html>");
    }
    let before = pair.tuna.polls();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let polls = pair.tuna.polls() - before;
    // Backing off (50 ms doubling to 200 ms here): a handful of polls, not thousands.
    assert!(polls < 100, "{polls} polls in two seconds");
    assert!(running.daemon().stats().malformed.get() > 0);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_of_two_million_bad_items_logs_a_few_lines() {
    const ROOM: u64 = 868858631;
    let fm = missevan(&[ROOM], None).await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let status_port = free_port();
    let dir = temp_dir("flood");
    let config = write_config(
        &dir,
        &format!(
            "{}http_listen = \"127.0.0.1:{status_port}\"\n{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"missevan.fm:{ROOM}\", \"fishroom.tuna:general\"]\n",
            FAST,
            missevan_account("fm", &fm, ""),
            account("tuna", &fish, "11", "key"),
        ),
    );
    let mut child = bin()
        .args(["run", "--log-format", "json", "-c"])
        .arg(&config)
        .current_dir(&dir)
        .env_remove("STATE_DIRECTORY")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the daemon starts");
    let stderr = child.stderr.take();
    let log = std::thread::spawn(move || read_all(stderr));
    eventually("the live room is joined", || !fm.joins().is_empty()).await;
    // A few dozen bytes of Brotli that decode to two million items: past what a frame may hold, refused whole
    // before any item is built (one malformed frame); then a frame of a thousand bad items, each counted.
    let items = format!("[{}0]", "0,".repeat(2_000_000 - 1));
    fm.push_raw(ROOM, RawFrame::Binary(chatbridge::adapters::missevan::wire::encode_binary(items.as_bytes())));
    let bad = format!("[{}0]", "0,".repeat(chatbridge::adapters::missevan::wire::MAX_ITEMS - 1));
    fm.push_raw(ROOM, RawFrame::Binary(chatbridge::adapters::missevan::wire::encode_binary(bad.as_bytes())));
    let expected = 1 + chatbridge::adapters::missevan::wire::MAX_ITEMS as u64;
    let http = chatbridge::adapters::http_client(Duration::from_secs(5));
    let mut counted = 0u64;
    for _ in 0..500 {
        let metrics = http.get(format!("http://127.0.0.1:{status_port}/metrics")).send().await;
        if let Ok(metrics) = metrics {
            let text = metrics.text().await.unwrap_or_default();
            counted = text
                .lines()
                .filter(|l| l.starts_with("chatbridge_frames_malformed_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum();
            if counted >= expected {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counted, expected, "the refused frame once, every bad item of the other");
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(10))).await.unwrap();
    assert!(status.success());
    let log = log.join().unwrap();
    let warnings = log.lines().filter(|l| l.contains("Malformed item skipped")).count();
    assert!(warnings <= 2 * chatbridge::telemetry::THROTTLE_BURST as usize, "{warnings} warnings");
    assert!(warnings >= 1);
    let _ = std::fs::remove_dir_all(dir);
}
