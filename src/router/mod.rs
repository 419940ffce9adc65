//! The router task: owns the compiled rules, the id map, the destination queues and the directory of
//! senders. It decides for each inbound event which rooms receive what, hands one send per room at a
//! time to the destination's adapter, and never awaits a platform call.

pub mod directory;
pub mod format;
pub mod idmap;
pub mod queue;
pub mod render;
pub mod rules;

use std::collections::BTreeMap;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;
use tracing::{debug, error, info, trace, warn};

use crate::adapters::{AccountState, RouterInput, SendAction, SendFailure, SendRequest, retry::retry_delay};
use crate::model::{AccountId, Capabilities, Event, EventKind, RemoteId, RoomAddr};
use crate::stats::{Metric, Stats};
use directory::Directory;
use idmap::{IdStore, Snippet};
use queue::{Outbox, Queued};
use render::{Rendered, Target, render};
use rules::{Destination, Rules, Skip};

/// The hash map of the router's hot path: foldhash, randomly seeded (keys include remote ids).
pub type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The longest text kept in the id map for replies rendered as text.
const SNIPPET_CHARS: usize = 200;

/// Retry and shutdown settings of the router.
#[derive(Clone, Debug)]
pub struct RouterSettings {
    pub max_attempts: u32,
    pub retry_delay: Duration,
    pub retry_max: Duration,
    pub shutdown_timeout: Duration,
}

