//! Destination queues: one ordered, bounded queue per destination room. In memory; with the store, what
//! does not fit waits there (spilled) and is read back in order.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::model::{Event, RemoteId, RoomAddr};
use crate::router::Map;
use crate::router::idmap::GroupId;
use crate::router::rules::Destination;

/// One event waiting to be sent to one room.
#[derive(Clone, Debug)]
pub struct Queued {
    pub event: Arc<Event>,
    /// The bridge room it goes to (its options render it).
    pub to: Destination,
    /// The group of the message, for recording the copy's ids.
    pub group: Option<GroupId>,
    /// Attempts made so far.
    pub attempts: u32,
    /// The client-chosen ids (one per part), kept across attempts (and restarts) so a replay is recognisable.
    pub client_ids: Vec<RemoteId>,
    /// Its key in the store's outbox (and its place in the order of all queued messages).
    pub key: u64,
    /// Read back from the store (it may have been sent before a crash).
    pub restored: bool,
    /// When it was queued (or read back at start): its age decides, with its attempts, when it is given up.
    pub since: std::time::Instant,
}

/// The queues of all destination rooms.
pub trait Outbox: Send {
    /// Appends to a room's queue (how long a queue may grow is the router's to decide: `queue_capacity`).
    fn push(&mut self, room: &RoomAddr, item: Queued);
    /// Takes out the oldest message of a room that is not being sent (the front, and what is merged into its
    /// send, may be in flight).
    fn drop_oldest_waiting(&mut self, room: &RoomAddr) -> Option<Queued>;
    fn front_mut(&mut self, room: &RoomAddr) -> Option<&mut Queued>;
    /// The room's message at `index` from the front.
    fn peek(&self, room: &RoomAddr, index: usize) -> Option<&Queued>;
    /// The room's message at `index` from the front, to change.
    fn get_mut(&mut self, room: &RoomAddr, index: usize) -> Option<&mut Queued>;
    fn pop_front(&mut self, room: &RoomAddr) -> Option<Queued>;
    fn len(&self, room: &RoomAddr) -> usize;
    /// Messages waiting in all rooms.
    fn total(&self) -> usize;
    /// Visits every queued message (a reload points them at the rooms of the new rules).
    fn for_each_mut(&mut self, visit: &mut dyn FnMut(&RoomAddr, &mut Queued));
}

/// The queues in memory, one per room.
#[derive(Default)]
pub struct MemoryOutbox {
    rooms: Map<RoomAddr, VecDeque<Queued>>,
    total: usize,
}

impl MemoryOutbox {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Outbox for MemoryOutbox {
    fn push(&mut self, room: &RoomAddr, item: Queued) {
        self.rooms.entry(room.clone()).or_default().push_back(item);
        self.total += 1;
    }

    fn drop_oldest_waiting(&mut self, room: &RoomAddr) -> Option<Queued> {
        let queue = self.rooms.get_mut(room)?;
        // The front may be in flight (with the messages merged into its send): the oldest waiting message is
        // the first one not yet handed out.
        let oldest = queue.iter().position(|q| q.attempts == 0)?;
        let dropped = queue.remove(oldest)?;
        self.total -= 1;
        Some(dropped)
    }

    fn front_mut(&mut self, room: &RoomAddr) -> Option<&mut Queued> {
        self.rooms.get_mut(room)?.front_mut()
    }

    fn peek(&self, room: &RoomAddr, index: usize) -> Option<&Queued> {
        self.rooms.get(room)?.get(index)
    }

    fn get_mut(&mut self, room: &RoomAddr, index: usize) -> Option<&mut Queued> {
        self.rooms.get_mut(room)?.get_mut(index)
    }

    fn pop_front(&mut self, room: &RoomAddr) -> Option<Queued> {
        let item = self.rooms.get_mut(room)?.pop_front()?;
        self.total -= 1;
        Some(item)
    }

    fn len(&self, room: &RoomAddr) -> usize {
        self.rooms.get(room).map_or(0, VecDeque::len)
    }

    fn total(&self) -> usize {
        self.total
    }

    fn for_each_mut(&mut self, visit: &mut dyn FnMut(&RoomAddr, &mut Queued)) {
        for (room, queue) in &mut self.rooms {
            for item in queue {
                visit(room, item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, EventKind, Platform, RoomId};

    fn room() -> RoomAddr {
        RoomAddr::new(AccountId::new(Platform::Fishroom, "t"), RoomId::new("r"))
    }

    fn item(n: u32) -> Queued {
        let event = Event::new(room(), None, None, EventKind::Notice { text: n.to_string() });
        Queued {
            event: Arc::new(event),
            to: Destination { bridge: 0, room: 0 },
            group: None,
            attempts: 0,
            client_ids: Vec::new(),
            key: 0,
            restored: false,
            since: std::time::Instant::now(),
        }
    }

    fn text(q: &Queued) -> String {
        match &q.event.kind {
            EventKind::Notice { text } => text.clone(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_oldest_waiting_message_is_the_one_dropped() {
        let mut outbox = MemoryOutbox::new();
        for n in 1..=3 {
            outbox.push(&room(), item(n));
        }
        assert_eq!(text(&outbox.drop_oldest_waiting(&room()).unwrap()), "1");
        // Once the front is being sent, it stays; the next oldest goes.
        outbox.front_mut(&room()).unwrap().attempts = 1;
        outbox.push(&room(), item(4));
        assert_eq!(text(&outbox.drop_oldest_waiting(&room()).unwrap()), "3");
        assert_eq!(outbox.total(), 2);
        let order: Vec<_> = std::iter::from_fn(|| outbox.pop_front(&room())).map(|q| text(&q)).collect();
        assert_eq!(order, ["2", "4"]);
        assert_eq!(outbox.total(), 0);
    }
}
