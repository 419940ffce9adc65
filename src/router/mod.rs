//! The router task: owns the compiled rules, the id map, the destination queues and the directory of
//! senders. It decides for each inbound event which rooms receive what, hands one send per room at a
//! time to the destination's adapter, and never awaits a platform call.

pub mod directory;
pub mod idmap;
pub mod limit;
pub mod port;
pub mod queue;
pub mod reconfigure;
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

use crate::config::SendLimit;
use crate::link::{AccountState, RouterInput, SendAction, SendFailure, SendRequest, doubled};
use crate::model::{AccountId, Capabilities, Event, EventKind, RemoteId, RoomAddr};
use crate::stats::{Metric, Stats};
use directory::Directory;
use idmap::{GroupId, IdStore, Snippet};
use limit::Bucket;
use port::{InMemory, Persist, StoreEvent, Stored};
use queue::{Outbox, Queued};
use render::{Rendered, Target, render};
use rules::{Destination, Rules, Skip};

pub use crate::model::Map;

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
    pub sends: mpsc::UnboundedSender<SendRequest>,
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
    /// The daemon's reload requests.
    control: Option<mpsc::UnboundedReceiver<reconfigure::Control>>,
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
            store: Box::new(store),
            store_events,
            next_key: 1,
            buckets,
            backing_off: Default::default(),
            limits,
            held: Default::default(),
            settling: Map::default(),
            control: None,
        }
    }

    /// Makes the router durable: the id map gets back the groups the store kept, what the outbox holds is
    /// queued first, in its order (rooms with more than fit in memory read the rest as they drain), and
    /// from now on every message is written before it is sent, every copy's ids are recorded, and each
    /// room's cursor advances with the messages it produced.
    pub fn with_store(
        &mut self,
        store: Box<dyn Persist>,
        events: mpsc::UnboundedReceiver<StoreEvent>,
        opened: port::Opened,
    ) {
        for group in opened.groups {
            let members = group
                .members
                .into_iter()
                .filter_map(|m| {
                    let room = m.room.parse::<RoomAddr>().ok()?;
                    Some((room, m.ids.into_iter().map(RemoteId::new).collect(), m.ours))
                })
                .collect();
            let snippet = Snippet { sender: group.sender, text: group.text, time: crate::model::Time(group.time) };
            self.ids.restore(GroupId(group.id), snippet, members);
        }
        if let Some(last) = opened.last_group {
            self.ids.continue_after(GroupId(last));
        }
        self.next_key = opened.last_key + 1;
        self.store = store;
        self.store_events = events;
        let restored = opened.outbox.len();
        for row in opened.outbox {
            let key = row.key;
            if let Some((room, mut item)) = self.restore(row) {
                // Only a room's first message can have been in flight at the crash: the rest never left.
                item.restored = self.outbox.len(&room) == 0;
                self.outbox.push(&room, item);
                let state = self.rooms.entry(room).or_default();
                state.last_key = state.last_key.max(key);
            }
        }
        let mut spilled = 0;
        for (room, count) in opened.backlog {
            let Ok(room) = room.parse::<RoomAddr>() else { continue };
            let state = self.rooms.entry(room).or_default();
            state.spill_high = opened.last_key;
            state.spilled = count;
            spilled += count;
        }
        if restored + spilled > 0 {
            info!(messages = restored + spilled, "Delivering what was queued before the restart first.");
        }
    }

    /// A stored outbox row as a queued message (marked as possibly sent before); `None` for a room no
    /// longer in the configuration.
    fn restore(&mut self, row: Stored) -> Option<(RoomAddr, Queued)> {
        let Some(to) = self.rules.find(&row.bridge, &row.room) else {
            debug!(room = %row.room, bridge = %row.bridge, "A stored message's room is no longer in the configuration; it stays in the store.");
            return None;
        };
        let room = self.rules.room(to).addr.clone();
        let port::Record { event, client_ids, group } = row.record;
        let group = match group {
            Some(group) => Some(GroupId(group)),
            // Rows written before the id map was stored: the copies made before the restart are unknown.
            None => matches!(event.kind, EventKind::Message(_)).then(|| {
                let sender = event.sender.as_ref().map(|s| s.name.clone());
                self.ids.new_group(None, Snippet { sender, text: String::new(), time: event.time })
            }),
        };
        let item = Queued {
            event: Arc::new(event),
            to,
            group,
            attempts: 0,
            client_ids,
            key: row.key,
            restored: true,
            since: std::time::Instant::now(),
        };
        Some((room, item))
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
        loop {
            if deadline.is_some() && self.is_idle() {
                break;
            }
            tokio::select! {
                _ = async { watchdog.as_mut().expect("only polled when set").tick().await }, if watchdog.is_some() => {
                    crate::notify::alive();
                    continue;
                }
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
                Some(event) = self.store_events.recv() => self.store_event(event),
                Some(control) = next_control(&mut self.control) => self.control(control),
                _ = stop.cancelled(), if deadline.is_none() => {
                    info!(waiting = self.waiting(), "Shutting down: delivering what is queued.");
                    deadline = Some(Instant::now() + self.settings.shutdown_timeout);
                }
                _ = sleep_until(deadline) => break,
            }
            if !self.settling.is_empty() {
                self.settle();
            }
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

    /// Closes the store and says what it keeps: the outbox as the database holds it, not as the queues
    /// counted it.
    fn end_store(&mut self, store: Box<dyn Persist>, left: usize) {
        let closing = store.close();
        match closing.stored {
            Some(0) if closing.unwritten == 0 => {}
            Some(stored) if closing.unwritten == 0 => info!(
                undelivered = left,
                stored,
                "Stopped with messages still queued: they are kept in the store and delivered at the next start."
            ),
            stored => error!(
                undelivered = left,
                stored = stored.map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
                lost = closing.unwritten,
                "Stopped with messages still queued, and the store could not keep them all: those not stored are lost."
            ),
        }
    }

    /// Handles a report of the store's writer: commits are counted, reads bring spilled messages back.
    pub(crate) fn store_event(&mut self, event: StoreEvent) {
        match event {
            StoreEvent::Committed { written, skipped } => {
                self.stats.store_commits.inc();
                self.stats.store_rows_written.add(written);
                self.stats.store_rows_skipped.add(skipped);
            }
            StoreEvent::Loaded { room, rows, through, exhausted } => self.loaded(&room, rows, through, exhausted),
            StoreEvent::Failing { reason } => self.stats.store.set(Some(reason)),
            StoreEvent::Recovered => self.stats.store.set(None),
            StoreEvent::Sizes { outbox, dead_letters } => {
                self.stats.stored_outbox.store(outbox, std::sync::atomic::Ordering::Relaxed);
                self.stats.stored_dead_letters.store(dead_letters, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Messages queued, in memory and spilled to the store.
    fn waiting(&self) -> usize {
        self.outbox.total() + self.rooms.values().map(|r| r.spilled).sum::<usize>()
    }

    fn is_idle(&self) -> bool {
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
        self.end();
    }

    fn route(&mut self, event: Event) {
        let origin = &event.origin.room;
        if let Some(cursor) = &event.origin.cursor {
            // In the same transaction as the outbox rows this event produces.
            self.store.cursor(origin, cursor);
        }
        if event.origin.replayed {
            let oldest = crate::model::Time::now().0 - self.settings.gap_fill_window.as_millis() as i64;
            if event.time.0 < oldest {
                self.stats.filtered.inc();
                debug!(room = %origin, "Gap filling: older than gap_fill_window, not replayed.");
                return;
            }
        }
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
        // Counted here, not where the adapter hands it over: the bridge's own echoes are counted apart.
        self.stats.count(crate::stats::Metric::Received, origin);
        // A message whose id is known already was relayed before: a gap fill overlapping what came live,
        // or the platform delivering it twice.
        if let (EventKind::Message(_), Some(id)) = (&event.kind, &event.origin.remote_id)
            && (if event.origin.replayed {
                self.ids.group_of(origin, id).is_some()
            } else {
                self.ids.knows(origin, id)
            })
        {
            self.stats.duplicates.inc();
            trace!(room = %origin, id = %id.as_str(), "Seen before: not relayed again.");
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
                let snippet = Snippet { sender, text, time: event.time };
                if self.store.durable() {
                    let group = self.ids.new_group(origin, snippet.clone());
                    self.store.group(group.0, origin, &snippet);
                    Some(group)
                } else {
                    Some(self.ids.new_group(origin, snippet))
                }
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
            if self.store.durable() {
                self.store.put(key, &room, self.rules.bridge_name(to), &event, &client_ids, group.map(|g| g.0));
                let full = self.outbox.len(&room) >= self.settings.queue_capacity;
                let state = self.rooms.entry(room.clone()).or_default();
                if full || state.has_spilled() {
                    // Kept in the store only; read back, in order, as the queue drains.
                    if !state.has_spilled() {
                        warn!(room = %room, "Destination queue full: further messages wait in the store.");
                    }
                    state.spill_high = key;
                    state.spilled += 1;
                    self.refill(&room);
                    self.gauge(&room);
                    continue;
                }
                state.last_key = key;
            }
            let item = Queued {
                event: Arc::clone(&event),
                to,
                group,
                attempts: 0,
                client_ids,
                key,
                restored: false,
                since: std::time::Instant::now(),
            };
            if let Some(dropped) = self.outbox.push(&room, item) {
                count(&mut self.rooms, &self.stats, Metric::Dropped, &room);
                error!(route = %route(&dropped.event, &room), "Destination queue full (durable = false): dropped its oldest message.");
            }
            self.pump(&room);
            self.gauge(&room);
        }
    }

    /// Hands the room's next message to its adapter, unless one is out, a retry is scheduled, the
    /// account is reconnecting, or its rate limit says wait.
    fn pump(&mut self, room: &RoomAddr) {
        let state = self.rooms.entry(room.clone()).or_default();
        if state.in_flight
            || state.retry_at.is_some()
            || self.backing_off.contains(&room.account)
            || self.held.contains(&room.account)
        {
            return;
        }
        let broken = state.broken;
        while let Some(item) = self.outbox.front_mut(room) {
            if broken {
                self.give_up(room, "the destination room is unusable".to_owned(), true);
                continue;
            }
            // Every room's account has a link, but for one a reload removed (its rooms are forgotten with it).
            let Some(link) = self.accounts.get(&room.account) else { return };
            let to = item.to;
            let target = Target { room: self.rules.room(to), bridge: self.rules.bridge_name(to), caps: link.caps };
            let action = match render(&item.event, &target, self.ids.as_mut(), &self.directory) {
                Rendered::Send(action) => action,
                Rendered::Skip(reason) => {
                    debug!(route = %route(&item.event, room), reason, "Not sent.");
                    self.pop(room);
                    continue;
                }
            };
            if let Some(bucket) = self.buckets.get_mut(&room.account)
                && let Err(wait) = bucket.take(std::time::Instant::now())
            {
                trace!(room = %room, "Rate limited: waiting {wait:?}.");
                let key = self.retries.insert(room.clone(), wait);
                self.rooms.entry(room.clone()).or_default().retry_at = Some(key);
                return;
            }
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
                maybe_sent: item.attempts > 1 || item.restored,
                event_time: item.event.time,
            };
            if link.sends.send(request).is_err() {
                self.give_up(room, "the account has stopped".to_owned(), false);
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
                    self.store.copy(group.0, room, &remote_ids);
                }
                count(&mut self.rooms, &self.stats, Metric::Relayed, room);
                debug!(route = %route, "Delivered.");
                self.pop(room);
            }
            Err(SendFailure::Transient { after, reason })
                if item.attempts < self.settings.max_attempts || item.since.elapsed() < self.settings.max_age =>
            {
                let delay = after.unwrap_or_else(|| {
                    doubled(self.settings.retry_delay, self.settings.retry_max, item.attempts.saturating_sub(1))
                });
                debug!(route = %route, attempt = item.attempts, reason = %reason, "Send failed; retrying in {delay:?}.");
                if after.is_some()
                    && let Some(bucket) = self.buckets.get_mut(&room.account)
                {
                    // The platform's retry-after holds the whole account, not just this room.
                    bucket.pause_until(std::time::Instant::now() + delay);
                }
                let key = self.retries.insert(room.clone(), delay);
                if let Some(state) = self.rooms.get_mut(room) {
                    state.retry_at = Some(key);
                }
                self.gauge(room);
                return;
            }
            Err(SendFailure::Transient { reason, .. }) => {
                let reason =
                    format!("{} attempts over {}s; the last: {reason}", item.attempts, item.since.elapsed().as_secs());
                self.give_up(room, reason, false);
            }
            Err(SendFailure::Rejected { reason }) => {
                count(&mut self.rooms, &self.stats, Metric::Rejected, room);
                warn!(route = %route, reason = %reason, "The platform rejected a message; it is not sent again.");
                self.pop(room);
            }
            Err(SendFailure::RoomBroken { reason }) => {
                count(&mut self.rooms, &self.stats, Metric::Rejected, room);
                error!(route = %route, reason = %reason, "Destination room is unusable; fix the configuration. Its messages are given up.");
                if let Some(state) = self.rooms.get_mut(room) {
                    state.broken = true;
                }
                self.retire(room, format!("the destination room is unusable: {reason}"));
            }
            Err(SendFailure::Fatal { reason }) => {
                self.give_up(room, format!("the account failed: {reason}"), false);
            }
        }
        self.pump(room);
        self.gauge(room);
    }

    /// Takes a room's first message off its queue and out of the store (it was delivered, rejected, or
    /// needs no sending), and reads spilled messages back when the queue runs low.
    fn pop(&mut self, room: &RoomAddr) -> Option<Queued> {
        let item = self.outbox.pop_front(room)?;
        self.store.delete(item.key);
        self.refill(room);
        Some(item)
    }

    /// Gives up a room's first message: to the dead letters with the store (ERROR, unless `quiet`, for the
    /// rest of a broken room's queue), dropped without it.
    fn give_up(&mut self, room: &RoomAddr, reason: String, quiet: bool) {
        let Some(item) = self.outbox.front_mut(room) else { return };
        let route = route(&item.event, room);
        let (metric, what) = if self.store.durable() {
            (Metric::DeadLettered, "moved to the dead letters (`chatbridge deadletters` lists and re-queues them)")
        } else {
            (Metric::Dropped, "dropped (durable = false)")
        };
        if quiet {
            debug!(route = %route, reason = %reason, "Giving up on a message: {what}.");
        } else {
            error!(route = %route, reason = %reason, "Giving up on a message: {what}.");
        }
        count(&mut self.rooms, &self.stats, metric, room);
        self.retire(room, reason);
    }

    /// Takes a room's first message off its queue into the dead letters (or nowhere, without a store).
    fn retire(&mut self, room: &RoomAddr, reason: String) {
        let Some(item) = self.outbox.pop_front(room) else { return };
        self.store.dead_letter(item.key, reason);
        self.refill(room);
    }

    /// Asks the store for a room's spilled messages once its queue is down to half.
    fn refill(&mut self, room: &RoomAddr) {
        if !self.store.durable() {
            return;
        }
        let Some(state) = self.rooms.get_mut(room) else { return };
        let len = self.outbox.len(room);
        let capacity = self.settings.queue_capacity.max(2);
        if !state.has_spilled() || state.loading.is_some() || len > capacity / 2 {
            return;
        }
        let limit = capacity - len;
        state.loading = Some((limit, self.next_key - 1));
        self.store.load(room, state.last_key, limit);
    }

    /// Spilled messages read back from the store.
    fn loaded(&mut self, room: &str, rows: Vec<Stored>, through: u64, exhausted: bool) {
        let Ok(room) = room.parse::<RoomAddr>() else { return };
        let Some(state) = self.rooms.get_mut(&room) else { return };
        let Some((_, asked_at)) = state.loading.take() else { return };
        state.last_key = state.last_key.max(through);
        if exhausted {
            // Everything spilled before the read was asked for has been read.
            state.last_key = state.last_key.max(asked_at);
        }
        let count = rows.len();
        for row in rows {
            // Spilled messages were never handed to an adapter.
            if let Some((_, mut item)) = self.restore(row) {
                item.restored = false;
                self.outbox.push(&room, item);
            }
        }
        let state = self.rooms.entry(room.clone()).or_default();
        state.spilled = if state.has_spilled() { state.spilled.saturating_sub(count).max(1) } else { 0 };
        if !state.has_spilled() {
            info!(room = %room, "Destination queue caught up with what waited in the store.");
        }
        self.pump(&room);
        self.refill(&room);
        self.gauge(&room);
    }

    /// Updates a room's queue-depth gauge (memory and store).
    fn gauge(&mut self, room: &RoomAddr) {
        let spilled = self.rooms.get(room).map_or(0, |r| r.spilled);
        series(&mut self.rooms, &self.stats, room).set_queued(self.outbox.len(room) + spilled);
    }
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

async fn next_control(
    control: &mut Option<mpsc::UnboundedReceiver<reconfigure::Control>>,
) -> Option<reconfigure::Control> {
    match control {
        Some(control) => control.recv().await,
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
