//! Builders and waits shared by the scenarios.

use std::time::Duration;

use chatbridge::Daemon;
use chatbridge::adapters::AccountState;
use chatbridge::config::Config;
use chatbridge::sim::fishroom::{FishroomSim, FishroomSimConfig, Posted};
use chatbridge::sim::heihei::{HeiheiSim, HeiheiSimConfig, SentMsg as HeiheiSent};
use chatbridge::sim::iirose::{IiroseSim, IiroseSimConfig, Said, SimUser};
use chatbridge::sim::missevan::{MissevanSim, MissevanSimConfig, SentMessage};
use chatbridge::sim::yunhu::{Request as YunhuRequest, YunhuSim, YunhuSimConfig};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How long any single expected thing may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// `[general]` with short delays, so failures and retries happen within a test.
pub const FAST: &str = r#"
[general]
shutdown_timeout = "2s"
retry_delay = "20ms"
backoff_min = "50ms"
backoff_max = "200ms"
max_attempts = 3
max_age = "0s"
"#;

/// `[general]` that keeps a failing destination queued (never given up) for the length of a test.
pub const PATIENT: &str = r#"
[general]
shutdown_timeout = "5s"
retry_delay = "20ms"
backoff_min = "50ms"
backoff_max = "200ms"
max_attempts = 1000
max_age = "10m"
"#;

/// A simulated Fishroom server with these rooms and tokens `(id, key, name)`, polls held 300 ms.
pub async fn fishroom(rooms: &[&str], tokens: &[(&str, &str, &str)]) -> FishroomSim {
    let config = FishroomSimConfig {
        rooms: rooms.iter().map(|r| r.to_string()).collect(),
        tokens: tokens.iter().map(|(i, k, n)| (i.to_string(), k.to_string(), n.to_string())).collect(),
        poll_timeout: Duration::from_millis(300),
        ..FishroomSimConfig::default()
    };
    FishroomSim::start(config).await.expect("the simulator starts")
}

/// An `[accounts.fishroom.<name>]` table for `sim`.
pub fn account(name: &str, sim: &FishroomSim, token_id: &str, token_key: &str) -> String {
    format!(
        "\n[accounts.fishroom.{name}]\napi_url = \"{}\"\ntoken_id = \"{token_id}\"\ntoken_key = \"{token_key}\"\nrequest_timeout = \"3s\"\n",
        sim.api_url()
    )
}

/// Parses a test configuration; unless it names a `state_dir`, each gets a fresh one of its own.
pub fn parse(source: &str) -> Config {
    let mut config = Config::parse(source, "test.toml").unwrap_or_else(|p| panic!("test config is valid:\n{p}"));
    if !source.contains("state_dir") {
        config.general.state_dir = fresh_dir("state");
    }
    config
}

/// A new, empty directory under the system's temporary directory.
pub fn fresh_dir(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("chatbridge-it-{what}-{}", uuid::Uuid::new_v4()))
}

pub struct Running {
    pub daemon: Option<Daemon>,
    pub stop: CancellationToken,
    /// Where its store is, when it is durable.
    pub state_dir: Option<std::path::PathBuf>,
}

impl Running {
    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("still running")
    }

    pub async fn shutdown(mut self) -> chatbridge::Summary {
        self.stop.cancel();
        let daemon = self.daemon.take().expect("still running");
        tokio::time::timeout(DEADLINE, daemon.wait()).await.expect("the daemon stops")
    }
}

/// Starts the daemon and waits until the named accounts are connected. With `RUST_LOG` set, the
/// daemon's logs appear in the test's output.
pub async fn start(source: &str, connected: &[&str]) -> Running {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let stop = CancellationToken::new();
    let config = parse(source);
    let state_dir = config.general.durable.then(|| config.general.state_dir.clone());
    let daemon = Daemon::start(config, stop.clone()).expect("the daemon starts");
    let running = Running { daemon: Some(daemon), stop, state_dir };
    wait_state(&running, connected, |s| *s == AccountState::Connected).await;
    running
}

/// Waits until each named account's state satisfies `ok`.
pub async fn wait_state(running: &Running, accounts: &[&str], ok: impl Fn(&AccountState) -> bool) {
    let mut states = running.daemon().states();
    let reached =
        states.wait_for(|states| accounts.iter().all(|a| states.iter().any(|(id, s)| id.to_string() == *a && ok(s))));
    match tokio::time::timeout(DEADLINE, reached).await {
        Ok(Ok(_)) => {}
        _ => panic!("accounts {accounts:?} did not reach the state: {:?}", *running.daemon().states().borrow()),
    }
}

