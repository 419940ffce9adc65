//! The daemon with its state in PostgreSQL (`general.store`), on a throw-away server the tests start
//! (skipped, with one line saying so, where PostgreSQL is not installed).

use std::process::Stdio;
use std::time::{Duration, Instant};

use chatbridge::store::pg::testing::TestPostgres;

use crate::binary::{Reaped, bin, read_all, sigterm, temp_dir, wait_exit, write_config};
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
    let current = chatbridge::store::pg::schema::SCHEMA_VERSION;
    assert!(ok && text.contains(&format!("schema migrated from version 0 to {current}")), "{text}");
    let (ok, text) = run(&["migrate"], &url);
    assert!(ok && text.contains("nothing to do"), "{text}");
    let (ok, text) = run(&["check", "--connect"], &url);
    assert!(ok && text.contains(&format!("schema current (version {current})")), "{text}");
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
            .map(Reaped)
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

/// `[general]` of one instance of a shared store: fast retries, a short lease.
fn instance(url: &str, name: &str) -> String {
    format!(
        "[general]\nstore = \"{url}\"\ninstance = \"{name}\"\nlease_ttl = \"3s\"\nshutdown_timeout = \"2s\"\n\
         retry_delay = \"20ms\"\nbackoff_min = \"50ms\"\nbackoff_max = \"200ms\"\nmax_attempts = 100\n"
    )
}

/// No send limit on the accounts: the tests are about what arrives, not how fast Fishroom lets it.
fn unlimited(config: String) -> String {
    config.replace("request_timeout = \"3s\"\n", "request_timeout = \"3s\"\nsend_rate = 0\n")
}

fn start(config: &str) -> crate::harness::Running {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let daemon = chatbridge::Daemon::start(crate::harness::parse(config), stop.clone()).expect("the daemon starts");
    crate::harness::Running { daemon: Some(daemon), stop, state_dir: None }
}

fn held(running: &crate::harness::Running) -> u64 {
    running.daemon().stats().leases_held.load(std::sync::atomic::Ordering::Relaxed)
}

