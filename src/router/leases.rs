//! With a store instances share, where rooms are leased one by one (Missevan: a socket per room): a room comes to
//! this instance, is handed over to another, or is lost, while its account's other rooms go on here. The account's
//! own hand-overs are `reconfigure.rs`'s; these are the same steps for one room.

use std::collections::{HashMap, HashSet};

use tokio::sync::oneshot;
use tracing::info;

use super::Router;
use crate::model::RoomAddr;

#[derive(Default)]
pub(super) struct RoomLeases {
    /// Rooms being handed over: nothing new is handed to their adapter.
    held: HashSet<RoomAddr>,
    /// Who to tell once such a room has no send out.
    settling: HashMap<RoomAddr, oneshot::Sender<()>>,
}

impl RoomLeases {
    pub(super) fn holds_back(&self, room: &RoomAddr) -> bool {
        !self.held.is_empty() && self.held.contains(room)
    }

    pub(super) fn settling(&self) -> bool {
        !self.settling.is_empty()
    }
}

impl Router {
    /// The room's lease came here (its account may run here already): what the store holds for it is read.
    pub(super) fn claim_room(&mut self, room: RoomAddr) {
        self.room_leases.held.remove(&room);
        self.pump(&room);
        self.arrived(&room);
    }

    /// The room goes to another instance: nothing new is handed out for it, and `done` hears once no send is out.
    pub(super) fn hold_room(&mut self, room: RoomAddr, done: oneshot::Sender<()>) {
        self.room_leases.held.insert(room.clone());
        self.room_leases.settling.insert(room, done);
        self.settle_rooms();
    }

    /// Tells of each room being handed over that has no send out.
    pub(super) fn settle_rooms(&mut self) {
        let settled: Vec<RoomAddr> = self
            .room_leases
            .settling
            .keys()
            .filter(|room| self.rooms.get(*room).is_none_or(|state| !state.in_flight))
            .cloned()
            .collect();
        for room in settled {
            if let Some(done) = self.room_leases.settling.remove(&room) {
                let _ = done.send(());
            }
        }
    }

    /// The room runs elsewhere now: what is queued for it leaves memory (it stays in the store, where the room's
    /// new instance reads it).
    pub(super) fn disown_room(&mut self, room: &RoomAddr) {
        self.room_leases.held.remove(room);
        self.room_leases.settling.remove(room);
        let left = self.forget_room(room);
        info!(%room, queued = left, "Room handed to another instance; what is queued for it stays in the store.");
    }
}
