//! With a store instances share: an account runs where its lease is — or, where rooms are leased one by one
//! (Missevan), each room runs where its own lease is, in a session of its account on that instance. The
//! supervisor's side of the lease task: an account (a room) starts here when its lease comes, stops when it is
//! lost, and is handed over when asked.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::{HOLD_AT_MOST, HandedOver, Leased, Next, Supervisor, configured};
use crate::adapters::{Cursors, RouterInput};
use crate::config::Config;
use crate::model::{AccountId, RoomAddr};
use crate::router::reconfigure::Control;
use crate::store::pg::PgReader;
use crate::store::pg::lease::{LeaseCommand, LeaseEvent, Unit};

impl Supervisor {
    /// With a shared store: accounts start and stop as their leases come and go ([`Supervisor::lease`]).
    pub(in crate::daemon) fn lease_with(
        &mut self,
        commands: mpsc::UnboundedSender<LeaseCommand>,
        reader: PgReader,
        router: mpsc::Sender<RouterInput>,
        config: &Config,
    ) {
        self.leased = Some(Leased { commands, reader, router, accounts: configured(config) });
    }

    /// A lease came, went, or is to be handed over.
    pub(in crate::daemon) async fn lease(&mut self, event: LeaseEvent, control: &mpsc::UnboundedSender<Control>) {
        match event {
            LeaseEvent::Acquired(Unit::Room(room)) => self.room_came(room, control).await,
            LeaseEvent::Lost(Unit::Room(room)) => self.room_lost(room, control),
            LeaseEvent::Release(Unit::Room(room)) => self.room_release(room, control),
            LeaseEvent::Acquired(Unit::Account(id)) => self.account_came(id).await,
            LeaseEvent::Lost(Unit::Account(id)) => self.stop_session(&id, control),
            LeaseEvent::Release(Unit::Account(id)) => {
                let Some(leased) = &self.leased else { return };
                let Some(session) = self.sessions.remove(&id) else {
                    let _ = leased.commands.send(LeaseCommand::Released(Unit::Account(id)));
                    return;
                };
                session.stop_receiving.cancel();
                let (done, settled) = oneshot::channel();
                let _ = control.send(Control::Hold(id.clone(), done));
                let router = leased.router.clone();
                self.handovers.spawn(async move {
                    let _ = tokio::time::timeout(HOLD_AT_MOST, settled).await;
                    session.closed.cancel();
                    let mut task = session.task;
                    if tokio::time::timeout(super::super::CLOSE_GRACE, &mut task).await.is_err() {
                        task.abort();
                    }
                    HandedOver { id, next: Next::HandOver, cursors: session.cursors, router }
                });
            }
        }
    }

    async fn account_came(&mut self, id: AccountId) {
        let Some(leased) = &self.leased else { return };
        if self.stop.is_cancelled() || self.sessions.contains_key(&id) {
            return;
        }
        let Some((config, rooms)) = leased.accounts.get(&id).cloned() else {
            // Claimed just before a reload removed it: given back.
            let _ = leased.commands.send(LeaseCommand::Released(Unit::Account(id)));
            return;
        };
        let stored = cursors(&leased.reader, &id, None).await;
        let router = leased.router.clone();
        let cursors = Cursors::new(stored, self.general.gap_fill_window);
        let (caps, sends) = self.spawn(&id, config, rooms, cursors, &router);
        info!(account = %id, "Account started here (its lease came to this instance).");
        let _ = router.send(RouterInput::Attached { account: id, caps, sends }).await;
    }

    /// The account's session stops at once (its last lease here is lost): nothing more is read or sent; what was
    /// read is handed over (it goes to the store for the next instance), then the connection closes.
    fn stop_session(&mut self, id: &AccountId, control: &mpsc::UnboundedSender<Control>) {
        let Some(session) = self.sessions.remove(id) else { return };
        session.stop_receiving.cancel();
        let _ = control.send(Control::Disown(id.clone()));
        warn!(account = %id, "Account stopped here: its lease is lost.");
        tokio::spawn(async move {
            let mut task = session.task;
            if tokio::time::timeout(super::super::CLOSE_GRACE, &mut task).await.is_err() {
                session.closed.cancel();
                if tokio::time::timeout(super::super::CLOSE_GRACE, &mut task).await.is_err() {
                    task.abort();
                }
            }
        });
    }

    /// A room's lease came here: its account's session here joins it, or one starts with it alone.
    async fn room_came(&mut self, room: RoomAddr, control: &mpsc::UnboundedSender<Control>) {
        let Some(leased) = &self.leased else { return };
        if self.stop.is_cancelled() {
            return;
        }
        let id = room.account.clone();
        let found = leased.accounts.get(&id).and_then(|(config, rooms)| {
            rooms.iter().find(|r| r.room == room.room).map(|r| (config.clone(), r.clone()))
        });
        let Some((config, adapter_room)) = found else {
            let _ = leased.commands.send(LeaseCommand::Released(Unit::Room(room)));
            return;
        };
        let stored = cursors(&leased.reader, &id, Some(&room)).await;
        let router = leased.router.clone();
        match self.sessions.get_mut(&id) {
            Some(session) => {
                for (id, cursor) in stored {
                    session.cursors.set(&id, cursor);
                }
                if !session.rooms.iter().any(|r| r.room == room.room) {
                    session.rooms.push(adapter_room);
                }
                if let Some(changes) = &session.room_changes {
                    let _ = changes.send(Arc::new(session.rooms.clone()));
                }
            }
            None => {
                let cursors = Cursors::new(stored, self.general.gap_fill_window);
                let (caps, sends) = self.spawn(&id, config, vec![adapter_room], cursors, &router);
                let _ = router.send(RouterInput::Attached { account: id, caps, sends }).await;
            }
        }
        info!(%room, "Room started here (its lease came to this instance).");
        let _ = control.send(Control::ClaimRoom(room));
    }

