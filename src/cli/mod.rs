//! The command line: `run` (the default), `check`, `deadletters`, `bench`, `sim`, `demo`; each command's code in
//! a module of its own, `main` only parses and dispatches.

pub mod bench;
pub mod bridges;
pub mod burst;
pub mod check;
pub mod deadletters;
pub mod manpage;
pub mod media_bench;
pub mod null_relay;
pub mod rooms_bench;
pub mod run;
pub mod suite;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;

#[derive(Debug, Parser)]
#[command(name = "chatbridge", version = crate::VERSION_LINE, about = "Keeps chat rooms on five platforms talking as one")]
pub struct Cli {
    /// Log format; overrides `general.log_format`.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The configuration file, before or after the subcommand (also `CHATBRIDGE_CONFIG`).
    #[arg(short, long, global = true, env = "CHATBRIDGE_CONFIG", default_value = "/etc/chatbridge/config.toml")]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterAction {
    /// One line per dead letter: key, when it was given up, route, text, reason (the default).
    List,
    /// Put dead letters back in the outbox: delivered, at the end of their room's queue, when the daemon
    /// next starts.
    Requeue {
        /// The keys to re-queue, as `list` shows them.
        #[arg(required_unless_present = "all")]
        keys: Vec<u64>,
        /// Re-queue every dead letter.
        #[arg(long, conflicts_with = "keys")]
        all: bool,
    },
}

