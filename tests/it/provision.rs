//! Bridges provisioned at runtime (issue #34 §1), through the daemon and the simulators: added, refused with every
//! problem and its key, listed and exported, removed, kept across a restart (the admin API, SQLite), applied from
//! `chatbridge bridges` while the daemon runs, and applied by every instance of a shared PostgreSQL store.

use std::time::Duration;

use chatbridge::cli::bridges::{BridgeAction, bridges};
use chatbridge::sim::fishroom::FishroomSim;
use chatbridge::store::pg::testing::TestPostgres;
use serde_json::{Value, json};

use crate::harness::*;

/// The pair, and `cod` (room `talk`): an account of the file that no bridge of the file names.
struct Three {
    pair: Pair,
    cod: FishroomSim,
}

impl Three {
    async fn start() -> Self {
        let cod = fishroom(&["talk"], &[("33", "key-cod", "bridge")]).await;
        Self { pair: Pair::start().await, cod }
    }

    fn config(&self, general: &str) -> String {
        format!("{}{}", self.pair.config(general), account("cod", &self.cod, "33", "key-cod"))
    }
}

fn with_http(general: &str) -> String {
    general.replace("[general]\n", "[general]\nhttp_listen = \"127.0.0.1:0\"\n")
}

fn api(running: &Running) -> String {
    format!("http://{}/admin/api/v1", running.daemon().status_addr().unwrap())
}