    /// The room leaves its account's session here; the session goes with its last room. Whether it was in it.
    fn leave_room(&mut self, room: &RoomAddr, control: &mpsc::UnboundedSender<Control>) -> bool {
        let Some(session) = self.sessions.get_mut(&room.account) else { return false };
        let before = session.rooms.len();
        session.rooms.retain(|r| r.room != room.room);
        if session.rooms.len() == before {
            return false;
        }
        if session.rooms.is_empty() {
            self.stop_session(&room.account.clone(), control);
        } else if let Some(changes) = &session.room_changes {
            let _ = changes.send(Arc::new(session.rooms.clone()));
        }
        true
    }

    fn room_lost(&mut self, room: RoomAddr, control: &mpsc::UnboundedSender<Control>) {
        let _ = control.send(Control::DisownRoom(room.clone()));
        if self.leave_room(&room, control) {
            warn!(%room, "Room stopped here: its lease is lost.");
        }
    }

    /// More than this instance's share: the room stops receiving here, settles (no send out), and its lease goes
    /// back once what it delivered is committed ([`Supervisor::room_handed_over`]).
    fn room_release(&mut self, room: RoomAddr, control: &mpsc::UnboundedSender<Control>) {
        let Some(leased) = &self.leased else { return };
        let running = self.sessions.get(&room.account).is_some_and(|s| s.rooms.iter().any(|r| r.room == room.room));
        if !running {
            let _ = control.send(Control::DisownRoom(room.clone()));
            let _ = leased.commands.send(LeaseCommand::Released(Unit::Room(room)));
            return;
        }
        let router = leased.router.clone();
        let (done, settled) = oneshot::channel();
        let _ = control.send(Control::HoldRoom(room.clone(), done));
        let cursors = self.sessions.get(&room.account).map(|s| s.cursors.clone()).unwrap_or_default();
        let id = room.account.clone();
        self.handovers.spawn(async move {
            let _ = tokio::time::timeout(HOLD_AT_MOST, settled).await;
            HandedOver { id, next: Next::RoomHandOver(room), cursors, router }
        });
    }

    /// With rooms leased one by one, for a reload: of an account's rooms in the new configuration, those its
    /// session here runs (the others run elsewhere); the rooms the reload took from it give their leases back.
    /// `None` where the account is leased whole.
    pub(super) fn held_rooms(
        &self,
        id: &AccountId,
        wanted: Option<&Vec<crate::adapters::AdapterRoom>>,
    ) -> Option<Vec<crate::adapters::AdapterRoom>> {
        let leased = self.leased.as_ref()?;
        if !id.platform().leases_per_room() {
            return None;
        }
        let session = self.sessions.get(id)?;
        let wanted = wanted?;
        for gone in session.rooms.iter().filter(|r| !wanted.iter().any(|w| w.room == r.room)) {
            let room = RoomAddr::new(id.clone(), gone.room.clone());
            let _ = leased.commands.send(LeaseCommand::Released(Unit::Room(room)));
        }
        Some(wanted.iter().filter(|w| session.rooms.iter().any(|r| r.room == w.room)).cloned().collect())
    }

    /// A room being handed over has settled: it leaves the session here and its lease goes back.
    pub(super) fn room_handed_over(&mut self, room: RoomAddr, control: &mpsc::UnboundedSender<Control>) {
        self.leave_room(&room, control);
        let _ = control.send(Control::DisownRoom(room.clone()));
        info!(%room, "Room handed over to even the load.");
        if let Some(leased) = &self.leased {
            let _ = leased.commands.send(LeaseCommand::Released(Unit::Room(room)));
        }
    }
}

/// The stored cursors of an account's rooms (of one room, with `only`), for the session that starts them here.
async fn cursors(
    reader: &PgReader,
    id: &AccountId,
    only: Option<&RoomAddr>,
) -> Vec<(crate::model::RoomId, crate::model::Cursor)> {
    let read = match only {
        Some(room) => reader.room_cursor(room).await,
        None => reader.cursors(id).await,
    };
    match read {
        Ok(cursors) => cursors
            .into_iter()
            .filter(|(room, _)| only.is_none_or(|only| only == room))
            .map(|(room, cursor)| (room.room, cursor))
            .collect(),
        Err(e) => {
            warn!(account = %id, error = %e, "The account's cursors could not be read: it starts without gap filling.");
            Vec::new()
        }
    }
}
