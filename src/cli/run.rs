//! `chatbridge run`: the daemon, its signals, and reloads.

use anyhow::Context;

use crate::config::{Config, LoadError, LogFormat};
use crate::{Daemon, Reloaded, shutdown, telemetry};

pub fn run(path: &std::path::Path, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    let config = super::load(Config::load(path), "; nothing was started")?;
    let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let _ = crate::admin::CONFIG_FILE.set(shown.display().to_string());
    telemetry::init(log_format.unwrap_or(config.general.log_format), &config.general.log_level);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        commit = crate::BUILD_COMMIT,
        config = %path.display(),
        state_dir = %config.general.state_dir.display(),
        durable = config.general.durable,
        "chatbridge starting."
    );
    super::runtime()?.block_on(async {
        let stop = shutdown::on_signals().context("installing the signal handlers")?;
        let mut reloads = shutdown::on_reload().context("installing the signal handlers")?;
        let mut config = config;
        // The last reload's result, carried over an in-process restart.
        let mut last_reload: Option<(bool, Vec<String>)> = None;
        loop {
            // Each run has a token of its own: a reload ends the run, SIGTERM ends them all.
            let run = stop.child_token();
            let daemon = Daemon::start(config, run.clone())?;
            let stats = daemon.stats();
            if let Some((applied, errors)) = last_reload.take() {
                stats.reloaded(applied, errors);
            }
            let reloader = daemon.reloader();
            let finished = daemon.wait();
            tokio::pin!(finished);
            let next = loop {
                tokio::select! {
                    summary = &mut finished => {
                        anyhow::ensure!(summary.requested, "every account stopped");
                        return Ok(());
                    }
                    Some(()) = reloads.recv() => {
                        crate::notify::reloading();
                        // Not valid: the running configuration stays, and /health, /metrics and STATUS= say so.
                        let next = match reload(path) {
                            Ok(next) => next,
                            Err(errors) => {
                                crate::notify::ready_refused(&errors);
                                stats.reloaded(false, errors);
                                continue;
                            }
                        };
                        match reloader.reload(next).await {
                            Reloaded::Applied(_) => {
                                stats.reloaded(true, Vec::new());
                                crate::notify::ready();
                            }
                            Reloaded::NeedsRestart { keys, config } => {
                                tracing::info!(
                                    keys = %keys.join(", "),
                                    "These [general] settings take effect only at a start: starting again with the new configuration."
                                );
                                last_reload = Some((true, Vec::new()));
                                break *config;
                            }
                            Reloaded::Stopping => {}
                        }
                    }
                }
            };
            // Drain and close this run (queued messages stay in the store), then start the new configuration
            // (its READY=1 ends the reload).
            run.cancel();
            let summary = finished.await;
            if stop.is_cancelled() {
                return Ok(());
            }
            tracing::info!(undelivered = summary.undelivered, "Stopped for the restart; starting with the new configuration.");
            config = next;
        }
    })
}

/// SIGHUP: the file read and checked again; its problems (the running configuration stays) when it is not valid.
fn reload(path: &std::path::Path) -> Result<Config, Vec<String>> {
    tracing::info!(config = %path.display(), "SIGHUP: reading the configuration again.");
    match Config::load(path) {
        Ok(config) => Ok(config),
        Err(LoadError::Invalid(problems)) => {
            for problem in &problems.0 {
                tracing::error!(problem = %problem, "The new configuration is not valid; the running one stays.");
            }
            Err(problems.0.iter().map(ToString::to_string).collect())
        }
        Err(e) => {
            tracing::error!(error = %e, "The new configuration cannot be read; the running one stays.");
            Err(vec![e.to_string()])
        }
    }
}
