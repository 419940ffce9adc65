//! Delivery: one send in flight per destination room, its acknowledgement, retries, giving up, and the
//! room's counters.

use std::sync::Arc;

use tracing::{debug, error, trace, warn};

use super::*;

/// How many sends answered at once are acknowledged in one turn of the router before it looks at its other inputs.
pub(super) const ANSWERS_PER_TURN: usize = 256;

impl Router {
    /// Hands the room's next message to its adapter, unless one is out, a retry is scheduled, the
    /// account is reconnecting, or its rate limit says wait.
    pub(super) fn pump(&mut self, room: &RoomAddr) {
        let state = self.rooms.entry(room.clone()).or_default();
        if state.in_flight
            || state.media_wait
            || state.retry_at.is_some()
            || self.backing_off.contains(&room.account)
            || self.held.contains(&room.account)
            || self.room_leases.holds_back(room)
        {
            return;
        }
        let broken = state.broken;
        if self.outbox.len(room) > 0 && !self.store.may_send(room) {
            // The account's lease is not current here: nothing goes out until it is renewed (or the account is
            // handed over, and its queue with it).
            let key = self.retries.insert(room.clone(), std::time::Duration::from_secs(1));
            self.rooms.entry(room.clone()).or_default().retry_at = Some(key);
            return;
        }
        while let Some(item) = self.outbox.front_mut(room) {
            if self.operated.any_paused() && operate::paused(&self.operated, &self.rules, room, item.to) {
                return;
            }
            if broken {
                self.give_up(room, "the destination room is unusable".to_owned(), true);
                continue;
            }
            // Every room's account has a link, but for one a reload removed (its rooms are forgotten with it).
            let Some(link) = self.accounts.get(&room.account) else { return };
            let caps = link.caps;
            // A merged or summary send tried again goes as it was, while the message it began with is still the
            // first (a reload or a give-up may have taken that one: then the send is forgotten).
            let front_key = item.key;
            let again = self.rooms.get_mut(room).and_then(|state| {
                if state.outgoing.as_ref().is_some_and(|o| o.front_key != front_key) {
                    state.outgoing = None;
                }
                state.outgoing.as_ref().map(|o| o.action.clone())
            });
            // Its media fetched first, where there is a media store (the room waits meanwhile).
            let media = match again {
                Some(_) => Vec::new(),
                None => match self.media_for(room) {
                    Some(media) => media,
                    None => return,
                },
            };
            let Some(item) = self.outbox.front_mut(room) else { return };
            let action = match again {
                Some(action) => action,
                None => {
                    let to = item.to;
                    let target = Target {
                        room: self.rules.room(to),
                        source: self.rules.source_room(to, &item.event.origin.room),
                        bridge: self.rules.bridge_name(to),
                        caps,
                        media: &media,
                    };
                    match render(&item.event, &target, self.ids.as_mut(), &self.directory) {
                        Rendered::Send(action) => action,
                        Rendered::Skip(reason) => {
                            debug!(route = %route(&item.event, room), reason, "Not sent.");
                            self.pop(room);
                            continue;
                        }
                    }
                }
            };
            if let Some(bucket) = self.buckets.get_mut(&room.account)
                && let Err(wait) = bucket.take(std::time::Instant::now())
            {
                trace!(room = %room, "Rate limited: waiting {wait:?}.");
                let key = self.retries.insert(room.clone(), wait);
                let state = self.rooms.entry(room.clone()).or_default();
                state.retry_at = Some(key);
                state.waited = true;
                series(&mut self.rooms, &self.stats, room).set_limited(true);
                return;
            }
            // The token came: what waited for it may go with the front message, or be summarised.
            let (waited, resending) = self
                .rooms
                .get_mut(room)
                .map_or((false, false), |state| (std::mem::take(&mut state.waited), state.outgoing.is_some()));
            if waited {
                series(&mut self.rooms, &self.stats, room).set_limited(false);
            }
            let mut action = action;
            if !resending && let Some(outgoing) = self.compose(room, caps, waited) {
                action = outgoing.action.clone();
                // What it stands for is out with it (a full queue drops only messages not yet handed out).
                for index in 1..outgoing.covers {
                    if let Some(covered) = self.outbox.get_mut(room, index) {
                        covered.attempts = 1;
                    }
                }
                if let Some(state) = self.rooms.get_mut(room) {
                    state.outgoing = Some(Box::new(outgoing));
                }
            }
            let Some(item) = self.outbox.front_mut(room) else { return };
            let Some(link) = self.accounts.get(&room.account) else { return };
            // A merged or summary send carries its own client id; a message of its own, the ones stored with it.
            let merged_ids = self.rooms.get(room).and_then(|s| s.outgoing.as_ref()).map(|o| o.client_ids.clone());
            let (client_ids, restored) = match merged_ids {
                Some(ids) => (ids, false),
                None => {
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
                    (item.client_ids.clone(), item.restored)
                }
            };
            item.attempts += 1;
            let request = SendRequest {
                room: room.room.clone(),
                action,
                client_ids,
                attempt: item.attempts,
                maybe_sent: item.attempts > 1 || restored,
                event_time: item.event.time,
            };
            // An adapter that answers at once is asked first, while its queue is open (an account that stopped
            // answers through its queue, or not at all).
            let answer = match link.sends.now.get() {
                Some(now) if !link.sends.queue.is_closed() => now.send_now(&request),
                _ => None,
            };
            if let Some(result) = answer {
                let state = self.rooms.entry(room.clone()).or_default();
                state.in_flight = true;
                state.sent_at = Some(std::time::Instant::now());
                self.answered.push_back((room.clone(), result));
                return;
            }
            if link.sends.queue.send(request).is_err() {
                let covers = self.rooms.get_mut(room).and_then(|s| s.outgoing.take()).map_or(1, |o| o.covers);
                for _ in 0..covers {
                    self.give_up(room, "the account has stopped".to_owned(), false);
                }
                continue;
            }
            let state = self.rooms.entry(room.clone()).or_default();
            state.in_flight = true;
            state.sent_at = Some(std::time::Instant::now());
            return;
        }
    }

