//! What the operator asks of the running router (the admin API, issue #32 §3): pausing and resuming a bridge or a
//! room — nothing is handed to it meanwhile, what comes for it queues (in memory, then in the store) — and putting
//! dead letters back at the end of their rooms' queues, delivered now rather than at the next start.

use std::collections::{HashSet, VecDeque};

use tokio::sync::oneshot;
use tracing::info;

use super::port::Stored;
use super::rules::{Destination, Rules};
use super::{RoomAddr, Router};

/// The operator's pauses, and the requeues the store is working on.
#[derive(Default)]
pub(super) struct Operated {
    bridges: HashSet<String>,
    rooms: HashSet<RoomAddr>,
    /// Who waits for each requeue the store was asked for, in the order asked (the store answers in order).
    requeues: VecDeque<oneshot::Sender<Result<usize, String>>>,
}

impl Operated {
    pub(super) fn any_paused(&self) -> bool {
        !self.bridges.is_empty() || !self.rooms.is_empty()
    }
}

/// Whether a message for the bridge room `to` in `room` waits for a resume (fields, not the router: the pump asks
/// while it holds the queue's front).
pub(super) fn paused(operated: &Operated, rules: &Rules, room: &RoomAddr, to: Destination) -> bool {
    operated.rooms.contains(room) || operated.bridges.contains(rules.bridge_name(to))
}

/// A pause or a resume: a bridge's rooms, or one room (by its address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pause {
    pub bridge: String,
    pub room: Option<RoomAddr>,
    pub paused: bool,
}

impl Router {
    /// Whether the message at the front of `room`'s queue, for the bridge room `to`, waits for a resume.
    pub(super) fn is_paused(&self, room: &RoomAddr, to: Destination) -> bool {
        self.operated.any_paused() && paused(&self.operated, &self.rules, room, to)
    }

    pub(super) fn pause(&mut self, pause: Pause) {
        let Pause { bridge, room, paused } = pause;
        match (&room, paused) {
            (Some(room), true) => self.operated.rooms.insert(room.clone()),
            (Some(room), false) => self.operated.rooms.remove(room),
            (None, true) => self.operated.bridges.insert(bridge.clone()),
            (None, false) => self.operated.bridges.remove(&bridge),
        };
        let what = room.as_ref().map_or_else(|| format!("bridge {bridge}"), |r| format!("room {r}"));
        info!(what = %what, paused, "{}", if paused { "Paused by the operator." } else { "Resumed by the operator." });
        {
            let mut shown = self.stats.paused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            shown.bridges = self.operated.bridges.iter().cloned().collect();
            shown.rooms = self.operated.rooms.iter().map(ToString::to_string).collect();
        }
        if !paused {
            let rooms: Vec<RoomAddr> = match room {
                Some(room) => vec![room],
                None => self.rooms.keys().cloned().collect(),
            };
            for room in rooms {
                self.pump(&room);
                self.refill(&room);
            }
        }
    }

    /// Asks the store to move dead letters back to the outbox, with keys after every key given so far.
    pub(super) fn requeue(&mut self, keys: Vec<u64>, reply: oneshot::Sender<Result<usize, String>>) {
        let first = self.next_key;
        if !self.store.durable() || !self.store.requeue(&keys, first) {
            let _ = reply.send(Err("this daemon keeps no dead letters to requeue here".to_owned()));
            return;
        }
        self.next_key += keys.len() as u64;
        self.operated.requeues.push_back(reply);
    }

    /// The store moved them: each joins its room's queue — in memory where the room has nothing waiting in the
    /// store (and at its end), else read back with what waits there, in key order.
    pub(super) fn requeued(&mut self, rows: Vec<Stored>) {
        let moved = rows.len();
        let mut touched = Vec::new();
        for row in rows {
            if !self.accounts.contains_key(&row.room.account) {
                continue;
            }
            let key = row.key;
            let Some((room, item)) = self.restore(row) else { continue };
            let state = self.rooms.entry(room.clone()).or_default();
            if state.has_spilled() || state.loading.is_some() {
                state.spill_high = state.spill_high.max(self.next_key);
                state.spilled = state.spilled.max(1);
                self.next_key += 1;
            } else {
                state.last_key = state.last_key.max(key);
                self.outbox.push(&room, item);
            }
            touched.push(room);
        }
        touched.dedup();
        info!(messages = moved, "Dead letters requeued by the operator.");
        for room in touched {
            self.pump(&room);
            self.refill(&room);
            self.gauge(&room);
        }
        if let Some(reply) = self.operated.requeues.pop_front() {
            let _ = reply.send(Ok(moved));
        }
    }

    /// Whether `room` holds messages that wait for a resume (the front one is paused).
    pub(super) fn paused_queue(&self, room: &RoomAddr) -> bool {
        self.outbox.peek(room, 0).is_some_and(|front| self.is_paused(room, front.to))
    }

    /// A stop: with a store, what paused rooms hold stays there for the next start; without one it would be lost,
    /// so they are resumed and delivered first.
    pub(super) fn stopping_paused(&mut self) {
        if !self.operated.any_paused() || self.store.durable() {
            return;
        }
        info!("Stopping without a store: the paused bridges and rooms are resumed, to deliver what they hold.");
        let (bridges, rooms): (Vec<String>, Vec<RoomAddr>) =
            (self.operated.bridges.iter().cloned().collect(), self.operated.rooms.iter().cloned().collect());
        for bridge in bridges {
            self.pause(Pause { bridge, room: None, paused: false });
        }
        for room in rooms {
            self.pause(Pause { bridge: String::new(), room: Some(room), paused: false });
        }
    }
}