/// Waits until `sim` was posted `want` (in order, once each), up to 30 s.
async fn arrives(what: &str, posted: impl Fn() -> Vec<String>, want: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = posted();
        if got.len() >= want.len() {
            assert_eq!(got, want, "{what}: every message, once, in order");
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {} of {} arrived", got.len(), want.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_accounts_relay_between_them_and_hand_over_at_a_stop() {
    let Some(server) = TestPostgres::shared() else { return };
    let pair = Pair::start().await;
    let (tuna, lug) = (&pair.tuna, &pair.lug);
    let url = server.database().expose().to_owned();
    let a = start(&unlimited(pair.config(&instance(&url, "a"))));
    eventually("the first instance takes both accounts", || held(&a) == 2).await;
    // The second joins while messages flow both ways: the first hands one account over (settled, closed,
    // released), the second claims it, and nothing said meanwhile is lost.
    let traffic = async {
        say(tuna, "general", "r", 0, 150).await;
    };
    let back = async {
        say(lug, "chat", "s", 0, 150).await;
    };
    let joining = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        start(&unlimited(pair.config(&instance(&url, "b"))))
    };
    let ((), (), b) = tokio::join!(traffic, back, joining);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(held(&a) == 1 && held(&b) == 1) {
        assert!(Instant::now() < deadline, "no even split: a holds {}, b holds {}", held(&a), held(&b));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = |sim: &chatbridge::sim::fishroom::FishroomSim| -> Vec<String> {
        sim.posted().into_iter().map(|p| p.content).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(tally(&all(lug), "r", 150).0.is_empty() && tally(&all(tuna), "s", 150).0.is_empty()) {
        assert!(
            Instant::now() < deadline,
            "what was said during the rebalance: missing r {:?}, s {:?}",
            tally(&all(lug), "r", 150).0,
            tally(&all(tuna), "s", 150).0
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (_, extra_r) = tally(&all(lug), "r", 150);
    let (_, extra_s) = tally(&all(tuna), "s", 150);
    // The account handed over was settled first (nothing in flight): no message goes twice.
    assert_eq!((extra_r, extra_s), (0, 0), "duplicates during the rebalance");
    // Each instance's /metrics and /health say what it holds.
    for running in [&a, &b] {
        let stats = running.daemon().stats();
        let metrics = chatbridge::status::render(&stats, &running.daemon().states().borrow());
        assert!(metrics.contains("\nchatbridge_leases_held 1\n"), "{metrics}");
        assert!(stats.lease_takeovers.get() >= 1 && stats.lease_renewals.get() >= 1);
        assert!(metrics.contains("chatbridge_fencing_refusals_total 0"), "{metrics}");
    }
    // `chatbridge status` lists both, live, one account each.
    let dir = temp_dir("pg-status");
    let config = write_config(&dir, &pair.config(&instance(&url, "admin")));
    let out = bin().args(["status", "-c"]).arg(&config).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("a ") && lines[0].contains("live") && lines[0].contains("fishroom."), "{text}");
    assert!(lines[1].starts_with("b ") && lines[1].contains("live") && lines[1].contains("fishroom."), "{text}");
    let _ = std::fs::remove_dir_all(dir);
    // Each instance runs one side: every message crosses from one instance to the other through the store.
    let mut to_lug = Vec::new();
    let mut to_tuna = Vec::new();
    for i in 0..60 {
        tuna.say("general", "irc", "alice", &format!("t{i}"));
        lug.say("chat", "irc", "bob", &format!("l{i}"));
        to_lug.push(format!("t{i}"));
        to_tuna.push(format!("l{i}"));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    // (What was said during the rebalance, `r…` and `s…`, is counted above.)
    let texts = |sim: &chatbridge::sim::fishroom::FishroomSim| -> Vec<String> {
        sim.posted().into_iter().map(|p| p.content).filter(|c| c.starts_with(['t', 'l'])).collect()
    };
    arrives("tuna → lug", || texts(lug), &to_lug).await;
    arrives("lug → tuna", || texts(tuna), &to_tuna).await;
    // A graceful stop releases at once: the other instance runs both accounts within a round.
    let started = Instant::now();
    a.shutdown().await;
    eventually("the second instance takes both accounts", || held(&b) == 2).await;
    let takeover = started.elapsed();
    assert!(takeover < Duration::from_secs(3), "released, not left to expire: {takeover:?}");
    for i in 60..80 {
        tuna.say("general", "irc", "alice", &format!("t{i}"));
        lug.say("chat", "irc", "bob", &format!("l{i}"));
        to_lug.push(format!("t{i}"));
        to_tuna.push(format!("l{i}"));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    arrives("tuna → lug after the hand-over", || texts(lug), &to_lug).await;
    arrives("lug → tuna after the hand-over", || texts(tuna), &to_tuna).await;
    b.shutdown().await;
}

/// `account → owner` of every lease that is held.
pub(crate) fn owners(
    server: &TestPostgres,
    url: &chatbridge::settings::Secret,
) -> std::collections::BTreeMap<String, String> {
    if server.query(url, "SELECT to_regclass('leases') IS NOT NULL").trim() != "t" {
        return Default::default();
    }
    server
        .query(url, "SELECT account, owner FROM leases WHERE run IS NOT NULL AND expires > clock_timestamp()")
        .lines()
        .filter_map(|line| line.split_once('|').map(|(a, o)| (a.to_owned(), o.to_owned())))
        .collect()
}

/// `[general]` of an instance `name` of the shared store at `url` that keeps what it cannot send (never gives up
/// within a test), with a 3 s lease: what the failover and room-lease tests run.
pub(crate) fn patient_instance(url: &chatbridge::settings::Secret, name: &str) -> String {
    format!(
        "[general]\nstore = \"{}\"\ninstance = \"{name}\"\nlease_ttl = \"3s\"\nshutdown_timeout = \"2s\"\n\
         retry_delay = \"20ms\"\nbackoff_min = \"50ms\"\nbackoff_max = \"300ms\"\nmax_attempts = 1000\n\
         max_age = \"10m\"\n",
        url.expose()
    )
}

pub(crate) fn daemon(config: &std::path::Path) -> Reaped {
    let log = std::fs::File::create(config.with_extension("log")).expect("a log file");
    bin()
        .args(["run", "-c"])
        .arg(config)
        .env("RUST_LOG", "info")
        .arg("--log-format=pretty")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Reaped)
        .expect("the daemon starts")
}

fn signal(child: &std::process::Child, name: &str) {
    let status = std::process::Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status();
    assert!(status.expect("kill runs").success());
}

pub(crate) async fn until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    started.elapsed()
}

/// Says `count` numbered messages on `sim`, `gap` apart.
async fn say(sim: &chatbridge::sim::fishroom::FishroomSim, room: &str, prefix: &str, from: usize, to: usize) {
    for i in from..to {
        sim.say(room, "irc", "someone", &format!("{prefix}{i}"));
        tokio::time::sleep(Duration::from_millis(8)).await;
    }
}

/// How often each expected text arrived: (missing, extra copies).
fn tally(posted: &[String], prefix: &str, count: usize) -> (Vec<usize>, usize) {
    let mut seen = vec![0usize; count];
    for text in posted {
        if let Some(i) = text.strip_prefix(prefix).and_then(|n| n.parse::<usize>().ok())
            && i < count
        {
            seen[i] += 1;
        }
    }
    let missing = seen.iter().enumerate().filter(|(_, n)| **n == 0).map(|(i, _)| i).collect();
    let extra = seen.iter().map(|n| n.saturating_sub(1)).sum();
    (missing, extra)
}

/// Two daemons on one PostgreSQL, one account each. The one running `lug` is killed (SIGKILL) while
/// `tuna`'s messages for `lug` flow; the other takes `lug` over once its lease expires, and delivers what the
/// killed one had queued or in flight. Then an instance frozen (SIGSTOP) past its lease is taken over the same
/// way, and when it wakes it sends nothing for the account it lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_is_taken_over_and_a_frozen_one_is_fenced() {
    let Some(server) = TestPostgres::shared() else { return };
    let pair = Pair::start().await;
    let (tuna, lug) = (&pair.tuna, &pair.lug);
    let url = server.database();
    let dir = temp_dir("pg-failover");
    // No send limit: the test is about what arrives, not how fast Fishroom lets it.
    let config = |name: &str| {
        let path = dir.join(name);
        let body = pair.config(&instance(url.expose(), name));
        write_config(&path, &body.replace("request_timeout = \"3s\"\n", "request_timeout = \"3s\"\nsend_rate = 0\n"))
    };
    let (config_a, config_b, config_c) = (config("a"), config("b"), config("c"));
    let mut a = daemon(&config_a);
    until("a runs both accounts", Duration::from_secs(15), || owners(server, &url).len() == 2).await;
    let mut b = daemon(&config_b);
    until("one account each", Duration::from_secs(15), || {
        let owners = owners(server, &url);
        owners.len() == 2 && owners.values().any(|o| o == "a") && owners.values().any(|o| o == "b")
    })
    .await;
    let texts = |sim: &chatbridge::sim::fishroom::FishroomSim| -> Vec<String> {
        sim.posted().into_iter().map(|p| p.content).collect()
    };
    // Both ways first: 300 each, every one across the two instances.
    tokio::join!(say(tuna, "general", "t", 0, 300), say(lug, "chat", "l", 0, 300));
    until("the first 600", Duration::from_secs(30), || texts(lug).len() >= 300 && texts(tuna).len() >= 300).await;
    // Kill whichever runs lug while tuna's messages for it flow.
    let lug_owner = owners(server, &url)["fishroom.lug"].clone();
    let (victim, survivor) = if lug_owner == "a" { (&mut a, &mut b) } else { (&mut b, &mut a) };
    let traffic = say(tuna, "general", "t", 300, 1000);
    let kill = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        victim.kill().unwrap();
        victim.wait().unwrap();
        Instant::now()
    };
    let ((), killed_at) = tokio::join!(traffic, kill);
    let survivor_name = if lug_owner == "a" { "b" } else { "a" };
    until("the survivor takes lug over", Duration::from_secs(10), || {
        owners(server, &url).get("fishroom.lug").is_some_and(|o| o == survivor_name)
    })
    .await;
    let takeover = killed_at.elapsed();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tally(&texts(lug), "t", 1000).0.is_empty() {
        if Instant::now() > deadline {
            let missing = tally(&texts(lug), "t", 1000).0;
            let outbox = server.query(&url, "SELECT key, room, holder, seq FROM outbox ORDER BY seq LIMIT 20");
            let leases = server.query(&url, "SELECT * FROM leases");
            panic!(
                "tuna's 1000: missing {} {:?}…\noutbox:\n{outbox}\nleases:\n{leases}",
                missing.len(),
                &missing[..missing.len().min(20)]
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (missing, duplicates) = tally(&texts(lug), "t", 1000);
    assert!(missing.is_empty(), "lost: {missing:?}");
    // What the killed instance had delivered in its last few milliseconds, before the transaction holding the
    // acknowledgements committed, is sent again (as after a single instance's crash): a handful, not more.
    assert!(duplicates <= 10, "{duplicates} duplicates");
    // And back the other way, through the survivor alone, 300 more.
    say(lug, "chat", "l", 300, 600).await;
    until("lug's 600", Duration::from_secs(30), || tally(&texts(tuna), "l", 600).0.is_empty()).await;
    eprintln!(
        "lug owned by the survivor {takeover:?} after the SIGKILL (taken once its lease expired); duplicates: {duplicates}"
    );

    // Fencing: a third instance joins; the survivor is frozen past its leases; the newcomer takes both.
    let mut c = daemon(&config_c);
    until("c runs an account", Duration::from_secs(15), || owners(server, &url).values().any(|o| o == "c")).await;
    signal(survivor, "STOP");
    until("c takes both accounts", Duration::from_secs(15), || {
        let owners = owners(server, &url);
        owners.len() == 2 && owners.values().all(|o| o == "c")
    })
    .await;
    let before = texts(lug).len() + texts(tuna).len();
    // The frozen instance had nothing queued; messages said now go through c alone.
    say(tuna, "general", "t", 1000, 1050).await;
    signal(survivor, "CONT");
    until("tuna's 1050", Duration::from_secs(30), || tally(&texts(lug), "t", 1050).0.is_empty()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, extra) = tally(&texts(lug), "t", 1050);
    assert!(extra <= duplicates, "the woken instance sent for an account it lost ({extra} duplicates)");
    assert_eq!(texts(lug).len() + texts(tuna).len(), before + 50, "nothing but the 50 new messages");
    // The woken instance learns it lost its accounts and claims nothing beyond its share.
    until("the woken instance holds at most its share", Duration::from_secs(10), || {
        owners(server, &url).values().filter(|o| *o == survivor_name).count() <= 1
    })
    .await;
    for child in [survivor, &mut c] {
        sigterm(child);
        let status = wait_exit(child, Duration::from_secs(10));
        assert!(status.success());
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A copy made by one instance is edited and recalled by the other after it took the account over: the shared
/// id map finds it, whichever instance made it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_and_a_recall_after_a_hand_over_reach_the_copy_another_instance_made() {
    use chatbridge::sim::yunhu::Request;
    let Some(server) = TestPostgres::shared() else { return };
    let sim = crate::harness::yunhu().await;
    let url = server.database().expose().to_owned();
    let config = |name: &str| {
        format!(
            "{}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"yunhu.me:group/big\", \"yunhu.other:group/small\"]\n",
            instance(&url, name),
            crate::harness::yunhu_account("me", &sim, crate::harness::YUNHU_TOKEN, ""),
            crate::harness::yunhu_account("other", &sim, crate::harness::YUNHU_TOKEN_2, ""),
        )
    };
    let a = start(&config("a"));
    eventually("a takes both accounts", || held(&a) == 2).await;
    let b = start(&config("b"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(held(&a) == 1 && held(&b) == 1) {
        assert!(Instant::now() < deadline, "no even split");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let runs_other =
        |r: &crate::harness::Running| r.daemon().states().borrow().keys().any(|id| id.to_string() == "yunhu.other");
    // Both accounts connected, on different instances.
    let (maker, keeper) = if runs_other(&a) { (a, b) } else { (b, a) };
    eventually("the copy's account runs", || runs_other(&maker)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let original = sim.say("big", ("u1", "小明"), "typo");
    let copy = loop {
        let sent: Vec<_> = sim
            .requests()
            .into_iter()
            .filter_map(|r| match r {
                Request::Send(sent) if sent.chat_id == "small" => Some(sent.msg_id),
                _ => None,
            })
            .collect();
        if let Some(id) = sent.first() {
            break id.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    crate::harness::settle().await;
    // The instance that made the copy stops; the other takes its account over.
    maker.shutdown().await;
    eventually("the keeper runs both accounts", || held(&keeper) == 2 && runs_other(&keeper)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    sim.edit(&original, "fixed");
    eventually("the copy the other instance made is edited", || {
        sim.requests()
            .iter()
            .any(|r| matches!(r, Request::Edit { msg_id, text } if *msg_id == copy && text.contains("fixed")))
    })
    .await;
    sim.recall(&original);
    eventually("and recalled", || {
        sim.requests().iter().any(|r| matches!(r, Request::Recall { msg_id, .. } if *msg_id == copy))
    })
    .await;
    keeper.shutdown().await;
}

/// PostgreSQL goes away under a running instance for longer than its leases may go unrenewed: the instance
/// stops its accounts (no message taken in), and when the server is back it reconnects, claims them again and
/// delivers everything — what it had been given before, and what was said meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_stops_the_accounts_and_loses_nothing() {
    let Some(server) = TestPostgres::start() else { return };
    let pair = Pair::start().await;
    let (tuna, lug) = (&pair.tuna, &pair.lug);
    let url = server.database().expose().to_owned();
    let running = start(&pair.config(&instance(&url, "solo")));
    eventually("both accounts", || held(&running) == 2).await;
    let states = running.daemon().states();
    let connected = |n: usize| {
        let states = states.clone();
        move || states.borrow().values().filter(|s| **s == chatbridge::adapters::AccountState::Connected).count() == n
    };
    eventually("both connected", connected(2)).await;
    let mut want = Vec::new();
    for i in 0..10 {
        tuna.say("general", "irc", "alice", &format!("before {i}"));
        want.push(format!("before {i}"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let texts = || lug.posted().into_iter().map(|p| p.content).collect::<Vec<_>>();
    arrives("before the outage", texts, &want).await;
    server.kill();
    for i in 0..10 {
        tuna.say("general", "irc", "alice", &format!("during {i}"));
        want.push(format!("during {i}"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Past two thirds of lease_ttl (3 s) unrenewed, every account stops.
    until("the accounts stop", Duration::from_secs(10), || held(&running) == 0 && connected(0)()).await;
    let health = running.daemon().stats().store.failing();
    assert!(health.is_some(), "the store says it cannot write");
    server.resume();
    until("the accounts are back", Duration::from_secs(15), || held(&running) == 2).await;
    // Nothing lost, in order; a copy out when the server went away may go twice (its acknowledgement could
    // not be written), at most one.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tally(&texts(), "during ", 10).0.is_empty() {
        if Instant::now() > deadline {
            let rows = server.query(
                &chatbridge::settings::Secret::resolve(&url).unwrap(),
                "SELECT key, holder, seq, convert_from(record, 'UTF8') FROM outbox",
            );
            let dead = server
                .query(&chatbridge::settings::Secret::resolve(&url).unwrap(), "SELECT key, reason FROM deadletters");
            panic!("not everything arrived: {:?}\noutbox: {rows}\ndead: {dead}", texts());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = texts();
    let (missing, extra) = tally(&got, "during ", 10);
    assert!(missing.is_empty() && extra <= 1, "missing {missing:?}, {extra} extra: {got:?}");
    let mut firsts = got.clone();
    firsts.dedup();
    assert_eq!(firsts, want, "in order");
    running.shutdown().await;
}

/// A reload in shared mode: an added account's lease is created and taken, and the account runs; a removed
/// account delivers what was queued for it, then its lease is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_an_account_through_its_lease_and_a_removed_one_drains_then_lets_go() {
    let Some(server) = TestPostgres::shared() else { return };
    let pair = Pair::start().await;
    let third = crate::harness::fishroom(&["room"], &[("33", "key-third", "bridge")]).await;
    let url = server.database();
    let state = crate::harness::fresh_dir("pg-reload");
    // A long lease (renewed every 10 s) and a long drain, so that "at once" and "while it drains" are clear.
    let general = instance(url.expose(), "solo")
        .replace("lease_ttl = \"3s\"", "lease_ttl = \"30s\"")
        .replace("shutdown_timeout = \"2s\"", "shutdown_timeout = \"10s\"");
    let general = format!("{general}state_dir = {:?}\n", state.display().to_string());
    let running = start(&pair.config(&general));
    eventually("both accounts", || held(&running) == 2).await;
    crate::harness::wait_state(&running, &["fishroom.tuna", "fishroom.lug"], |s| {
        *s == chatbridge::adapters::AccountState::Connected
    })
    .await;
    // Two messages wait for lug, whose server fails every post.
    pair.lug.fail_posts(true);
    pair.tuna.say("general", "irc", "alice", "queued one");
    pair.tuna.say("general", "irc", "alice", "queued two");
    eventually("lug's posts fail", || pair.lug.fail_count() > 1).await;
    let second = format!(
        "{general}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"fishroom.tuna:general\", \"fishroom.third:room\"]\n",
        crate::harness::account("tuna", &pair.tuna, "11", "key-tuna"),
        crate::harness::account("third", &third, "33", "key-third"),
    );
    let applied = tokio::time::timeout(
        crate::harness::DEADLINE,
        running.daemon().reloader().reload(crate::harness::parse(&second)),
    )
    .await
    .expect("the reload answers");
    assert!(matches!(applied, chatbridge::Reloaded::Applied(_)), "{applied:?}");
    // The reload wakes the lease task: third is claimed at once, not at the next renewal (10 s away).
    until("third's lease is taken here", Duration::from_secs(5), || {
        owners(server, &url).get("fishroom.third").is_some_and(|o| o == "solo")
    })
    .await;
    crate::harness::wait_state(&running, &["fishroom.third"], |s| *s == chatbridge::adapters::AccountState::Connected)
        .await;
    // lug keeps its lease while it drains (no other instance may run it meanwhile)...
    assert_eq!(owners(server, &url).get("fishroom.lug").map(String::as_str), Some("solo"));
    // ...and delivers what was queued for it once its server takes posts again, then closes and lets it go.
    let mut at_lug = pair.lug.subscribe();
    pair.lug.fail_posts(false);
    assert_eq!(crate::harness::next_post(&mut at_lug).await.content, "queued one");
    assert_eq!(crate::harness::next_post(&mut at_lug).await.content, "queued two");
    let mut at_third = third.subscribe();
    pair.tuna.say("general", "irc", "alice", "to the new room");
    assert_eq!(crate::harness::next_post(&mut at_third).await.content, "to the new room");
    until("lug's lease is let go", Duration::from_secs(10), || !owners(server, &url).contains_key("fishroom.lug"))
        .await;
    eventually("lug is closed", || !running.daemon().states().borrow().keys().any(|a| a.to_string() == "fishroom.lug"))
        .await;
    assert_eq!(held(&running), 2);
    let summary = running.shutdown().await;
    assert_eq!(summary.undelivered, 0);
    let _ = std::fs::remove_dir_all(state);
}