    /// Acknowledges the sends answered at once, and the ones their answers hand out in turn — at most
    /// [`ANSWERS_PER_TURN`], so that a room with a long queue does not hold the router from its other inputs; the
    /// router's loop comes back for the rest.
    pub(super) fn take_answers(&mut self) {
        for _ in 0..ANSWERS_PER_TURN {
            let Some((room, result)) = self.answered.pop_front() else { return };
            self.acknowledge(&room, result);
        }
    }

    pub(super) fn acknowledge(&mut self, room: &RoomAddr, result: Result<Vec<RemoteId>, SendFailure>) {
        let Some(state) = self.rooms.get_mut(room) else { return };
        if !state.in_flight {
            warn!(room = %room, "Acknowledgement without a send in flight: ignored.");
            return;
        }
        state.in_flight = false;
        if let Some(sent_at) = state.sent_at.take() {
            self.stats.latency.observe(sent_at.elapsed());
        }
        // A merged or summary send is answered for every message it stands for.
        let retried = matches!(&result, Err(SendFailure::Transient { .. }))
            && self.outbox.peek(room, 0).is_some_and(|item| {
                item.attempts < self.settings.max_attempts || item.since.elapsed() < self.settings.max_age
            });
        if !retried && let Some(outgoing) = self.rooms.get_mut(room).and_then(|s| s.outgoing.take()) {
            let coalesce::Outgoing { covers, kind, group, members, .. } = *outgoing;
            self.answered_cover(room, covers, kind, group, members, result);
            self.pump(room);
            self.gauge(room);
            return;
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
                debug!(route = %route, key = item.key, id = %item.event.id, remote = ?remote_ids.first(), "Delivered.");
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

    /// The answer to a send that stood for the first `covers` messages (not a transient failure: that is retried
    /// as any other send).
    fn answered_cover(
        &mut self,
        room: &RoomAddr,
        covers: usize,
        kind: coalesce::Cover,
        group: Option<GroupId>,
        members: Vec<GroupId>,
        result: Result<Vec<RemoteId>, SendFailure>,
    ) {
        match result {
            Ok(remote_ids) => {
                if let Some(group) = group
                    && !remote_ids.is_empty()
                {
                    self.ids.add_copy(group, room, &remote_ids);
                    self.store.copy(group.0, room, &remote_ids);
                    for member in members {
                        self.ids.merged_into(member, room, group);
                    }
                }
                let metric = match kind {
                    coalesce::Cover::Merged => Metric::Coalesced,
                    coalesce::Cover::Summary => Metric::Summarised,
                };
                debug!(room = %room, messages = covers, ?kind, "Delivered as one message.");
                for _ in 0..covers {
                    count(&mut self.rooms, &self.stats, metric, room);
                    if kind == coalesce::Cover::Merged {
                        count(&mut self.rooms, &self.stats, Metric::Relayed, room);
                    }
                    self.pop(room);
                }
            }
            Err(SendFailure::Rejected { reason }) => {
                warn!(room = %room, messages = covers, reason = %reason, "The platform rejected a merged message; its messages are not sent again.");
                for _ in 0..covers {
                    count(&mut self.rooms, &self.stats, Metric::Rejected, room);
                    self.pop(room);
                }
            }
            Err(SendFailure::RoomBroken { reason }) => {
                error!(room = %room, reason = %reason, "Destination room is unusable; fix the configuration. Its messages are given up.");
                if let Some(state) = self.rooms.get_mut(room) {
                    state.broken = true;
                }
                for _ in 0..covers {
                    count(&mut self.rooms, &self.stats, Metric::Rejected, room);
                    self.retire(room, format!("the destination room is unusable: {reason}"));
                }
            }
            Err(SendFailure::Fatal { reason }) => {
                for _ in 0..covers {
                    self.give_up(room, format!("the account failed: {reason}"), false);
                }
            }
            Err(SendFailure::Transient { reason, .. }) => {
                for _ in 0..covers {
                    self.give_up(room, reason.clone(), false);
                }
            }
        }
    }

    /// Takes a room's first message off its queue and out of the store (it was delivered, rejected, or
    /// needs no sending), and reads spilled messages back when the queue runs low.
    pub(super) fn pop(&mut self, room: &RoomAddr) -> Option<Queued> {
        let item = self.outbox.pop_front(room)?;
        self.store.delete(item.key, room);
        self.refill(room);
        Some(item)
    }

    /// Gives up a room's first message: to the dead letters with the store (ERROR, unless `quiet`, for the
    /// rest of a broken room's queue), dropped without it.
    pub(super) fn give_up(&mut self, room: &RoomAddr, reason: String, quiet: bool) {
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
}

/// A room's counters, looked up once and kept in its state.
pub(super) fn series(
    rooms: &mut Map<RoomAddr, RoomState>,
    stats: &Stats,
    room: &RoomAddr,
) -> Arc<crate::stats::Series> {
    let state = match rooms.get_mut(room) {
        Some(state) => state,
        None => rooms.entry(room.clone()).or_default(),
    };
    Arc::clone(state.series.get_or_insert_with(|| stats.room(room)))
}

/// Counts one `metric` for a destination room.
pub(super) fn count(rooms: &mut Map<RoomAddr, RoomState>, stats: &Stats, metric: Metric, room: &RoomAddr) {
    let series = series(rooms, stats, room);
    stats.add(metric, &series);
}

/// `source room → destination room`, for log lines about one message; formatted only when logged.
pub(super) struct Route<'a>(pub(super) &'a RoomAddr, pub(super) &'a RoomAddr);

impl std::fmt::Display for Route<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} → {}", self.0, self.1)
    }
}

pub(super) fn route<'a>(event: &'a Event, to: &'a RoomAddr) -> Route<'a> {
    Route(&event.origin.room, to)
}
