//! `chatbridge sim`: every platform's simulator on loopback, with several rooms each, and a configuration
//! file that bridges them — for measuring a daemon run as its own process (memory, start-up time) and for
//! trying chatbridge by hand.

mod control;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::sim::fishroom::{FishroomSim, FishroomSimConfig};
use crate::sim::heihei::{HeiheiSim, HeiheiSimConfig};
use crate::sim::iirose::{IiroseSim, IiroseSimConfig, SimUser};
use crate::sim::missevan::{MissevanSim, MissevanSimConfig};
use crate::sim::yunhu::{YunhuSim, YunhuSimConfig};

const TOKEN: &str = "sim-token";

/// The running simulators; dropping them stops them.
pub struct Simulators {
    fishroom: FishroomSim,
    missevan: MissevanSim,
    iirose: IiroseSim,
    heihei: HeiheiSim,
    yunhu: YunhuSim,
    live_rooms: Vec<u64>,
    hosts: Vec<u64>,
    /// Fishroom's rooms.
    names: Vec<String>,
    /// A configuration joining `rooms` rooms of each platform in `rooms` bridges.
    pub config: String,
}

/// Starts one simulator per platform with `rooms` rooms each (one account per platform), on free ports.
pub async fn start(rooms: usize) -> anyhow::Result<Simulators> {
    start_on(rooms, 0).await
}

/// Like [`start`], on fixed loopback ports when `port` is not 0: Fishroom on `port`, then Missevan, IIROSE,
/// Heihei and Yunhu on the next four, and the daemon's `/health` and `/metrics` on `port + 5`.
pub async fn start_on(rooms: usize, port: u16) -> anyhow::Result<Simulators> {
    anyhow::ensure!(port <= u16::MAX - 6, "--port {port}: the seven ports from it must fit under 65536");
    let at = |n: u16| if port == 0 { 0 } else { port + n };
    let rooms = rooms.max(1);
    let names: Vec<String> = (0..rooms).map(|i| format!("room{i}")).collect();
    let fishroom = FishroomSim::start_on(
        FishroomSimConfig {
            rooms: names.clone(),
            tokens: vec![("1".into(), TOKEN.into(), "bridge".into())],
            // The real server holds a poll 10 s; a daemon stopping waits for the poll it has out (the server
            // would lose what that poll takes), so a shorter hold keeps a stop or restart by hand quick.
            poll_timeout: std::time::Duration::from_secs(2),
            ..FishroomSimConfig::default()
        },
        at(0),
    )
    .await
    .with_context(|| format!("the Fishroom simulator on port {}", at(0)))?;
    let live_rooms: Vec<u64> = (0..rooms as u64).map(|i| 868_858_600 + i).collect();
    let missevan = MissevanSim::start_on(
        MissevanSimConfig {
            rooms: live_rooms.clone(),
            users: vec![(TOKEN.into(), 1, "bridgebot".into())],
            ..MissevanSimConfig::default()
        },
        at(1),
    )
    .await
    .with_context(|| format!("the Missevan simulator on port {}", at(1)))?;
    let iirose = IiroseSim::start_on(
        IiroseSimConfig {
            rooms: vec!["5ce6a4b520a90".into()],
            users: vec![SimUser { uid: "5b0fe8a3b1ff2".into(), name: "bridgebot".into(), password: TOKEN.into() }],
        },
        at(2),
    )
    .await
    .with_context(|| format!("the IIROSE simulator on port {}", at(2)))?;
    let hosts: Vec<u64> = (0..rooms as u64).map(|i| 38_298_200 + i).collect();
    let heihei = HeiheiSim::start_on(HeiheiSimConfig { token: TOKEN.into(), user_id: 1, hosts: hosts.clone() }, at(3))
        .await
        .with_context(|| format!("the Heihei simulator on port {}", at(3)))?;
    for host in &hosts {
        heihei.start_live(*host);
    }
    let yunhu = YunhuSim::start_on(
        YunhuSimConfig { users: vec![(TOKEN.into(), "9001".into(), "bridgebot".into())], ..YunhuSimConfig::default() },
        at(4),
    )
    .await
    .with_context(|| format!("the Yunhu simulator on port {}", at(4)))?;

    let mut config = format!(
        // The simulators are there to be measured: no send rate limits (`send_rate = 0`).
        "[general]\nhttp_listen = \"127.0.0.1:{}\"\nqueue_capacity = 100000\n\n\
         [accounts.fishroom.sim]\napi_url = \"{}\"\ntoken_id = \"1\"\ntoken_key = \"{TOKEN}\"\nsend_rate = 0\n\n\
         [accounts.missevan.sim]\ncookie = \"token={TOKEN}\"\napi_url = \"{}\"\nws_url = \"{}\"\nsend_rate = 0\n\n\
         [accounts.iirose.sim]\nusername = \"bridgebot\"\npassword = \"{TOKEN}\"\nws_url = \"{}\"\nsend_rate = 0\n\n\
         [accounts.heihei.sim]\ntoken = \"{TOKEN}\"\ninit_url = \"{}\"\nsend_rate = 0\n\n\
         [accounts.yunhu.sim]\ntoken = \"{TOKEN}\"\napi_url = \"{}\"\nws_url = \"{}\"\nsend_rate = 0\n",
        at(5),
        fishroom.api_url(),
        missevan.api_url(),
        missevan.ws_url(),
        iirose.ws_url(),
        heihei.init_url(),
        yunhu.api_url(),
        yunhu.ws_url(),
    );
    for i in 0..rooms {
        // Fishroom receives from one room per token; IIROSE is in one room, with private chats beside it.
        let fishroom_direction = if i == 0 { "inout" } else { "out" };
        let iirose_room = if i == 0 { "5ce6a4b520a90".to_owned() } else { format!("user/u{i}") };
        config.push_str(&format!(
            "\n[[bridge]]\nname = \"b{i}\"\n\
             [[bridge.room]]\nroom = \"fishroom.sim:{}\"\ndirection = \"{fishroom_direction}\"\n\
             [[bridge.room]]\nroom = \"missevan.sim:{}\"\n\
             [[bridge.room]]\nroom = \"iirose.sim:{iirose_room}\"\n\
             [[bridge.room]]\nroom = \"heihei.sim:host/{}\"\n\
             [[bridge.room]]\nroom = \"yunhu.sim:group/g{i}\"\n",
            names[i], live_rooms[i], hosts[i]
        ));
    }
    Ok(Simulators { fishroom, missevan, iirose, heihei, yunhu, live_rooms, hosts, names, config })
}

