//! With a store instances share: an account runs where its lease is. The supervisor's side of the lease task:
//! an account starts here when its lease comes, stops when it is lost, and is handed over when asked.

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::{HOLD_AT_MOST, HandedOver, Leased, Next, Supervisor, configured};
use crate::adapters::{Cursors, RouterInput};
use crate::config::Config;
use crate::router::reconfigure::Control;
use crate::store::pg::PgReader;
use crate::store::pg::lease::{LeaseCommand, LeaseEvent};

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
        let Some(leased) = &self.leased else { return };
        match event {
            LeaseEvent::Acquired(id) => {
                if self.stop.is_cancelled() || self.sessions.contains_key(&id) {
                    return;
                }
                let Some((config, rooms)) = leased.accounts.get(&id).cloned() else {
                    // Claimed just before a reload removed it: given back.
                    let _ = leased.commands.send(LeaseCommand::Released(id));
                    return;
                };
                let stored = match leased.reader.cursors(&id).await {
                    Ok(cursors) => cursors.into_iter().map(|(room, cursor)| (room.room, cursor)).collect(),
                    Err(e) => {
                        warn!(account = %id, error = %e, "The account's cursors could not be read: it starts without gap filling.");
                        Vec::new()
                    }
                };
                let router = leased.router.clone();
                let cursors = Cursors::new(stored, self.general.gap_fill_window);
                let (caps, sends) = self.spawn(&id, config, rooms, cursors, &router);
                info!(account = %id, "Account started here (its lease came to this instance).");
                let _ = router.send(RouterInput::Attached { account: id, caps, sends }).await;
            }
            LeaseEvent::Lost(id) => {
                let Some(session) = self.sessions.remove(&id) else { return };
                // Nothing more is read or sent; what was read is handed over (it goes to the store for the
                // account's next instance), then the connection closes.
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
            LeaseEvent::Release(id) => {
                let Some(session) = self.sessions.remove(&id) else {
                    let _ = leased.commands.send(LeaseCommand::Released(id));
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
}
