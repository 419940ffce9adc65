use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use chatbridge::cli::{Cli, Command};
use chatbridge::config::{Config, LoadError, LogFormat};
use chatbridge::{Daemon, demo, shutdown, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run { config: cli.config });
    match command {
        Command::Check { config } => check(&config),
        Command::Run { config } => report(run(&config, cli.log_format)),
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
