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
use crate::adapters::{
    self, AdapterContext, AdapterRoom, Backoff, Cursors, Outlet, RoomList, RouterInput, SendNowSlot,
};
use crate::config::{AccountConfig, Config, General};
use crate::model::{AccountId, Capabilities};
use crate::router::reconfigure::{Control, Reconfigure, Settle};
use crate::router::rules::Rules;
use crate::stats::Stats;
use crate::store::pg::PgReader;
use crate::store::pg::lease::{LeaseCommand, Unit};

mod leases;

/// A restarted account's sends are held at most this long for an answer to what its old session has out;
/// then the old session closes and the new one sends it again, marked as maybe sent.
const HOLD_AT_MOST: Duration = Duration::from_secs(10);

/// One account's running adapter.
struct Session {
    config: AccountConfig,
    rooms: Vec<AdapterRoom>,
    /// Where a change of the rooms goes, when the session follows one ([`adapters::Adapter::live_rooms`]).
    room_changes: Option<tokio::sync::watch::Sender<Arc<Vec<AdapterRoom>>>>,
    stop_receiving: CancellationToken,
    closed: CancellationToken,
    task: JoinHandle<()>,
    cursors: Cursors,
}

/// What becomes of an account whose session closed.
enum Next {
    /// It left the configuration.
    Detach,
    /// It starts again with new settings.
    Restart(AccountConfig, Vec<AdapterRoom>),
    /// Another instance takes it over (a shared store): its lease is released.
    HandOver,
    /// Another instance takes one of its rooms over (rooms leased one by one): the room's lease is released.
    RoomHandOver(crate::model::RoomAddr),
}

/// With a shared store: the lease task's side, and what starting an account that comes here needs.
struct Leased {
    commands: mpsc::UnboundedSender<LeaseCommand>,
    reader: PgReader,
    /// Keeps the router's inbox open while no account runs here.
    router: mpsc::Sender<RouterInput>,
    /// Each account's configuration and rooms, for starting it when its lease comes.
    accounts: BTreeMap<AccountId, (AccountConfig, Vec<AdapterRoom>)>,
}

