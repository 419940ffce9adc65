//! Routing: an inbound event checked (echo, duplicate, gap-fill age) and queued for every destination room.

use std::sync::Arc;

use tracing::{debug, error, info, trace, warn};

use super::port::Put;

use super::*;

impl Router {
    pub(super) fn route(&mut self, mut event: Event) {
        super::sanitise::event(&mut event);
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
            Ok(()) => {
                self.fold_presence(&event, &mut destinations);
                self.hold_combo(&event, &mut destinations);
                if !destinations.is_empty() {
                    self.enqueue(event, &destinations);
                }
            }
            Err(skip) => {
                self.stats.filtered.inc();
                match (skip, &event.kind) {
                    (Skip::Unsupported, EventKind::Unsupported { kind, .. }) => {
                        let platform = origin.account.platform().as_str();
                        if let Some(kind) = self.stats.unknown_kinds.count(platform, kind) {
                            info!(platform, kind = %kind, room = %origin, "A kind of event this bridge does not carry: not relayed, counted in /metrics (chatbridge_events_unknown_kind_total); said once per kind.");
                        } else {
                            debug!(room = %origin, kind = %kind, "Unsupported event: not relayed.");
                        }
                    }
                    _ => debug!(room = %origin, reason = ?skip, "Event not relayed."),
                }
            }
        }
        self.scratch = destinations;
    }

    pub(super) fn enqueue(&mut self, event: Event, destinations: &[Destination]) {
        let group = match &event.kind {
            EventKind::Message(message) => {
                let origin = event.origin.remote_id.as_ref().map(|id| (&event.origin.room, id));
                let mut text = message.content.to_plain_text();
                if let Some((end, _)) = text.char_indices().nth(SNIPPET_CHARS) {
                    text.truncate(end);
                }
                // The id map copies what it keeps into its group; the store's operation takes the snippet itself.
                let sender = event.sender.as_ref().map(|s| s.name.clone());
                let snippet = Snippet { sender, text, time: event.time };
                let group = self.ids.new_group(origin, &snippet);
                if self.store.durable() {
                    self.store.group(group.0, origin, snippet);
                }
                Some(group)
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
                // With a store several instances share, a room another instance runs (its account, or the room
                // itself where rooms are leased one by one) gets its messages through the store only: that
                // instance reads them from there.
                let elsewhere =
                    self.store.shared() && (!self.accounts.contains_key(&room.account) || !self.store.holds(&room));
                let full = self.outbox.len(&room) >= self.settings.queue_capacity;
                let spilled = self.rooms.get(&room).is_some_and(RoomState::has_spilled);
                let in_memory = !(elsewhere || full || spilled);
                let bridge = self.rules.bridge_name(to);
                let group = group.map(|g| g.0);
                self.store.put(Put {
                    key,
                    room: &room,
                    bridge,
                    event: &event,
                    client_ids: &client_ids,
                    group,
                    in_memory,
                });
                trace!(route = %route(&event, &room), key, in_memory, "Queued.");
                if elsewhere {
                    trace!(route = %route(&event, &room), "Queued in the store for the instance that runs the room.");
                    continue;
                }
                let state = self.rooms.entry(room.clone()).or_default();
                if !in_memory {
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
            self.outbox.push(&room, item);
            // Without the store a queue cannot spill: past `queue_capacity` its oldest waiting message goes.
            if self.outbox.len(&room) > self.settings.queue_capacity.max(1)
                && let Some(dropped) = self.outbox.drop_oldest_waiting(&room)
            {
                count(&mut self.rooms, &self.stats, Metric::Dropped, &room);
                error!(route = %route(&dropped.event, &room), "Destination queue full (durable = false): dropped its oldest message.");
            }
            self.pump(&room);
            self.gauge(&room);
        }
    }
}
