//! The router task: owns the compiled rules, the id map, the destination queues and the directory of
//! senders. It decides for each inbound event which rooms receive what, hands one send per room at a
//! time to the destination's adapter, and never awaits a platform call.

pub mod directory;
pub mod idmap;
pub mod limit;
pub mod media;
pub mod port;
pub mod queue;
pub mod reconfigure;
pub mod render;
pub mod rules;
pub mod sanitise;
pub mod split;

mod coalesce;
mod combos;
mod deliver;
mod leases;
mod lines;
mod notices;
mod operate;
mod presence;
mod routing;
mod spill;

use deliver::{count, route};

use std::collections::BTreeMap;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;
use tracing::{error, info};

use crate::config::SendLimit;
use crate::link::{AccountState, Outlet, RouterInput, SendAction, SendFailure, SendRequest, doubled};
use crate::model::{AccountId, Capabilities, Event, EventKind, RemoteId, RoomAddr};
use crate::stats::{Metric, Stats};
use directory::Directory;
use idmap::{GroupId, IdStore, Snippet};
use limit::Bucket;
use port::{InMemory, Persist, StoreEvent};
use queue::{Outbox, Queued};
use render::{Rendered, Target, render};
use rules::{Destination, Rules, Skip};

pub use crate::model::Map;
pub use operate::Pause;

/// With a shared store, how long a stopping router still takes in what its adapters had read (a poll in flight
/// finishes within a second).
const HANDOVER_READS: Duration = Duration::from_millis(1500);

/// The longest text kept in the id map for replies rendered as text.
const SNIPPET_CHARS: usize = 200;

/// Retry and shutdown settings of the router.
#[derive(Clone, Debug)]
pub struct RouterSettings {
    /// A message is retried until both are exhausted: this many attempts, and `max_age` since it was queued.
    pub max_attempts: u32,
    pub max_age: Duration,
    /// Messages kept in memory per destination room (with the store, the rest wait there).
    pub queue_capacity: usize,
    /// Replayed (gap-filled) events older than this are not relayed.
    pub gap_fill_window: Duration,
    pub retry_delay: Duration,
    pub retry_max: Duration,
    pub shutdown_timeout: Duration,
}

/// A destination account, as the router sees it.
pub struct AccountLink {
    pub caps: Capabilities,
    pub sends: Outlet,
    pub limit: SendLimit,
}

/// Per destination room: whether a send is out, or a retry is scheduled.
#[derive(Default)]
struct RoomState {
    in_flight: bool,
    retry_at: Option<tokio_util::time::delay_queue::Key>,
    /// The platform said the room does not exist: everything for it is dropped.
    broken: bool,
    /// When the send in flight was handed out (for the latency histogram).
    sent_at: Option<std::time::Instant>,
    /// The room's counters.
    series: Option<Arc<crate::stats::Series>>,
    /// The highest key of this room's messages in memory (or read from the store and skipped).
    last_key: u64,
    /// The highest key of this room's messages that went to the store only (its queue was full): while it
    /// is above `last_key`, the room has spilled messages, and new ones spill too, to keep the order.
    spill_high: u64,
    /// Messages spilled and not yet read back (for the logs and the queue gauge).
    spilled: usize,
    /// A read of spilled messages is under way: `(limit, highest key given when it was asked for)`.
    loading: Option<(usize, u64)>,
    /// The last send waited for a token: the next may carry what queued meanwhile (`coalesce`).
    waited: bool,
    /// The send out (or to be tried again) stands for more than the front message: merged, or a summary. Boxed:
    /// every room the router knows has a state, and a send is most of one's size.
    outgoing: Option<Box<coalesce::Outgoing>>,
    /// The front message's media are being fetched: the room waits for them.
    media_wait: bool,
}

impl RoomState {
    fn has_spilled(&self) -> bool {
        self.spill_high > self.last_key
    }
}

