//! The status page and the admin API (issue #32 §1–§3), through the daemon and the simulators: what they show,
//! who may look and act, the dead letters' actions, and the headers every answer carries.

use std::time::Duration;

use reqwest::header;
use serde_json::Value;

use crate::harness::*;

const TOKEN: &str = "adm-5f1c2e9a7b3d4c60";

/// The pair of Fishroom servers bridged, with the status server on; `admin`: the `admin_token` line, if any.
async fn running(pair: &Pair, admin: &str) -> (Running, String) {
    let general = FAST.replace("[general]\n", &format!("[general]\nhttp_listen = \"127.0.0.1:0\"\n{admin}"));
    let running = start(&pair.config(&general), &["fishroom.tuna", "fishroom.lug"]).await;
    let base = format!("http://{}", running.daemon().status_addr().unwrap());
    (running, base)
}

/// A client that follows no redirect and keeps no cookie of its own.
fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_the_api_show_the_accounts_bridges_and_dead_letters() {
    let pair = Pair::start().await;
    let (running, base) = running(&pair, "").await;
    let http = client();
    // A dead letter: lug refuses posts until the message is given up.
    pair.lug.fail_posts(true);
    pair.tuna.say("general", "irc", "alice", "given up");
    let stats = running.daemon().stats();
    eventually("the message is given up", || stats.dead_lettered.get() == 1).await;
    pair.lug.fail_posts(false);

    // The store writes the dead letter a moment after the router gives up on it.
    let mut status = Value::Null;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while tokio::time::Instant::now() < deadline {
        status = http.get(format!("{base}/admin/api/v1/status")).send().await.unwrap().json().await.unwrap();
        if status["dead_letters"].as_array().is_some_and(|l| !l.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let accounts = status["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2, "{status}");
    assert!(accounts.iter().all(|a| a["state"] == "connected" && a["since_ms"].as_i64().unwrap() > 0), "{status}");
    let rooms = status["bridges"][0]["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 2);
    let lug_room = rooms.iter().find(|r| r["room"] == "fishroom.lug:chat").unwrap();
    assert_eq!(lug_room["dead_lettered"], 1, "{status}");
    let letters = status["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{status}");
    assert!(letters[0]["summary"].as_str().unwrap().contains("given up"), "{status}");
    let key = letters[0]["key"].as_u64().unwrap();

    // The page: every account, room and dead letter, with the hardened headers.
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    let html = page.text().await.unwrap();
    for needle in
        ["fishroom.tuna", "fishroom.lug:chat", "state connected", &format!("data-letter=\"{key}\""), "given up"]
    {
        assert!(html.contains(needle), "the page shows {needle}: {html}");
    }

    // Requeue: marked for the next start; drop: gone. A request from another site is refused.
    let evil = http
        .post(format!("{base}/admin/api/v1/dead-letters/drop"))
        .header(header::ORIGIN, "http://evil.example")
        .json(&serde_json::json!({"keys": [key]}))
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    let requeued: Value = http
        .post(format!("{base}/admin/api/v1/dead-letters/requeue"))
        .json(&serde_json::json!({"keys": [key]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(requeued["requeued"], 1, "{requeued}");
    let letters: Value =
        http.get(format!("{base}/admin/api/v1/dead-letters")).send().await.unwrap().json().await.unwrap();
    assert_eq!(letters["dead_letters"][0]["requeued"], true, "{letters}");
    let missing = http
        .post(format!("{base}/admin/api/v1/dead-letters/drop"))
        .json(&serde_json::json!({"keys": [key + 1000]}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let dropped: Value = http
        .post(format!("{base}/admin/api/v1/dead-letters/drop"))
        .json(&serde_json::json!({"keys": [key]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dropped["dropped"], 1);
    let letters: Value =
        http.get(format!("{base}/admin/api/v1/dead-letters")).send().await.unwrap().json().await.unwrap();
    assert_eq!(letters["dead_letters"].as_array().unwrap().len(), 0, "{letters}");
    // A reload needs `chatbridge run`'s signal handling: in-process it says so.
    let reload = http.post(format!("{base}/admin/api/v1/reload")).send().await.unwrap();
    assert_eq!(reload.status(), 503);

    // An account whose server goes away: its state and error change.
    let mut tuna = pair.tuna;
    let restart = tokio::spawn(async move {
        tuna.restart(Duration::from_secs(3)).await.unwrap();
        tuna
    });
    let mut seen = Value::Null;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while tokio::time::Instant::now() < deadline {
        let accounts: Value =
            http.get(format!("{base}/admin/api/v1/accounts")).send().await.unwrap().json().await.unwrap();
        let tuna =
            accounts["accounts"].as_array().unwrap().iter().find(|a| a["id"] == "fishroom.tuna").cloned().unwrap();
        if tuna["state"] == "backing_off" {
            seen = tuna;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen["state"], "backing_off", "the state changes while the server is away");
    assert!(seen["error"].as_str().is_some_and(|e| !e.is_empty()) && seen["advice"].is_string(), "{seen}");
    let _tuna = restart.await.unwrap();
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_admin_token_nothing_is_shown_or_done_without_it() {
    let pair = Pair::start().await;
    let (running, base) = running(&pair, &format!("admin_token = \"{TOKEN}\"\n")).await;
    let http = client();
    // Nothing without the token; /health and /metrics as they were.
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 401);
    assert!(page.text().await.unwrap().contains("name=\"token\""), "the login form");
    assert_eq!(http.get(format!("{base}/admin/api/v1/status")).send().await.unwrap().status(), 401);
    assert_eq!(http.get(format!("{base}/health")).send().await.unwrap().status(), 200);
    // A script: the bearer token.
    let bearer = http.get(format!("{base}/admin/api/v1/status")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(bearer.status(), 200);
    let wrong =
        http.get(format!("{base}/admin/api/v1/status")).bearer_auth("not-the-token-at-all").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    // A person: the login form, a wrong token counted, the right one a strict cookie.
    let login = |token: &'static str| http.post(format!("{base}/login")).form(&[("token", token)]).send();
    assert_eq!(login("wrong").await.unwrap().status(), 401);
    assert_eq!(running.daemon().stats().admin_login_failures.get(), 1);
    let ok = login(TOKEN).await.unwrap();
    assert_eq!(ok.status(), 303);
    let cookie = ok.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    for flag in ["Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_owned();
    let html =
        http.get(format!("{base}/")).header(header::COOKIE, &session).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("fishroom.tuna") && html.contains("Log out"), "{html}");
    // An action with the cookie but without the session's CSRF token is refused, and counted.
    let unsigned = http
        .post(format!("{base}/admin/api/v1/dead-letters/drop"))
        .header(header::COOKIE, &session)
        .form(&[("key", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 403);
    assert_eq!(running.daemon().stats().admin_refused.get(), 1);
    // Five wrong tokens in a row from one address (the good login above cleared the count): the next login waits,
    // even with the right token.
    for _ in 0..5 {
        assert_eq!(login("wrong").await.unwrap().status(), 401);
    }
    assert_eq!(login(TOKEN).await.unwrap().status(), 429);
    running.shutdown().await;
}