/// A destination account, as the router sees it.
pub struct AccountLink {
    pub caps: Capabilities,
    pub sends: mpsc::UnboundedSender<SendRequest>,
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
    /// The durable outbox, when `general.durable` is on: a message goes to its adapter only once committed.
    store: Option<crate::store::Store>,
    /// Commits reported by the store's writer: every key up to this one is durable.
    committed: Option<mpsc::UnboundedReceiver<u64>>,
    durable_up_to: u64,
    next_key: u64,
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
        let initial = accounts.keys().map(|a| (a.clone(), AccountState::Connecting)).collect();
        let (states, _) = watch::channel(initial);
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
            store: None,
            committed: None,
            durable_up_to: 0,
            next_key: 1,
        }
    }

    /// Makes the outbox durable: what `stored` holds is queued first, in its order, and every message queued
    /// from now on is written before it is sent. `committed` reports the store's commits.
    pub fn with_store(
        &mut self,
        store: crate::store::Store,
        committed: mpsc::UnboundedReceiver<u64>,
        stored: Vec<crate::store::Stored>,
    ) {
        for row in stored {
            self.next_key = self.next_key.max(row.key + 1);
            self.durable_up_to = self.durable_up_to.max(row.key);
            let Some(to) = self.rules.find(&row.bridge, &row.room) else {
                warn!(room = %row.room, bridge = %row.bridge, "A stored message's room is no longer in the configuration; it stays in the store.");
                continue;
            };
            let room = self.rules.room(to).addr.clone();
            let crate::store::Record { event, client_ids } = row.record;
            // The copies of messages sent before the restart are not known yet; the new copy's are.
            let group = matches!(event.kind, EventKind::Message(_)).then(|| {
                let sender = event.sender.as_ref().map(|s| s.name.clone());
                self.ids.new_group(None, Snippet { sender, text: String::new(), time: event.time })
            });
            let item = Queued { event: Arc::new(event), to, group, attempts: 0, client_ids, key: row.key };
            self.outbox.push(&room, item);
            // Known to `run`, which hands the restored messages out first.
            self.rooms.entry(room).or_default();
        }
        if self.outbox.total() > 0 {
            info!(messages = self.outbox.total(), "Delivering what was queued before the restart first.");
        }
        self.store = Some(store);
        self.committed = Some(committed);
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
        }
        loop {
            if deadline.is_some() && self.is_idle() {
                break;
            }
            tokio::select! {
                input = inbox.recv() => match input {
                    Some(input) => self.handle(input),
                    None => break,
                },
                Some(expired) = std::future::poll_fn(|cx| self.retries.poll_expired(cx)), if !self.retries.is_empty() => {
                    let room = expired.into_inner();
                    if let Some(state) = self.rooms.get_mut(&room) {
                        state.retry_at = None;
                    }
                    self.pump(&room);
                }
                Some(key) = next_commit(&mut self.committed) => {
                    self.durable_up_to = self.durable_up_to.max(key);
                    let waiting: Vec<RoomAddr> = self.rooms.keys().cloned().collect();
                    for room in waiting {
                        self.pump(&room);
                    }
                }
                _ = stop.cancelled(), if deadline.is_none() => {
                    info!(waiting = self.outbox.total(), "Shutting down: delivering what is queued.");
                    deadline = Some(Instant::now() + self.settings.shutdown_timeout);
                }
                _ = sleep_until(deadline) => break,
            }
        }
        let left = self.outbox.total();
        if left > 0 {
            error!(undelivered = left, "Stopped with messages still queued: they are lost.");
        }
        left
    }

    fn is_idle(&self) -> bool {
        self.outbox.total() == 0 && self.rooms.values().all(|r| !r.in_flight)
    }

    /// Handles one input (public for the benchmark and tests, which drive the router without a task).
    pub fn handle(&mut self, input: RouterInput) {
        match input {
            RouterInput::Event(event) => self.route(event),
            RouterInput::Ack { room, result } => self.acknowledge(&room, result),
            RouterInput::State { account, state } => {
                if let AccountState::Stopped { reason } = &state {
                    error!(account = %account, reason = %reason, "Account stopped; the other accounts go on.");
                }
                self.states.send_modify(|states| {
                    states.insert(account, state);
                });
            }
        }
    }

    fn route(&mut self, event: Event) {
        let origin = &event.origin.room;
        // Ours: sent by our account, carrying an id we sent, or editing or recalling one of our copies
        // (the echo of our own edit or recall; a copy is never the way back to its original).
        let acts_on_ours = match &event.kind {
            EventKind::Edited { target, .. } | EventKind::Recalled { target } => self.ids.is_ours(origin, target),
            _ => false,
        };
        let is_echo = acts_on_ours
            || event.sender.as_ref().is_some_and(|s| s.is_self)
            || event.origin.remote_id.as_ref().is_some_and(|id| self.ids.is_ours(origin, id));
        if is_echo {
            self.stats.echoes.inc();
            trace!(room = %origin, "Our own message: not relayed.");
            return;
        }
        if let Some(sender) = &event.sender {
            self.directory.saw(origin, sender);
        }
        let mut destinations = std::mem::take(&mut self.scratch);
        match self.rules.destinations(&event, &mut destinations) {
            Ok(()) => self.enqueue(event, &destinations),
            Err(skip) => {
                self.stats.filtered.inc();
                match (skip, &event.kind) {
                    (Skip::Unsupported, EventKind::Unsupported { kind, .. }) => {
                        debug!(room = %origin, kind = %kind, "Unsupported event: not relayed.");
                    }
                    _ => debug!(room = %origin, reason = ?skip, "Event not relayed."),
                }
            }
        }
        self.scratch = destinations;
    }

    fn enqueue(&mut self, event: Event, destinations: &[Destination]) {
        let group = match &event.kind {
            EventKind::Message(message) => {
                let origin = event.origin.remote_id.as_ref().map(|id| (&event.origin.room, id));
                let text: String = message.content.to_plain_text().chars().take(SNIPPET_CHARS).collect();
                let sender = event.sender.as_ref().map(|s| s.name.clone());
                Some(self.ids.new_group(origin, Snippet { sender, text, time: event.time }))
            }
            _ => None,
        };
        let event = Arc::new(event);
        for &to in destinations {
            let room = self.rules.room(to).addr.clone();
            let key = self.next_key;
            self.next_key += 1;
            // The first client-chosen id is chosen now, so that it is stored and a replay carries it.
            let caps = self.accounts.get(&room.account).map(|l| l.caps.client_ids);
            let client_ids: Vec<RemoteId> = caps.and_then(|form| form.generate()).into_iter().collect();
            if let Some(store) = &self.store {
                let record = crate::store::Record { event: (*event).clone(), client_ids: client_ids.clone() };
                store.put(key, room.to_string(), self.rules.bridge_name(to).to_owned(), &record);
            }
            let item = Queued { event: Arc::clone(&event), to, group, attempts: 0, client_ids, key };
            if let Some(dropped) = self.outbox.push(&room, item) {
                if let Some(store) = &self.store {
                    store.delete(dropped.key);
                }
                count(&mut self.rooms, &self.stats, Metric::Dropped, &room);
                error!(route = %route(&dropped.event, &room), "Destination queue full: dropped its oldest message.");
            }
            self.pump(&room);
            series(&mut self.rooms, &self.stats, &room).set_queued(self.outbox.len(&room));
        }
    }

    /// Hands the room's next message to its adapter, unless one is out or a retry is scheduled.
    fn pump(&mut self, room: &RoomAddr) {
        let state = self.rooms.entry(room.clone()).or_default();
        if state.in_flight || state.retry_at.is_some() {
            return;
        }
        let broken = state.broken;
        while let Some(item) = self.outbox.front_mut(room) {
            if self.store.is_some() && item.key > self.durable_up_to {
                // Sent only once it is durable; the store's commit pumps again.
                return;
            }
            if broken {
                count(&mut self.rooms, &self.stats, Metric::Dropped, room);
                debug!(route = %route(&item.event, room), "Room unusable: message dropped.");
                pop(&mut *self.outbox, self.store.as_ref(), room);
                continue;
            }
            let Some(link) = self.accounts.get(&room.account) else {
                unreachable!("every room's account has a link");
            };
            let to = item.to;
            let target = Target { room: self.rules.room(to), bridge: self.rules.bridge_name(to), caps: link.caps };
            let action = match render(&item.event, &target, self.ids.as_mut(), &self.directory) {
                Rendered::Send(action) => action,
                Rendered::Skip(reason) => {
                    debug!(route = %route(&item.event, room), reason, "Not sent.");
                    pop(&mut *self.outbox, self.store.as_ref(), room);
                    continue;
                }
            };
            if let SendAction::Message(out) = &action
                && item.attempts == 0
            {
                while item.client_ids.len() < out.parts.len() {
                    let Some(id) = link.caps.client_ids.generate() else { break };
                    item.client_ids.push(id);
                }
                // Registered before the send: the platform's echo may beat its answer.
                if let Some(group) = item.group {
                    self.ids.add_pending(group, room, &item.client_ids);
                }
            }
            item.attempts += 1;
            let request = SendRequest {
                room: room.room.clone(),
                action,
                client_ids: item.client_ids.clone(),
                attempt: item.attempts,
                event_time: item.event.time,
            };
            if link.sends.send(request).is_err() {
                count(&mut self.rooms, &self.stats, Metric::Dropped, room);
                error!(route = %route(&item.event, room), "Account stopped: message dropped.");
                pop(&mut *self.outbox, self.store.as_ref(), room);
                continue;
            }
            let state = self.rooms.entry(room.clone()).or_default();
            state.in_flight = true;
            state.sent_at = Some(std::time::Instant::now());
            return;
        }
    }

    fn acknowledge(&mut self, room: &RoomAddr, result: Result<Vec<RemoteId>, SendFailure>) {
        let Some(state) = self.rooms.get_mut(room) else { return };
        if !state.in_flight {
            warn!(room = %room, "Acknowledgement without a send in flight: ignored.");
            return;
        }
        state.in_flight = false;
        if let Some(sent_at) = state.sent_at.take() {
            self.stats.latency.observe(sent_at.elapsed());
        }
        let Some(item) = self.outbox.front_mut(room) else { return };
        let origin = item.event.origin.room.clone();
        let route = Route(&origin, room);
        match result {
            Ok(remote_ids) => {
                if let Some(group) = item.group
                    && !remote_ids.is_empty()
                {
                    self.ids.add_copy(group, room, &remote_ids);
                }
                count(&mut self.rooms, &self.stats, Metric::Relayed, room);
                trace!(route = %route, "Delivered.");
                pop(&mut *self.outbox, self.store.as_ref(), room);
            }
            Err(SendFailure::Transient { after, reason }) if item.attempts < self.settings.max_attempts => {
                let delay = after
                    .unwrap_or_else(|| retry_delay(self.settings.retry_delay, self.settings.retry_max, item.attempts));
                debug!(route = %route, attempt = item.attempts, reason = %reason, "Send failed; retrying in {delay:?}.");
                let key = self.retries.insert(room.clone(), delay);
                if let Some(state) = self.rooms.get_mut(room) {
                    state.retry_at = Some(key);
                }
                series(&mut self.rooms, &self.stats, room).set_queued(self.outbox.len(room));
                return;
            }
            Err(SendFailure::Transient { reason, .. }) => {
                count(&mut self.rooms, &self.stats, Metric::Dropped, room);
                error!(route = %route, attempts = item.attempts, reason = %reason, "Giving up on a message after its last attempt.");
                pop(&mut *self.outbox, self.store.as_ref(), room);
            }
            Err(SendFailure::Rejected { reason }) => {
                count(&mut self.rooms, &self.stats, Metric::Rejected, room);
                warn!(route = %route, reason = %reason, "The platform rejected a message.");
                pop(&mut *self.outbox, self.store.as_ref(), room);
            }
            Err(SendFailure::RoomBroken { reason }) => {
                count(&mut self.rooms, &self.stats, Metric::Rejected, room);
                error!(route = %route, reason = %reason, "Destination room is unusable; fix the configuration. Its messages are dropped.");
                if let Some(state) = self.rooms.get_mut(room) {
                    state.broken = true;
                }
                pop(&mut *self.outbox, self.store.as_ref(), room);
            }
            Err(SendFailure::Fatal { reason }) => {
                count(&mut self.rooms, &self.stats, Metric::Dropped, room);
                error!(route = %route, reason = %reason, "Account failed: message dropped.");
                pop(&mut *self.outbox, self.store.as_ref(), room);
            }
        }
        self.pump(room);
        series(&mut self.rooms, &self.stats, room).set_queued(self.outbox.len(room));
    }
}

