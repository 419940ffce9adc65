//! The store side of the router: restoring what the store kept at start, the store's reports, and reading
//! spilled messages back as a room's queue drains.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{debug, error, info};

use super::deliver::series;
use super::port::{self, Persist, StoreEvent, Stored};
use super::*;

impl Router {
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
                .map(|m| (m.room, m.ids.into_iter().map(RemoteId::new).collect(), m.ours))
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
                // A shared store's keys come from every instance: only this router's own keys mark the order.
                if !self.store.shared() {
                    state.last_key = state.last_key.max(key);
                }
            }
        }
        let mut spilled = 0;
        for (room, count) in opened.backlog {
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
    pub(super) fn restore(&mut self, row: Stored) -> Option<(RoomAddr, Queued)> {
        let Some(to) = self.rules.find_addr(&row.bridge, &row.room) else {
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
                self.ids.new_group(None, &Snippet { sender, text: String::new(), time: event.time })
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

    /// Closes the store and says what it keeps: the outbox as the database holds it, not as the queues
    /// counted it.
    pub(super) fn end_store(&mut self, store: Box<dyn Persist>, left: usize) {
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
    pub(super) fn store_event(&mut self, event: StoreEvent) {
        match event {
            StoreEvent::Committed { written, skipped } => {
                self.stats.store_commits.inc();
                self.stats.store_rows_written.add(written);
                self.stats.store_rows_skipped.add(skipped);
            }
            StoreEvent::Loaded { room, rows, through, exhausted } => self.loaded(room, rows, through, exhausted),
            StoreEvent::Failing { reason } => self.stats.store.set(Some(reason)),
            StoreEvent::Recovered => self.stats.store.set(None),
            StoreEvent::Sizes { outbox, dead_letters } => {
                self.stats.stored_outbox.store(outbox, std::sync::atomic::Ordering::Relaxed);
                self.stats.stored_dead_letters.store(dead_letters, std::sync::atomic::Ordering::Relaxed);
            }
            StoreEvent::Arrived { room } => self.arrived(&room),
            StoreEvent::Fenced { refused } => self.stats.fencing_refusals.add(refused),
            StoreEvent::Requeued { rows } => self.requeued(rows),
        }
    }

    /// Rows for `room` came into the store from elsewhere: the room reads them as spilled ones, and queues
    /// what comes next behind them. Ignored for a room whose account does not run here, or whose own lease is
    /// held elsewhere (claiming it reads what is waiting): no state is kept for the rooms other instances run.
    pub(super) fn arrived(&mut self, room: &RoomAddr) {
        if !self.accounts.contains_key(&room.account) || !self.rules.has_room(room) || !self.store.holds(room) {
            return;
        }
        let key = self.next_key;
        self.next_key += 1;
        let state = self.rooms.entry(room.clone()).or_default();
        state.spill_high = state.spill_high.max(key);
        state.spilled = state.spilled.max(1);
        self.refill(room);
    }

    /// Asks the store for a room's spilled messages once its queue is down to half.
    pub(super) fn refill(&mut self, room: &RoomAddr) {
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
    pub(super) fn loaded(&mut self, room: RoomAddr, rows: Vec<Stored>, through: u64, exhausted: bool) {
        let Some(state) = self.rooms.get_mut(&room) else { return };
        let Some((_, asked_at)) = state.loading.take() else { return };
        state.last_key = state.last_key.max(through);
        if exhausted {
            // Everything spilled before the read was asked for has been read.
            state.last_key = state.last_key.max(asked_at);
        }
        let count = rows.len();
        for row in rows {
            // Spilled messages were never handed to an adapter; rows another instance held may have been.
            let held_before = row.held_before;
            if let Some((_, mut item)) = self.restore(row) {
                item.restored = held_before;
                self.outbox.push(&room, item);
            }
        }
        let state = self.rooms.entry(room.clone()).or_default();
        state.spilled = if state.has_spilled() { state.spilled.saturating_sub(count).max(1) } else { 0 };
        if !state.has_spilled() {
            if self.store.shared() {
                // Rows from other instances come and go all the time: not news.
                debug!(room = %room, "Destination queue caught up with what waited in the store.");
            } else {
                info!(room = %room, "Destination queue caught up with what waited in the store.");
            }
        }
        self.pump(&room);
        self.refill(&room);
        self.gauge(&room);
    }

    /// Takes a room's first message off its queue into the dead letters (or nowhere, without a store).
    pub(super) fn retire(&mut self, room: &RoomAddr, reason: String) {
        let Some(item) = self.outbox.pop_front(room) else { return };
        self.store.dead_letter(item.key, room, reason);
        self.refill(room);
    }

    /// Updates a room's queue-depth gauge (memory and store).
    pub(super) fn gauge(&mut self, room: &RoomAddr) {
        let spilled = self.rooms.get(room).map_or(0, |r| r.spilled);
        let lag = self.outbox.peek(room, 0).map_or(std::time::Duration::ZERO, |item| item.since.elapsed());
        let queued = self.outbox.len(room) + spilled;
        let series = if queued == 0 {
            // Nothing waits: a room without counters yet gets none for it (thousands of quiet rooms keep none).
            let Some(series) =
                self.rooms.get(room).and_then(|r| r.series.clone()).or_else(|| self.stats.room_if_any(room))
            else {
                return;
            };
            series
        } else {
            series(&mut self.rooms, &self.stats, room)
        };
        series.set_queued(queued);
        series.set_lag(lag);
    }
}
