//! `/health` and `/metrics` on `general.http_listen`.

use chatbridge::adapters::AccountState;

use crate::harness::{FAST, account, eventually, fishroom, missevan, missevan_account, start, wait_state};

const ROOM: u64 = 868858631;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_reflect_a_stopped_account_and_a_rejected_message() {
    let fish = fishroom(&["general", "other"], &[("11", "key", "bridge"), ("12", "key2", "other")]).await;
    let fm = missevan(&[ROOM], Some("违禁")).await;
    let source = format!(
        "{}http_listen = \"127.0.0.1:0\"\n{}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"fishroom.tuna:general\", \"fishroom.bad:other\", \"missevan.fm:{ROOM}\"]\n",
        FAST,
        account("tuna", &fish, "11", "key"),
        account("bad", &fish, "12", "wrong"),
        missevan_account("fm", &fm, ""),
    );
    let running = start(&source, &["fishroom.tuna", "missevan.fm"]).await;
    wait_state(&running, &["fishroom.bad"], |s| matches!(s, AccountState::Stopped { .. })).await;
    fish.say("general", "irc", "alice", "这是违禁词");
    let stats = running.daemon().stats();
    eventually("the platform rejects it", || stats.rejected.get() == 1).await;

    let addr = running.daemon().status_addr().expect("the status server listens");
    let http = chatbridge::adapters::http_client(std::time::Duration::from_secs(5));
    let health = http.get(format!("http://{addr}/health")).send().await.unwrap();
    assert_eq!(health.status(), 503, "an account stopped by a fatal error");
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["accounts"]["fishroom.tuna"]["state"], "connected");
    assert_eq!(body["accounts"]["fishroom.bad"]["state"], "stopped");
    assert!(body["accounts"]["fishroom.bad"]["reason"].as_str().unwrap().contains("403"), "{body}");

    let metrics = http.get(format!("http://{addr}/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        "chatbridge_messages_rejected_total{account=\"missevan.fm\",room=\"868858631\"} 1",
        "chatbridge_messages_received_total{account=\"fishroom.tuna\",room=\"general\"} 1",
        "chatbridge_messages_dead_lettered_total{account=\"fishroom.bad\",room=\"other\"} 1",
        "chatbridge_account_up{account=\"fishroom.bad\"} 0",
        "chatbridge_account_up{account=\"fishroom.tuna\"} 1",
        "# TYPE chatbridge_send_latency_seconds histogram",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in:\n{metrics}");
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_ok_when_every_account_runs() {
    let fish = fishroom(&["a", "b"], &[("1", "k1", "a"), ("2", "k2", "b")]).await;
    let source = format!(
        "{}http_listen = \"127.0.0.1:0\"\n{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"fishroom.a:a\", \"fishroom.b:b\"]\n",
        FAST,
        account("a", &fish, "1", "k1"),
        account("b", &fish, "2", "k2"),
    );
    let running = start(&source, &["fishroom.a", "fishroom.b"]).await;
    let addr = running.daemon().status_addr().unwrap();
    let http = chatbridge::adapters::http_client(std::time::Duration::from_secs(5));
    let health = http.get(format!("http://{addr}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<serde_json::Value>().await.unwrap()["status"], "ok");
    running.shutdown().await;
}

/// A running pair of Fishroom accounts, with three messages said on tuna (`<word> <n>`) and relayed to lug.
async fn three_relayed(word: &str) -> (crate::harness::Pair, crate::harness::Running) {
    let pair = crate::harness::Pair::start().await;
    let running = pair.run().await;
    let mut at_lug = pair.lug.subscribe();
    for n in 0..3 {
        pair.tuna.say("general", "irc", "alice", &format!("{word} {n}"));
        let _ = crate::harness::next_post(&mut at_lug).await;
    }
    (pair, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridges_own_echoes_are_not_counted_as_received() {
    let (_pair, running) = three_relayed("real").await;
    // Fishroom hands every poster its own posts back: lug's poll sees the three copies as echoes.
    let stats = running.daemon().stats();
    crate::harness::eventually("the echoes come back", || stats.echoes.get() >= 3).await;
    let text = chatbridge::status::render(&stats, &running.daemon().states().borrow());
    assert!(
        text.contains("chatbridge_messages_received_total{account=\"fishroom.tuna\",room=\"general\"} 3"),
        "{text}"
    );
    assert!(!text.contains("chatbridge_messages_received_total{account=\"fishroom.lug\""), "{text}");
    running.shutdown().await;
}

/// The store's commits are counted on the writer's own thread (they no longer pass through the router): every
/// queued row is counted once, written or skipped, and `/metrics` says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_commits_are_counted() {
    let (_pair, running) = three_relayed("kept").await;
    let stats = running.daemon().stats();
    let rows = || stats.store_rows_written.get() + stats.store_rows_skipped.get();
    crate::harness::eventually("every queued row is committed", || rows() == 3).await;
    assert!(stats.store_commits.get() >= 1);
    let text = chatbridge::status::render(&stats, &running.daemon().states().borrow());
    assert!(text.contains(&format!("\nchatbridge_store_commits_total {}\n", stats.store_commits.get())), "{text}");
    running.shutdown().await;
}

/// What starting freed goes back to the system once the rooms are still (`src/trim.rs`), and `/metrics` counts it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_goes_back_to_the_system_once_the_rooms_are_still() {
    let (_pair, running) = three_relayed("quiet").await;
    let stats = running.daemon().stats();
    crate::harness::eventually("memory given back after the start", || stats.memory_given_back.get() >= 1).await;
    let text = chatbridge::status::render(&stats, &running.daemon().states().borrow());
    assert!(text.contains("\nchatbridge_memory_given_back_total "), "{text}");
    running.shutdown().await;
}
