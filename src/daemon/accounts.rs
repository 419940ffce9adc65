//! The account supervisor: one session (an adapter task with its tokens) per account in a bridge, and the
//! hand-over a reload makes for an account that leaves or changes: it stops receiving, the router settles it
//! (drains its queues, or holds them while no send is out), it closes, then it is detached or a new session
//! takes over its queues and its read cursors.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use super::{Changes, Reloaded, router_settings};
use crate::adapters::{self, AdapterContext, AdapterRoom, Backoff, Cursors, RouterInput, SendRequest};
use crate::config::{AccountConfig, Config, General};
use crate::model::{AccountId, Capabilities};
use crate::router::reconfigure::{Control, Reconfigure, Settle};
use crate::router::rules::Rules;
use crate::stats::Stats;

/// A restarted account's sends are held at most this long for an answer to what its old session has out;
/// then the old session closes and the new one sends it again, marked as maybe sent.
const HOLD_AT_MOST: Duration = Duration::from_secs(10);

/// One account's running adapter.
struct Session {
    config: AccountConfig,
    rooms: Vec<AdapterRoom>,
    stop_receiving: CancellationToken,
    closed: CancellationToken,
    task: JoinHandle<()>,
    cursors: Cursors,
}

/// An account's old session, closed; with its next settings when it is restarted.
pub(super) struct HandedOver {
    id: AccountId,
    next: Option<(AccountConfig, Vec<AdapterRoom>)>,
    cursors: Cursors,
    /// Keeps the router's inbox open while the account has no session.
    router: mpsc::Sender<RouterInput>,
}

pub(super) struct Supervisor {
    sessions: BTreeMap<AccountId, Session>,
    handovers: JoinSet<HandedOver>,
    router: mpsc::WeakSender<RouterInput>,
    /// Parents of every session's tokens: the daemon's stop, and the close after the drain.
    stop: CancellationToken,
    closed: CancellationToken,
    stats: Arc<Stats>,
    general: General,
    bridges: Vec<String>,
}

impl Supervisor {
    pub(super) fn new(
        config: &Config,
        router: mpsc::WeakSender<RouterInput>,
        stop: CancellationToken,
        closed: CancellationToken,
        stats: &Arc<Stats>,
    ) -> Self {
        Self {
            sessions: BTreeMap::new(),
            handovers: JoinSet::new(),
            router,
            stop,
            closed,
            stats: Arc::clone(stats),
            general: config.general.clone(),
            bridges: config.bridges.iter().map(|b| b.name.clone()).collect(),
        }
    }

    /// Starts an account's session; returns what the router needs to send through it.
    pub(super) fn spawn(
        &mut self,
        id: &AccountId,
        config: AccountConfig,
        rooms: Vec<AdapterRoom>,
        cursors: Cursors,
        router: &mpsc::Sender<RouterInput>,
    ) -> (Capabilities, mpsc::UnboundedSender<SendRequest>) {
        let adapter = adapters::build(&config);
        let caps = adapter.capabilities();
        let (sends, requests) = mpsc::unbounded_channel();
        let stop_receiving = self.stop.child_token();
        let closed = self.closed.child_token();
        let ctx = AdapterContext {
            account: id.clone(),
            rooms: rooms.clone(),
            router: router.clone(),
            stop_receiving: stop_receiving.clone(),
            closed: closed.clone(),
            stats: Arc::clone(&self.stats),
            backoff: Backoff::new(self.general.backoff_min, self.general.backoff_max),
            cursors: cursors.clone(),
            http: self.general.http,
        };
        let task = tokio::spawn(adapter.run(ctx, requests).instrument(info_span!("adapter", account = %id)));
        self.sessions.insert(id.clone(), Session { config, rooms, stop_receiving, closed, task, cursors });
        (caps, sends)
    }

    /// Whether no account is between two sessions (a reload waits for that).
    pub(super) fn is_settled(&self) -> bool {
        self.handovers.is_empty()
    }

    /// The next account whose old session has closed; pending while there is none.
    pub(super) async fn next_handover(&mut self) -> Option<HandedOver> {
        if self.handovers.is_empty() {
            return std::future::pending().await;
        }
        match self.handovers.join_next().await? {
            Ok(done) => Some(done),
            Err(e) => {
                warn!(error = %e, "An account's hand-over failed.");
                None
            }
        }
    }