// Parsed once per process: the size of `bench`'s many options costs nothing worth boxing them for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bridges of a configuration file until SIGTERM or SIGINT.
    Run,
    /// Check a configuration file: "ok" and a line per bridge, or every problem found. Nothing is
    /// contacted unless --connect.
    Check {
        /// Also connect to the PostgreSQL store (`general.store`) and say whether its schema is current.
        #[arg(long)]
        connect: bool,
        /// Check everything but the secrets' values (`env:`, `file:`, `cred:` are not read): for an admin shell,
        /// which has neither the service's environment nor its credentials. Says that it did.
        #[arg(long)]
        without_secrets: bool,
    },
    /// Apply the store's schema migrations and stop (the daemon applies them at start too).
    Migrate,
    /// With the state in PostgreSQL: every instance, when it was last heard from, and the accounts it runs.
    Status,
    /// List the dead letters (messages given up on) in the store of a configuration, or re-queue them:
    /// `deadletters list`, `deadletters requeue KEY…`, `deadletters requeue --all`.
    Deadletters {
        #[command(subcommand)]
        action: Option<DeadLetterAction>,
    },
    /// The bridges provisioned in the store rather than the file: `bridges add NAME ROOM…`, `bridges add --file F`,
    /// `bridges rm NAME`, `bridges ls`, `bridges export` (as TOML). Running daemons apply changes within seconds.
    Bridges {
        #[command(subcommand)]
        action: Option<bridges::BridgeAction>,
    },
    /// Measure a bridge through matterbridge's API paths: post messages to one endpoint, read them from
    /// another endpoint's websocket; without --post, chatbridge runs in-process with two API accounts.
    Bench {
        /// API root that receives the posts (e.g. http://127.0.0.1:4242).
        #[arg(long, requires = "read")]
        post: Option<String>,
        /// API root whose websocket delivers the relayed messages.
        #[arg(long)]
        read: Option<String>,
        /// The gateway to post to.
        #[arg(long, default_value = "load")]
        gateway: String,
        /// Bearer token of both endpoints.
        #[arg(long, env = "CHATBRIDGE_BENCH_TOKEN")]
        token: Option<String>,
        /// How many messages to post.
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        /// How many senders post at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Messages per second offered (default: as fast as the senders go).
        #[arg(long)]
        rate: Option<f64>,
        /// The daemon's pid, for CPU time and peak memory.
        #[arg(long)]
        pid: Option<u32>,
        /// Stop posting after this long (e.g. "30s"), whatever is left to post.
        #[arg(long, value_parser = humantime::parse_duration)]
        time_limit: Option<Duration>,
        /// With no endpoints given: run the in-process bridge with `durable = false` (no store), for
        /// comparing what durability costs.
        #[arg(long, conflicts_with = "post")]
        in_memory: bool,
        /// With no endpoints given: the in-process bridge's store with `sync = "full"` (power-loss safety).
        #[arg(long, conflicts_with_all = ["post", "in_memory"])]
        full_sync: bool,
        /// With no endpoints given: the in-process bridge keeps its state in this PostgreSQL database
        /// (`general.store`; a secret like it: literal, env:, file:, cred:).
        #[arg(long, conflicts_with_all = ["post", "in_memory", "full_sync"])]
        store: Option<String>,
        /// With --store: run two instances in-process, one API account each, so that every message crosses
        /// from one instance to the other through PostgreSQL (with --rooms or --provision: up to 8 processes).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8), requires = "store")]
        instances: u8,
        /// With --store: N Missevan rooms bridged one by one to Yunhu groups, run by --instances processes: time until
        /// joined, memory per idle room, idle CPU, --rate msg/s for --seconds, and a SIGKILL under traffic.
        #[arg(long, requires = "store", conflicts_with_all = ["post", "in_memory", "full_sync", "burst", "media", "suite"])]
        rooms: Option<usize>,
        /// With --store: --instances processes with no bridge, then N bridges provisioned through the first one's
        /// admin API; the time until every room relays.
        #[arg(long, requires = "store", conflicts_with_all = ["post", "in_memory", "full_sync", "burst", "media", "suite", "rooms"])]
        provision: Option<usize>,
        /// With --rooms: how long the steady traffic lasts, in seconds.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Instead of the API load: a Missevan live room says this many messages at once, relayed through the
        /// simulators with the default send limits; reports the time until the last is visible.
        #[arg(long, conflicts_with_all = ["post", "in_memory", "full_sync", "store"])]
        burst: Option<usize>,
        /// Instead of the API load: a Fishroom room says this many photos of 200 KB at once, fetched into the media
        /// store and relayed to Fishroom (as links) and Yunhu (uploaded); reports the time, items a second and the
        /// rise of resident memory.
        #[arg(long, conflicts_with_all = ["post", "in_memory", "full_sync", "store", "burst"])]
        media: Option<usize>,
        /// With --burst: where the messages go (Fishroom sends 10 a second, Missevan 2).
        #[arg(long, value_enum, default_value = "fishroom", requires = "burst")]
        to: burst::BurstTo,
        /// With --burst: the destination room sends each message alone (`coalesce = false`).
        #[arg(long, requires = "burst")]
        no_coalesce: bool,
        /// The whole API-path table (docs/performance.md): the null relay and chatbridge as processes of their
        /// own, alternately, each measured for start-up, memory, 1 and 8 senders, 1,000 and 10,000 msg/s;
        /// min / median / max over the rounds (use a release build).
        #[arg(long, conflicts_with_all = ["post", "in_memory", "full_sync", "store", "burst"])]
        suite: bool,
        /// With --suite: how many rounds.
        #[arg(long, default_value_t = 5, requires = "suite")]
        rounds: usize,
        /// The floor of the API path: serve POST /api/message on POST and /api/websocket on READ with nothing
        /// between them but decoding and encoding (what --suite measures beside chatbridge).
        #[arg(long, hide = true, num_args = 2, value_names = ["POST", "READ"])]
        null_relay: Option<Vec<std::net::SocketAddr>>,
    },
    /// Run every platform's simulator on loopback and write a configuration that bridges them, for running
    /// `chatbridge run` against them by hand or measuring it.
    Sim {
        /// Where to write the configuration.
        #[arg(long, default_value = "sim.toml")]
        config_out: PathBuf,
        /// Rooms per platform (one account per platform, one bridge per room index).
        #[arg(long, default_value_t = 4)]
        rooms: usize,
        /// Fixed loopback ports: Fishroom on PORT, Missevan, IIROSE, Heihei and Yunhu on the next four, the
        /// daemon's /health and /metrics on PORT+5 (default: free ports, different at each run).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Stop after this long, e.g. "60s" (default: at Ctrl-C).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to standard output.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output: `chatbridge manpage > chatbridge.1`.
    Manpage,
    /// Start simulated platforms and a bridge between them, play a short conversation and print what
    /// is relayed. Needs no account and no network.
    Demo {
        /// Keep running this long after the script, e.g. "30s".
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
}

/// A configuration as loaded, or an error that lists every problem and how many (`suffix` after the count).
pub fn load(
    loaded: Result<crate::config::Config, crate::config::LoadError>,
    suffix: &str,
) -> anyhow::Result<crate::config::Config> {
    match loaded {
        Ok(config) => Ok(config),
        Err(crate::config::LoadError::Invalid(problems)) => anyhow::bail!("{}", invalid(&problems, suffix)),
        Err(e) => Err(e.into()),
    }
}

/// Every problem, then "N problem(s) found" and `suffix`.
pub fn invalid(problems: &crate::config::Problems, suffix: &str) -> String {
    format!("{problems}{} problem(s) found{suffix}.", problems.0.len())
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

pub fn report(result: anyhow::Result<()>) -> ExitCode {
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
