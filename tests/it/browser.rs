//! The status page as a person uses it (issue #32 §5): headless Chromium (Debian's `chromium` and `chromium-driver`,
//! which `.ci/run` installs) driven through WebDriver with fantoccini, against the daemon and the simulators. It logs
//! in, sees every account and room, sees an account's state change when its server goes away, drops a dead letter by
//! clicking, and is refused without the token, without the CSRF token, and from another origin. The screenshot in
//! docs/status-page.png is this test's. Where Chromium is not installed the test says so and ends, but not under
//! `.ci/run` (`CHATBRIDGE_REQUIRE_BROWSER=1`), where that is a failure.

use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

use crate::binary::Reaped;
use crate::harness::*;

const TOKEN: &str = "adm-5f1c2e9a7b3d4c60";
const DRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free loopback port, with its address; `None` where it is not installed.
async fn driver() -> Option<(Reaped, String)> {
    if !std::path::Path::new(DRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var_os("CHATBRIDGE_REQUIRE_BROWSER").is_none(),
            "Chromium and chromedriver must be installed here (.ci/run installs Debian's chromium and chromium-driver)"
        );
        eprintln!("browser test skipped: {DRIVER} or {CHROMIUM} is not installed");
        return None;
    }
    let port = free_port();
    let child = Command::new(DRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let address = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "chromedriver listens");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some((Reaped(child), address))
}

/// A headless Chromium that makes no connection of its own (no updates, no sync, no lookups beyond loopback).
async fn browser(driver: &str, profile: &std::path::Path) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--window-size=1280,1000", format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector).capabilities(caps).connect(driver).await.expect("a browser session")
}

