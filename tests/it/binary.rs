//! The built binary: the demo, SIGTERM during traffic, and no secret in the output at trace level.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{
    HEIHEI_HOST, HEIHEI_TOKEN, MISSEVAN_TOKEN, Pair, ROSE_ROOM, YUNHU_TOKEN, account, eventually, fishroom, heihei,
    heihei_account, heihei_following, iirose, iirose_account, missevan, missevan_account, next_post, next_request,
    next_said, next_sent, notifications, yunhu, yunhu_account,
};

pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chatbridge"))
}

/// `chatbridge run -c <config>` at `RUST_LOG=info`, its output discarded unless `stderr` is piped.
/// A daemon process, killed when the test ends however it ends (a failed assertion must not leave it running).
pub(crate) struct Reaped(pub(crate) std::process::Child);

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_daemon(config: &std::path::Path, stderr: Stdio) -> Reaped {
    // The state (outbox, id map) goes next to the configuration, in `state/`.
    bin()
        .args(["run", "-c"])
        .arg(config)
        .current_dir(config.parent().expect("the configuration is in a directory"))
        .env_remove("STATE_DIRECTORY")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map(Reaped)
        .expect("the daemon starts")
}

pub(crate) fn sigterm(child: &Child) {
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill runs");
    assert!(status.success());
}

/// Waits for the child to exit, at most `limit`.
pub(crate) fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the daemon did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn read_all(pipe: Option<impl Read>) -> String {
    let mut text = String::new();
    if let Some(mut pipe) = pipe {
        pipe.read_to_string(&mut text).expect("readable output");
    }
    text
}

#[test]
fn the_demo_relays_and_exits_zero() {
    let out = bin().arg("demo").env_remove("RUST_LOG").output().expect("the demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let relayed: Vec<&str> = stdout.lines().filter(|l| l.trim_start().starts_with('→')).collect();
    assert_eq!(relayed.len(), 35, "{stdout}");
    let arrived = |room: &str, text: &str| relayed.iter().any(|l| l.contains(room) && l.contains(text));
    // Names arriving in Fishroom rooms carry a zero-width space after their first character (`anti_ping`).
    assert!(arrived("fishroom.lug:chat", "[fishroom/tuna] a\u{200B}lice: Hello from IRC"), "{stdout}");
    assert!(arrived("missevan.fm:868858631", "[fishroom] alice: Hello from IRC"), "{stdout}");
    assert!(arrived("fishroom.tuna:general", "[missevan/fm] 小\u{200B}明: 晚上好"), "{stdout}");
    assert!(arrived("iirose.rose:5ce6a4b520a90", "[missevan] 小明: 晚上好"), "{stdout}");
    assert!(arrived("missevan.fm:868858631", "[iirose] 上学: 蔷薇花园 says hi <3 & welcome"), "{stdout}");
    assert!(arrived("heihei.hh:host/38298237", "[fishroom] alice: Hello from IRC"), "{stdout}");
    assert!(arrived("fishroom.lug:chat", "[heihei/hh] 观\u{200B}众: 黑黑直播间的观众也来了"), "{stdout}");
    assert!(arrived("yunhu.me:group/fans", "[iirose] 上学: 蔷薇花园 says hi"), "{stdout}");
    assert!(arrived("heihei.hh:host/38298237", "[yunhu] 云朵: 云湖群里也能看到大家"), "{stdout}");
    assert!(stdout.contains("35 messages relayed, none echoed back, 0 left undelivered."), "{stdout}");
}

pub(crate) fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("chatbridge.toml");
    std::fs::write(&path, body).unwrap();
    path
}

pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("chatbridge-it-{name}-{}", std::process::id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_traffic_exits_zero_within_the_deadline() {
    let pair = Pair::start().await;
    let (tuna, lug) = (&pair.tuna, &pair.lug);
    let dir = temp_dir("sigterm");
    let config = write_config(&dir, &pair.config("[general]\nshutdown_timeout = \"2s\"\nretry_delay = \"50ms\"\n"));
    let mut child = run_daemon(&config, Stdio::null());
    let mut at_lug = lug.subscribe();
    // Traffic until the bridge is seen relaying, then more while the signal lands.
    let mut relayed = false;
    for i in 0..200 {
        tuna.say("general", "irc", "alice", &format!("message {i}"));
        if tokio::time::timeout(Duration::from_millis(50), at_lug.recv()).await.is_ok() {
            relayed = true;
            break;
        }
    }
    assert!(relayed, "the daemon relayed before the signal");
    for i in 0..20 {
        tuna.say("general", "irc", "alice", &format!("burst {i}"));
    }
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(2 + 3))).await.unwrap();
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let pair = Pair::start().await;
    let (tuna, lug) = (&pair.tuna, &pair.lug);
    let dir = temp_dir("second-signal");
    // Posts to lug fail and are retried slowly: the drain would take the whole minute.
    let config = write_config(&dir, &pair.config("[general]\nshutdown_timeout = \"60s\"\nretry_delay = \"10s\"\n"));
    lug.fail_posts(true);
    let mut child = run_daemon(&config, Stdio::piped());
    let stderr = child.stderr.take();
    let log = tokio::task::spawn_blocking(move || read_all(stderr));
    tuna.say("general", "irc", "alice", "stuck");
    eventually("the post is attempted", || lug.fail_count() > 0).await;
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(child.try_wait().unwrap().is_none(), "the first signal waits for the queue");
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(3))).await.unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(log.await.unwrap().contains("Second signal"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_output_even_at_trace_level() {
    let tuna = fishroom(&["general"], &[("11", "tuna-secret-key-1", "bridge")]).await;
    let lug = fishroom(&["chat"], &[("22", "lug-secret-key-2", "bridge")]).await;
    let fm = missevan(&[868858631], None).await;
    let hh = heihei().await;
    hh.start_live(HEIHEI_HOST);
    let rose = iirose().await;
    let yh = yunhu().await;
    let dir = temp_dir("secrets");
    let key_file = dir.join("lug.key");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&key_file, "lug-secret-key-2\n").unwrap();
    let config = write_config(
        &dir,
        &format!(
            "[general]\nshutdown_timeout = \"1s\"\nbackoff_min = \"50ms\"\nbackoff_max = \"100ms\"\nretry_delay = \"20ms\"\nmax_attempts = 2\n\
             {}{}{}{}{}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"fishroom.tuna:general\", \"fishroom.lug:chat\", \"fishroom.bad:nowhere\", \"missevan.fm:868858631\", \"heihei.hh:host/{HEIHEI_HOST}\", \"iirose.rose:{ROSE_ROOM}\", \"yunhu.yh:group/fans\"]\n",
            // The token travels in the channel socket's URL and init's query.
            heihei_account("hh", &hh, ""),
            // A stale session cookie: the socket refuses it and the adapter fetches a fresh one.
            missevan_account("fm", &fm, "").replace(
                &format!("cookie = \"token={MISSEVAN_TOKEN}\""),
                &format!("cookie = \"FM_SESS=stale-session-secret-4; token={MISSEVAN_TOKEN}\""),
            ),
            // The login frame carries the password's MD5.
            iirose_account("rose", &rose, ""),
            // The login frame carries the token, and so does every HTTP request's `token` header.
            yunhu_account("yh", &yh, YUNHU_TOKEN, ""),
            account("tuna", &tuna, "11", "env:CHATBRIDGE_IT_TUNA_KEY"),
            account("lug", &lug, "22", &format!("file:{}", key_file.display())),
            // A token the server refuses (403, the account stops) for a room it does not have.
            account("bad", &lug, "33", "wrong-secret-key-3"),
        ),
    );
    let mut child = bin()
        .args(["run", "--log-format", "json", "-c"])
        .arg(&config)
        .current_dir(&dir)
        .env_remove("STATE_DIRECTORY")
        .env("RUST_LOG", "trace")
        .env("CHATBRIDGE_IT_TUNA_KEY", "tuna-secret-key-1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the daemon starts");
    // Read as it comes: trace output fills a pipe's buffer within moments, and a full pipe blocks the daemon.
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let stdout = std::thread::spawn(move || read_all(stdout));
    let stderr = std::thread::spawn(move || read_all(stderr));
    let (mut at_lug, mut at_fm, mut at_rose, mut at_yh) =
        (lug.subscribe(), fm.subscribe(), rose.subscribe(), yh.subscribe());
    // Every platform logs in and sends: the message reaches each of them.
    eventually("IIROSE logs in", || !rose.logins().is_empty()).await;
    eventually("Yunhu logs in", || yh.logins() > 0).await;
    tuna.say("general", "irc", "alice", "one");
    let _ = next_post(&mut at_lug).await;
    let _ = next_sent(&mut at_fm).await;
    let _ = next_said(&mut at_rose).await;
    let _ = next_request(&mut at_yh).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while fm.joins().is_empty() {
        assert!(Instant::now() < deadline, "the live room was never joined");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fm.say(868858631, 42, "小明", "from the live room");
    let _ = next_post(&mut at_lug).await;
    heihei_following(&hh).await;
    // The channel socket dropped: its reconnect carries the token again.
    hh.drop_connections();
    // Failures: posts answered 500 until given up, and the server going away.
    lug.fail_posts(true);
    tuna.say("general", "irc", "alice", "two");
    tokio::time::sleep(Duration::from_millis(300)).await;
    lug.drop_connections();
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(10))).await.unwrap();
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(status.success(), "exit status {status}\n{stderr}");
    let output = format!("{stdout}{stderr}");
    assert!(output.contains("Account stopped"), "the 403 path was exercised");
    assert!(output.contains("TRACE"), "trace level was on");
    // Every line of an account's work names the account, those of its sends included (they run in tasks of
    // their own, which used to lose the adapter's span).
    let of_accounts: Vec<&str> = output
        .lines()
        .filter(|l| ["\"Posted.\"", "\"Missevan session obtained.\"", "\"Connected.\""].iter().any(|m| l.contains(m)))
        .collect();
    assert!(of_accounts.iter().any(|l| l.contains("Posted.")), "a post was logged");
    for line in &of_accounts {
        assert!(line.contains("\"account\":"), "{line}");
    }
    let sessions = fm.issued_sessions();
    assert!(!sessions.is_empty(), "a Missevan session was handed out at run time");
    let rose_md5 = chatbridge::adapters::iirose::wire::md5_hex("rose-password");
    let mut secrets = vec![
        "tuna-secret-key-1",
        "lug-secret-key-2",
        "wrong-secret-key-3",
        "stale-session-secret-4",
        MISSEVAN_TOKEN,
        HEIHEI_TOKEN,
        YUNHU_TOKEN,
        "rose-password",
        rose_md5.as_str(),
    ];
    secrets.extend(sessions.iter().map(String::as_str));
    for secret in secrets {
        assert!(!output.contains(secret), "secret {secret} leaked:\n{}", leak_context(&output, secret));
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn leak_context(output: &str, secret: &str) -> String {
    output.lines().filter(|l| l.contains(secret)).take(3).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_delivers_what_was_queued_after_a_restart() {
    let pair = Pair::start().await;
    let (tuna, lug) = (&pair.tuna, &pair.lug);
    let dir = temp_dir("durable");
    let state = dir.join("state");
    let general = format!(
        "[general]\ndurable = true\nstate_dir = \"{}\"\nretry_delay = \"60s\"\nmax_attempts = 100\nshutdown_timeout = \"1s\"\n",
        state.display()
    );
    let config = write_config(&dir, &pair.config(&general));
    let spawn = || run_daemon(&config, Stdio::null());
    // lug fails every post: the messages wait in the outbox.
    lug.fail_posts(true);
    let mut child = spawn();
    tuna.say("general", "irc", "alice", "durable 0");
    eventually("the first post is attempted", || lug.fail_count() > 0).await;
    // Spaced out: a Fishroom token's queue holds only 15 messages between polls.
    for i in 1..20 {
        tuna.say("general", "irc", "alice", &format!("durable {i}"));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Give the relay of the other nineteen a moment to reach the outbox, then crash.
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    lug.fail_posts(false);
    let mut child = spawn();
    let deadline = Instant::now() + Duration::from_secs(10);
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

#[test]
fn deadletters_are_listed_and_requeued_and_check_reports_orphaned_rows() {
    use chatbridge::model::{AccountId, Content, Event, EventKind, Message, Platform, RoomAddr, RoomId};
    use chatbridge::store::{Record, Store, StoreSettings};
    let dir = crate::harness::fresh_dir("deadletters");
    let state = dir.join("state");
    let config = write_config(
        &dir,
        &format!(
            "[general]\nstate_dir = {:?}\n\n[accounts.fishroom.a]\ntoken_id = \"1\"\ntoken_key = \"k\"\n\
             [accounts.fishroom.b]\ntoken_id = \"2\"\ntoken_key = \"k\"\n\n\
             [[bridge]]\nname = \"x\"\nrooms = [\"fishroom.a:r\", \"fishroom.b:r\"]\n",
            state.display().to_string()
        ),
    );
    // A store holding one dead letter, one queued message, and one for a bridge no longer configured.
    let settings = StoreSettings {
        full_sync: false,
        id_map_max_age: Duration::from_secs(3600),
        id_map_capacity: 10,
        orphan_max_age: Duration::from_secs(3600),
        per_room: 10,
        page_limit: Default::default(),
        max_outbox: 1_000_000,
        max_dead_letters: 100_000,
    };
    let (store, _) = Store::open(&state, &settings, |_, _| true, |_| {}).unwrap();
    let origin = RoomAddr::new(AccountId::new(Platform::Fishroom, "a"), RoomId::new("r"));
    let record = |text: &str| Record {
        event: Event::new(
            origin.clone(),
            None,
            None,
            EventKind::Message(Message { content: Content::text(text), ..Message::default() }),
        ),
        client_ids: Vec::new(),
        group: None,
    };
    store.put(1, "fishroom.b:r".into(), "x".into(), &record("given up"));
    store.put(2, "fishroom.b:r".into(), "x".into(), &record("still queued"));
    store.put(3, "fishroom.b:r".into(), "gone".into(), &record("orphan"));
    store.end();
    store.dead_letter(1, "5 attempts over 600s; the last: 503".into());
    store.end();
    drop(store);

    let list = bin().args(["deadletters", "-c"]).arg(&config).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{text}{}", String::from_utf8_lossy(&list.stderr));
    assert!(text.contains("→ fishroom.b:r [x]  fishroom.a:r: given up  (5 attempts over 600s"), "{text}");
    assert!(text.contains("1 dead letter(s)."), "{text}");

    let check = bin().args(["check", "-c"]).arg(&config).output().unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{text}");
    assert!(text.contains("1 message(s) queued for fishroom.b:r in bridge `gone`"), "{text}");
    assert!(!text.contains("bridge `x`"), "configured queues are not reported: {text}");
    assert!(text.contains("general.orphan_max_age (7 days)"), "{text}");

    let wrong = bin().args(["deadletters", "-c"]).arg(&config).args(["requeue", "77"]).output().unwrap();
    assert!(!wrong.status.success(), "an unknown key is an error");
    assert!(!String::from_utf8_lossy(&wrong.stdout).contains("re-queued"), "no success line before the error");
    let requeue = bin().args(["deadletters", "-c"]).arg(&config).args(["requeue", "--all"]).output().unwrap();
    assert!(String::from_utf8_lossy(&requeue.stdout).contains("1 dead letter(s) re-queued"));
    // The next start puts it back at the end of its room's queue.
    let (_store, opened) = Store::open(&state, &settings, |_, bridge| bridge == "x", |_| {}).unwrap();
    let texts: Vec<String> = opened
        .outbox
        .iter()
        .map(|s| match &s.record.event.kind {
            EventKind::Message(m) => m.content.to_plain_text(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(texts, ["still queued", "given up"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_works_after_the_log_reader_went_away() {
    let pair = Pair::start().await;
    let (tuna, lug) = (&pair.tuna, &pair.lug);
    let dir = temp_dir("closed-stderr");
    let state = dir.join("state");
    let general = format!(
        "[general]\nstate_dir = \"{}\"\nretry_delay = \"60s\"\nmax_attempts = 100\nshutdown_timeout = \"1s\"\n",
        state.display()
    );
    let config = write_config(&dir, &pair.config(&general));
    lug.fail_posts(true);
    let mut child = run_daemon(&config, Stdio::piped());
    // Read the first line, then close the pipe: every later log line fails with EPIPE.
    let mut stderr = child.stderr.take().unwrap();
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut stderr, &mut first).unwrap();
    drop(stderr);
    tuna.say("general", "irc", "alice", "kept through the shutdown");
    eventually("the post is attempted", || lug.fail_count() > 0).await;
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(10))).await.unwrap();
    assert!(status.success(), "exit status {status}");
    let queues = chatbridge::store::admin::queues(&state).unwrap().unwrap_or_default();
    assert_eq!(queues.iter().map(|q| q.messages).sum::<usize>(), 1, "the queued message is kept: {queues:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_says_what_started_and_what_was_wrong_with_rust_log() {
    let pair = Pair::start().await;
    let dir = temp_dir("log-levels");
    let config = write_config(&dir, &pair.config("[general]\nshutdown_timeout = \"1s\"\n"));
    let spawn = |rust_log: &str| {
        bin()
            .args(["run", "-c"])
            .arg(&config)
            .current_dir(&dir)
            .env_remove("STATE_DIRECTORY")
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the daemon starts")
    };
    // An invalid RUST_LOG is said (a bare word that is not a level, which the filter's own syntax would take for a
    // module's name and so print nothing); the start-up line names the version, the file and the state directory.
    let mut child = spawn("verbose");
    let stderr = child.stderr.take();
    let log = std::thread::spawn(move || read_all(stderr));
    let mut at_lug = pair.lug.subscribe();
    pair.tuna.say("general", "irc", "alice", "one");
    let _ = next_post(&mut at_lug).await;
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(10))).await.unwrap();
    assert!(status.success());
    let log = log.join().unwrap();
    assert!(log.contains("RUST_LOG is not valid"), "{log}");
    assert!(log.contains("chatbridge starting.") && log.contains(env!("CARGO_PKG_VERSION")), "{log}");
    assert!(log.contains("chatbridge.toml") && log.contains("state"), "{log}");
    // DEBUG shows routing: a relayed message is logged with its route.
    let mut child = spawn("chatbridge=debug");
    let stderr = child.stderr.take();
    let log = std::thread::spawn(move || read_all(stderr));
    pair.tuna.say("general", "irc", "alice", "two");
    let _ = next_post(&mut at_lug).await;
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(10))).await.unwrap();
    assert!(status.success());
    let log = log.join().unwrap();
    assert!(log.lines().any(|l| l.contains("Delivered.") && l.contains("fishroom.lug:chat")), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

pub(crate) fn sighup(child: &Child) {
    let status = Command::new("kill").arg("-HUP").arg(child.id().to_string()).status().expect("kill runs");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_file_or_keeps_the_running_one() {
    let pair = Pair::start().await;
    let dir = temp_dir("reload");
    let general = "[general]\nshutdown_timeout = \"1s\"\nbackoff_min = \"50ms\"\nbackoff_max = \"200ms\"\n";
    let config = write_config(&dir, &pair.config(general));
    let mut child = run_daemon(&config, Stdio::piped());
    let stderr = child.stderr.take();
    let log = std::thread::spawn(move || read_all(stderr));
    let mut at_lug = pair.lug.subscribe();
    pair.tuna.say("general", "irc", "alice", "before");
    assert!(next_post(&mut at_lug).await.content.contains("before"));
    // A broken file: logged, and the daemon goes on as it was (SIGHUP used to end it at once).
    std::fs::write(&config, "[general\nthis is not toml").unwrap();
    sighup(&child);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(child.try_wait().unwrap().is_none(), "still running");
    pair.tuna.say("general", "irc", "alice", "after the broken file");
    let post = next_post(&mut at_lug).await;
    assert_eq!(post.content, "after the broken file");
    // A valid file with another sender format and a log level: the next message has both, and the accounts
    // stay connected.
    let changed = pair
        .config(&general.replace("[general]\n", "[general]\nlog_level = \"chatbridge=debug,info\"\n"))
        .replace("[[bridge]]\nname = \"b\"\n", "[[bridge]]\nname = \"b\"\nnick_format = \"<{nick}>\"\n");
    assert!(changed.contains("<{nick}>") && changed.contains("log_level"), "{changed}");
    write_config(&dir, &changed);
    sighup(&child);
    let mut relayed = None;
    for n in 0..100 {
        pair.tuna.say("general", "irc", "alice", &format!("reloaded {n}"));
        let post = next_post(&mut at_lug).await;
        if post.sender == "<a\u{200B}lice>" {
            relayed = Some(post);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(relayed.is_some(), "the new format applies after the reload");
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(10))).await.unwrap();
    assert!(status.success(), "exit status {status}");
    let log = log.join().unwrap();
    assert!(log.contains("The new configuration is not valid"), "{log}");
    assert!(log.lines().any(|l| l.contains("Configuration reloaded") && l.contains("\"kept\":2")), "{log}");
    assert!(!log.contains("Stopped for the restart"), "applied without a restart: {log}");
    let reloaded = log.find("Configuration reloaded").unwrap();
    assert!(!log[..reloaded].contains("Delivered."), "DEBUG was off before the reload");
    assert!(log[reloaded..].contains("Delivered."), "the new log level applies: {log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_manager_is_told_ready_reloading_alive_and_stopping() {
    let pair = Pair::start().await;
    let dir = temp_dir("notify");
    std::fs::create_dir_all(&dir).unwrap();
    let socket_path = dir.join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let config = write_config(&dir, &pair.config("[general]\nshutdown_timeout = \"1s\"\n"));
    // systemd names the watched process in WATCHDOG_PID: the shell's pid is the daemon's after `exec`.
    let mut child = Command::new("sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" run -c \"$1\"", env!("CARGO_BIN_EXE_chatbridge")])
        .arg(&config)
        .current_dir(&dir)
        .env_remove("STATE_DIRECTORY")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the daemon starts");
    let (messages, reader) = notifications(socket, Duration::from_secs(20));
    let seen = |what: &str| messages.lock().unwrap().iter().any(|m| m.contains(what));
    eventually("READY=1", || seen("READY=1")).await;
    assert!(seen("STATUS=2 accounts: 2 connected; 0 queued"), "{:?}", messages.lock().unwrap());
    eventually("WATCHDOG=1 from the router", || seen("WATCHDOG=1")).await;
    sighup(&child);
    eventually("RELOADING=1", || seen("RELOADING=1")).await;
    assert!(seen("MONOTONIC_USEC="), "{:?}", messages.lock().unwrap());
    eventually("READY=1 after the reload", || {
        let all = messages.lock().unwrap();
        let reloading = all.iter().position(|m| m.contains("RELOADING=1")).unwrap();
        all[reloading + 1..].iter().any(|m| m.contains("READY=1"))
    })
    .await;
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(10))).await.unwrap();
    assert!(status.success());
    reader.join().unwrap();
    assert!(seen("STOPPING=1"), "{:?}", messages.lock().unwrap());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_systemd_credentials() {
    let pair = Pair::start().await;
    let dir = temp_dir("credentials");
    let creds = dir.join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(creds.join("tuna"), "key-tuna\n").unwrap();
    std::fs::write(creds.join("lug"), "key-lug").unwrap();
    let source = pair
        .config("[general]\nshutdown_timeout = \"1s\"\n")
        .replace("token_key = \"key-tuna\"", "token_key = \"cred:tuna\"")
        .replace("token_key = \"key-lug\"", "token_key = \"cred:lug\"");
    assert_eq!(source.matches("cred:").count(), 2, "{source}");
    let config = write_config(&dir, &source);
    // Outside the unit there is no $CREDENTIALS_DIRECTORY: `check` says what is missing.
    let checked = bin().args(["check", "-c"]).arg(&config).env_remove("CREDENTIALS_DIRECTORY").output().unwrap();
    assert!(!checked.status.success());
    let said = String::from_utf8_lossy(&checked.stderr);
    assert!(said.contains("cred:tuna") && said.contains("CREDENTIALS_DIRECTORY"), "{said}");
    // As the service manager starts it: the credentials are read (a trailing newline is not part of the key).
    let checked = bin().args(["check", "-c"]).arg(&config).env("CREDENTIALS_DIRECTORY", &creds).output().unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    let mut child = bin()
        .args(["run", "-c"])
        .arg(&config)
        .current_dir(&dir)
        .env_remove("STATE_DIRECTORY")
        .env_remove("RUST_LOG")
        .env("CREDENTIALS_DIRECTORY", &creds)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the daemon starts");
    let mut at_lug = pair.lug.subscribe();
    pair.tuna.say("general", "irc", "alice", "through credentials");
    assert_eq!(next_post(&mut at_lug).await.content, "through credentials", "both keys were accepted");
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(10))).await.unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(dir);
}