/// The next message the bridge posts on `posted`'s server.
pub async fn next_post(posted: &mut broadcast::Receiver<Posted>) -> Posted {
    tokio::time::timeout(DEADLINE, posted.recv()).await.expect("a post arrives in time").expect("the simulator runs")
}

/// Waits until `check` holds, polling.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lets a few poll cycles pass, so that anything wrongly echoed would have arrived.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(800)).await;
}

/// Two simulated servers, `tuna` (room `general`) and `lug` (room `chat`), one token each.
pub struct Pair {
    pub tuna: FishroomSim,
    pub lug: FishroomSim,
}

impl Pair {
    pub async fn start() -> Self {
        let tuna = fishroom(&["general"], &[("11", "key-tuna", "bridge")]).await;
        let lug = fishroom(&["chat"], &[("22", "key-lug", "bridge")]).await;
        Self { tuna, lug }
    }

    /// `general` followed by both accounts and a bridge `b` joining the two rooms.
    pub fn config(&self, general: &str) -> String {
        format!(
            "{general}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"fishroom.tuna:general\", \"fishroom.lug:chat\"]\n",
            account("tuna", &self.tuna, "11", "key-tuna"),
            account("lug", &self.lug, "22", "key-lug"),
        )
    }

    /// Starts the daemon on [`Pair::config`] with the fast settings and waits until both are connected.
    pub async fn run(&self) -> Running {
        start(&self.config(FAST), &["fishroom.tuna", "fishroom.lug"]).await
    }
}

/// The bridge's Missevan login in the simulators.
pub const MISSEVAN_TOKEN: &str = "6402a37343c4d6ac29ff1ea1|afa35b312f0ddb95|1677894515|cd4e90e7a0221278";
pub const MISSEVAN_BOT_ID: u64 = 3414815;

/// A simulated Missevan site with these rooms, knowing the bridge's login.
pub async fn missevan(rooms: &[u64], forbidden_word: Option<&str>) -> MissevanSim {
    let config = MissevanSimConfig {
        rooms: rooms.to_vec(),
        users: vec![(MISSEVAN_TOKEN.to_owned(), MISSEVAN_BOT_ID, "bridgebot".to_owned())],
        forbidden_word: forbidden_word.map(str::to_owned),
        ..MissevanSimConfig::default()
    };
    MissevanSim::start(config).await.expect("the simulator starts")
}

/// An `[accounts.missevan.<name>]` table for `sim`, logged in by token only (the session is fetched).
pub fn missevan_account(name: &str, sim: &MissevanSim, extra: &str) -> String {
    // The simulator's own table (its first user is MISSEVAN_TOKEN's), and the test's keys.
    format!("{}{extra}", chatbridge::sim::contract::Simulator::account(sim, name))
}

/// The next message the bridge sends through the Missevan send API.
pub async fn next_sent(sent: &mut broadcast::Receiver<SentMessage>) -> SentMessage {
    tokio::time::timeout(DEADLINE, sent.recv()).await.expect("a message is sent in time").expect("the simulator runs")
}

pub const ROSE_ROOM: &str = "5ce6a4b520a90";
pub const LILY_ROOM: &str = "5fdcb9b634621";

/// A simulated IIROSE server with two rooms and two bridge members, `rosebot` and `lilybot`.
pub async fn iirose() -> IiroseSim {
    let user = |uid: &str, name: &str, password: &str| SimUser {
        uid: uid.into(),
        name: name.into(),
        password: password.into(),
    };
    let config = IiroseSimConfig {
        rooms: vec![ROSE_ROOM.to_owned(), LILY_ROOM.to_owned()],
        users: vec![
            user("5b0fe8a3b1ff2", "rosebot", "rose-password"),
            user("5b0fe8a3b1ff3", "lilybot", "lily-password"),
        ],
    };
    IiroseSim::start(config).await.expect("the simulator starts")
}

/// An `[accounts.iirose.<name>]` table for `sim`, as `rosebot` or `lilybot`.
pub fn iirose_account(name: &str, sim: &IiroseSim, extra: &str) -> String {
    format!(
        "\n[accounts.iirose.{name}]\nusername = \"{name}bot\"\npassword = \"{name}-password\"\nws_url = \"{}\"\n\
         heartbeat = \"1s\"\necho_timeout = \"2s\"\nrequest_timeout = \"3s\"\n{extra}",
        sim.ws_url()
    )
}

/// The next message a bridge member sends on the IIROSE simulator.
pub async fn next_said(said: &mut broadcast::Receiver<Said>) -> Said {
    tokio::time::timeout(DEADLINE, said.recv()).await.expect("a message is said in time").expect("the simulator runs")
}

pub const HEIHEI_TOKEN: &str = "hh-token-3a7c9e01";
pub const HEIHEI_HOST: u64 = 38298237;

