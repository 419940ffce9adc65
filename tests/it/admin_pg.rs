//! The operator's window with a shared PostgreSQL store (issue #32 §1, §3): each instance's page says which
//! instance holds every account, and a dead letter requeued through one instance's API is delivered by the instance
//! that holds its room's account, at once. Skipped, with one line saying so, where PostgreSQL is not installed.

use std::time::Duration;

use chatbridge::store::pg::testing::TestPostgres;
use serde_json::{Value, json};

use crate::harness::{Pair, next_post, two_instances};

fn instance(url: &str, name: &str) -> String {
    format!(
        "[general]\nstore = \"{url}\"\ninstance = \"{name}\"\nlease_ttl = \"3s\"\nshutdown_timeout = \"2s\"\n\
         retry_delay = \"20ms\"\nbackoff_min = \"50ms\"\nbackoff_max = \"200ms\"\nmax_attempts = 3\nmax_age = \"1s\"\n\
         http_listen = \"127.0.0.1:0\"\n"
    )
}

async fn status(running: &crate::harness::Running) -> Value {
    let addr = running.daemon().status_addr().unwrap();
    reqwest::get(format!("http://{addr}/admin/api/v1/status")).await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_page_names_the_holders_and_a_requeue_through_either_instance_is_delivered() {
    let Some(server) = TestPostgres::shared() else { return };
    let pair = Pair::start().await;
    let url = server.database().expose().to_owned();
    let (a, b) = two_instances(&pair.config(&instance(&url, "a")), &pair.config(&instance(&url, "b"))).await;
    // Both pages name the holder of each account, the same on both.
    let holders = |status: &Value| -> Vec<(String, String)> {
        let accounts = status["accounts"].as_array().cloned().unwrap_or_default();
        accounts.iter().map(|a| (a["id"].as_str().unwrap().to_owned(), a["instance"].to_string())).collect()
    };
    let (at_a, at_b) = (status(&a).await, status(&b).await);
    let seen = holders(&at_a);
    assert_eq!(seen.len(), 2, "{at_a}");
    assert!(seen.iter().any(|(_, i)| i == "\"a\"") && seen.iter().any(|(_, i)| i == "\"b\""), "{at_a}");
    assert_eq!(seen, holders(&at_b), "both instances say the same");
    let states = |status: &Value| -> Vec<String> {
        status["accounts"].as_array().unwrap().iter().map(|a| a["state"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(states(&at_a).iter().filter(|s| *s == "elsewhere").count(), 1, "one runs on the other: {at_a}");
    assert_eq!(states(&at_b).iter().filter(|s| *s == "connected").count(), 1, "{at_b}");

    // A message lug refuses is given up; requeued through the instance that does not hold lug, it is delivered.
    pair.lug.fail_posts(true);
    pair.tuna.say("general", "irc", "alice", "given up, then requeued");
    let dead = |s: &Value| s["dead_letters"].as_array().and_then(|l| l.first()).and_then(|l| l["key"].as_u64());
    let mut key = None;
    for _ in 0..200 {
        key = dead(&status(&a).await);
        if key.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let key = key.expect("the dead letter is listed");
    pair.lug.fail_posts(false);
    let lug_holder = seen.iter().find(|(id, _)| id == "fishroom.lug").unwrap().1.clone();
    let other = if lug_holder == "\"a\"" { &b } else { &a };
    let mut at_lug = pair.lug.subscribe();
    let addr = other.daemon().status_addr().unwrap();
    let requeued: Value = reqwest::Client::new()
        .post(format!("http://{addr}/admin/api/v1/dead-letters/requeue"))
        .json(&json!({"keys": [key]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(requeued["requeued"], 1, "{requeued}");
    assert_eq!(next_post(&mut at_lug).await.content, "given up, then requeued");
    assert_eq!(dead(&status(&a).await), None, "no dead letter left");
    settle_once().await;
    let copies = pair.lug.posted().iter().filter(|p| p.content == "given up, then requeued").count();
    assert_eq!(copies, 1, "delivered once");
    a.shutdown().await;
    b.shutdown().await;
}

async fn settle_once() {
    tokio::time::sleep(Duration::from_millis(800)).await;
}