impl Simulators {
    /// A user says `text` in the first room of `platform` (missevan, iirose, heihei or yunhu).
    pub fn say(&self, platform: &str, text: &str) {
        match platform {
            "missevan" => {
                self.missevan.say(self.live_rooms[0], 42, "viewer", text);
            }
            "iirose" => {
                self.iirose.say("5ce6a4b520a90", "679a51f1d4893", "member", text);
            }
            "heihei" => self.heihei.say(self.hosts[0], 5, "viewer", text),
            _ => {
                self.yunhu.say("g0", ("u1", "member"), text);
            }
        }
    }
}

/// Serves the control API (`POST /say`, `GET /sent`) of `sims` on 127.0.0.1:`port` (0: a free port); returns
/// where.
pub async fn control(sims: std::sync::Arc<Simulators>, port: u16) -> anyhow::Result<std::net::SocketAddr> {
    control::serve(sims, port).await
}

/// Runs the simulators until interrupted (or for `duration`), after writing their configuration to `out`, with
/// their control API (`control`) on `port + 6` (a free port when `port` is 0).
pub async fn run(rooms: usize, port: u16, out: &Path, duration: Option<Duration>) -> anyhow::Result<()> {
    let sims = std::sync::Arc::new(start_on(rooms, port).await?);
    std::fs::write(out, &sims.config).with_context(|| format!("writing {}", out.display()))?;
    let control_port = if port == 0 { 0 } else { port + 6 };
    let control = control::serve(std::sync::Arc::clone(&sims), control_port).await?;
    println!("Simulators running: 5 platforms, {rooms} rooms each. Configuration: {}", out.display());
    println!("Control API: http://{control}/ (POST /say, GET /sent; docs/operations.md)");
    let signals = crate::shutdown::on_signals()?;
    match duration {
        Some(duration) => tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = signals.cancelled() => {}
        },
        None => signals.cancelled().await,
    }
    Ok(())
}