/// A simulated Heihei server with one host, off air until the test starts a broadcast.
pub async fn heihei() -> HeiheiSim {
    let config = HeiheiSimConfig { token: HEIHEI_TOKEN.to_owned(), user_id: 777, hosts: vec![HEIHEI_HOST] };
    HeiheiSim::start(config).await.expect("the simulator starts")
}

/// An `[accounts.heihei.<name>]` table for `sim`.
pub fn heihei_account(name: &str, sim: &HeiheiSim, extra: &str) -> String {
    // The simulator's own table (its token is HEIHEI_TOKEN), and the test's keys.
    format!("{}{extra}", chatbridge::sim::contract::Simulator::account(sim, name))
}

/// The next message the bridge sends through Heihei's `sendMsg`.
pub async fn next_heihei(sent: &mut broadcast::Receiver<HeiheiSent>) -> HeiheiSent {
    tokio::time::timeout(DEADLINE, sent.recv()).await.expect("a message is sent in time").expect("the simulator runs")
}

pub const YUNHU_TOKEN: &str = "0d6f5c1e-7a2b-4c3d-9e8f-112233445566";
pub const YUNHU_TOKEN_2: &str = "1e7a6d2f-8b3c-4d4e-8f90-223344556677";

/// A simulated Yunhu server knowing two bridge users.
pub async fn yunhu() -> YunhuSim {
    let config = YunhuSimConfig {
        users: vec![
            (YUNHU_TOKEN.to_owned(), "9001".to_owned(), "bridgebot".to_owned()),
            (YUNHU_TOKEN_2.to_owned(), "9002".to_owned(), "bridgebot2".to_owned()),
        ],
        ..YunhuSimConfig::default()
    };
    YunhuSim::start(config).await.expect("the simulator starts")
}

/// An `[accounts.yunhu.<name>]` table for `sim`.
pub fn yunhu_account(name: &str, sim: &YunhuSim, token: &str, extra: &str) -> String {
    format!(
        "\n[accounts.yunhu.{name}]\ntoken = \"{token}\"\napi_url = \"{}\"\nws_url = \"{}\"\nheartbeat = \"1s\"\n\
         idle_timeout = \"3s\"\nstream_settle = \"300ms\"\nrequest_timeout = \"3s\"\n{extra}",
        sim.api_url(),
        sim.ws_url()
    )
}

/// The next request the bridge makes of the Yunhu simulator.
pub async fn next_request(requests: &mut broadcast::Receiver<YunhuRequest>) -> YunhuRequest {
    tokio::time::timeout(DEADLINE, requests.recv()).await.expect("a request in time").expect("the simulator runs")
}

/// Waits until the bridge follows the host's broadcast: joined, and the join's answer taken in (a moment
/// after the simulator saw the join).
pub async fn heihei_following(sim: &HeiheiSim) {
    eventually("the broadcast is joined", || !sim.joins().is_empty()).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
}

/// A loopback port free a moment ago (for servers whose address goes into the configuration).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What the service manager would be told on `socket`, collected until `STOPPING=1` (or `limit`).
pub(crate) fn notifications(
    socket: std::os::unix::net::UnixDatagram,
    limit: std::time::Duration,
) -> (std::sync::Arc<std::sync::Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let collected = std::sync::Arc::clone(&messages);
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let stop = text.contains("STOPPING=1");
                collected.lock().unwrap().push(text);
                if stop {
                    return;
                }
            }
        }
    });
    (messages, reader)
}

/// Starts an instance of a shared store without waiting for its accounts (they come with their leases).
pub fn start_instance(config: &str) -> Running {
    let stop = tokio_util::sync::CancellationToken::new();
    let daemon = chatbridge::Daemon::start(parse(config), stop.clone()).expect("the daemon starts");
    Running { daemon: Some(daemon), stop, state_dir: None }
}

/// The leases an instance holds.
pub fn leases_held(running: &Running) -> u64 {
    running.daemon().stats().leases_held.load(std::sync::atomic::Ordering::Relaxed)
}

/// Two instances of a shared store on the pair's accounts: the first takes both, the second joins, and the test goes
/// on once they hold one account each (and have settled).
pub async fn two_instances(first: &str, second: &str) -> (Running, Running) {
    let a = start_instance(first);
    eventually("the first instance takes both accounts", || leases_held(&a) == 2).await;
    let b = start_instance(second);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !(leases_held(&a) == 1 && leases_held(&b) == 1) {
        assert!(
            std::time::Instant::now() < deadline,
            "no even split: a holds {}, b holds {}",
            leases_held(&a),
            leases_held(&b)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    (a, b)
}
