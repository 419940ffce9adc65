//! `chatbridge bench`: the load tool, against given endpoints or against chatbridge started in-process.

use crate::Daemon;
use crate::config::Config;
use crate::load::{self, LoadOptions};

/// What the in-process bridge keeps its state in.
pub struct Target {
    /// `durable = false`.
    pub in_memory: bool,
    /// SQLite with `sync = "full"`.
    pub full_sync: bool,
    /// PostgreSQL (`general.store`).
    pub store: Option<String>,
    /// With `store`: instances sharing it (1 or 2).
    pub instances: u8,
}

/// Runs the load tool against the given endpoints, or against chatbridge started here with two API accounts.
pub async fn bench(mut options: LoadOptions, target: Target) -> anyhow::Result<()> {
    let state = std::env::temp_dir().join(format!("chatbridge-bench-{}", std::process::id()));
    let mut daemons = Vec::new();
    if options.post_url.is_empty() {
        let ports = [free_port()?, free_port()?];
        let instances = if target.store.is_some() { target.instances.max(1) } else { 1 };
        for n in 0..instances {
            let mut source = load::in_process_config(ports[0], ports[1], (!target.in_memory).then_some(&*state));
            if let Some(store) = &target.store {
                let general = format!("[general]\nstore = {store:?}\ninstance = \"bench-{n}\"\n");
                source = source.replacen("[general]\n", &general, 1);
            }
            let mut config =
                Config::parse(&source, "bench.toml").map_err(|p| anyhow::anyhow!("the bench configuration: {p}"))?;
            config.general.full_sync = target.full_sync;
            let stop = tokio_util::sync::CancellationToken::new();
            daemons.push((Daemon::start(config, stop.clone())?, stop));
            if instances > 1 && n == 0 {
                // The first takes both accounts; the second, once started, gets one of them.
                let first = &daemons[0].0;
                wait_until(|| held(first) == 2, "the first instance did not take the accounts").await?;
            }
        }
        if instances > 1 {
            let (a, b) = (&daemons[0].0, &daemons[1].0);
            wait_until(|| held(a) == 1 && held(b) == 1, "the two instances did not split the accounts").await?;
        }
        let connected = |d: &Daemon| {
            d.states().borrow().values().filter(|s| **s == crate::adapters::AccountState::Connected).count()
        };
        wait_until(|| daemons.iter().map(|(d, _)| connected(d)).sum::<usize>() == 2, "the API accounts did not start")
            .await?;
        options.post_url = format!("http://127.0.0.1:{}", ports[0]);
        options.read_url = format!("http://127.0.0.1:{}", ports[1]);
        options.post_gateway = "load".into();
        options.pid = options.pid.or(Some(std::process::id()));
        let how = match (&target.store, instances) {
            (Some(_), 2) => "PostgreSQL, two instances (api.post on one, api.read on the other)",
            (Some(_), _) => "PostgreSQL",
            (None, _) if target.in_memory => "no store",
            (None, _) if target.full_sync => "SQLite, sync = full",
            (None, _) => "SQLite",
        };
        println!(
            "chatbridge in-process ({how}): api.post:load → api.read:load (CPU and memory include the load tool itself)"
        );
    }
    let report = load::run(options).await?;
    print!("{report}");
    for (_, stop) in &daemons {
        stop.cancel();
    }
    for (daemon, _) in daemons {
        daemon.wait().await;
    }
    let _ = std::fs::remove_dir_all(&state);
    Ok(())
}

fn held(daemon: &Daemon) -> u64 {
    daemon.stats().leases_held.load(std::sync::atomic::Ordering::Relaxed)
}

async fn wait_until(mut done: impl FnMut() -> bool, what: &'static str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, what);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
