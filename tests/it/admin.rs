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
    // A browser that takes gzip gets the same page gzipped.
    let zipped =
        http.get(format!("{base}/")).header(header::ACCEPT_ENCODING, "gzip, deflate, br").send().await.unwrap();
    assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
    let zipped = zipped.bytes().await.unwrap();
    let mut unzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut unzipped).unwrap();
    assert!(unzipped.contains("fishroom.lug:chat") && zipped.len() < html.len(), "{unzipped}");
    for needle in
        ["fishroom.tuna", "fishroom.lug:chat", "state connected", &format!("data-letter=\"{key}\""), "given up"]
    {
        assert!(html.contains(needle), "the page shows {needle}: {html}");
    }

    // Requeue: back in the room's queue and delivered now; drop: gone. A request from another site is refused.
    let evil = http
        .post(format!("{base}/admin/api/v1/dead-letters/drop"))
        .header(header::ORIGIN, "http://evil.example")
        .json(&serde_json::json!({"keys": [key]}))
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    let mut at_lug = pair.lug.subscribe();
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
    assert_eq!(next_post(&mut at_lug).await.content, "given up", "the requeued message is delivered at once");
    let letters: Value =
        http.get(format!("{base}/admin/api/v1/dead-letters")).send().await.unwrap().json().await.unwrap();
    assert_eq!(letters["dead_letters"].as_array().unwrap().len(), 0, "{letters}");
    let again = http
        .post(format!("{base}/admin/api/v1/dead-letters/requeue"))
        .json(&serde_json::json!({"keys": [key]}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404, "a letter requeued is no longer a dead letter");
    // A second dead letter, dropped.
    pair.lug.fail_posts(true);
    pair.tuna.say("general", "irc", "alice", "given up again");
    eventually("the second is given up", || stats.dead_lettered.get() == 2).await;
    pair.lug.fail_posts(false);
    let mut key = 0;
    for _ in 0..200 {
        let letters: Value =
            http.get(format!("{base}/admin/api/v1/dead-letters")).send().await.unwrap().json().await.unwrap();
        if let Some(found) = letters["dead_letters"][0]["key"].as_u64() {
            key = found;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(key > 0, "the second dead letter is listed");
    let missing = http
        .post(format!("{base}/admin/api/v1/dead-letters/drop"))
        .json(&serde_json::json!({"keys": [key + 1000]}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let no_keys = http.post(format!("{base}/admin/api/v1/dead-letters/drop")).json(&serde_json::json!({})).send();
    assert_eq!(no_keys.await.unwrap().status(), 400);
    let not_json = http
        .post(format!("{base}/admin/api/v1/dead-letters/drop"))
        .header(header::CONTENT_TYPE, "application/json")
        .body("{keys")
        .send();
    assert_eq!(not_json.await.unwrap().status(), 400);
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
    // Back: the reconnect counts in the last hour.
    let mut hour = 0;
    for _ in 0..200 {
        let accounts: Value =
            http.get(format!("{base}/admin/api/v1/accounts")).send().await.unwrap().json().await.unwrap();
        let tuna = accounts["accounts"].as_array().unwrap().iter().find(|a| a["id"] == "fishroom.tuna").cloned();
        hour = tuna.and_then(|t| t["reconnects_last_hour"].as_u64()).unwrap_or(0);
        if hour > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hour > 0, "the reconnect is counted in the last hour");
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
    // A login posted from another site's page is refused; logging out ends the session.
    let foreign_login = http
        .post(format!("{base}/login"))
        .header(header::ORIGIN, "http://evil.example")
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign_login.status(), 403);
    let other = login(TOKEN).await.unwrap();
    let other = other.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let with_other = || http.get(format!("{base}/admin/api/v1/status")).header(header::COOKIE, &other).send();
    assert_eq!(with_other().await.unwrap().status(), 200);
    let out = http.post(format!("{base}/logout")).header(header::COOKIE, &other).send().await.unwrap();
    assert_eq!(out.status(), 303);
    assert!(out.headers()[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(with_other().await.unwrap().status(), 401, "the session ended with the logout");
    // Five wrong tokens in a row from one address (the good login above cleared the count): the next login waits,
    // even with the right token.
    for _ in 0..5 {
        assert_eq!(login("wrong").await.unwrap().status(), 401);
    }
    assert_eq!(login(TOKEN).await.unwrap().status(), 429);
    running.shutdown().await;
}

/// Pauses and resumes through the API: what comes for a paused bridge or room queues and is shown as waiting,
/// and a resume delivers it, in order; every error of the routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_bridge_or_room_queues_and_a_resume_delivers_in_order() {
    let pair = Pair::start().await;
    let (running, base) = running(&pair, "").await;
    let http = client();
    let post = |route: &str, body: Value| http.post(format!("{base}/admin/api/v1/{route}")).json(&body).send();
    let room = |status: &Value, name: &str| -> Value {
        let rooms = status["bridges"][0]["rooms"].as_array().unwrap();
        rooms.iter().find(|r| r["room"] == name).cloned().unwrap()
    };
    let mut at_lug = pair.lug.subscribe();
    pair.tuna.say("general", "irc", "alice", "before the pause");
    assert_eq!(next_post(&mut at_lug).await.content, "before the pause");

    // The bridge paused: two messages wait, shown on the page and in the API.
    let paused: Value = post("pause", serde_json::json!({"bridge": "b"})).await.unwrap().json().await.unwrap();
    assert_eq!(paused["paused"], true, "{paused}");
    pair.tuna.say("general", "irc", "alice", "first while paused");
    pair.tuna.say("general", "irc", "alice", "second while paused");
    let stats = running.daemon().stats();
    eventually("both are taken in", || stats.received.get() >= 3).await;
    settle().await;
    assert!(pair.lug.posted().iter().all(|p| !p.content.contains("while paused")), "nothing goes out while paused");
    let status: Value = http.get(format!("{base}/admin/api/v1/bridges")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["bridges"][0]["paused"], true, "{status}");
    let lug = room(&status, "fishroom.lug:chat");
    assert_eq!((lug["paused"].as_bool(), lug["queued"].as_u64()), (Some(true), Some(2)), "{status}");
    assert!(lug["last_out_ms"].as_i64().is_some(), "the message before the pause went out: {status}");
    assert!(room(&status, "fishroom.tuna:general")["last_in_ms"].as_i64().is_some(), "{status}");
    let html = http.get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Resume the bridge") && html.contains("paused"), "{html}");
    let per_minute: u64 = status["bridges"][0]["per_minute"].as_array().unwrap().iter().filter_map(Value::as_u64).sum();
    assert_eq!(per_minute, 1, "the one message relayed is in the last hour's picture: {status}");
    assert!(html.contains("1 relayed in the last hour"), "{html}");

    // Resumed: delivered in their order.
    let resumed: Value = post("resume", serde_json::json!({"bridge": "b"})).await.unwrap().json().await.unwrap();
    assert_eq!(resumed["paused"], false, "{resumed}");
    assert_eq!(next_post(&mut at_lug).await.content, "first while paused");
    assert_eq!(next_post(&mut at_lug).await.content, "second while paused");

    // One room paused: the other direction goes on meanwhile.
    let mut at_tuna = pair.tuna.subscribe();
    let one = post("pause", serde_json::json!({"bridge": "b", "room": "fishroom.lug:chat"})).await.unwrap();
    assert_eq!(one.status(), 200);
    pair.tuna.say("general", "irc", "alice", "for the paused room");
    pair.lug.say("chat", "irc", "bob", "from the paused room's side");
    assert_eq!(next_post(&mut at_tuna).await.content, "from the paused room's side");
    let status: Value = http.get(format!("{base}/admin/api/v1/bridges")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["bridges"][0]["paused"], false, "{status}");
    assert_eq!(room(&status, "fishroom.lug:chat")["paused"], true, "{status}");
    assert_eq!(room(&status, "fishroom.tuna:general")["paused"], false, "{status}");
    let resumed = post("resume", serde_json::json!({"room": "fishroom.lug:chat"})).await.unwrap();
    assert_eq!(resumed.status(), 200, "a room is named alone too");
    assert_eq!(next_post(&mut at_lug).await.content, "for the paused room");

    // The errors.
    let status_of = |route: &'static str, body: Value| {
        let http = http.clone();
        let base = base.clone();
        async move { http.post(format!("{base}/admin/api/v1/{route}")).json(&body).send().await.unwrap().status() }
    };
    assert_eq!(status_of("pause", serde_json::json!({})).await, 400, "neither a bridge nor a room named");
    assert_eq!(status_of("pause", serde_json::json!({"room": "fishroom.lug:nowhere"})).await, 404, "no such room");
    assert_eq!(status_of("pause", serde_json::json!({"bridge": "nope"})).await, 404, "no such bridge");
    let elsewhere = serde_json::json!({"bridge": "b", "room": "fishroom.lug:elsewhere"});
    assert_eq!(status_of("resume", elsewhere).await, 404, "no such room in the bridge");
    let evil = http
        .post(format!("{base}/admin/api/v1/pause"))
        .header(header::ORIGIN, "http://evil.example")
        .json(&serde_json::json!({"bridge": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    let status: Value = http.get(format!("{base}/admin/api/v1/bridges")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["bridges"][0]["paused"], false, "refused requests change nothing: {status}");
    running.shutdown().await;
}

/// A room whose account's send limit holds its next message back is shown waiting on it, until it has caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_behind_its_send_limit_is_shown_waiting() {
    let pair = Pair::start().await;
    let general = FAST.replace("[general]\n", "[general]\nhttp_listen = \"127.0.0.1:0\"\n");
    let config = pair
        .config(&general)
        .replace("[accounts.fishroom.lug]\n", "[accounts.fishroom.lug]\nsend_rate = 1\nsend_burst = 1\n");
    assert!(config.contains("send_rate = 1"), "{config}");
    let running = start(&config, &["fishroom.tuna", "fishroom.lug"]).await;
    let base = format!("http://{}", running.daemon().status_addr().unwrap());
    let http = client();
    let waiting = |status: &Value| {
        let rooms = status["bridges"][0]["rooms"].as_array().unwrap();
        rooms.iter().find(|r| r["room"] == "fishroom.lug:chat").unwrap()["waiting_on_limit"].as_bool().unwrap()
    };
    for n in 0..4 {
        pair.tuna.say("general", "irc", "alice", &format!("message {n}"));
    }
    let mut seen = false;
    for _ in 0..100 {
        let status: Value =
            http.get(format!("{base}/admin/api/v1/bridges")).send().await.unwrap().json().await.unwrap();
        if waiting(&status) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen, "the room is shown waiting on its send limit");
    let html = http.get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("waiting on the send limit"), "{html}");
    eventually("everything is delivered", || pair.lug.posted().iter().any(|p| p.content.contains("message 3"))).await;
    let mut caught_up = false;
    for _ in 0..100 {
        let status: Value =
            http.get(format!("{base}/admin/api/v1/bridges")).send().await.unwrap().json().await.unwrap();
        if !waiting(&status) {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(caught_up, "no longer waiting once caught up");
    running.shutdown().await;
}
