//! `chatbridge demo`: simulated platforms on loopback — two Fishroom servers, a Missevan live room, an
//! IIROSE room, a Heihei host's live room and a Yunhu group — one bridge joining a room on each, and a short scripted conversation. Every relayed message is printed
//! as the destination receives it.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Daemon;
use crate::adapters::AccountState;
use crate::config::Config;
use crate::sim::fishroom::{FishroomSim, FishroomSimConfig};
use crate::sim::heihei::{HeiheiSim, HeiheiSimConfig};
use crate::sim::iirose::{IiroseSim, IiroseSimConfig, SimUser};
use crate::sim::missevan::{MissevanSim, MissevanSimConfig};
use crate::sim::yunhu::{Request, YunhuSim, YunhuSimConfig};

const WAIT: Duration = Duration::from_secs(10);
const LIVE_ROOM: u64 = 868858631;
const MISSEVAN_TOKEN: &str = "demo-login-token";
const ROSE_ROOM: &str = "5ce6a4b520a90";
const HOST: u64 = 38298237;
/// The rooms, as the bridge names them.
const ROOMS: [&str; 6] = [
    "fishroom.tuna:general",
    "fishroom.lug:chat",
    "missevan.fm:868858631",
    "iirose.rose:5ce6a4b520a90",
    "heihei.hh:host/38298237",
    "yunhu.me:group/fans",
];
const YUNHU_TOKEN: &str = "0d6f5c1e-7a2b-4c3d-9e8f-112233445566";

/// Who says what, where: (room index, sender, text).
const SCRIPT: [(usize, &str, &str); 7] = [
    (0, "alice", "Hello from IRC on the tuna server!"),
    (2, "小明", "晚上好！Greetings from the Missevan live room."),
    (3, "上学", "蔷薇花园 says hi <3 & welcome"),
    (4, "观众", "黑黑直播间的观众也来了"),
    (5, "云朵", "云湖群里也能看到大家"),
    (1, "bob", "Hi all, this is Telegram on the lug server."),
    (0, "alice", "Each message reaches every other room once, formatted, and never comes back."),
];

struct Platforms {
    fishroom: [FishroomSim; 2],
    missevan: MissevanSim,
    iirose: IiroseSim,
    heihei: HeiheiSim,
    yunhu: YunhuSim,
}

impl Platforms {
    async fn start() -> anyhow::Result<Self> {
        let fishroom = [
            fishroom_server("general", ("10000001", "demo-key-tuna")).await?,
            fishroom_server("chat", ("20000002", "demo-key-lug")).await?,
        ];
        let config = MissevanSimConfig {
            rooms: vec![LIVE_ROOM],
            users: vec![(MISSEVAN_TOKEN.to_owned(), 3414815, "bridgebot".to_owned())],
            ..MissevanSimConfig::default()
        };
        let missevan = MissevanSim::start(config).await.context("starting a simulated Missevan site")?;
        let config = IiroseSimConfig {
            rooms: vec![ROSE_ROOM.to_owned()],
            users: vec![SimUser { uid: "5b0fe8a3b1ff2".into(), name: "rosebot".into(), password: "demo-rose".into() }],
        };
        let iirose = IiroseSim::start(config).await.context("starting a simulated IIROSE server")?;
        let config = HeiheiSimConfig { token: "demo-heihei-token".into(), user_id: 777, hosts: vec![HOST] };
        let heihei = HeiheiSim::start(config).await.context("starting a simulated Heihei server")?;
        heihei.start_live(HOST);
        let config = YunhuSimConfig {
            users: vec![(YUNHU_TOKEN.into(), "9001".into(), "bridgebot".into())],
            ..YunhuSimConfig::default()
        };
        let yunhu = YunhuSim::start(config).await.context("starting a simulated Yunhu server")?;
        Ok(Self { fishroom, missevan, iirose, heihei, yunhu })
    }

    fn config(&self) -> String {
        format!(
            r#"
[general]
shutdown_timeout = "3s"
retry_delay = "200ms"

[accounts.fishroom.tuna]
api_url = "{tuna}"
token_id = "10000001"
token_key = "demo-key-tuna"

[accounts.fishroom.lug]
api_url = "{lug}"
token_id = "20000002"
token_key = "demo-key-lug"

[accounts.missevan.fm]
cookie = "token={MISSEVAN_TOKEN}"
api_url = "{fm_api}"
ws_url = "{fm_ws}"

[accounts.iirose.rose]
username = "rosebot"
password = "demo-rose"
ws_url = "{rose}"

[accounts.heihei.hh]
token = "demo-heihei-token"
init_url = "{hh}"

[accounts.yunhu.me]
token = "{YUNHU_TOKEN}"
api_url = "{yh_api}"
ws_url = "{yh_ws}"

[[bridge]]
name = "demo"
rooms = ["{}", "{}", "{}", "{}", "{}", "{}"]
nick_format = "[{{platform}}/{{account}}] {{nick}}"
"#,
            ROOMS[0],
            ROOMS[1],
            ROOMS[2],
            ROOMS[3],
            ROOMS[4],
            ROOMS[5],
            hh = self.heihei.init_url(),
            yh_api = self.yunhu.api_url(),
            yh_ws = self.yunhu.ws_url(),
            rose = self.iirose.ws_url(),
            tuna = self.fishroom[0].api_url(),
            lug = self.fishroom[1].api_url(),
            fm_api = self.missevan.api_url(),
            fm_ws = self.missevan.ws_url(),
        )
    }

