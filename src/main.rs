use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use chatbridge::cli::{Cli, Command};
use chatbridge::config::{Config, LoadError, LogFormat};
use chatbridge::load::{self, LoadOptions};
use chatbridge::{Daemon, demo, shutdown, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run { config: cli.config });
    match command {
        Command::Check { config } => check(&config),
        Command::Run { config } => report(run(&config, cli.log_format)),
        Command::Bench { post, read, gateway, token, messages, concurrency, rate, pid, in_memory } => {
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
            report(runtime().and_then(|rt| rt.block_on(bench(options, in_memory))))
        }
        Command::Sim { config_out, rooms, duration } => {
            telemetry::init(cli.log_format.unwrap_or(LogFormat::Pretty), "warn");
            report(runtime().and_then(|rt| rt.block_on(chatbridge::simulate::run(rooms, &config_out, duration))))
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

fn run(path: &std::path::Path, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(LoadError::Invalid(problems)) => {
            anyhow::bail!("{problems}{} problem(s) found; nothing was started.", problems.0.len())
        }
        Err(e) => return Err(e.into()),
    };
    telemetry::init(log_format.unwrap_or(config.general.log_format), "info");
    runtime()?.block_on(async {
        let stop = shutdown::on_signals().context("installing the signal handlers")?;
        let summary = Daemon::start(config, stop)?.wait().await;
        anyhow::ensure!(summary.requested, "every account stopped");
        Ok(())
    })
}

/// Runs the load tool against the given endpoints, or against chatbridge started here with two API accounts.
async fn bench(mut options: LoadOptions, in_memory: bool) -> anyhow::Result<()> {
    let state = std::env::temp_dir().join(format!("chatbridge-bench-{}", std::process::id()));
    let daemon = if options.post_url.is_empty() {
        let ports = [free_port()?, free_port()?];
        let config =
            Config::parse(&load::in_process_config(ports[0], ports[1], (!in_memory).then_some(&*state)), "bench.toml")
                .map_err(|p| anyhow::anyhow!("the bench configuration: {p}"))?;
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
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