/// An account's old session, closed; with its next settings when it is restarted.
pub(super) struct HandedOver {
    id: AccountId,
    next: Next,
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
    /// `[media]`: the media store is opened at start, so a change of it waits for a restart.
    media: crate::config::MediaSettings,
    bridges: Vec<String>,
    leased: Option<Leased>,
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
            media: config.media.clone(),
            bridges: config.bridges.iter().map(|b| b.name.clone()).collect(),
            leased: None,
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
    ) -> (Capabilities, Outlet) {
        let adapter = adapters::build(&config);
        let caps = adapter.capabilities();
        let (room_changes, room_list) = if adapter.live_rooms() {
            let (sender, list) = RoomList::changing(rooms.clone());
            (Some(sender), list)
        } else {
            (None, RoomList::fixed(rooms.clone()))
        };
        let (queue, requests) = mpsc::unbounded_channel();
        let sends = Outlet { queue, now: SendNowSlot::default() };
        let stop_receiving = self.stop.child_token();
        let closed = self.closed.child_token();
        let ctx = AdapterContext {
            account: id.clone(),
            rooms: room_list,
            router: router.clone(),
            stop_receiving: stop_receiving.clone(),
            closed: closed.clone(),
            stats: Arc::clone(&self.stats),
            backoff: Backoff::new(self.general.backoff_min, self.general.backoff_max),
            cursors: cursors.clone(),
            http: self.general.http,
            send_now: sends.now.clone(),
        };
        let task = tokio::spawn(adapter.run(ctx, requests).instrument(info_span!("adapter", account = %id)));
        let session = Session { config, rooms, room_changes, stop_receiving, closed, task, cursors };
        self.sessions.insert(id.clone(), session);
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
        let mut keys = self.general.restart_keys(&config.general);
        if self.media != config.media {
            keys.push("[media]");
        }
        if !keys.is_empty() {
            return Reloaded::NeedsRestart { keys, config: Box::new(config) };
        }
        let Some(router) = self.router.upgrade() else { return Reloaded::Stopping };
        let wanted = account_rooms(&config);
        let mut changes = Changes::default();
        let mut settle = Vec::new();
        let ids: Vec<AccountId> = self.sessions.keys().cloned().collect();
        for id in ids {
            let held = self.held_rooms(&id, wanted.get(&id));
            let next = match (config.accounts.get(&id), held.as_ref().or(wanted.get(&id))) {
                (Some(account), Some(rooms)) => {
                    let session = self.sessions.get_mut(&id).expect("listed above");
                    if *account == session.config && *rooms == session.rooms {
                        changes.kept += 1;
                        continue;
                    }
                    // Only the rooms changed, and the session joins and leaves rooms one by one (or receives
                    // every chat anyway): it is told, not replaced.
                    if *account == session.config
                        && let Some(room_changes) = &session.room_changes
                        && room_changes.send(Arc::new(rooms.clone())).is_ok()
                    {
                        session.rooms = rooms.clone();
                        changes.kept += 1;
                        changes.rooms_changed.push(id.clone());
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
            let next = match next {
                Some((config, rooms)) => Next::Restart(config, rooms),
                None => Next::Detach,
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
        if let Some(leased) = &mut self.leased {
            // Accounts start where their leases go: the lease task learns the new list.
            leased.accounts = configured(&config);
            let _ = leased.commands.send(LeaseCommand::Accounts(lease_units(&wanted)));
        }
        for (id, rooms) in wanted {
            if self.leased.is_some() {
                break;
            }
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
            rooms_changed = %list(&changes.rooms_changed),
            removed = %list(&changes.removed),
            "Configuration reloaded."
        );
        Reloaded::Applied(changes)
    }

    /// An old session has closed: its account is detached, or its new session starts.
    pub(super) async fn finish(&mut self, done: HandedOver, control: &mpsc::UnboundedSender<Control>) {
        let HandedOver { id, next, cursors, router } = done;
        match next {
            Next::Detach => {
                let _ = control.send(Control::Detach(id.clone()));
                // Removed by a reload, drained and closed: its lease goes back (after the acknowledgements of
                // what it delivered are committed).
                if let Some(leased) = &self.leased {
                    let _ = leased.commands.send(LeaseCommand::Released(Unit::Account(id)));
                }
            }
            Next::HandOver => {
                let _ = control.send(Control::Disown(id.clone()));
                if let Some(leased) = &self.leased {
                    let _ = leased.commands.send(LeaseCommand::Released(Unit::Account(id)));
                }
            }
            Next::RoomHandOver(room) => self.room_handed_over(room, control),
            Next::Restart(config, rooms) => {
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
        self.leased = None;
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

/// The leases the accounts' rooms need ([`crate::store::pg::lease::units`]).
pub(super) fn lease_units(rooms: &BTreeMap<AccountId, Vec<AdapterRoom>>) -> Vec<String> {
    let addrs = |id: &AccountId, rooms: &[AdapterRoom]| {
        rooms.iter().map(|r| crate::model::RoomAddr::new(id.clone(), r.room.clone())).collect::<Vec<_>>()
    };
    crate::store::pg::lease::units(rooms.iter().map(|(id, r)| (id, addrs(id, r))))
}

/// Each account in a bridge, with its configuration and rooms.
fn configured(config: &Config) -> BTreeMap<AccountId, (AccountConfig, Vec<AdapterRoom>)> {
    account_rooms(config).into_iter().map(|(id, rooms)| (id.clone(), (config.accounts[&id].clone(), rooms))).collect()
}

fn list(ids: &[AccountId]) -> String {
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Each account's rooms, with whether it listens to them and sends to them.
pub(super) fn account_rooms(config: &Config) -> BTreeMap<AccountId, Vec<AdapterRoom>> {
    let mut out: BTreeMap<AccountId, Vec<AdapterRoom>> = BTreeMap::new();
    // Where each room is in its account's list: an account may have thousands of rooms.
    let mut at: std::collections::HashMap<&crate::model::RoomAddr, usize> = std::collections::HashMap::new();
    for room in config.bridges.iter().flat_map(|b| b.rooms.iter()) {
        let rooms = out.entry(room.addr.account.clone()).or_default();
        let index = *at.entry(&room.addr).or_insert_with(|| {
            rooms.push(AdapterRoom { room: room.addr.room.clone(), receive: false, send: false });
            rooms.len() - 1
        });
        let entry = &mut rooms[index];
        entry.receive |= room.direction.feeds();
        entry.send |= room.direction.receives();
    }
    out
}
