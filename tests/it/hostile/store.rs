//! A store that cannot write: nothing accepted is lost, nothing more is accepted until it can.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{FAST, account, eventually, fishroom, free_port, start};

const TOKEN: &str = "api-secret-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_messages_instead_of_losing_them() {
    let (api_port, status_port) = (free_port(), free_port());
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{}http_listen = \"127.0.0.1:{status_port}\"\n\n[accounts.api.bots]\nlisten = \"127.0.0.1:{api_port}\"\ntoken = \"{TOKEN}\"\n{}\n[[bridge]]\nname = \"b\"\nrooms = [\"api.bots:b\", \"fishroom.tuna:general\"]\n",
        FAST.replace("max_attempts = 3", "max_attempts = 1000000").replace("max_age = \"0s\"", "max_age = \"1h\""),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["api.bots", "fishroom.tuna"]).await;
    let http = chatbridge::adapters::http_client(Duration::from_secs(5));
    let post = |n: usize| {
        let body = serde_json::json!({"text": format!("m{n} {}", "x".repeat(4000)), "username": "bot", "gateway": "b"});
        http.post(format!("http://127.0.0.1:{api_port}/api/message"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .body(body.to_string())
            .send()
    };
    // The destination fails: everything waits in the outbox, on disk.
    fish.fail_posts(true);
    let mut accepted = BTreeSet::new();
    for n in 0..20 {
        assert_eq!(post(n).await.unwrap().status(), 200);
        accepted.insert(n);
    }
    // The disk is full: posts are refused with 503 and Retry-After, not accepted and lost.
    running.daemon().limit_store_pages(1);
    let mut refused = None;
    for n in 20..2_000 {
        let answer = post(n).await.unwrap();
        match answer.status().as_u16() {
            200 => {
                accepted.insert(n);
            }
            503 => {
                refused = Some(answer);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let refused = refused.expect("the full store refuses posts");
    assert_eq!(refused.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    assert!(refused.text().await.unwrap().contains("cannot store messages"));
    let health = http.get(format!("http://127.0.0.1:{status_port}/health")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    let health: Value = health.json().await.unwrap();
    assert!(health["store"]["failing"].as_str().unwrap().contains("full"), "{health}");
    let metrics = http.get(format!("http://127.0.0.1:{status_port}/metrics")).send().await.unwrap();
    assert!(metrics.text().await.unwrap().contains("\nchatbridge_store_writable 0\n"));

    // Space again: posts are taken, and every message ever accepted is delivered once the destination works.
    running.daemon().limit_store_pages(0);
    let mut n = 10_000;
    loop {
        let answer = post(n).await.unwrap();
        if answer.status() == 200 {
            accepted.insert(n);
            break;
        }
        assert_eq!(answer.status(), 503);
        tokio::time::sleep(Duration::from_millis(50)).await;
        n += 1;
        assert!(n < 10_400, "the store recovered");
    }
    fish.fail_posts(false);
    let expected: BTreeSet<String> = accepted.iter().map(|n| format!("m{n}")).collect();
    eventually("every accepted message is delivered", || {
        let delivered: BTreeSet<String> =
            fish.posted().iter().filter_map(|p| p.content.split_whitespace().next().map(str::to_owned)).collect();
        expected.is_subset(&delivered)
    })
    .await;
    let health = http.get(format!("http://127.0.0.1:{status_port}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    running.shutdown().await;
}
