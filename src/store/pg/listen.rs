//! How an instance learns that rows for its rooms came into the shared outbox: the writer of the instance that
//! queued them notifies `chatbridge_outbox` with the room at commit, and this task, `LISTEN`ing on a connection
//! of its own, tells the router ([`StoreEvent::Arrived`]) when the room's account is held here. A sweep every
//! few seconds (and after every reconnect) finds what a lost notification would have said, and the rows of an
//! account that just came here.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::lease::Held;
use super::{PgTarget, reason};
use crate::model::RoomAddr;
use crate::store::StoreEvent;

/// The channel the writers notify.
pub(super) const CHANNEL: &str = "chatbridge_outbox";
/// The channel an instance notifies when it released leases: the others claim at once instead of at their
/// next round.
pub(super) const LEASES: &str = "chatbridge_leases";

/// How often the outbox is swept for rows of this instance's rooms that it does not hold.
#[cfg(not(test))]
const SWEEP_EVERY: Duration = Duration::from_secs(5);
#[cfg(test)]
const SWEEP_EVERY: Duration = Duration::from_millis(500);

pub(super) type Notify = Arc<dyn Fn(StoreEvent) + Send + Sync>;

/// Who else hears what the listener hears: the lease task (leases released) and the daemon (bridges provisioned).
pub(super) struct Told {
    pub released: Arc<tokio::sync::Notify>,
    pub bridges: Arc<tokio::sync::Notify>,
}

pub(super) async fn listen(target: PgTarget, held: Held, notify: Notify, told: Told) {
    let mut retry = Duration::from_millis(200);
    let mut connected_before = false;
    loop {
        let (tx, mut notifications) = mpsc::unbounded_channel();
        let client = match target.connect_with(Some(tx)).await {
            Ok(client) => client,
            Err(e) => {
                warn!(error = %reason(&e), "The outbox listener cannot connect; trying again.");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let bridges = super::provisioned::CHANNEL;
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {LEASES}; LISTEN {bridges}")).await {
            warn!(error = %reason(&e), "The outbox listener cannot listen; trying again.");
            continue;
        }
        retry = Duration::from_millis(200);
        // A change of the bridges while the connection was down was not heard: the daemon looks.
        if std::mem::replace(&mut connected_before, true) {
            told.bridges.notify_one();
        }
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                Some(n) = notifications.recv() => {
                    if n.channel() == LEASES {
                        told.released.notify_one();
                    } else if n.channel() == bridges {
                        told.bridges.notify_one();
                    } else {
                        arrived(n.payload(), &held, &notify);
                    }
                }
                _ = sweep.tick() => {
                    let accounts = held.accounts();
                    if accounts.is_empty() {
                        continue;
                    }
                    let epochs: Vec<i64> = accounts.iter().map(|a| held.epoch(a).unwrap_or_default()).collect();
                    let rows = client
                        .query(
                            "SELECT DISTINCT o.room FROM outbox o
                             JOIN unnest($1::text[], $2::bigint[]) AS h(account, epoch) ON o.account = h.account
                             WHERE o.holder IS DISTINCT FROM h.epoch",
                            &[&accounts, &epochs],
                        )
                        .await;
                    match rows {
                        Ok(rows) => rows.iter().for_each(|row| arrived(row.get(0), &held, &notify)),
                        Err(e) if client.is_closed() => {
                            info!(error = %reason(&e), "The outbox listener lost its connection; connecting again.");
                            break;
                        }
                        Err(e) => warn!(error = %reason(&e), "The outbox sweep failed."),
                    }
                }
            }
            if client.is_closed() {
                break;
            }
        }
    }
}

fn arrived(room: &str, held: &Held, notify: &Notify) {
    let Ok(room) = room.parse::<RoomAddr>() else { return };
    if held.epoch(&room.lease()).is_some() {
        notify(StoreEvent::Arrived { room });
    }
}
