//! End-to-end relays through the simulators, one adapter pair at a time: N messages said on one simulated
//! platform, timed until the other platform's simulator has received them all.
//!
//! `cargo run --release --example e2e -- [messages]` (default 2,000). Everything runs in this one process, so the
//! figures include the simulators' own work.

use std::time::{Duration, Instant};

use chatbridge::Daemon;
use chatbridge::adapters::AccountState;
use chatbridge::config::Config;
use chatbridge::simulate;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let messages: usize = std::env::args().nth(1).map_or(Ok(2000), |n| n.parse())?;
    let sims = simulate::start(1).await?;
    // One bridge over the five platforms' first rooms; each pair below feeds one room and counts at another.
    let mut config = Config::parse(&sims.config, "e2e.toml").map_err(|p| anyhow::anyhow!("{p}"))?;
    let state = std::env::temp_dir().join(format!("chatbridge-e2e-{}", std::process::id()));
    config.general.state_dir = state.clone();
    if std::env::var_os("E2E_IN_MEMORY").is_some() {
        config.general.durable = false;
    }
    let stop = CancellationToken::new();
    let daemon = Daemon::start(config, stop.clone())?;
    let mut states = daemon.states();
    tokio::time::timeout(
        Duration::from_secs(10),
        states.wait_for(|s| s.values().all(|s| *s == AccountState::Connected)),
    )
    .await??;
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("{messages} messages per source, relayed to the four other platforms (one process, release build)\n");
    println!("{:<10} {:>12} {:>14}", "source", "seconds", "copies/s");
    for source in ["missevan", "iirose", "yunhu", "heihei"] {
        let before = daemon.stats().relayed.get();
        let started = Instant::now();
        for i in 0..messages {
            sims.say(source, &format!("e2e {source} {i}"));
            if i % 200 == 199 {
                tokio::task::yield_now().await;
            }
        }
        let expected = before + 4 * messages as u64;
        let deadline =
            Instant::now() + Duration::from_secs(if std::env::var_os("E2E_DEBUG").is_some() { 5 } else { 120 });
        while daemon.stats().relayed.get() < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        let copies = daemon.stats().relayed.get() - before;
        println!(
            "{source:<10} {seconds:>12.2} {:>14.0}{}",
            copies as f64 / seconds,
            if copies < 4 * messages as u64 { "  (incomplete)" } else { "" }
        );
        if std::env::var_os("E2E_DEBUG").is_some() {
            for ((metric, account, room), value) in daemon.stats().labeled() {
                println!("  {metric:?} {account} {room} {value}");
            }
        }
    }
    stop.cancel();
    daemon.wait().await;
    let _ = std::fs::remove_dir_all(state);
    Ok(())
}