    /// Applies a checked configuration to the running accounts and router.
    pub(super) async fn apply(&mut self, config: Config, control: &mpsc::UnboundedSender<Control>) -> Reloaded {
        let keys = self.general.restart_keys(&config.general);
        if !keys.is_empty() {
            return Reloaded::NeedsRestart { keys, config: Box::new(config) };
        }
        let Some(router) = self.router.upgrade() else { return Reloaded::Stopping };
        let wanted = account_rooms(&config);
        let mut changes = Changes::default();
        let mut settle = Vec::new();
        let ids: Vec<AccountId> = self.sessions.keys().cloned().collect();
        for id in ids {
            let next = match (config.accounts.get(&id), wanted.get(&id)) {
                (Some(account), Some(rooms)) => {
                    let session = &self.sessions[&id];
                    if *account == session.config && *rooms == session.rooms {
                        changes.kept += 1;
                        continue;
                    }
                    changes.restarted.push(id.clone());
                    Some((account.clone(), rooms.clone()))
                }
                _ => {
                    changes.removed.push(id.clone());
                    None
                }
            };
            let session = self.sessions.remove(&id).expect("listed above");
            session.stop_receiving.cancel();
            let (done, settled) = oneshot::channel();
            let (how, wait) = match next {
                Some(_) => (Settle::Hold, HOLD_AT_MOST),
                None => (Settle::Drain, config.general.shutdown_timeout),
            };
            settle.push((id.clone(), how, done));
            let router = router.clone();
            self.handovers.spawn(async move {
                let _ = tokio::time::timeout(wait, settled).await;
                session.closed.cancel();
                let mut task = session.task;
                if tokio::time::timeout(super::CLOSE_GRACE, &mut task).await.is_err() {
                    task.abort();
                }
                HandedOver { id, next, cursors: session.cursors, router }
            });
        }
        let update = Reconfigure {
            rules: Rules::new(config.bridges.clone()),
            settings: router_settings(&config.general),
            limits: config.limits.clone(),
            settle,
        };
        if control.send(Control::Reconfigure(Box::new(update))).is_err() {
            return Reloaded::Stopping;
        }
        crate::telemetry::set_level(&config.general.log_level);
        for (id, rooms) in wanted {
            let pending = changes.restarted.contains(&id) || changes.removed.contains(&id);
            if self.sessions.contains_key(&id) || pending {
                continue;
            }
            let cursors = Cursors::new(Vec::new(), self.general.gap_fill_window);
            let (caps, sends) = self.spawn(&id, config.accounts[&id].clone(), rooms, cursors, &router);
            let _ = router.send(RouterInput::Attached { account: id.clone(), caps, sends }).await;
            changes.added.push(id);
        }
        self.general = config.general;
        self.bridges = config.bridges.iter().map(|b| b.name.clone()).collect();
        info!(
            kept = changes.kept,
            added = %list(&changes.added),
            restarted = %list(&changes.restarted),
            removed = %list(&changes.removed),
            "Configuration reloaded."
        );
        Reloaded::Applied(changes)
    }

    /// An old session has closed: its account is detached, or its new session starts.
    pub(super) async fn finish(&mut self, done: HandedOver, control: &mpsc::UnboundedSender<Control>) {
        let HandedOver { id, next, cursors, router } = done;
        match next {
            None => {
                let _ = control.send(Control::Detach(id));
            }
            Some((config, rooms)) => {
                if self.stop.is_cancelled() {
                    return;
                }
                let (caps, sends) = self.spawn(&id, config, rooms, cursors, &router);
                info!(account = %id, "Account restarted with its new settings.");
                let _ = router.send(RouterInput::Attached { account: id, caps, sends }).await;
            }
        }
    }

    /// After the router stopped: every session closes (`closed` was cancelled), within `grace`.
    pub(super) async fn close(mut self, grace: Duration) {
        self.handovers.abort_all();
        let mut tasks: Vec<JoinHandle<()>> = std::mem::take(&mut self.sessions).into_values().map(|s| s.task).collect();
        let all = async {
            for task in &mut tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            warn!("Adapters did not close in time; stopping them.");
            for task in &tasks {
                task.abort();
            }
        }
        for bridge in &self.bridges {
            info!(bridge = %bridge, "Bridge stopped.");
        }
    }
}

fn list(ids: &[AccountId]) -> String {
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Each account's rooms, with whether it listens to them and sends to them.
pub(super) fn account_rooms(config: &Config) -> BTreeMap<AccountId, Vec<AdapterRoom>> {
    let mut out: BTreeMap<AccountId, Vec<AdapterRoom>> = BTreeMap::new();
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
