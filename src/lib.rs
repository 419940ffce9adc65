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
//! [`Daemon::start`] wires it together: one task per account, one router task, and a shutdown that
//! stops receiving, drains the queues within `general.shutdown_timeout`, then closes everything.

pub mod adapters;
pub mod cli;
pub mod config;
pub mod demo;
pub mod listener;
pub mod load;
pub mod model;
pub mod notify;
pub mod router;
pub mod shutdown;
pub mod sim;
pub mod simulate;
pub mod stats;
pub mod status;
pub mod store;
pub mod telemetry;

#[cfg(test)]
mod corpus;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use adapters::{AccountState, AdapterContext, AdapterRoom, Backoff};
use config::Config;
use model::AccountId;
use router::{AccountLink, Router, RouterSettings};
use stats::Stats;

/// How long adapters get to close politely after the queues drained.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A running bridge.
pub struct Daemon {
    stats: Arc<Stats>,
    status_addr: Option<std::net::SocketAddr>,
    states: watch::Receiver<BTreeMap<AccountId, AccountState>>,
    task: tokio::task::JoinHandle<Summary>,
    page_limit: store::PageLimit,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Messages still queued when the daemon stopped.
    pub undelivered: usize,
    /// Whether it stopped because it was asked to (rather than because every account failed).
    pub requested: bool,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} (general.http_listen): {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

impl Daemon {
    /// Starts every account that is in a bridge, the router, and the status server when
    /// `general.http_listen` is set. Cancelling `stop` begins the shutdown.
    pub fn start(config: Config, stop: CancellationToken) -> Result<Self, StartError> {
        adapters::install_crypto_provider();
        let status_listener = match config.general.http_listen {
            Some(addr) => Some(bind(addr).map_err(|source| StartError::Listen { addr, source })?),
            None => None,
        };
        let status_addr = status_listener.as_ref().and_then(|l| l.local_addr().ok());
        // The store opens before anything connects: a state directory that cannot be used stops the start.
        let mut cursors: HashMap<AccountId, Vec<(model::RoomId, String)>> = HashMap::new();
        let page_limit = store::PageLimit::default();
        let durable = if config.general.durable {
            let (events_tx, events) = mpsc::unbounded_channel();
            let configured = config.destinations();
            let settings = store::StoreSettings {
                full_sync: config.general.full_sync,
                id_map_max_age: config.general.id_map_max_age,
                id_map_capacity: config.general.id_map_capacity,
                orphan_max_age: config.general.orphan_max_age,
                per_room: config.general.queue_capacity,
                page_limit: page_limit.clone(),
                max_outbox: config.general.max_stored,
                max_dead_letters: config.general.max_dead_letters,
            };
            let (store, opened) = store::Store::open(
                &config.general.state_dir,
                &settings,
                |room, bridge| configured.contains(&(room.to_owned(), bridge.to_owned())),
                move |event| {
                    let _ = events_tx.send(event);
                },
            )?;
            let mut opened = opened;
            for (room, cursor) in std::mem::take(&mut opened.cursors) {
                if let Ok(room) = room.parse::<model::RoomAddr>() {
                    cursors.entry(room.account.clone()).or_default().push((room.room, cursor));
                }
            }
            Some((store, events, opened))
        } else {
            None
        };
        let stats = Arc::new(Stats::default());
        let general = config.general.clone();
        let rooms = account_rooms(&config);
        let (router_tx, router_rx) = mpsc::channel(1024);
        let closed = CancellationToken::new();
        let mut links = HashMap::new();
        let mut tasks = JoinSet::new();
        for (id, account) in &config.accounts {
            let Some(rooms) = rooms.get(id) else {
                info!(account = %id, "Account is in no bridge; not started.");
                continue;
            };
            let adapter = adapters::build(account);
            let (sends_tx, sends_rx) = mpsc::unbounded_channel();
            let limit = config.limits.get(id).copied().unwrap_or_else(|| config::SendLimit::default_for(id.platform()));
            links.insert(id.clone(), AccountLink { caps: adapter.capabilities(), sends: sends_tx, limit });
            let ctx = AdapterContext {
                account: id.clone(),
                rooms: rooms.clone(),
                router: router_tx.clone(),
                stop_receiving: stop.child_token(),
                closed: closed.clone(),
                stats: Arc::clone(&stats),
                backoff: Backoff::new(general.backoff_min, general.backoff_max),
                cursors: adapters::Cursors::new(cursors.remove(id).unwrap_or_default(), general.gap_fill_window),
                http: general.http,
            };
            let span = info_span!("adapter", account = %id);
            tasks.spawn(adapter.run(ctx, sends_rx).instrument(span));
        }
        drop(router_tx);
        let settings = RouterSettings {
            max_attempts: general.max_attempts,
            max_age: general.max_age,
            queue_capacity: general.queue_capacity,
            gap_fill_window: general.gap_fill_window,
            retry_delay: general.retry_delay,
            retry_max: general.backoff_max,
            shutdown_timeout: general.shutdown_timeout,
        };
        let bridge_names: Vec<String> = config.bridges.iter().map(|b| b.name.clone()).collect();
        for bridge in &config.bridges {
            info!(bridge = %bridge.name, rooms = bridge.rooms.len(), "Bridge started.");
        }
        let rules = router::rules::Rules::new(config.bridges);
        let outbox = Box::new(router::queue::MemoryOutbox::new(general.queue_capacity));
        let ids: Box<dyn router::idmap::IdStore> = if durable.is_some() {
            Box::new(store::idmap::DurableIdMap::open(&general.state_dir, general.id_map_capacity)?)
        } else {
            Box::new(router::idmap::MemoryIdMap::new(general.id_map_capacity))
        };
        let mut router = Router::new(rules, links, outbox, ids, settings, Arc::clone(&stats));
        if let Some((store, events, opened)) = durable {
            router.with_store(store, events, opened);
        }
        let states = router.states();
        tokio::spawn(notify::follow(states.clone(), Arc::clone(&stats)));
        if let Some(listener) = status_listener {
            tokio::spawn(status::serve(listener, states.clone(), Arc::clone(&stats), general.http, closed.clone()));
        }
        let task = tokio::spawn(async move {
            let undelivered = router.run(router_rx, stop.clone()).await;
            closed.cancel();
            let drained = tokio::time::timeout(CLOSE_GRACE, async { while tasks.join_next().await.is_some() {} }).await;
            if drained.is_err() {
                warn!("Adapters did not close in time; stopping them.");
                tasks.abort_all();
            }
            for bridge in &bridge_names {
                info!(bridge = %bridge, "Bridge stopped.");
            }
            info!(undelivered, "Stopped.");
            Summary { undelivered, requested: stop.is_cancelled() }
        });
        if let Some(addr) = status_addr {
            info!(%addr, "Serving /health and /metrics.");
        }
        Ok(Self { stats, status_addr, states, task, page_limit })
    }

    /// Tests only: limits the state database to `pages` pages (0: no limit), standing in for a full disk.
    #[doc(hidden)]
    pub fn limit_store_pages(&self, pages: u64) {
        self.page_limit.set(pages);
    }

    /// Where `/health` and `/metrics` are served (the bound address, when `http_listen` named port 0).
    pub fn status_addr(&self) -> Option<std::net::SocketAddr> {
        self.status_addr
    }

    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Every account's connection state.
    pub fn states(&self) -> watch::Receiver<BTreeMap<AccountId, AccountState>> {
        self.states.clone()
    }

    /// Waits for the daemon to stop.
    pub async fn wait(self) -> Summary {
        self.task.await.unwrap_or(Summary { undelivered: 0, requested: false })
    }
}

fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(listener)
}

/// Each account's rooms, with whether it listens to them and sends to them.
fn account_rooms(config: &Config) -> HashMap<AccountId, Vec<AdapterRoom>> {
    let mut out: HashMap<AccountId, Vec<AdapterRoom>> = HashMap::new();
    for room in config.bridges.iter().flat_map(|b| &b.rooms) {
        let rooms = out.entry(room.addr.account.clone()).or_default();
        let entry = match rooms.iter_mut().find(|r| r.room == room.addr.room) {
            Some(entry) => entry,
            None => {
                rooms.push(AdapterRoom { room: room.addr.room.clone(), receive: false, send: false });
                rooms.last_mut().expect("just pushed")
            }
        };
        entry.receive |= room.direction.feeds();
        entry.send |= room.direction.receives();
    }
    out
}
