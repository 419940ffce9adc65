//! The running daemon: the store opened, one task per account, the router task, the status server, and the
//! supervisor that applies a reload to what runs — accounts added are started, accounts removed are drained
//! and closed, accounts whose settings or rooms changed get a new session, the rest stay connected.

mod accounts;
mod admin;
mod media;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::adapters::{self, AccountState};
use crate::config::Config;
use crate::model::{self, AccountId};
use crate::router::{AccountLink, Router, RouterSettings};
use crate::stats::Stats;
use crate::{notify, router, status, store};
use accounts::Supervisor;

/// How long adapters get to close politely after the queues drained.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A running bridge.
pub struct Daemon {
    stats: Arc<Stats>,
    status_addr: Option<std::net::SocketAddr>,
    states: watch::Receiver<BTreeMap<AccountId, AccountState>>,
    task: tokio::task::JoinHandle<Summary>,
    page_limit: store::PageLimit,
    reloads: Reloader,
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
    #[error("cannot read the provisioned bridges: {0}")]
    Provisioned(store::StoreError),
    #[error("cannot open the media store in {dir}: {source}")]
    Media { dir: std::path::PathBuf, source: std::io::Error },
}

/// What a reload did.
#[derive(Debug)]
pub enum Reloaded {
    /// Applied to the running daemon.
    Applied(Changes),
    /// Keys of `[general]` that shape the store, the listeners or every connection changed: the daemon has to
    /// be started again with the configuration (the running one is untouched).
    NeedsRestart { keys: Vec<&'static str>, config: Box<Config> },
    /// The daemon is stopping: nothing was applied.
    Stopping,
}

/// The accounts a reload touched.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<AccountId>,
    pub removed: Vec<AccountId>,
    pub restarted: Vec<AccountId>,
    /// Accounts whose rooms changed while their sessions went on (rooms joined or left one by one).
    pub rooms_changed: Vec<AccountId>,
    /// Accounts that stayed connected (those whose rooms changed among them).
    pub kept: usize,
}

/// Hands configurations to a running daemon.
#[derive(Clone)]
pub struct Reloader(mpsc::UnboundedSender<(Config, oneshot::Sender<Reloaded>)>);

impl Reloader {
    /// Applies `config` (already checked) to the running daemon: bridges, rules, formats, limits, the retry
    /// settings and the log level take effect for the next message; accounts are started, drained and
    /// closed, or restarted as they were added, removed or changed. Returns once the changes are under way
    /// (a removed account may still be draining).
    pub async fn reload(&self, config: Config) -> Reloaded {
        let (reply, answer) = oneshot::channel();
        if self.0.send((config, reply)).is_err() {
            return Reloaded::Stopping;
        }
        answer.await.unwrap_or(Reloaded::Stopping)
    }
}

