//! `general.state_webhook` (issue #32 §4): each account state change POSTed as signed JSON, in order, tried again
//! while the receiver is down.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::harness::*;

const SECRET: &str = "whsec-7d1e4b9a2c";

/// What the receiver got: each body parsed, its signature header, and its bytes.
type Got = Arc<Mutex<Vec<(Value, String, Vec<u8>)>>>;

/// A receiver that answers 503 to its first `failures` requests, then records each body with its signature.
async fn receiver(failures: usize) -> (String, Got, Arc<AtomicUsize>) {
    let got: Got = Arc::default();
    let asked = Arc::new(AtomicUsize::new(0));
    let (store, count) = (Arc::clone(&got), Arc::clone(&asked));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (store, count) = (Arc::clone(&store), Arc::clone(&count));
            async move {
                if count.fetch_add(1, Ordering::SeqCst) < failures {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let signature =
                    headers.get("x-chatbridge-signature").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                store.lock().unwrap().push((serde_json::from_slice(&body).unwrap(), signature, body.to_vec()));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), got, asked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_are_posted_signed_in_order_and_retried_while_the_receiver_is_down() {
    let (url, got, asked) = receiver(2).await;
    let pair = Pair::start().await;
    let general = PATIENT.replace(
        "[general]\n",
        &format!("[general]\nstate_webhook = \"{url}\"\nstate_webhook_secret = \"{SECRET}\"\n"),
    );
    let running = start(&pair.config(&general), &["fishroom.tuna", "fishroom.lug"]).await;
    let states = |got: &Got| -> Vec<(String, String)> {
        got.lock()
            .unwrap()
            .iter()
            .map(|(v, _, _)| (v["account"].as_str().unwrap().to_owned(), v["state"].as_str().unwrap().to_owned()))
            .collect()
    };
    eventually("both accounts said connected, after the receiver came back", || {
        states(&got).iter().filter(|(_, s)| s == "CONNECTED").count() == 2
    })
    .await;
    assert!(asked.load(Ordering::SeqCst) >= 3, "the first posts failed and were tried again");
    // Every body is signed with the secret.
    for (value, signature, body) in got.lock().unwrap().iter() {
        assert_eq!(*signature, chatbridge::admin::webhook::signature(SECRET, body), "{value}");
        assert_eq!(value["platform"], "fishroom");
        assert!(value["since"].as_i64().unwrap() > 0);
    }
    // An outage: lug's disconnect, then its return, in order.
    let Pair { tuna: _tuna, mut lug } = pair;
    lug.restart(Duration::from_secs(2)).await.unwrap();
    eventually("lug's outage and return", || {
        let lug: Vec<String> = states(&got).into_iter().filter(|(a, _)| a == "fishroom.lug").map(|(_, s)| s).collect();
        lug.iter().any(|s| s == "TRANSIENT_DISCONNECT")
            && lug.last().is_some_and(|s| s == "CONNECTED")
            && lug.len() >= 3
    })
    .await;
    let lug_states: Vec<String> =
        states(&got).into_iter().filter(|(a, _)| a == "fishroom.lug").map(|(_, s)| s).collect();
    let down = lug_states.iter().position(|s| s == "TRANSIENT_DISCONNECT").unwrap();
    assert!(lug_states[down..].contains(&"CONNECTED".to_owned()), "{lug_states:?}");
    let error = got
        .lock()
        .unwrap()
        .iter()
        .find(|(v, _, _)| v["state"] == "TRANSIENT_DISCONNECT")
        .map(|(v, _, _)| v["error"].clone());
    assert!(error.is_some_and(|e| e.as_str().is_some_and(|e| !e.is_empty())), "the disconnect says why");
    // Counted once the receiver's answer is read (a moment after it took the body).
    let stats = running.daemon().stats();
    eventually("four posts counted as sent", || stats.webhook_sent.get() >= 4).await;
    running.shutdown().await;
}
