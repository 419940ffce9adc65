//! Chaos: the daemon killed mid-traffic, simulators that drop, fail and stall, a platform that is down for a
//! while, edits after a restart, and SIGTERM with messages in flight. Real durations are shortened through
//! the configuration; the tests take a lock so they run one at a time, and report what they counted.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatbridge::sim::fishroom::FishroomSim;
use chatbridge::sim::iirose::IiroseSim;
use chatbridge::sim::missevan::MissevanSim;
use chatbridge::sim::yunhu::{Request, YunhuSim};

use crate::harness::{
    ROSE_ROOM, YUNHU_TOKEN, account, fishroom, fresh_dir, iirose, iirose_account, missevan, missevan_account, start,
    yunhu, yunhu_account,
};

/// One chaos test at a time: they load the machine, and their timings assume it is theirs.
pub(crate) static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const FM_ROOM: u64 = 868858631;

/// Retries that keep going for minutes (nothing may be given up here), with short delays.
fn general(state: &std::path::Path, extra: &str) -> String {
    format!(
        "[general]\nstate_dir = {:?}\nshutdown_timeout = \"2s\"\nretry_delay = \"20ms\"\nbackoff_min = \"50ms\"\n\
         backoff_max = \"300ms\"\nmax_attempts = 3\nmax_age = \"10m\"\nqueue_capacity = 200\n{extra}",
        state.display().to_string()
    )
}

struct Platforms {
    fm: MissevanSim,
    rose: IiroseSim,
    yh: YunhuSim,
    fish: FishroomSim,
}

impl Platforms {
    async fn start() -> Self {
        Self {
            fm: missevan(&[FM_ROOM], None).await,
            rose: iirose().await,
            yh: yunhu().await,
            fish: fishroom(&["general"], &[("11", "key", "bridge")]).await,
        }
    }

    /// Missevan, IIROSE and Yunhu feeding each other, Fishroom receiving only; no rate limits, texts
    /// relayed as they are.
    fn config(&self, general: &str) -> String {
        let unlimited = "send_rate = 0\n";
        format!(
            "{general}{}{}{}{}{unlimited}\n[[bridge]]\nname = \"chaos\"\nformat = \"{{text}}\"\nnick_format = \"{{nick}}\"\n\
             [[bridge.room]]\nroom = \"missevan.fm:{FM_ROOM}\"\n\
             [[bridge.room]]\nroom = \"iirose.rose:{ROSE_ROOM}\"\n\
             [[bridge.room]]\nroom = \"yunhu.me:group/big\"\n\
             [[bridge.room]]\nroom = \"fishroom.tuna:general\"\ndirection = \"out\"\n",
            missevan_account("fm", &self.fm, unlimited),
            iirose_account("rose", &self.rose, unlimited),
            yunhu_account("me", &self.yh, YUNHU_TOKEN, unlimited),
            account("tuna", &self.fish, "11", "key"),
        )
    }

    /// Says `text` on a source platform: `m…` on Missevan, `r…` on IIROSE, `y…` on Yunhu.
    fn say(&self, text: &str) {
        match text.as_bytes()[0] {
            b'm' => {
                self.fm.say(FM_ROOM, 42, "小明", text);
            }
            b'r' => {
                self.rose.say(ROSE_ROOM, "5b0fe8a3b1aa1", "上学", text);
            }
            _ => {
                self.yh.say("big", ("u1", "阿花"), text);
            }
        }
    }

    /// What each destination received, in order.
    fn received(&self) -> BTreeMap<&'static str, Vec<String>> {
        let yunhu = self
            .yh
            .requests()
            .into_iter()
            .filter_map(|r| match r {
                Request::Send(sent) if sent.chat_id == "big" => Some(sent.text),
                _ => None,
            })
            .collect();
        BTreeMap::from([
            ("missevan", self.fm.sent().into_iter().map(|s| s.message).collect()),
            ("iirose", self.rose.said().into_iter().filter(|s| s.name == "rosebot").map(|s| s.text).collect()),
            ("yunhu", yunhu),
            ("fishroom", self.fish.posted().into_iter().map(|p| p.content).collect()),
        ])
    }
}

