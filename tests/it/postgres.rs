//! The daemon with its state in PostgreSQL (`general.store`), on a throw-away server the tests start
//! (skipped, with one line saying so, where PostgreSQL is not installed).

use std::process::Stdio;
use std::time::{Duration, Instant};

use chatbridge::store::pg::testing::TestPostgres;

use crate::binary::{bin, read_all, sigterm, temp_dir, wait_exit, write_config};
use crate::harness::{Pair, eventually};

/// The database's connection string with a password in it (the test server trusts loopback, so it is never
/// checked, but it must never be printed either).
fn url_with_password(server: &TestPostgres) -> String {
    let url = server.database().expose().to_owned();
    url.replace("postgres://postgres@", "postgres://postgres:pg-s3cret-pw@")
}

#[test]
fn check_contacts_the_database_only_when_asked_and_migrate_brings_it_current() {
    let Some(server) = TestPostgres::shared() else { return };
    let dir = temp_dir("pg-check");
    let url = url_with_password(server);
    let body = "[general]\nstore = \"env:CHATBRIDGE_TEST_STORE\"\n\n[accounts.fishroom.a]\ntoken_id = \"1\"\ntoken_key = \"k\"\n\
         [accounts.fishroom.b]\ntoken_id = \"2\"\ntoken_key = \"k\"\n\n\
         [[bridge]]\nname = \"x\"\nrooms = [\"fishroom.a:r\", \"fishroom.b:r\"]\n";
    let config = write_config(&dir, body);
    let run = |args: &[&str], url: &str| {
        let out = bin().args(args).arg("-c").arg(&config).env("CHATBRIDGE_TEST_STORE", url).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!text.contains("pg-s3cret-pw"), "the password is never printed: {text}");
        (out.status.success(), text)
    };
    // Without --connect nothing is contacted: a server that is not there is no error.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (ok, text) = run(&["check"], &format!("postgres://postgres:pg-s3cret-pw@127.0.0.1:{port}/nowhere"));
    assert!(ok && text.contains("not contacted"), "{text}");
    let (ok, text) =
        run(&["check", "--connect"], &format!("postgres://postgres:pg-s3cret-pw@127.0.0.1:{port}/nowhere"));
    assert!(!ok && text.contains(&format!("127.0.0.1:{port}/nowhere")), "{text}");
    let (ok, text) = run(&["check", "--connect"], &url);
    assert!(ok && text.contains("schema at version 0"), "{text}");
    let (ok, text) = run(&["migrate"], &url);
    assert!(ok && text.contains("schema migrated from version 0 to 1"), "{text}");
    let (ok, text) = run(&["migrate"], &url);
    assert!(ok && text.contains("nothing to do"), "{text}");
    let (ok, text) = run(&["check", "--connect"], &url);
    assert!(ok && text.contains("schema current (version 1)"), "{text}");
    let (ok, text) = run(&["deadletters"], &url);
    assert!(ok && text.contains("0 dead letter(s)."), "{text}");
    let (ok, text) = run(&["check"], "mysql://elsewhere/x");
    assert!(!ok && text.contains("not a postgres:// URL"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_on_postgres_delivers_what_was_queued_after_a_restart() {
    let Some(server) = TestPostgres::shared() else { return };
    let pair = Pair::start().await;
    let (tuna, lug) = (&pair.tuna, &pair.lug);
    let dir = temp_dir("pg-durable");
    let general = format!(
        "[general]\nstore = \"{}\"\nlease_ttl = \"3s\"\nretry_delay = \"60s\"\nmax_attempts = 100\nshutdown_timeout = \"1s\"\n",
        url_with_password(server)
    );
    let config = write_config(&dir, &pair.config(&general));
    let spawn = || {
        bin()
            .args(["run", "-c"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the daemon starts")
    };
    lug.fail_posts(true);
    let mut child = spawn();
    tuna.say("general", "irc", "alice", "durable 0");
    eventually("the first post is attempted", || lug.fail_count() > 0).await;
    for i in 1..20 {
        tuna.say("general", "irc", "alice", &format!("durable {i}"));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let log = read_all(child.stderr.take());
    assert!(!log.contains("pg-s3cret-pw"), "{log}");

    lug.fail_posts(false);
    let mut child = spawn();
    // The killed run's leases are taken over once they expire (lease_ttl).
    let deadline = Instant::now() + Duration::from_secs(15);
    while lug.posted().len() < 20 {
        assert!(Instant::now() < deadline, "after the restart only {} arrived", lug.posted().len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texts: Vec<String> = lug.posted().into_iter().map(|p| p.content).collect();
    let expected: Vec<String> = (0..20).map(|i| format!("durable {i}")).collect();
    assert_eq!(texts, expected, "every message, once, in order");
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(5))).await.unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(dir);
}