/// Takes a room's first message off its queue, and out of the store.
fn pop(outbox: &mut dyn Outbox, store: Option<&crate::store::Store>, room: &RoomAddr) -> Option<Queued> {
    let item = outbox.pop_front(room)?;
    if let Some(store) = store {
        store.delete(item.key);
    }
    Some(item)
}

/// A room's counters, looked up once and kept in its state.
fn series(rooms: &mut Map<RoomAddr, RoomState>, stats: &Stats, room: &RoomAddr) -> Arc<crate::stats::Series> {
    let state = match rooms.get_mut(room) {
        Some(state) => state,
        None => rooms.entry(room.clone()).or_default(),
    };
    Arc::clone(state.series.get_or_insert_with(|| stats.room(room)))
}

/// Counts one `metric` for a destination room.
fn count(rooms: &mut Map<RoomAddr, RoomState>, stats: &Stats, metric: Metric, room: &RoomAddr) {
    let series = series(rooms, stats, room);
    stats.add(metric, &series);
}

/// `source room → destination room`, for log lines about one message; formatted only when logged.
struct Route<'a>(&'a RoomAddr, &'a RoomAddr);

impl std::fmt::Display for Route<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} → {}", self.0, self.1)
    }
}

fn route<'a>(event: &'a Event, to: &'a RoomAddr) -> Route<'a> {
    Route(&event.origin.room, to)
}

async fn next_commit(committed: &mut Option<mpsc::UnboundedReceiver<u64>>) -> Option<u64> {
    match committed {
        Some(committed) => committed.recv().await,
        None => std::future::pending().await,
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