/// What each destination should receive: every message of the other sources.
fn expected(said: &[String]) -> BTreeMap<&'static str, Vec<String>> {
    let from = |skip: u8| said.iter().filter(|t| t.as_bytes()[0] != skip).cloned().collect::<Vec<_>>();
    BTreeMap::from([("missevan", from(b'm')), ("iirose", from(b'r')), ("yunhu", from(b'y')), ("fishroom", from(0))])
}

/// Per destination: (lost, duplicated).
fn tally(
    expected: &BTreeMap<&'static str, Vec<String>>,
    received: &BTreeMap<&'static str, Vec<String>>,
) -> BTreeMap<&'static str, (usize, usize)> {
    expected
        .iter()
        .map(|(name, want)| {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for text in &received[name] {
                *counts.entry(text.as_str()).or_default() += 1;
            }
            let lost = want.iter().filter(|t| !counts.contains_key(t.as_str())).count();
            let duplicated = counts.values().map(|n| n - 1).sum();
            (*name, (lost, duplicated))
        })
        .collect()
}

/// Waits until nothing is lost at any destination, or `limit` passes; returns the last tally.
async fn settle_tally(
    platforms: &Platforms,
    expected: &BTreeMap<&'static str, Vec<String>>,
    limit: Duration,
) -> BTreeMap<&'static str, (usize, usize)> {
    let deadline = Instant::now() + limit;
    loop {
        let tally = tally(expected, &platforms.received());
        if tally.values().all(|(lost, _)| *lost == 0) || Instant::now() > deadline {
            return tally;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Within each source's messages, the first arrivals at a destination come in the order they were said.
fn in_order(received: &[String], prefix: u8) -> bool {
    let mut seen = std::collections::HashSet::new();
    let numbers: Vec<u64> = received
        .iter()
        .filter(|t| t.as_bytes()[0] == prefix && seen.insert(t.as_str()))
        .filter_map(|t| t[1..].parse().ok())
        .collect();
    numbers.windows(2).all(|w| w[0] < w[1])
}

/// The daemon's process, killed when dropped (a failing test must not leave it running).
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the daemon, its log (info and up, JSON) appended to `daemon.log` beside the configuration.
fn spawn(config: &std::path::Path) -> Daemon {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_file_name("daemon.log"))
        .expect("the log file opens");
    Command::new(env!("CARGO_BIN_EXE_chatbridge"))
        .args(["run", "-c"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Daemon)
        .expect("the daemon starts")
}

/// The daemon's log lines that say something went wrong or a gap was filled (for a failing run).
fn log_excerpt(dir: &std::path::Path) -> String {
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("Gap"))
        .take(40)
        .collect::<Vec<_>>()
        .join("\n")
}

async fn connected(platforms: &Platforms, joins: usize, logins: usize, yunhu_logins: usize) {
    crate::harness::eventually("the daemon's accounts connect", || {
        platforms.fm.joins().len() >= joins
            && platforms.rose.logins().len() >= logins
            && platforms.yh.logins() >= yunhu_logins
    })
    .await;
    // The Yunhu login is answered by its first heartbeat; the joins by their acknowledgement.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_traffic_loses_nothing_after_its_restart() {
    let _one = ONE_AT_A_TIME.lock().await;
    let platforms = Platforms::start().await;
    let dir = fresh_dir("chaos-kill");
    let config_path = dir.join("chatbridge.toml");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&config_path, platforms.config(&general(&dir.join("state"), ""))).unwrap();
    let mut child = spawn(&config_path);
    connected(&platforms, 1, 1, 1).await;

    const MESSAGES: usize = 2000;
    let mut said = Vec::with_capacity(MESSAGES);
    let mut down_until: Option<Instant> = None;
    for i in 0..MESSAGES {
        if i == MESSAGES * 2 / 5 {
            // SIGKILL: no shutdown, no flush — whatever was in flight is in the store or nowhere.
            child.0.kill().unwrap();
            child.0.wait().unwrap();
            down_until = Some(Instant::now() + Duration::from_millis(500));
        }
        if down_until.is_some_and(|t| Instant::now() >= t) {
            down_until = None;
            child = spawn(&config_path);
        }
        // While the daemon is down, only Missevan and Yunhu speak: their history reaches back far
        // enough for gap filling; IIROSE's login dump holds only the last 20 messages.
        let source = if down_until.is_some() { ['m', 'y'][i % 2] } else { ['m', 'r', 'y'][i % 3] };
        let text = format!("{source}{i}");
        platforms.say(&text);
        said.push(text);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(down_until.is_none(), "the daemon was restarted during the run");
    let expected = expected(&said);
    let tally = settle_tally(&platforms, &expected, Duration::from_secs(90)).await;
    println!("SIGKILL during {MESSAGES} messages: (lost, duplicated) per destination: {tally:?}");
    for (destination, (lost, _)) in &tally {
        assert_eq!(*lost, 0, "{destination} lost messages: {tally:?}\n{}", log_excerpt(&dir));
    }
    drop(child);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_platforms_lose_nothing_and_keep_the_order() {
    let _one = ONE_AT_A_TIME.lock().await;
    let platforms = std::sync::Arc::new(Platforms::start().await);
    let state = fresh_dir("chaos-flaky");
    let running = start(&platforms.config(&general(&state, "")), &["missevan.fm", "yunhu.me", "iirose.rose"]).await;

    // Every 1.5 s one kind of trouble, in turn: sockets dropped, posts answered 500 for a while, a socket
    // that goes silent (a stall, found by the idle timeout), answers lost after the send went through.
    let trouble = {
        let p = std::sync::Arc::clone(&platforms);
        tokio::spawn(async move {
            let (fm, yh, fish) = (&p.fm, &p.yh, &p.fish);
            for round in 0.. {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                match round % 4 {
                    0 => {
                        fm.drop_connections();
                        yh.drop_connections();
                    }
                    1 => {
                        fish.fail_posts(true);
                        tokio::time::sleep(Duration::from_millis(700)).await;
                        fish.fail_posts(false);
                    }
                    2 => fm.mute_connections(),
                    _ => {
                        yh.lose_answers(3);
                        fm.lose_answers(3);
                    }
                }
            }
        })
    };
    let messages: usize = std::env::var("CHAOS_MESSAGES").ok().and_then(|n| n.parse().ok()).unwrap_or(5000);
    let started = Instant::now();
    let mut said = Vec::with_capacity(messages);
    for i in 0..messages {
        // Missevan and Yunhu speak (their history fills the gaps of the drops); IIROSE receives.
        let text = format!("{}{i}", ['m', 'y'][i % 2]);
        platforms.say(&text);
        said.push(text);
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    let expected = expected(&said);
    let tally = settle_tally(&platforms, &expected, Duration::from_secs(240)).await;
    trouble.abort();
    println!(
        "{messages} messages through flaky platforms in {:.1} s: (lost, duplicated) per destination: {tally:?}",
        started.elapsed().as_secs_f64()
    );
    let received = platforms.received();
    for (destination, (lost, _)) in &tally {
        assert_eq!(*lost, 0, "{destination} lost messages: {tally:?}");
        for prefix in [b'm', b'y'] {
            assert!(in_order(&received[destination], prefix), "{destination}: {} out of order", prefix as char);
        }
    }
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_down_for_a_while_gets_what_was_sent_and_gives_what_was_said() {
    let _one = ONE_AT_A_TIME.lock().await;
    let platforms = Platforms::start().await;
    let state = fresh_dir("chaos-down");
    let running = start(&platforms.config(&general(&state, "")), &["missevan.fm", "yunhu.me", "iirose.rose"]).await;
    platforms.say("m0");
    crate::harness::eventually("the first message is relayed", || {
        platforms.received()["yunhu"].contains(&"m0".to_owned())
    })
    .await;

    // Missevan is down for three seconds (the real figure would be minutes; only the length differs).
    platforms.fm.set_down(true);
    let mut said = vec!["m0".to_owned()];
    for i in 1..=30 {
        // Said on Missevan meanwhile (into its history), and said elsewhere for Missevan.
        for text in [format!("m{i}"), format!("y{i}"), format!("r{i}")] {
            platforms.say(&text);
            said.push(text);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(platforms.fm.sent().is_empty(), "nothing reached Missevan while it was down");
    platforms.fm.set_down(false);

    let expected = expected(&said);
    let tally = settle_tally(&platforms, &expected, Duration::from_secs(30)).await;
    println!("Missevan down for 3 s: (lost, duplicated) per destination: {tally:?}");
    let received = platforms.received();
    for (destination, (lost, _)) in &tally {
        assert_eq!(*lost, 0, "{destination} lost messages: {tally:?}");
        for prefix in [b'm', b'r', b'y'] {
            assert!(in_order(&received[destination], prefix), "{destination}: {} out of order", prefix as char);
        }
    }
    let stats = running.daemon().stats();
    assert_eq!(stats.dead_lettered.get() + stats.dropped.get(), 0);
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_and_a_recall_after_a_restart_reach_the_copies_made_before_it() {
    let _one = ONE_AT_A_TIME.lock().await;
    let sim = yunhu().await;
    let state = fresh_dir("chaos-edit");
    let source = format!(
        "{}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"yunhu.me:group/big\", \"yunhu.other:group/small\"]\n",
        general(&state, ""),
        yunhu_account("me", &sim, YUNHU_TOKEN, ""),
        yunhu_account("other", &sim, crate::harness::YUNHU_TOKEN_2, ""),
    );
    let running = start(&source, &["yunhu.me", "yunhu.other"]).await;
    let original = sim.say("big", ("u1", "小明"), "typo");
    let copy = loop {
        let sends: Vec<_> = sim
            .requests()
            .into_iter()
            .filter_map(|r| match r {
                Request::Send(sent) if sent.chat_id == "small" => Some(sent.msg_id),
                _ => None,
            })
            .collect();
        if let Some(id) = sends.first() {
            break id.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    crate::harness::settle().await;
    running.shutdown().await;

    let running = start(&source, &["yunhu.me", "yunhu.other"]).await;
    sim.edit(&original, "fixed");
    crate::harness::eventually("the copy made before the restart is edited", || {
        sim.requests()
            .iter()
            .any(|r| matches!(r, Request::Edit { msg_id, text } if *msg_id == copy && text.contains("fixed")))
    })
    .await;
    sim.recall(&original);
    crate::harness::eventually("and recalled", || {
        sim.requests().iter().any(|r| matches!(r, Request::Recall { msg_id, .. } if *msg_id == copy))
    })
    .await;
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_messages_in_flight_exits_zero_and_the_next_start_delivers_them() {
    let _one = ONE_AT_A_TIME.lock().await;
    let platforms = Platforms::start().await;
    let dir = fresh_dir("chaos-sigterm");
    let config_path = dir.join("chatbridge.toml");
    std::fs::create_dir_all(&dir).unwrap();
    let general = general(&dir.join("state"), "").replace("shutdown_timeout = \"2s\"", "shutdown_timeout = \"1s\"");
    std::fs::write(&config_path, platforms.config(&general)).unwrap();
    let mut child = spawn(&config_path);
    connected(&platforms, 1, 1, 1).await;
    // Fishroom answers 500 to every post: its copies stay in flight, retried, when the signal lands.
    platforms.fish.fail_posts(true);
    let mut said = Vec::new();
    for i in 0..300 {
        let text = format!("{}{i}", ['m', 'r', 'y'][i % 3]);
        platforms.say(&text);
        said.push(text);
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let status = Command::new("kill").arg("-TERM").arg(child.0.id().to_string()).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(1 + 4);
        loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    let exit = exit.expect("the daemon exits within the shutdown deadline (and the adapters' grace)");
    assert!(exit.success(), "exit status {exit}");
    println!("SIGTERM: exited {exit} after {:.2} s", started.elapsed().as_secs_f64());
    assert!(platforms.fish.posted().len() < 200, "the Fishroom copies were still in flight");

    platforms.fish.fail_posts(false);
    let child = spawn(&config_path);
    let expected = expected(&said);
    let tally = settle_tally(&platforms, &expected, Duration::from_secs(30)).await;
    println!("SIGTERM during 300 messages, then a restart: (lost, duplicated) per destination: {tally:?}");
    for (destination, (lost, _)) in &tally {
        assert_eq!(*lost, 0, "{destination} lost messages: {tally:?}\n{}", log_excerpt(&dir));
    }
    drop(child);
    let _ = std::fs::remove_dir_all(dir);
}
