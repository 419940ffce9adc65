//! A reload, as the router sees it: new rules, settings and limits for the next message; accounts that leave
//! (drained: what is queued for them is delivered first) or whose session is replaced (held: nothing new is
//! handed out until the new session is attached); queued messages follow their rooms into the new rules.

use std::collections::BTreeMap;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info};

use super::limit::Bucket;
use super::rules::Rules;
use super::{AccountLink, Router, RouterSettings, count};
use crate::config::SendLimit;
use crate::link::AccountState;
use crate::model::{AccountId, Capabilities, RoomAddr};
use crate::stats::Metric;

/// Inputs handled in one turn of the router's loop once one has come (see [`Router::handle_ready`]).
const READY_INPUTS: usize = 32;

/// What the daemon asks of the running router.
pub enum Control {
    Reconfigure(Box<Reconfigure>),
    /// The account's adapter has closed (it left the configuration): its link goes, and what is still
    /// queued for it leaves memory (with the store it stays there, as for a room no longer configured).
    Detach(AccountId),
    /// With a store instances share: the account settles as for [`Settle::Hold`] (another instance takes it
    /// over), and says so on the sender.
    Hold(AccountId, oneshot::Sender<()>),
    /// With a store instances share: the account runs elsewhere now. Its link goes, and what is queued for it
    /// leaves memory — it stays in the store, where the account's new instance reads it.
    Disown(AccountId),
    /// With rooms leased one by one: the room's lease came here; what the store holds for it is read.
    ClaimRoom(RoomAddr),
    /// With rooms leased one by one: the room settles as an account does for [`Control::Hold`].
    HoldRoom(RoomAddr, oneshot::Sender<()>),
    /// With rooms leased one by one: the room runs elsewhere now, as an account does for [`Control::Disown`].
    DisownRoom(RoomAddr),
    /// The operator pauses or resumes a bridge or a room.
    Pause(super::Pause),
    /// The operator puts dead letters back in their rooms' queues; answered with how many went.
    Requeue(Vec<u64>, oneshot::Sender<Result<usize, String>>),
}

/// A reload's changes.
pub struct Reconfigure {
    pub rules: Rules,
    pub settings: RouterSettings,
    /// Every account's send limit under the new configuration.
    pub limits: BTreeMap<AccountId, SendLimit>,
    /// Accounts that leave or are restarted, each with whom to tell once it has settled.
    pub settle: Vec<(AccountId, Settle, oneshot::Sender<()>)>,
}

/// How an account settles before its adapter is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// It leaves the configuration: its queues are delivered until empty.
    Drain,
    /// Its session is replaced: nothing new is handed to it; it has settled when no send is in flight.
    Hold,
}

impl Router {
    /// Takes the daemon's control messages (reloads) while running.
    pub fn controlled_by(&mut self, control: mpsc::UnboundedReceiver<Control>) {
        self.control = Some(control);
    }

    pub(super) fn control(&mut self, control: Control) {
        match control {
            Control::Reconfigure(update) => self.reconfigure(*update),
            Control::Detach(account) => self.detach(&account),
            Control::Hold(account, done) => {
                self.held.insert(account.clone());
                self.settling.insert(account, (Settle::Hold, done));
                self.settle();
            }
            Control::Disown(account) => {
                let left = self.forget(&account);
                info!(account = %account, queued = left, "Account handed to another instance; what is queued for it stays in the store.");
            }
            Control::ClaimRoom(room) => self.claim_room(room),
            Control::HoldRoom(room, done) => self.hold_room(room, done),
            Control::DisownRoom(room) => self.disown_room(&room),
            Control::Pause(pause) => self.pause(pause),
            Control::Requeue(keys, reply) => self.requeue(keys, reply),
        }
    }

    /// An input, after every control message already sent: a pause the operator was told is in effect holds
    /// what arrives after it, even when the router wakes to both at once (its `select!` picks either).
    /// Handles `input` and what else the inbox holds ready, up to [`READY_INPUTS`] in all: what is ready already is
    /// taken without a new turn of the loop (a wake-up and a look at every other source) for each.
    pub(super) fn handle_ready(
        &mut self,
        input: crate::link::RouterInput,
        inbox: &mut mpsc::Receiver<crate::link::RouterInput>,
    ) {
        self.handle_after_control(input);
        for _ in 1..READY_INPUTS {
            let Ok(input) = inbox.try_recv() else { break };
            self.handle_after_control(input);
        }
    }

    pub(super) fn handle_after_control(&mut self, input: crate::link::RouterInput) {
        while let Some(control) = self.control.as_mut().and_then(|c| c.try_recv().ok()) {
            self.control(control);
        }
        self.handle(input);
    }

    /// Send limits of every account of the configuration (accounts attached later start with theirs).
    pub fn with_limits(&mut self, limits: BTreeMap<AccountId, SendLimit>) {
        self.limits = limits.into_iter().collect();
    }

