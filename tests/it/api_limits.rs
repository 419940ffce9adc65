//! What one API client may cost (issue #30 §5): posts past the account's `post_rate` are answered 429 with
//! `Retry-After` and counted, so two clients that post what they read do not loop without end.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

const TOKEN: &str = "limits-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_past_the_rate_are_refused_with_retry_after() {
    let (one, two) = (free_port(), free_port());
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}\n[accounts.api.one]\nlisten = \"127.0.0.1:{one}\"\ntoken = \"{TOKEN}\"\npost_rate = 5\npost_burst = 5\n\
         [accounts.api.two]\nlisten = \"127.0.0.1:{two}\"\ntoken = \"{TOKEN}\"\n{}\n\
         [[bridge]]\nname = \"g\"\nrooms = [\"api.one:g\", \"api.two:g\", \"fishroom.tuna:general\"]\n",
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["api.one", "api.two", "fishroom.tuna"]).await;
    let http = chatbridge::adapters::http_client(Duration::from_secs(5));
    let post = |port: u16, text: String| {
        http.post(format!("http://127.0.0.1:{port}/api/message"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .json(&json!({"text": text, "username": "bot", "gateway": "g"}))
            .send()
    };
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for n in 0..8 {
        let answer = post(one, format!("burst {n}")).await.unwrap();
        if answer.status() == 429 {
            retry_after = answer.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        }
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429], "a burst of five, then refused");
    assert_eq!(retry_after.as_deref(), Some("1"), "whole seconds, at least one");
    let stats = running.daemon().stats();
    assert_eq!(stats.rate_limited.get(), 3);
    let metrics = chatbridge::status::render(&stats, &running.daemon().states().borrow());
    assert!(metrics.contains("chatbridge_api_posts_rate_limited_total{account=\"api.one\",room=\"\"} 3"), "{metrics}");
    // A token comes back at the rate.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(post(one, "later".into()).await.unwrap().status(), 200);
    running.shutdown().await;
}

/// Reads what arrived at `port` since the last read and posts each back: a client that echoes what it reads.
async fn echo_once(http: &reqwest::Client, port: u16, reader: &str) -> (usize, usize) {
    let url = format!("http://127.0.0.1:{port}/api/messages?client={reader}");
    let read: Vec<Value> = match http.get(url).header("Authorization", format!("Bearer {TOKEN}")).send().await {
        Ok(answer) => answer.json().await.unwrap_or_default(),
        Err(_) => return (0, 0),
    };
    let (mut taken, mut refused) = (0, 0);
    for message in read {
        let body = json!({"text": message["text"], "username": "echo", "gateway": "g"});
        let answer = http
            .post(format!("http://127.0.0.1:{port}/api/message"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .json(&body)
            .send()
            .await;
        match answer.map(|a| a.status().as_u16()) {
            Ok(200) => taken += 1,
            Ok(429) => refused += 1,
            _ => {}
        }
    }
    (taken, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_that_repost_what_they_read_are_held_to_the_default_rate() {
    let (one, two) = (free_port(), free_port());
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    // The default post_rate (20 a second, bursts of 60): nothing set.
    let source = format!(
        "{FAST}\n[accounts.api.one]\nlisten = \"127.0.0.1:{one}\"\ntoken = \"{TOKEN}\"\n\
         [accounts.api.two]\nlisten = \"127.0.0.1:{two}\"\ntoken = \"{TOKEN}\"\n{}\n\
         [[bridge]]\nname = \"g\"\nrooms = [\"api.one:g\", \"api.two:g\", \"fishroom.tuna:general\"]\n",
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["api.one", "api.two", "fishroom.tuna"]).await;
    let http = chatbridge::adapters::http_client(Duration::from_secs(5));
    // Each client's reads start now; then a few messages set the loop going.
    echo_once(&http, one, "a").await;
    echo_once(&http, two, "b").await;
    for n in 0..10 {
        let body = json!({"text": format!("seed {n}"), "username": "seed", "gateway": "g"});
        let answer = http
            .post(format!("http://127.0.0.1:{one}/api/message"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let began = Instant::now();
    let (mut taken, mut refused) = (0, 0);
    while began.elapsed() < Duration::from_secs(3) {
        for (port, reader) in [(one, "a"), (two, "b")] {
            let (t, r) = echo_once(&http, port, reader).await;
            taken += t;
            refused += r;
        }
    }
    let seconds = began.elapsed().as_secs_f64();
    // Each account: its burst and its rate over the time, and the ten seeds on the first.
    let bound = 2.0 * (60.0 + 20.0 * seconds) + 10.0;
    assert!(refused > 0, "the loop ran into the rate: {taken} taken");
    assert!((taken as f64) <= bound, "{taken} reposts in {seconds:.1} s, over the bound {bound:.0}");
    assert!(running.daemon().stats().rate_limited.get() > 0);
    running.shutdown().await;
}
