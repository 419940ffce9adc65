//! chatbridge keeps chat rooms on Missevan, Heihei, IIROSE, Fishroom and Yunhu talking as one: each
//! platform's wire format becomes one shared event model, and a router forwards messages between rooms
//! according to the bridges of one TOML file.
//!
//! # Layout
//!
//! - [`model`]: the shared event model (events, content segments, typed ids, capabilities). No I/O.
//! - [`config`]: the TOML file: parsing, every problem reported at once with its position, secrets.
//! - [`router`]: the router task: rules, formats, the loop guard, the id map and the destination queues.
//! - [`adapters`]: the adapter runtime (context, backoff, failure classes) and one module per platform,
//!   each split into `wire` (the platform's format), `gateway` (receiving) and `client` (sending).
//! - [`sim`]: in-process simulators of the platforms, for the demo, the tests and the benchmarks.
//! - [`stats`]: counters; [`telemetry`]: logging; [`shutdown`]: signals; [`cli`] and [`demo`]: the commands.
//!
//! [`Daemon::start`] (in `daemon`) wires it together: one task per account under a supervisor that applies
//! reloads, one router task, and a shutdown that stops receiving, drains the queues within
//! `general.shutdown_timeout`, then closes everything.

pub mod adapters;
pub mod cli;
pub mod config;
mod daemon;
pub mod demo;
pub mod link;
pub mod listener;
pub mod load;
pub mod model;
pub mod notify;
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

#[cfg(test)]
mod corpus;

pub use daemon::{Changes, Daemon, Reloaded, Reloader, StartError, Summary};