async fn put(running: &Running, name: &str, body: Value) -> (u16, Value) {
    let answer =
        reqwest::Client::new().put(format!("{}/bridges/{name}", api(running))).json(&body).send().await.unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

async fn delete(running: &Running, name: &str) -> (u16, Value) {
    let answer = reqwest::Client::new().delete(format!("{}/bridges/{name}", api(running))).send().await.unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

/// What cod says in `talk` reaches lug's `chat` (through a provisioned bridge), as the next post there.
async fn relays_to_lug(three: &Three, text: &str) {
    let mut at_lug = three.pair.lug.subscribe();
    three.cod.say("talk", "irc", "carol", text);
    let post = next_post(&mut at_lug).await;
    assert!(post.content.contains(text), "{post:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_added_through_the_api_relays_at_once_survives_a_restart_and_goes_when_removed() {
    let three = Three::start().await;
    let dir = fresh_dir("provision");
    let general = with_http(FAST).replace("[general]\n", &format!("[general]\nstate_dir = \"{}\"\n", dir.display()));
    let source = three.config(&general);
    let running = start(&source, &["fishroom.tuna", "fishroom.lug"]).await;

    let (status, answer) = put(&running, "p", json!({"rooms": ["fishroom.cod:talk", "fishroom.lug:chat"]})).await;
    assert_eq!((status, &answer["created"], &answer["applied"]), (201, &json!(true), &json!(true)), "{answer}");
    relays_to_lug(&three, "through a provisioned bridge").await;
    // Changed in place: 200, and its new options apply.
    let long =
        json!({"room": [{"room": "fishroom.cod:talk"}, {"room": "fishroom.lug:chat", "nick_format": "P-{nick}"}]});
    let (status, answer) = put(&running, "p", long).await;
    assert_eq!((status, &answer["created"]), (200, &json!(false)), "{answer}");
    let mut at_lug = three.pair.lug.subscribe();
    three.cod.say("talk", "irc", "carol", "with its own format");
    let post = next_post(&mut at_lug).await;
    assert_eq!(
        (post.sender.replace('\u{200b}', ""), post.content),
        ("P-carol".to_owned(), "with its own format".to_owned())
    );

    // Refused with every problem, each with its key; nothing changes.
    let bad = json!({"rooms": ["fishroom.cod:talk", "fishroom.nobody:x"], "formatt": "{text}"});
    let (status, answer) = put(&running, "q", bad).await;
    assert_eq!(status, 422, "{answer}");
    let problems = answer["problems"].as_array().unwrap();
    let fields: Vec<&str> = problems.iter().filter_map(|p| p["field"].as_str()).collect();
    assert!(fields.contains(&"rooms[1]") && fields.contains(&"formatt"), "{answer}");
    assert!(problems.iter().any(|p| p["message"].as_str().unwrap().contains("fishroom.nobody")), "{answer}");
    let (status, answer) = put(&running, "b", json!({"rooms": ["fishroom.cod:talk", "fishroom.lug:chat"]})).await;
    assert_eq!((status, answer["error"].as_str()), (409, Some("in_file")), "{answer}");
    let (status, answer) = put(&running, "r", json!({"name": "s", "rooms": ["fishroom.cod:talk"]})).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("name_mismatch")), "{answer}");
    let (status, answer) =
        put(&running, "r", json!({"rooms": ["fishroom.cod:talk", "fishroom.lug:chat"], "x": null})).await;
    assert_eq!(status, 422, "{answer}");
    // As TOML, too.
    let toml = "[[bridge]]\nname = \"t\"\nrooms = [\"fishroom.cod:talk\", \"fishroom.tuna:general\"]\n";
    let answer = reqwest::Client::new()
        .put(format!("{}/bridges/t", api(&running)))
        .header("content-type", "application/toml")
        .body(toml)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);

    // Listed, and exported as the file would write them.
    let listed: Value = reqwest::get(format!("{}/provisioned", api(&running))).await.unwrap().json().await.unwrap();
    let names: Vec<&str> = listed["bridges"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["p", "t"], "{listed}");
    let exported =
        reqwest::get(format!("{}/provisioned?format=toml", api(&running))).await.unwrap().text().await.unwrap();
    let reparsed = chatbridge::config::Config::parse(&format!("{source}\n{exported}"), "exported.toml");
    assert_eq!(reparsed.map(|c| c.bridges.len()).ok(), Some(3), "the export goes into the file as it is:\n{exported}");
    // The status page's bridges have it.
    let status: Value = reqwest::get(format!("{}/bridges", api(&running))).await.unwrap().json().await.unwrap();
    assert_eq!(status["bridges"].as_array().unwrap().len(), 3, "{status}");

    // A restart keeps it.
    running.shutdown().await;
    let running = start(&source, &["fishroom.tuna", "fishroom.lug", "fishroom.cod"]).await;
    relays_to_lug(&three, "after the restart").await;

    // Removed: cod is no longer in a bridge to lug; a second removal finds nothing.
    let (status, answer) = delete(&running, "p").await;
    assert_eq!((status, &answer["applied"]), (200, &json!(true)), "{answer}");
    let (status, _) = delete(&running, "p").await;
    assert_eq!(status, 404);
    let (status, _) = delete(&running, "b").await;
    assert_eq!(status, 409, "a bridge of the file is removed in the file");
    let before = three.pair.lug.posted().len();
    three.cod.say("talk", "irc", "carol", "no longer to lug");
    settle().await;
    assert!(
        three.pair.lug.posted()[before..].iter().all(|p| !p.content.contains("no longer")),
        "removed bridge relays"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_added_with_the_command_is_applied_by_the_running_daemon() {
    let three = Three::start().await;
    let dir = fresh_dir("provision-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let general = FAST.replace("[general]\n", &format!("[general]\nstate_dir = \"{}\"\n", dir.display()));
    let source = three.config(&general);
    let path = dir.join("config.toml");
    std::fs::write(&path, &source).unwrap();
    let running = start(&source, &["fishroom.tuna", "fishroom.lug"]).await;

    let command = |action: BridgeAction| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || bridges(&path, Some(action)))
    };
    let add = BridgeAction::Add {
        name: Some("c".into()),
        rooms: vec!["fishroom.cod:talk".into(), "fishroom.lug:chat".into()],
        file: None,
    };
    command(add).await.unwrap().unwrap();
    // The daemon looks at the store's version every second.
    wait_state(&running, &["fishroom.cod"], |s| *s == chatbridge::adapters::AccountState::Connected).await;
    relays_to_lug(&three, "added by the command").await;

    // Refused with the problem, nothing written.
    let bad = BridgeAction::Add { name: Some("d".into()), rooms: vec!["fishroom.cod:talk".into()], file: None };
    let refused = command(bad).await.unwrap().unwrap_err().to_string();
    assert!(refused.contains("provisioned bridge `d`") && refused.contains("at least two rooms"), "{refused}");
    let from_file = BridgeAction::Rm { name: "b".into() };
    assert!(command(from_file).await.unwrap().is_err(), "a bridge of the file is not removed here");
    command(BridgeAction::Ls).await.unwrap().unwrap();
    command(BridgeAction::Export).await.unwrap().unwrap();
    // `check` reads it with the file; a file without cod's account leaves it out, which `check` refuses.
    let check = |path: std::path::PathBuf| chatbridge::cli::check::check(&path, false, false);
    assert_eq!(check(path.clone()), std::process::ExitCode::SUCCESS);
    let without_cod = dir.join("without-cod.toml");
    std::fs::write(&without_cod, three.pair.config(&general)).unwrap();
    assert_eq!(check(without_cod), std::process::ExitCode::FAILURE, "a provisioned bridge the file leaves out");

    command(BridgeAction::Rm { name: "c".into() }).await.unwrap().unwrap();
    eventually("cod is stopped once in no bridge", || {
        !running.daemon().states().borrow().contains_key(&"fishroom.cod".parse().unwrap())
    })
    .await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_of_a_shared_store_applies_a_bridge_provisioned_through_one() {
    let Some(server) = TestPostgres::shared() else { return };
    let three = Three::start().await;
    let url = server.database().expose().to_owned();
    let general = |name: &str| {
        format!(
            "[general]\nstore = \"{url}\"\ninstance = \"{name}\"\nlease_ttl = \"3s\"\nshutdown_timeout = \"2s\"\n\
             retry_delay = \"20ms\"\nbackoff_min = \"50ms\"\nbackoff_max = \"200ms\"\nmax_attempts = 3\nmax_age = \"1s\"\n\
             http_listen = \"127.0.0.1:0\"\n"
        )
    };
    let (a, b) = two_instances(&three.config(&general("a")), &three.config(&general("b"))).await;
    let (status, answer) = put(&a, "p", json!({"rooms": ["fishroom.cod:talk", "fishroom.lug:chat"]})).await;
    assert_eq!(status, 201, "{answer}");
    // The other instance has it within 2 s of the answer (its notification, not a poll).
    let asked = std::time::Instant::now();
    loop {
        let bridges: Value = reqwest::get(format!("{}/bridges", api(&b))).await.unwrap().json().await.unwrap();
        if bridges["bridges"].as_array().is_some_and(|l| l.iter().any(|x| x["name"] == "p")) {
            break;
        }
        assert!(asked.elapsed() < Duration::from_secs(2), "b applies the bridge within 2 s: {bridges}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Whichever instance takes cod's lease, the room relays, once.
    relays_to_lug(&three, "provisioned on a, relayed by whoever holds cod").await;
    settle().await;
    let copies = three.pair.lug.posted().iter().filter(|p| p.content.contains("provisioned on a")).count();
    assert_eq!(copies, 1);
    // Removed through b: gone from a too.
    let (status, _) = delete(&b, "p").await;
    assert_eq!(status, 200);
    let asked = std::time::Instant::now();
    loop {
        let bridges: Value = reqwest::get(format!("{}/bridges", api(&a))).await.unwrap().json().await.unwrap();
        if bridges["bridges"].as_array().is_some_and(|l| l.iter().all(|x| x["name"] != "p")) {
            break;
        }
        assert!(asked.elapsed() < Duration::from_secs(2), "a removes the bridge within 2 s: {bridges}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}