impl Daemon {
    /// Starts every account that is in a bridge, the router, and the status server when
    /// `general.http_listen` is set. Cancelling `stop` begins the shutdown.
    pub fn start(config: Config, stop: CancellationToken) -> Result<Self, StartError> {
        adapters::install_crypto_provider();
        // What runs: the file's bridges and, after them, those provisioned in the store.
        let (provisioner, config) = crate::provision::Provisioner::start(config).map_err(StartError::Provisioned)?;
        let status_listener = match config.general.http_listen {
            Some(addr) => Some(bind(addr).map_err(|source| StartError::Listen { addr, source })?),
            None => None,
        };
        let status_addr = status_listener.as_ref().and_then(|l| l.local_addr().ok());
        // The store opens before anything connects: a state directory that cannot be used stops the start.
        let mut cursors: HashMap<AccountId, Vec<(model::RoomId, model::Cursor)>> = HashMap::new();
        let page_limit = store::PageLimit::default();
        let stats = Arc::new(Stats::default());
        let mut leases = None;
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
            let mut target = None;
            let backend = store::Backend::of(&config.general, &mut target)?;
            let leasing = store::pg::lease::LeaseSettings {
                instance: config.general.instance.clone(),
                ttl: config.general.lease_ttl,
                accounts: accounts::lease_units(&accounts::account_rooms(&config)),
            };
            let opening = store::open(
                backend,
                &settings,
                leasing,
                Arc::clone(&stats),
                move |room: &str, bridge: &str| configured.contains(&(room.to_owned(), bridge.to_owned())),
                {
                    let stats = Arc::clone(&stats);
                    move |event| match event {
                        // Counted here, on the writer's thread: a commit needs nothing of the router, and telling it
                        // woke its task once per batch (200 times a second at 1,000 msg/s).
                        store::StoreEvent::Committed { written, skipped } => {
                            stats.store_commits.inc();
                            stats.store_rows_written.add(written);
                            stats.store_rows_skipped.add(skipped);
                        }
                        event => {
                            let _ = events_tx.send(event);
                        }
                    }
                },
            )?;
            let store::Opening { persist, mut opened, ids, leases: shared } = opening;
            if shared.is_some() {
                let _ = stats.instance.set(config.general.instance.clone());
            }
            leases = shared;
            for (room, cursor) in std::mem::take(&mut opened.cursors) {
                cursors.entry(room.account.clone()).or_default().push((room.room, cursor));
            }
            Some((persist, events, opened, ids))
        } else {
            None
        };
        let general = config.general.clone();
        let (router_tx, router_rx) = mpsc::channel(1024);
        let closed = CancellationToken::new();
        let mut supervisor = Supervisor::new(&config, router_tx.downgrade(), stop.clone(), closed.clone(), &stats);
        let mut links = HashMap::new();
        // With a shared store, accounts start as their leases come to this instance.
        let started = if leases.is_some() { BTreeMap::new() } else { accounts::account_rooms(&config) };
        for (id, rooms) in started {
            let account = &config.accounts[&id];
            let cursors = adapters::Cursors::new(cursors.remove(&id).unwrap_or_default(), general.gap_fill_window);
            let (caps, sends) = supervisor.spawn(&id, account.clone(), rooms, cursors, &router_tx);
            let limit = config.limit(&id);
            links.insert(id, AccountLink { caps, sends, limit });
        }
        let bridged = accounts::account_rooms(&config);
        for id in config.accounts.keys().filter(|id| !bridged.contains_key(*id)) {
            info!(account = %id, "Account is in no bridge; not started.");
        }
        let limits = config.limits.clone();
        let mut lease_events = None;
        if let Some(store::pg::lease::Leases { events, commands, reader, bridges_changed, .. }) = leases {
            supervisor.lease_with(commands, reader, router_tx.clone(), &config);
            lease_events = Some(events);
            let changed = Arc::clone(&provisioner.changed);
            tokio::spawn(async move {
                loop {
                    bridges_changed.notified().await;
                    changed.notify_one();
                }
            });
        }
        provisioner.watch_sqlite();
        drop(router_tx);
        for bridge in &config.bridges {
            info!(bridge = %bridge.name, rooms = bridge.rooms.len(), "Bridge started.");
        }
        let admin_token = config.general.admin_token.as_ref().map(|t| t.expose().to_owned());
        let media = media::start(&config, &stats)
            .map_err(|source| StartError::Media { dir: config.general.state_dir.join("media"), source })?;
        let (control, control_rx) = mpsc::unbounded_channel();
        let operator =
            std::sync::Arc::new(admin::StoreOperator::new(&config, control.clone(), Arc::clone(&provisioner)));
        let layout = std::sync::Arc::clone(&operator.layout);
        let rules = router::rules::Rules::new(config.bridges);
        let outbox = Box::new(router::queue::MemoryOutbox::new());
        let (ids, durable): (Box<dyn router::idmap::IdStore>, _) = match durable {
            Some((persist, events, opened, ids)) => (Box::new(ids), Some((persist, events, opened))),
            None => (Box::new(router::idmap::MemoryIdMap::new(general.id_map_capacity)), None),
        };
        let mut router = Router::new(rules, links, outbox, ids, router_settings(&general), Arc::clone(&stats));
        router.with_limits(limits);
        if let Some((persist, events, opened)) = durable {
            router.with_store(persist, events, opened);
        }
        let media_routes = media.map(|(service, known, routes)| {
            router.with_media(Box::new(service), known);
            routes
        });
        router.controlled_by(control_rx);
        let states = router.states();
        tokio::spawn(notify::follow(states.clone(), Arc::clone(&stats)));
        if let Some((url, secret)) = &general.state_webhook {
            let webhook =
                crate::admin::webhook::run(url.clone(), secret.expose().to_owned(), states.clone(), Arc::clone(&stats));
            tokio::spawn(webhook);
        }
        if let Some(listener) = status_listener {
            let window = crate::admin::Admin::new(states.clone(), Arc::clone(&stats), operator, admin_token);
            let routes = match media_routes {
                Some(media) => media.merge(window.routes()),
                None => window.routes(),
            };
            let (states, stats, closed) = (states.clone(), Arc::clone(&stats), closed.clone());
            tokio::spawn(status::serve(listener, states, stats, general.http, Some(routes), closed));
        }
        let (reloads_tx, mut reloads) = mpsc::unbounded_channel::<(Config, oneshot::Sender<Reloaded>)>();
        // What starting, reloading and leases moving rooms freed goes back to the system once the rooms are still.
        let trimmer = crate::trim::Trimmer::default();
        let given = {
            let stats = Arc::clone(&stats);
            move || stats.memory_given_back.inc()
        };
        tokio::spawn(trimmer.clone().run(closed.clone(), given));
        trimmer.changed();
        let task = tokio::spawn(async move {
            let mut routing = tokio::spawn(router.run(router_rx, stop.clone()));
            let undelivered = loop {
                tokio::select! {
                    undelivered = &mut routing => break undelivered.unwrap_or(0),
                    // One reload at a time: the next waits until the accounts the last one replaced are back.
                    Some((config, reply)) = reloads.recv(), if supervisor.is_settled() => {
                        provisioner.set_base(config.clone());
                        let reloaded = match provisioned(&provisioner, true).await {
                            Some(next) => apply(&mut supervisor, next, &control, &provisioner, &layout).await,
                            None => apply(&mut supervisor, (0, config, Vec::new()), &control, &provisioner, &layout).await,
                        };
                        let _ = reply.send(reloaded);
                    }
                    _ = provisioner.changed.notified(), if supervisor.is_settled() => {
                        if let Some(next) = provisioned(&provisioner, false).await {
                            apply(&mut supervisor, next, &control, &provisioner, &layout).await;
                        }
                    }
                    Some(done) = supervisor.next_handover() => supervisor.finish(done, &control).await,
                    Some(event) = next_lease(&mut lease_events) => supervisor.lease(event, &control).await,
                }
                trimmer.changed();
            };
            closed.cancel();
            supervisor.close(CLOSE_GRACE).await;
            info!(undelivered, "Stopped.");
            Summary { undelivered, requested: stop.is_cancelled() }
        });
        if let Some(addr) = status_addr {
            info!(%addr, "Serving /health and /metrics.");
        }
        Ok(Self { stats, status_addr, states, task, page_limit, reloads: Reloader(reloads_tx) })
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

