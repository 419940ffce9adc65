//! chatbridge keeps chat rooms on Missevan, Heihei, IIROSE, Fishroom and Yunhu talking as one: each
//! platform's wire format becomes one shared event model, and a router forwards messages between rooms
//! according to the bridges of one TOML file.
//!
//! # Layout
//!
//! - [`model`]: the shared event model (events, content segments, typed ids, capabilities). Imports nothing of
//!   the crate.
//! - [`link`]: the contract between the router and the adapters (what each tells the other, how sends fail).
//! - [`settings`]: walking the TOML tree with every problem reported at once; secrets. [`config`]: the file.
//! - [`router`]: the router task — routing, delivery, spill, reloads — and [`router::port`], the persistence port
//!   that [`store`] (SQLite) implements.
//! - [`adapters`]: the adapter runtime (context, the receive supervisor, backoff, transports) and one folder per
//!   platform: `config` (its account table), `wire`, `gateway` (receiving), `client` (sending).
//! - [`sim`]: in-process simulators of the platforms under one contract, for the demo, the tests and the benchmarks.
//! - [`stats`], [`status`], [`notify`], [`telemetry`], [`shutdown`]: counters, `/health` and `/metrics`, systemd,
//!   logging, signals. [`cli`], [`demo`], [`simulate`], [`load`]: the commands.
//!
//! `docs/architecture.md` has the map by folder and the way of one message; `.ci/modgraph.py` checks that no
//! module imports back up.
//!
//! [`Daemon::start`] (in `daemon`) wires it together: one task per account under a supervisor that applies
//! reloads, one router task, and a shutdown that stops receiving, drains the queues within
//! `general.shutdown_timeout`, then closes everything.

pub mod adapters;
pub mod admin;
pub mod bucket;
pub mod cli;
pub mod config;
mod daemon;
pub mod demo;
pub mod link;
pub mod listener;
pub mod load;
pub mod media;
pub mod model;
pub mod notify;
pub mod provision;
pub mod router;
pub mod settings;
pub mod shutdown;
pub mod sim;
pub mod simulate;
pub mod stats;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod template;
pub mod trim;

#[cfg(test)]
mod corpus;

pub use daemon::{Changes, Daemon, Reloaded, Reloader, StartError, Summary};

/// The commit this build was made from ("unknown" outside a git checkout).
pub const BUILD_COMMIT: &str = env!("CHATBRIDGE_COMMIT");
/// What `--version` prints: the version, the commit and the build profile.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CHATBRIDGE_COMMIT"),
    ", ",
    env!("CHATBRIDGE_PROFILE"),
    " build)"
);
