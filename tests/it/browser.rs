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

async fn body_text(client: &fantoccini::Client) -> String {
    client.find(Locator::Css("body")).await.unwrap().text().await.unwrap()
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
    let stats = running.daemon().stats();
    eventually("the message is given up", || stats.dead_lettered.get() == 1).await;
    pair.lug.fail_posts(false);
    pair.tuna.say("general", "irc", "bob", "and this one went through");
    eventually("the next one is relayed", || pair.lug.posted().len() == 1).await;

    let profile = fresh_dir("chromium");
    let client = browser(&driver_url, &profile).await;
    // Without the token: the login form, nothing of the bridge.
    client.goto(&format!("{base}/")).await.unwrap();
    let text = body_text(&client).await;
    assert!(text.contains("Log in") && !text.contains("fishroom.tuna"), "{text}");
    // A wrong token is said to be wrong; the right one opens the page.
    client.find(Locator::Css("input[name=token]")).await.unwrap().send_keys("not-the-admin-token").await.unwrap();
    client.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    assert!(body_text(&client).await.contains("That is not the admin token."));
    client.find(Locator::Css("input[name=token]")).await.unwrap().send_keys(TOKEN).await.unwrap();
    client.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let mut text = String::new();
    for _ in 0..100 {
        text = body_text(&client).await;
        if text.contains("this one was given up") {
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
    let key = running_letter_key(&http, &base).await;
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

    // Clicking "Drop" removes the dead letter.
    client
        .find(Locator::Css(&format!("button[data-action=drop][data-key=\"{key}\"]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let text = body_text(&client).await;
    assert!(!text.contains("this one was given up") && text.contains("None: nothing was given up."), "{text}");

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

/// The key of the one dead letter, through the API.
async fn running_letter_key(http: &reqwest::Client, base: &str) -> u64 {
    let letters: serde_json::Value = http
        .get(format!("{base}/admin/api/v1/dead-letters"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    letters["dead_letters"][0]["key"].as_u64().expect("a dead letter")
}