pub struct Router {
    rules: Rules,
    accounts: Map<AccountId, AccountLink>,
    outbox: Box<dyn Outbox>,
    ids: Box<dyn IdStore>,
    directory: Directory,
    rooms: Map<RoomAddr, RoomState>,
    retries: DelayQueue<RoomAddr>,
    states: watch::Sender<BTreeMap<AccountId, AccountState>>,
    settings: RouterSettings,
    stats: Arc<Stats>,
    scratch: Vec<Destination>,
    /// Sends answered at once (`SendNow`), acknowledged once the input that handed them out is done: taken in a
    /// loop, not from inside `pump` (each answer hands out the room's next message, which may be answered too).
    answered: std::collections::VecDeque<(RoomAddr, Result<Vec<RemoteId>, SendFailure>)>,
    /// The persistence port: with a durable store, every queued message is put there before it is handed to its
    /// adapter (the writer's order keeps the put ahead of the acknowledgement's delete).
    store: Box<dyn Persist>,
    /// Reports of the store (commits, spilled messages read back).
    store_events: mpsc::UnboundedReceiver<StoreEvent>,
    next_key: u64,
    /// Per account: its send rate limit.
    buckets: Map<AccountId, Bucket>,
    /// Accounts that are reconnecting: their rooms wait instead of spending attempts.
    backing_off: std::collections::HashSet<AccountId>,
    /// Send limits by account, for accounts a reload adds.
    limits: Map<AccountId, SendLimit>,
    /// Accounts whose session a reload is replacing: nothing is handed to them meanwhile.
    held: std::collections::HashSet<AccountId>,
    /// Accounts a reload removes or restarts, until they have settled.
    settling: Map<AccountId, (reconfigure::Settle, tokio::sync::oneshot::Sender<()>)>,
    /// Rooms leased one by one, being handed over (`leases.rs`).
    room_leases: leases::RoomLeases,
    /// The daemon's reload requests.
    control: Option<mpsc::UnboundedReceiver<reconfigure::Control>>,
    /// The media store, and the items it has come to know since asked (`media.rs`).
    media: Option<(Box<dyn media::MediaPort>, mpsc::UnboundedReceiver<String>)>,
    /// Rooms waiting for an item, by its URL.
    media_waits: std::collections::HashMap<String, Vec<RoomAddr>>,
    /// What the bridges with `notices` were told of their accounts' outages.
    notices: notices::Notices,
    /// The operator's pauses and requeues.
    operated: operate::Operated,
    /// Joins and leaves folded into a line a minute (`presence = "summary"`).
    presence: presence::Presence,
    /// Gift combos held until they end (`gift_combo`).
    combos: combos::Combos,
}

impl Router {
    pub fn new(
        rules: Rules,
        accounts: impl IntoIterator<Item = (AccountId, AccountLink)>,
        outbox: Box<dyn Outbox>,
        ids: Box<dyn IdStore>,
        settings: RouterSettings,
        stats: Arc<Stats>,
    ) -> Self {
        let accounts: Map<AccountId, AccountLink> = accounts.into_iter().collect();
        let now = std::time::Instant::now();
        let buckets = accounts.iter().map(|(id, link)| (id.clone(), Bucket::new(link.limit, now))).collect();
        let initial = accounts.keys().map(|a| (a.clone(), AccountState::Connecting)).collect();
        let (states, _) = watch::channel(initial);
        let limits = accounts.iter().map(|(id, link)| (id.clone(), link.limit)).collect();
        let (store, store_events) = InMemory::new();
        Self {
            rules,
            accounts,
            outbox,
            ids,
            directory: Directory::default(),
            rooms: Map::default(),
            retries: DelayQueue::new(),
            states,
            settings,
            stats,
            scratch: Vec::new(),
            answered: Default::default(),
            store: Box::new(store),
            store_events,
            next_key: 1,
            buckets,
            backing_off: Default::default(),
            limits,
            held: Default::default(),
            settling: Map::default(),
            room_leases: Default::default(),
            control: None,
            media: None,
            media_waits: Default::default(),
            notices: Default::default(),
            operated: Default::default(),
            presence: Default::default(),
            combos: Default::default(),
        }
    }

    /// Every account's state, updated as adapters report.
    pub fn states(&self) -> watch::Receiver<BTreeMap<AccountId, AccountState>> {
        self.states.subscribe()
    }

