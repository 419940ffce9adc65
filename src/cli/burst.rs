//! `chatbridge bench --burst N`: a busy Missevan live room says N messages at once, relayed to a Fishroom room (10
//! messages a second, its default send limit) or to another Missevan room (2 a second) through the simulators, with
//! the platforms' default send limits; it reports how long until the last is visible in the destination, how many
//! platform messages that took, and whether every message arrived once and in order.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::Daemon;
use crate::config::Config;
use crate::sim::contract::Simulator;
use crate::sim::fishroom::{FishroomSim, FishroomSimConfig};
use crate::sim::missevan::{MissevanSim, MissevanSimConfig};

const SOURCE: u64 = 868858631;
const DESTINATION: u64 = 868858632;

/// Where the burst goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BurstTo {
    Fishroom,
    Missevan,
}

/// What one burst took.
#[derive(Debug)]
pub struct Burst {
    pub elapsed: Duration,
    /// Platform messages the destination received.
    pub sent: usize,
    pub lost: usize,
    pub in_order: bool,
}

pub async fn run(messages: usize, to: BurstTo, coalesce: bool) -> anyhow::Result<Burst> {
    let missevan = MissevanSim::start(MissevanSimConfig {
        rooms: vec![SOURCE, DESTINATION],
        users: vec![("burst-login-token".into(), 3414815, "bridgebot".into())],
        ..MissevanSimConfig::default()
    })
    .await
    .context("starting a simulated Missevan site")?;
    let fishroom = FishroomSim::start(FishroomSimConfig {
        rooms: vec!["general".into()],
        tokens: vec![("11".into(), "burst-key".into(), "bridge".into())],
        ..FishroomSimConfig::default()
    })
    .await
    .context("starting a simulated Fishroom server")?;
    let state = std::env::temp_dir().join(format!("chatbridge-burst-{}", uuid::Uuid::new_v4()));
    let destination = match to {
        BurstTo::Fishroom => "fishroom.tuna:general".to_owned(),
        BurstTo::Missevan => format!("missevan.fm:{DESTINATION}"),
    };
    let source = format!(
        "[general]\nstate_dir = {:?}\nlog_level = \"warn\"\n{}\n[accounts.fishroom.tuna]\napi_url = \"{}\"\n\
         token_id = \"11\"\ntoken_key = \"burst-key\"\n\n[[bridge]]\nname = \"burst\"\nformat = \"{{nick}}: {{text}}\"\n\
         [[bridge.room]]\nroom = \"missevan.fm:{SOURCE}\"\ndirection = \"in\"\n\
         [[bridge.room]]\nroom = \"{destination}\"\ndirection = \"out\"\ncoalesce = {coalesce}\n",
        state.display().to_string(),
        missevan.account("fm"),
        fishroom.api_url(),
    );
    let config = Config::parse(&source, "burst.toml").map_err(|p| anyhow::anyhow!("the burst configuration: {p}"))?;
    let stop = CancellationToken::new();
    let daemon = Daemon::start(config, stop.clone())?;
    let joined = Instant::now();
    // The source room is joined (a destination room is only sent to).
    while missevan.joins().is_empty() {
        if joined.elapsed() > Duration::from_secs(10) {
            bail!("the bridge did not join the Missevan rooms");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = || -> Vec<String> {
        match to {
            BurstTo::Fishroom => fishroom.posted().into_iter().map(|p| p.content).collect(),
            BurstTo::Missevan => {
                missevan.sent().into_iter().filter(|s| s.room_id == DESTINATION).map(|s| s.message).collect()
            }
        }
    };
    let last = format!("burst {}", messages - 1);
    let started = Instant::now();
    for n in 0..messages {
        missevan.say(SOURCE, 42 + (n % 7) as u64, "观众", &format!("burst {n}"));
    }
    let deadline = Duration::from_secs(3600);
    loop {
        let got = received();
        if got.iter().any(|m| m.lines().any(|l| l.ends_with(&last))) {
            break;
        }
        if started.elapsed() > deadline {
            bail!("the last message did not arrive within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let got = received();
    let numbers: Vec<usize> = got
        .iter()
        .flat_map(|m| m.lines())
        .filter_map(|l| l.rsplit_once("burst ").and_then(|(_, n)| n.parse().ok()))
        .collect();
    let mut seen = vec![false; messages];
    for n in &numbers {
        if let Some(slot) = seen.get_mut(*n) {
            *slot = true;
        }
    }
    let lost = seen.iter().filter(|s| !**s).count();
    let in_order = numbers.windows(2).all(|w| w[0] < w[1]);
    let stats = daemon.stats();
    tracing::debug!(
        received = stats.received.get(),
        filtered = stats.filtered.get(),
        duplicates = stats.duplicates.get(),
        dropped = stats.dropped.get(),
        dead = stats.dead_lettered.get(),
        "Burst counters."
    );
    if lost > 0 {
        let missing: Vec<usize> = seen.iter().enumerate().filter(|(_, s)| !**s).map(|(n, _)| n).take(10).collect();
        tracing::warn!(
            received = stats.received.get(),
            duplicates = stats.duplicates.get(),
            filtered = stats.filtered.get(),
            ?missing,
            "Messages missing."
        );
    }
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), daemon.wait()).await;
    let _ = std::fs::remove_dir_all(&state);
    Ok(Burst { elapsed, sent: got.len(), lost, in_order })
}
