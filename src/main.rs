use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use chatbridge::cli::{Cli, Command, DeadLetterAction};
use chatbridge::config::{Config, LoadError, LogFormat};
use chatbridge::load::{self, LoadOptions};
use chatbridge::{Daemon, Reloaded, demo, shutdown, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config;
    if cli.command.is_none() && !config.exists() {
        // A bare `chatbridge` on a machine without a configuration: what to do, not an error about /etc.
        eprintln!(
            "No configuration at {} (-c FILE or CHATBRIDGE_CONFIG names another).\n\n  \
             chatbridge demo             try it: simulated platforms and a bridge, no account needed\n  \
             chatbridge check -c FILE    check a configuration (config.example.toml documents every key)\n  \
             chatbridge run -c FILE      run it\n  \
             chatbridge --help           everything else",
            config.display()
        );
        return ExitCode::from(2);
    }
    match cli.command.unwrap_or(Command::Run) {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "chatbridge", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Manpage => {
            use clap::CommandFactory;
            report(clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()).map_err(Into::into))
        }
        Command::Check => check(&config),
        Command::Deadletters { action } => report(dead_letters(&config, action)),
        Command::Run => report(run(&config, cli.log_format)),
        Command::Bench { post, read, gateway, token, messages, concurrency, rate, pid, in_memory, full_sync } => {
            telemetry::init(cli.log_format.unwrap_or(LogFormat::Pretty), "warn");
            let options = LoadOptions {
                post_url: post.unwrap_or_default(),
                read_url: read.unwrap_or_default(),
                post_gateway: gateway,
                token,
                messages,
                concurrency,
                rate,
                grace: std::time::Duration::from_secs(5),
                pid,
            };
            report(runtime().and_then(|rt| rt.block_on(bench(options, in_memory, full_sync))))
        }
        Command::Sim { config_out, rooms, port, duration } => {
            telemetry::init(cli.log_format.unwrap_or(LogFormat::Pretty), "warn");
            report(runtime().and_then(|rt| rt.block_on(chatbridge::simulate::run(rooms, port, &config_out, duration))))
        }
        Command::Demo { duration } => {
            telemetry::init(cli.log_format.unwrap_or(LogFormat::Pretty), "warn,chatbridge=info");
            report(runtime().and_then(|rt| rt.block_on(demo::run(duration))))
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            println!("ok");
            for line in config.summary() {
                println!("{line}");
            }
            if config.general.durable {
                println!("state: {} (from {})", config.general.state_dir.display(), config.general.state_dir_from);
                if let Err(why) = creatable(&config.general.state_dir) {
                    eprintln!(
                        "state: {} cannot be created: {why}; create it for the daemon's user, or set general.state_dir",
                        config.general.state_dir.display()
                    );
                    return ExitCode::FAILURE;
                }
            }
            if config.general.durable {
                match chatbridge::store::admin::queues(&config.general.state_dir) {
                    Ok(queues) => {
                        let configured = config.destinations();
                        for queue in queues.unwrap_or_default() {
                            if !configured.contains(&(queue.room.clone(), queue.bridge.clone())) {
                                println!(
                                    "stored: {} message(s) queued for {} in bridge `{}`, which the configuration no longer has; \
                                     kept until general.orphan_max_age ({}) has passed, then moved to the dead letters",
                                    queue.messages,
                                    queue.room,
                                    queue.bridge,
                                    readable(config.general.orphan_max_age)
                                );
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("stored: the state database cannot be read: {e}");
                        eprintln!(
                            "Move it aside to start with an empty store (what it held is then not delivered), or restore a backup."
                        );
                        return ExitCode::FAILURE;
                    }
                }
            }
            for warning in config.warnings() {
                eprintln!("warning: {warning}");
            }
            ExitCode::SUCCESS
        }
        Err(LoadError::Invalid(problems)) => {
            eprint!("{problems}");
            eprintln!("{} problem(s) found.", problems.0.len());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn dead_letters(path: &std::path::Path, action: Option<DeadLetterAction>) -> anyhow::Result<()> {
    // Only the state is read: no secret is needed (an admin shell has neither the service's environment nor
    // its credentials).
    let config = match Config::load_without_secrets(path) {
        Ok(config) => config,
        Err(LoadError::Invalid(problems)) => anyhow::bail!("{problems}{} problem(s) found.", problems.0.len()),
        Err(e) => return Err(e.into()),
    };
    let dir = &config.general.state_dir;
    anyhow::ensure!(
        dir.join(chatbridge::store::FILE_NAME).exists(),
        "no state database in {} (general.state_dir): nothing was ever given up here",
        dir.display()
    );
    match action.unwrap_or(DeadLetterAction::List) {
        DeadLetterAction::List => {
            let letters = chatbridge::store::admin::dead_letters(dir)?;
            for letter in &letters {
                let failed = std::time::UNIX_EPOCH + std::time::Duration::from_millis(letter.failed_at.max(0) as u64);
                println!(
                    "{:>8}  {}  → {} [{}]  {}  ({}){}",
                    letter.key,
                    humantime::format_rfc3339_seconds(failed),
                    letter.room,
                    letter.bridge,
                    letter.summary,
                    letter.reason,
                    if letter.requeued { "  re-queued at the next start" } else { "" }
                );
            }
            println!("{} dead letter(s).", letters.len());
        }
        DeadLetterAction::Requeue { keys, all } => {
            let marked = chatbridge::store::admin::requeue(dir, (!all).then_some(&keys[..]))?;
            if marked > 0 {
                println!("{marked} dead letter(s) re-queued: delivered when the daemon next starts.");
            }
            if !all && marked < keys.len() {
                anyhow::bail!(
                    "{} of the given keys are not dead letters (see `chatbridge deadletters list`)",
                    keys.len() - marked
                );
            }
        }
    }
    Ok(())
}

fn run(path: &std::path::Path, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(LoadError::Invalid(problems)) => {
            anyhow::bail!("{problems}{} problem(s) found; nothing was started.", problems.0.len())
        }
        Err(e) => return Err(e.into()),
    };
    telemetry::init(log_format.unwrap_or(config.general.log_format), &config.general.log_level);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %path.display(),
        state_dir = %config.general.state_dir.display(),
        durable = config.general.durable,
        "chatbridge starting."
    );
    runtime()?.block_on(async {
        let stop = shutdown::on_signals().context("installing the signal handlers")?;
        let mut reloads = shutdown::on_reload().context("installing the signal handlers")?;
        let mut config = config;
        loop {
            // Each run has a token of its own: a reload ends the run, SIGTERM ends them all.
            let run = stop.child_token();
            let daemon = Daemon::start(config, run.clone())?;
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
                        chatbridge::notify::reloading();
                        // Not valid: the running configuration stays.
                        let Some(next) = reload(path) else {
                            chatbridge::notify::ready();
                            continue;
                        };
                        match reloader.reload(next).await {
                            Reloaded::Applied(_) => chatbridge::notify::ready(),
                            Reloaded::NeedsRestart { keys, config } => {
                                tracing::info!(
                                    keys = %keys.join(", "),
                                    "These [general] settings take effect only at a start: starting again with the new configuration."
                                );
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

/// Whether `dir` can be created when it is missing: its nearest existing ancestor is a directory. (Whether the
/// service's user may write there is not judged: `check` may run as another user than the service.)
fn creatable(dir: &std::path::Path) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    let absolute = std::env::current_dir().map(|cwd| cwd.join(dir)).map_err(|e| e.to_string())?;
    let Some(existing) = absolute.ancestors().find(|a| a.exists()) else {
        return Err("no part of the path exists".into());
    };
    if !existing.is_dir() {
        return Err(format!("{} is not a directory", existing.display()));
    }
    Ok(())
}

/// A duration as people write it: "7 days", "90 s".
fn readable(duration: std::time::Duration) -> String {
    let seconds = duration.as_secs();
    let (value, unit) = match seconds {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{value} {unit}{}", if value == 1 { "" } else { "s" })
}

/// SIGHUP: the file read and checked again; `None` (the running configuration stays) when it is not valid.
fn reload(path: &std::path::Path) -> Option<Config> {
    tracing::info!(config = %path.display(), "SIGHUP: reading the configuration again.");
    match Config::load(path) {
        Ok(config) => Some(config),
        Err(LoadError::Invalid(problems)) => {
            for problem in &problems.0 {
                tracing::error!(problem = %problem, "The new configuration is not valid; the running one stays.");
            }
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "The new configuration cannot be read; the running one stays.");
            None
        }
    }
}

/// Runs the load tool against the given endpoints, or against chatbridge started here with two API accounts.
async fn bench(mut options: LoadOptions, in_memory: bool, full_sync: bool) -> anyhow::Result<()> {
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
        let up = states.wait_for(|s| s.values().all(|s| *s == chatbridge::adapters::AccountState::Connected));
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, each said once: most of ours already name their cause in their own message.
fn chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}