/// The page's text. A click that posts a form navigates: the body found just before the new page replaced it is
/// stale, and is looked up again.
async fn body_text(client: &fantoccini::Client) -> String {
    let mut last = None;
    for _ in 0..50 {
        match client.find(Locator::Css("body")).await {
            Ok(body) => match body.text().await {
                Ok(text) => return text,
                Err(e) => last = Some(e),
            },
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the page's text: {last:?}")
}

/// The page's text once `ok` holds for it (a form's answer loads after the click returns), or as it last was.
async fn text_when(client: &fantoccini::Client, ok: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..100 {
        text = body_text(client).await;
        if ok(&text) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_logs_in_watches_an_account_fall_and_drops_a_dead_letter() {
    let Some((_driver, driver_url)) = driver().await else { return };
    let pair = Pair::start().await;
    let general =
        FAST.replace("[general]\n", &format!("[general]\nhttp_listen = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n"));
    let running = start(&pair.config(&general), &["fishroom.tuna", "fishroom.lug"]).await;
    let base = format!("http://{}", running.daemon().status_addr().unwrap());
    // A dead letter to act on.
    pair.lug.fail_posts(true);
    pair.tuna.say("general", "irc", "alice", "this one was given up");
    pair.tuna.say("general", "irc", "alice", "and this one will be requeued");
    let stats = running.daemon().stats();
    eventually("the messages are given up", || stats.dead_lettered.get() == 2).await;
    pair.lug.fail_posts(false);
    pair.tuna.say("general", "irc", "bob", "and this one went through");
    eventually("the next one is relayed", || pair.lug.posted().len() == 1).await;
    let mut at_lug = pair.lug.subscribe();

    let profile = fresh_dir("chromium");
    let client = browser(&driver_url, &profile).await;
    // Without the token: the login form, nothing of the bridge.
    client.goto(&format!("{base}/")).await.unwrap();
    let text = body_text(&client).await;
    assert!(text.contains("Log in") && !text.contains("fishroom.tuna"), "{text}");
    // A wrong token is said to be wrong; the right one opens the page.
    client.find(Locator::Css("input[name=token]")).await.unwrap().send_keys("not-the-admin-token").await.unwrap();
    client.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let wrong = |t: &str| t.contains("That is not the admin token.");
    assert!(wrong(&text_when(&client, wrong).await), "a wrong token is said to be wrong");
    client.find(Locator::Css("input[name=token]")).await.unwrap().send_keys(TOKEN).await.unwrap();
    client.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let mut text = String::new();
    for _ in 0..100 {
        text = body_text(&client).await;
        if text.contains("this one was given up") && text.contains("will be requeued") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.refresh().await.unwrap();
    }
    for seen in [
        "fishroom.tuna",
        "fishroom.lug",
        "fishroom.tuna:general",
        "fishroom.lug:chat",
        "connected",
        "this one was given up",
    ] {
        assert!(text.contains(seen), "the page shows {seen}: {text}");
    }
    let screenshot = client.screenshot().await.unwrap();
    std::fs::write(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/status-page.png"), &screenshot).unwrap();

    // Another site's page, a script without the token, and a form without the CSRF token are refused.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let key = running_letter_key(&http, &base, "this one was given up").await;
    let no_token = http.post(format!("{base}/admin/api/v1/dead-letters/drop")).json(&json!({"keys": [key]})).send();
    assert_eq!(no_token.await.unwrap().status(), 401);
    let foreign = http
        .post(format!("{base}/admin/api/v1/dead-letters/drop"))
        .bearer_auth(TOKEN)
        .header("origin", "http://evil.example")
        .json(&json!({"keys": [key]}))
        .send();
    assert_eq!(foreign.await.unwrap().status(), 403);
    let cookie = client.get_named_cookie("chatbridge_session").await.unwrap();
    let session = format!("chatbridge_session={}", cookie.value());
    let unsigned = http
        .post(format!("{base}/admin/api/v1/dead-letters/drop"))
        .header("cookie", &session)
        .form(&[("key", key.to_string())])
        .send();
    assert_eq!(unsigned.await.unwrap().status(), 403);

    // Clicking "Requeue" delivers one to the simulator now; clicking "Drop" removes the other.
    let requeued = running_letter_key(&http, &base, "will be requeued").await;
    client
        .find(Locator::Css(&format!("button[data-action=requeue][data-key=\"{requeued}\"]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(next_post(&mut at_lug).await.content, "and this one will be requeued");
    let gone = |t: &str| !t.contains("will be requeued") && t.contains("this one was given up");
    let text = text_when(&client, gone).await;
    assert!(gone(&text), "{text}");
    client
        .find(Locator::Css(&format!("button[data-action=drop][data-key=\"{key}\"]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let none = |t: &str| !t.contains("this one was given up") && t.contains("None: nothing was given up.");
    let text = text_when(&client, none).await;
    assert!(none(&text), "{text}");
    // Clicking "Pause the bridge" pauses it; the page offers the resume.
    client.find(Locator::Css("button[data-bridge=b]")).await.unwrap().click().await.unwrap();
    let paused = |t: &str| t.contains("Resume the bridge");
    assert!(paused(&text_when(&client, paused).await), "the bridge is shown paused");
    client.find(Locator::Css("button[data-bridge=b]")).await.unwrap().click().await.unwrap();
    let resumed = |t: &str| t.contains("Pause the bridge");
    assert!(resumed(&text_when(&client, resumed).await), "the bridge is shown resumed");

    // The account whose server goes away: its state and error change on the page. The server stays away until the
    // page has shown it, however slowly a loaded machine draws it.
    let mut tuna = pair.tuna;
    let away = tokio::spawn(async move {
        let _ = tuna.restart(Duration::from_secs(600)).await;
        tuna
    });
    let deadline = tokio::time::Instant::now() + 3 * DEADLINE;
    let mut row = String::new();
    while tokio::time::Instant::now() < deadline {
        client.refresh().await.unwrap();
        row = client.find(Locator::Css("tr[data-account=\"fishroom.tuna\"]")).await.unwrap().text().await.unwrap();
        if row.contains("backing off") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(row.contains("backing off"), "the page shows the account backing off: {row}");
    assert!(row.contains("reconnecting by itself"), "the error and what to do: {row}");
    client.close().await.unwrap();
    away.abort();
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(profile);
}

/// The key of the dead letter whose summary has `needle`, through the API.
async fn running_letter_key(http: &reqwest::Client, base: &str, needle: &str) -> u64 {
    let letters: serde_json::Value = http
        .get(format!("{base}/admin/api/v1/dead-letters"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let letters = letters["dead_letters"].as_array().expect("the dead letters").clone();
    let letter = letters.iter().find(|l| l["summary"].as_str().is_some_and(|s| s.contains(needle)));
    letter.and_then(|l| l["key"].as_u64()).expect("a dead letter")
}
