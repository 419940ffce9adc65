//! `chatbridge bench`: the load tool, against given endpoints or against chatbridge started in-process.

use anyhow::Context;

use crate::Daemon;
use crate::config::Config;
use crate::load::{self, LoadOptions};

/// Runs the load tool against the given endpoints, or against chatbridge started here with two API accounts.
pub async fn bench(mut options: LoadOptions, in_memory: bool, full_sync: bool) -> anyhow::Result<()> {
    let state = std::env::temp_dir().join(format!("chatbridge-bench-{}", std::process::id()));
    let daemon = if options.post_url.is_empty() {
        let ports = [free_port()?, free_port()?];
        let mut config =
            Config::parse(&load::in_process_config(ports[0], ports[1], (!in_memory).then_some(&*state)), "bench.toml")
                .map_err(|p| anyhow::anyhow!("the bench configuration: {p}"))?;
        config.general.full_sync = full_sync;
        let stop = tokio_util::sync::CancellationToken::new();
        let daemon = Daemon::start(config, stop.clone())?;
        let mut states = daemon.states();
        let up = states.wait_for(|s| s.values().all(|s| *s == crate::adapters::AccountState::Connected));
        tokio::time::timeout(std::time::Duration::from_secs(5), up)
            .await
            .context("the API accounts did not start")??;
        options.post_url = format!("http://127.0.0.1:{}", ports[0]);
        options.read_url = format!("http://127.0.0.1:{}", ports[1]);
        options.post_gateway = "load".into();
        options.pid = options.pid.or(Some(std::process::id()));
        println!("chatbridge in-process: api.post:load → api.read:load (CPU and memory include the load tool itself)");
        Some((daemon, stop))
    } else {
        None
    };
    let report = load::run(options).await?;
    print!("{report}");
    if let Some((daemon, stop)) = daemon {
        stop.cancel();
        daemon.wait().await;
        let _ = std::fs::remove_dir_all(&state);
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
