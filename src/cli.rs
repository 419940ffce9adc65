//! The command line: `run` (the default), `check`, `demo`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;

#[derive(Debug, Parser)]
#[command(name = "chatbridge", version, about = "Keeps chat rooms on five platforms talking as one")]
pub struct Cli {
    /// Log format; overrides `general.log_format`.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The configuration file (for `run` without a subcommand).
    #[arg(short, long, env = "CHATBRIDGE_CONFIG", default_value = "/etc/chatbridge/config.toml")]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bridges of a configuration file until SIGTERM or SIGINT.
    Run {
        #[arg(short, long, env = "CHATBRIDGE_CONFIG", default_value = "/etc/chatbridge/config.toml")]
        config: PathBuf,
    },
    /// Check a configuration file: "ok" and a line per bridge, or every problem found.
    Check {
        #[arg(short, long, env = "CHATBRIDGE_CONFIG", default_value = "/etc/chatbridge/config.toml")]
        config: PathBuf,
    },
    /// Start simulated platforms and a bridge between them, play a short conversation and print what
    /// is relayed. Needs no account and no network.
    Demo {
        /// Keep running this long after the script, e.g. "30s".
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
}