    /// Hands new configurations to the daemon (SIGHUP).
    pub fn reloader(&self) -> Reloader {
        self.reloads.clone()
    }

    /// Waits for the daemon to stop.
    pub async fn wait(self) -> Summary {
        self.task.await.unwrap_or(Summary { undelivered: 0, requested: false })
    }
}

/// What runs once the store's provisioned bridges are read again (`force`: even when their version is the one
/// applied, because the file changed); none without a store, or when nothing changed.
async fn provisioned(
    provisioner: &Arc<crate::provision::Provisioner>,
    force: bool,
) -> Option<(i64, Config, Vec<crate::config::LeftOut>)> {
    let provisioner = Arc::clone(provisioner);
    tokio::task::spawn_blocking(move || provisioner.next(force)).await.ok().flatten()
}

/// Applies a configuration as a reload does; once applied, the status page's layout and the provisioner learn it
/// (a `version` of 0: the store has no say).
async fn apply(
    supervisor: &mut Supervisor,
    (version, config, left): (i64, Config, Vec<crate::config::LeftOut>),
    control: &mpsc::UnboundedSender<router::reconfigure::Control>,
    provisioner: &crate::provision::Provisioner,
    layout: &std::sync::Mutex<crate::admin::model::Layout>,
) -> Reloaded {
    let bridges = admin::layout(&config);
    let reloaded = supervisor.apply(config, control).await;
    if matches!(reloaded, Reloaded::Applied(_)) {
        *layout.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = bridges;
        if version > 0 {
            provisioner.applied(version, left);
        }
    }
    reloaded
}

/// The lease task's next word, with a shared store; pending without one.
async fn next_lease(
    events: &mut Option<mpsc::UnboundedReceiver<store::pg::lease::LeaseEvent>>,
) -> Option<store::pg::lease::LeaseEvent> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

fn router_settings(general: &crate::config::General) -> RouterSettings {
    RouterSettings {
        max_attempts: general.max_attempts,
        max_age: general.max_age,
        queue_capacity: general.queue_capacity,
        gap_fill_window: general.gap_fill_window,
        retry_delay: general.retry_delay,
        retry_max: general.backoff_max,
        shutdown_timeout: general.shutdown_timeout,
    }
}

fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(listener)
}