    fn reconfigure(&mut self, update: Reconfigure) {
        let Reconfigure { mut rules, settings, limits, settle } = update;
        // Rooms gone from a bridge keep their old options for what is still queued for them.
        for (bridge, room) in self.rules.rooms() {
            let waiting =
                self.outbox.len(&room.addr) > 0 || self.rooms.get(&room.addr).is_some_and(|s| s.has_spilled());
            if waiting && rules.find_addr(bridge, &room.addr).is_none() {
                rules.keep(bridge, room.clone());
            }
        }
        let old = std::mem::replace(&mut self.rules, rules);
        let new = &self.rules;
        self.outbox.for_each_mut(&mut |_, item| {
            let bridge = old.bridge_name(item.to);
            if let Some(to) = new.find_addr(bridge, &old.room(item.to).addr) {
                item.to = to;
            }
        });
        self.settings = settings;
        let now = std::time::Instant::now();
        for (account, link) in &mut self.accounts {
            let limit = limits.get(account).copied().unwrap_or(link.limit);
            if limit != link.limit {
                link.limit = limit;
                self.buckets.insert(account.clone(), Bucket::new(limit, now));
            }
        }
        self.limits = limits.into_iter().collect();
        for (account, how, done) in settle {
            if how == Settle::Hold {
                self.held.insert(account.clone());
            }
            self.settling.insert(account, (how, done));
        }
        self.settle();
    }

    /// Tells the daemon about each settling account (and room being handed over) that has settled.
    pub(super) fn settle(&mut self) {
        if self.room_leases.settling() {
            self.settle_rooms();
        }
        let settled: Vec<AccountId> = self
            .settling
            .iter()
            .filter(|(account, (how, _))| {
                self.rooms.iter().filter(|(room, _)| room.account == **account).all(|(room, state)| {
                    !state.in_flight && (*how == Settle::Hold || (self.outbox.len(room) == 0 && !state.has_spilled()))
                })
            })
            .map(|(account, _)| account.clone())
            .collect();
        for account in settled {
            if let Some((_, done)) = self.settling.remove(&account) {
                let _ = done.send(());
            }
        }
    }

    /// A new session of an account (added by a reload, or replacing the held one): sends resume through it.
    /// A send the old session still had out is handed out again, marked as maybe sent.
    pub(super) fn attach(&mut self, account: AccountId, caps: Capabilities, sends: crate::link::Outlet) {
        let limit = self.limits.get(&account).copied().unwrap_or_else(|| SendLimit::default_for(account.platform()));
        let now = std::time::Instant::now();
        if self.accounts.insert(account.clone(), AccountLink { caps, sends, limit }).is_none() {
            self.buckets.insert(account.clone(), Bucket::new(limit, now));
        }
        self.held.remove(&account);
        self.settling.remove(&account);
        self.states.send_modify(|states| {
            states.entry(account.clone()).or_insert(AccountState::Connecting);
        });
        let rooms: Vec<RoomAddr> = self.rooms.keys().filter(|r| r.account == account).cloned().collect();
        for room in rooms {
            if let Some(state) = self.rooms.get_mut(&room) {
                state.in_flight = false;
                state.sent_at = None;
            }
            self.pump(&room);
        }
        if self.store.shared() {
            // What other instances queued for its rooms while it ran elsewhere, or before it came here.
            let rooms: Vec<RoomAddr> = self
                .rules
                .rooms()
                .map(|(_, r)| r.addr.clone())
                .filter(|r| r.account == account && self.store.holds(r))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            for room in rooms {
                self.arrived(&room);
            }
        }
    }

    fn detach(&mut self, account: &AccountId) {
        let left = self.forget(account);
        match (left, self.store.durable()) {
            (0, _) => info!(account = %account, "Account removed by the reload: drained and closed."),
            (left, true) => info!(
                account = %account,
                undelivered = left,
                "Account removed by the reload: closed with messages still queued; they stay in the store (see `chatbridge check`)."
            ),
            (left, false) => error!(
                account = %account,
                lost = left,
                "Account removed by the reload: closed with messages still queued (durable = false): they are lost."
            ),
        }
    }

    /// Takes an account's link and queues out of the router; returns how many messages were queued.
    fn forget(&mut self, account: &AccountId) -> usize {
        self.accounts.remove(account);
        self.buckets.remove(account);
        self.held.remove(account);
        self.settling.remove(account);
        self.backing_off.remove(account);
        self.states.send_modify(|states| {
            states.remove(account);
        });
        let rooms: Vec<RoomAddr> = self.rooms.keys().filter(|r| r.account == *account).cloned().collect();
        rooms.iter().map(|room| self.forget_room(room)).sum()
    }

    /// What is queued for a room leaves memory (with the store it stays there); how many messages that was.
    pub(super) fn forget_room(&mut self, room: &RoomAddr) -> usize {
        let mut left = 0;
        while self.outbox.pop_front(room).is_some() {
            left += 1;
            if !self.store.durable() {
                count(&mut self.rooms, &self.stats, Metric::Dropped, room);
            }
        }
        if let Some(state) = self.rooms.remove(room) {
            left += state.spilled;
            if let Some(key) = state.retry_at {
                self.retries.remove(&key);
            }
            if let Some(series) = state.series {
                series.set_queued(0);
            }
        }
        left
    }
}

/// The daemon's next control message; pending where the router takes none.
pub(super) async fn next_control(control: &mut Option<mpsc::UnboundedReceiver<Control>>) -> Option<Control> {
    match control {
        Some(control) => control.recv().await,
        None => std::future::pending().await,
    }
}