    /// Someone says `text` in room `index`.
    fn say(&self, index: usize, sender: &str, text: &str) {
        match index {
            0 => self.fishroom[0].say("general", "irc", sender, text),
            1 => self.fishroom[1].say("chat", "telegram", sender, text),
            2 => {
                self.missevan.say(LIVE_ROOM, 42, sender, text);
            }
            3 => {
                self.iirose.say(ROSE_ROOM, "679a51f1d4893", sender, text);
            }
            4 => self.heihei.say(HOST, 5, sender, text),
            _ => {
                self.yunhu.say("fans", ("u1", sender), text);
            }
        }
    }

    /// Prints what each room receives; each arrival is reported on `relayed`.
    fn print_arrivals(&self, relayed: &mpsc::UnboundedSender<()>) {
        for (server, name) in self.fishroom.iter().zip(ROOMS) {
            let mut posted = server.subscribe();
            let relayed = relayed.clone();
            tokio::spawn(async move {
                while let Ok(post) = posted.recv().await {
                    println!("    → {name:<26} {}: {}", post.sender, post.content);
                    let _ = relayed.send(());
                }
            });
        }
        let mut sent = self.missevan.subscribe();
        let arrived = relayed.clone();
        tokio::spawn(async move {
            while let Ok(message) = sent.recv().await {
                println!("    → {:<26} {}", ROOMS[2], message.message);
                let _ = arrived.send(());
            }
        });
        let mut said = self.iirose.subscribe();
        let arrived = relayed.clone();
        tokio::spawn(async move {
            while let Ok(said) = said.recv().await {
                println!("    → {:<26} {}", ROOMS[3], said.text);
                let _ = arrived.send(());
            }
        });
        let mut sent = self.heihei.subscribe();
        let arrived = relayed.clone();
        tokio::spawn(async move {
            while let Ok(sent) = sent.recv().await {
                println!("    → {:<26} {}", ROOMS[4], sent.text);
                let _ = arrived.send(());
            }
        });
        let mut requests = self.yunhu.subscribe();
        let arrived = relayed.clone();
        tokio::spawn(async move {
            while let Ok(request) = requests.recv().await {
                if let Request::Send(sent) = request {
                    println!("    → {:<26} {}", ROOMS[5], sent.text);
                    let _ = arrived.send(());
                }
            }
        });
    }

    fn arrivals(&self) -> usize {
        self.fishroom.iter().map(|s| s.posted().len()).sum::<usize>()
            + self.missevan.sent().len()
            + self.iirose.said().len()
            + self.heihei.sent().len()
            + self.yunhu.requests().iter().filter(|r| matches!(r, Request::Send(_))).count()
    }
}

/// Removes a directory when dropped.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn run(duration: Option<Duration>) -> anyhow::Result<()> {
    let platforms = Platforms::start().await?;
    let mut config =
        Config::parse(&platforms.config(), "demo.toml").map_err(|p| anyhow::anyhow!("the demo configuration: {p}"))?;
    // The demo's store lives and dies with it: a fresh directory, removed at the end.
    let state = std::env::temp_dir().join(format!("chatbridge-demo-{}", uuid::Uuid::new_v4()));
    config.general.state_dir = state.clone();
    let _cleanup = RemoveOnDrop(state);
    let stop = CancellationToken::new();
    let daemon = Daemon::start(config, stop.clone())?;
    wait_connected(&daemon).await?;
    // The host's broadcast is found and joined just after the account connects.
    let joined = async {
        while platforms.heihei.joins().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WAIT, joined).await.context("the Heihei broadcast was not joined")?;
    // The join's answer is taken in a moment after the server saw the join.
    tokio::time::sleep(Duration::from_millis(200)).await;

    println!("chatbridge demo: bridge `demo` joins {} (all simulated).\n", ROOMS.join(", "));
    let (relayed_tx, mut relayed) = mpsc::unbounded_channel();
    platforms.print_arrivals(&relayed_tx);
    for (index, sender, text) in SCRIPT {
        println!("  {:<26} <{sender}> {text}", ROOMS[index]);
        platforms.say(index, sender, text);
        for _ in 1..ROOMS.len() {
            tokio::time::timeout(WAIT, relayed.recv()).await.context("a message was not relayed in time")?;
        }
    }
    // Anything echoed back would arrive now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let expected = SCRIPT.len() * (ROOMS.len() - 1);
    if platforms.arrivals() != expected {
        bail!("expected {expected} relayed messages, saw {}", platforms.arrivals());
    }
    if let Some(duration) = duration {
        println!("\nRunning for {}; interrupt with Ctrl-C.", humantime::format_duration(duration));
        let signals = crate::shutdown::on_signals()?;
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = signals.cancelled() => {}
        }
    }
    stop.cancel();
    let summary = daemon.wait().await;
    println!("\n{expected} messages relayed, none echoed back, {} left undelivered.", summary.undelivered);
    Ok(())
}

async fn fishroom_server(room: &str, (id, key): (&str, &str)) -> anyhow::Result<FishroomSim> {
    let config = FishroomSimConfig {
        rooms: vec![room.to_owned()],
        tokens: vec![(id.to_owned(), key.to_owned(), "bridge".to_owned())],
        poll_timeout: Duration::from_secs(2),
        ..FishroomSimConfig::default()
    };
    FishroomSim::start(config).await.context("starting a simulated Fishroom server")
}

async fn wait_connected(daemon: &Daemon) -> anyhow::Result<()> {
    let mut states = daemon.states();
    let all_up = states.wait_for(|s| !s.is_empty() && s.values().all(|s| *s == AccountState::Connected));
    match tokio::time::timeout(WAIT, all_up).await {
        Ok(Ok(_)) => Ok(()),
        _ => bail!("the simulated accounts did not connect: {:?}", *daemon.states().borrow()),
    }
}
