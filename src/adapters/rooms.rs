//! An account's rooms as they change: a reload that adds a room to an account, or takes one away, tells its
//! running session instead of replacing it, on platforms where rooms are joined one by one (Missevan, Heihei,
//! Fishroom) or the session receives every chat anyway (Yunhu). [`per_room`] keeps one receiver per receiving
//! room, starting one for a room that comes and stopping the receiver of a room that goes.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{AdapterContext, AdapterRoom};
use crate::model::{RoomAddr, RoomId};

/// An account's rooms: those it was started with, and each list a reload gives it after.
#[derive(Clone, Debug)]
pub struct RoomList(watch::Receiver<Arc<Vec<AdapterRoom>>>);

impl Default for RoomList {
    fn default() -> Self {
        Self::fixed(Vec::new())
    }
}

impl RoomList {
    /// A list that never changes (the session is replaced when it would).
    pub fn fixed(rooms: Vec<AdapterRoom>) -> Self {
        Self(watch::channel(Arc::new(rooms)).1)
    }

    /// A list the returned sender changes.
    pub fn changing(rooms: Vec<AdapterRoom>) -> (watch::Sender<Arc<Vec<AdapterRoom>>>, Self) {
        let (sender, receiver) = watch::channel(Arc::new(rooms));
        (sender, Self(receiver))
    }

    /// The rooms now.
    pub fn now(&self) -> Arc<Vec<AdapterRoom>> {
        Arc::clone(&self.0.borrow())
    }

    /// The next list, once it changes; `None` when no change can come any more.
    pub async fn changed(&mut self) -> Option<Arc<Vec<AdapterRoom>>> {
        self.0.changed().await.ok()?;
        Some(Arc::clone(&self.0.borrow_and_update()))
    }

    /// The rooms the account listens to now.
    pub fn receiving(&self) -> Vec<RoomId> {
        self.0.borrow().iter().filter(|r| r.receive).map(|r| r.room.clone()).collect()
    }
}

impl AdapterContext {
    /// The rooms the account listens to now.
    pub fn receiving_rooms(&self) -> Vec<RoomId> {
        self.rooms.receiving()
    }

    pub fn room_addr(&self, room: &RoomId) -> RoomAddr {
        RoomAddr::new(self.account.clone(), room.clone())
    }
}

/// One receiver per room `which` selects (those it receives from, say) for as long as the room is the account's: `start(ctx, room)` runs with a
/// context whose `stop_receiving` is the room's own, cancelled when a reload takes the room away (the receiver
/// then ends as at a stop: what it read is handed over) or when the account stops receiving. Ends when the
/// account stops receiving and every receiver has ended. `sole`: these are the account's only receivers, so with no
/// room to receive from the account is connected (it has nothing to connect).
pub async fn per_room<F, R>(ctx: AdapterContext, which: fn(&AdapterRoom) -> bool, sole: bool, start: F)
where
    F: Fn(AdapterContext, RoomId) -> R,
    R: Future<Output = ()> + Send + 'static,
{
    let mut rooms = ctx.rooms.clone();
    let mut running: HashMap<RoomId, CancellationToken> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut more = true;
    loop {
        // A set: an account may have thousands of rooms, and a list's `contains` for each running room made every
        // change of the list cost rooms² comparisons (seconds of CPU at 5,000 rooms, with a change per hand-over).
        let wanted: HashSet<RoomId> = rooms.now().iter().filter(|r| which(r)).map(|r| r.room.clone()).collect();
        if wanted.is_empty() && sole {
            // Nothing to receive from (send-only rooms): nothing to connect, so nothing to wait for.
            ctx.set_state(super::AccountState::Connected).await;
        }
        running.retain(|room, stop| {
            let keep = wanted.contains(room);
            if !keep {
                tracing::info!(account = %ctx.account, room = %room, "No longer receiving from the room (reload).");
                stop.cancel();
            }
            keep
        });
        for room in wanted {
            if running.contains_key(&room) {
                continue;
            }
            let mut room_ctx = ctx.clone();
            room_ctx.stop_receiving = ctx.stop_receiving.child_token();
            running.insert(room.clone(), room_ctx.stop_receiving.clone());
            tasks.spawn(tracing::Instrument::in_current_span(start(room_ctx, room)));
        }
        tokio::select! {
            changed = rooms.changed(), if more => more = changed.is_some(),
            _ = ctx.stop_receiving.cancelled() => break,
            // Ended receivers are reaped as they end (a refused room ends its own).
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}