    /// Runs until every adapter is gone, or — once `stop` is cancelled — until the queues have drained
    /// or the shutdown timeout has passed. Returns the number of messages left undelivered.
    pub async fn run(mut self, mut inbox: mpsc::Receiver<RouterInput>, stop: CancellationToken) -> usize {
        let mut deadline: Option<Instant> = None;
        let restored: Vec<RoomAddr> = self.rooms.keys().cloned().collect();
        for room in restored {
            self.pump(&room);
            self.refill(&room);
        }
        self.end();
        // The service manager's watchdog is fed from this loop: a router that stops turning is restarted.
        let mut watchdog = crate::notify::watchdog_interval().map(tokio::time::interval);
        // With a shared store, the stop waits this long for what the adapters were still reading when it came
        // (a poll in flight, handed over as it finishes), then ends as soon as no send is out.
        let mut read_until: Option<Instant> = None;
        let mut said_reading = false;
        // Reads in flight (a Fishroom poll, whose server loses what it takes for a poll given up on): a stop waits
        // for them to hand over what they bring, within its deadline.
        let mut reads = self.stats.reads.watch();
        loop {
            let in_flight = *reads.borrow();
            let read = in_flight == 0 && read_until.is_none_or(|t| Instant::now() >= t);
            if deadline.is_some() && self.is_idle() {
                if read {
                    // What the last read handed over before it ended may still wait in the inbox.
                    let mut more = false;
                    while let Ok(input) = inbox.try_recv() {
                        self.handle(input);
                        more = true;
                    }
                    if !more {
                        break;
                    }
                    if !self.settling.is_empty() || self.room_leases.settling() {
                        self.settle();
                    }
                    self.take_answers();
                    self.end();
                    continue;
                }
                if !said_reading && in_flight > 0 {
                    info!(
                        reads = in_flight,
                        "Delivered; waiting for the reads still in flight (a poll hands over what it brings)."
                    );
                    said_reading = true;
                }
            }
            tokio::select! {
                _ = async { watchdog.as_mut().expect("only polled when set").tick().await }, if watchdog.is_some() => {
                    crate::notify::alive();
                    continue;
                }
                input = inbox.recv() => match input {
                    Some(input) => self.handle_ready(input, &mut inbox),
                    None => break,
                },
                Some(expired) = std::future::poll_fn(|cx| self.retries.poll_expired(cx)), if !self.retries.is_empty() => {
                    let room = expired.into_inner();
                    if let Some(state) = self.rooms.get_mut(&room) {
                        state.retry_at = None;
                    }
                    self.pump(&room);
                }
                Some(event) = self.store_events.recv() => self.store_event(event),
                // Answers left from the last turn (a long queue answered at once): taken below, after any other
                // input that is ready.
                _ = std::future::ready(()), if !self.answered.is_empty() => {}
                Some(control) = reconfigure::next_control(&mut self.control) => self.control(control),
                Some(url) = media::next_known(&mut self.media) => self.media_known(&url),
                Some(due) = std::future::poll_fn(|cx| self.notices.checks.poll_expired(cx)), if !self.notices.checks.is_empty() => {
                    self.notice_due(due.into_inner());
                }
                Some(due) = std::future::poll_fn(|cx| self.presence.due.poll_expired(cx)), if !self.presence.due.is_empty() => {
                    self.presence_due(due.into_inner());
                }
                Some(due) = std::future::poll_fn(|cx| self.combos.due.poll_expired(cx)), if !self.combos.due.is_empty() => {
                    self.combo_due(due.into_inner());
                }
                _ = stop.cancelled(), if deadline.is_none() => {
                    self.release_held();
                    if self.store.shared() {
                        // Other instances take the accounts over at once: nothing new is handed out, and
                        // the router stops when no send is out; what is queued stays in the store.
                        info!(waiting = self.waiting(), "Shutting down: handing the accounts over.");
                        self.held.extend(self.accounts.keys().cloned());
                        read_until = Some(Instant::now() + HANDOVER_READS);
                    } else {
                        info!(waiting = self.waiting(), "Shutting down: delivering what is queued.");
                        self.stopping_paused();
                    }
                    deadline = Some(Instant::now() + self.settings.shutdown_timeout);
                }
                _ = sleep_until(deadline) => break,
                _ = reads.changed(), if deadline.is_some() => {}
                _ = sleep_until(read_until), if read_until.is_some_and(|t| Instant::now() < t) => {}
            }
            if !self.settling.is_empty() || self.room_leases.settling() {
                self.settle();
            }
            self.take_answers();
            self.end();
        }
        let left = self.waiting();
        let store = std::mem::replace(&mut self.store, Box::new(InMemory::new().0));
        if store.durable() {
            self.end_store(store, left);
        } else if left > 0 {
            error!(undelivered = left, "Stopped with messages still queued (durable = false): they are lost.");
        }
        left
    }

    /// Messages queued, in memory and spilled to the store.
    fn waiting(&self) -> usize {
        self.outbox.total() + self.rooms.values().map(|r| r.spilled).sum::<usize>()
    }

    fn is_idle(&self) -> bool {
        if self.store.shared() {
            return self.rooms.values().all(|r| !r.in_flight);
        }
        if self.operated.any_paused() {
            // What a paused room holds waits for its resume: in the store, or delivered before a stop without one.
            return self.rooms.iter().all(|(room, r)| {
                !r.in_flight && (self.paused_queue(room) || (self.outbox.len(room) == 0 && !r.has_spilled()))
            });
        }
        self.waiting() == 0 && self.rooms.values().all(|r| !r.in_flight && !r.has_spilled())
    }

    /// Lets the store commit: one input's work is complete.
    fn end(&self) {
        self.store.end();
    }

    /// Handles one input (public for the benchmark and tests, which drive the router without a task).
    pub fn handle(&mut self, input: RouterInput) {
        match input {
            RouterInput::Event(event) => self.route(event),
            RouterInput::Ack { room, result } => self.acknowledge(&room, result),
            RouterInput::Attached { account, caps, sends } => self.attach(account, caps, sends),
            RouterInput::State { account, state } => {
                self.notice_state(&account, &state);
                if let AccountState::Stopped { reason } = &state {
                    error!(account = %account, reason = %reason, "Account stopped; the other accounts go on.");
                }
                let resumed = if matches!(state, AccountState::BackingOff { .. }) {
                    self.backing_off.insert(account.clone());
                    false
                } else {
                    self.backing_off.remove(&account)
                };
                self.states.send_modify(|states| {
                    states.insert(account.clone(), state);
                });
                if resumed {
                    let rooms: Vec<RoomAddr> = self.rooms.keys().filter(|r| r.account == account).cloned().collect();
                    for room in rooms {
                        self.pump(&room);
                    }
                }
            }
        }
        self.take_answers();
        self.end();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
