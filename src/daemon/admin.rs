//! The admin side's [`Operator`](crate::admin::Operator): the dead letters in the daemon's store (SQLite in
//! `state_dir`, or PostgreSQL), pauses and requeues through the router's control channel, and the layout of the
//! bridges for the status page (replaced by each reload that is applied).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::admin::model::{DeadLetterView, Layout};
use crate::admin::{Operator, PauseRequest};
use crate::config::{Config, LeftOut, Provisioned};
use crate::provision::{Outcome, ProvisionError, Provisioner};
use crate::router::Pause;
use crate::router::reconfigure::Control;
use crate::store;
use crate::store::provisioned::Listed;

pub(super) struct StoreOperator {
    dir: PathBuf,
    pg: Option<store::pg::PgTarget>,
    control: mpsc::UnboundedSender<Control>,
    pub(super) layout: Arc<Mutex<Layout>>,
    provisioner: Arc<Provisioner>,
}

impl StoreOperator {
    pub(super) fn new(config: &Config, control: mpsc::UnboundedSender<Control>, provisioner: Arc<Provisioner>) -> Self {
        let pg = config
            .general
            .store
            .as_ref()
            .and_then(|store| store.resolve().ok())
            .and_then(|url| store::pg::PgTarget::parse(&url).ok());
        let layout = Arc::new(Mutex::new(layout(config)));
        Self { dir: config.general.state_dir.clone(), pg, control, layout, provisioner }
    }
}

impl Operator for StoreOperator {
    fn dead_letters(&self) -> Result<Vec<DeadLetterView>, String> {
        if self.pg.is_none() && !self.dir.join(store::FILE_NAME).exists() {
            return Ok(Vec::new());
        }
        let letters = match &self.pg {
            Some(target) => store::pg::dead_letters(target),
            None => store::admin::dead_letters(&self.dir),
        }
        .map_err(|e| e.to_string())?;
        Ok(letters
            .into_iter()
            .map(|l| DeadLetterView {
                key: l.key,
                room: l.room,
                bridge: l.bridge,
                failed_at_ms: l.failed_at,
                reason: l.reason,
                summary: l.summary,
                requeued: l.requeued,
            })
            .collect())
    }

    fn requeue(&self, keys: &[u64]) -> Result<usize, String> {
        if let Some(target) = &self.pg {
            // Every instance reads the shared outbox: the rows go back there, and the holder of each room's
            // account is told, as for rows another instance queued.
            return store::pg::requeue_now(target, keys).map_err(|e| e.to_string());
        }
        let (reply, answer) = oneshot::channel();
        self.control.send(Control::Requeue(keys.to_vec(), reply)).map_err(|_| "the daemon is stopping".to_owned())?;
        answer.blocking_recv().map_err(|_| "the daemon is stopping".to_owned())?
    }

    fn pause(&self, request: PauseRequest) -> Result<(), String> {
        let room = match request.room {
            Some(room) => Some(room.parse::<crate::model::RoomAddr>()?),
            None => None,
        };
        let pause = Pause { bridge: request.bridge, room, paused: request.paused };
        self.control.send(Control::Pause(pause)).map_err(|_| "the daemon is stopping".to_owned())
    }

    fn layout(&self) -> Layout {
        self.layout.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn holders(&self) -> Option<BTreeMap<String, String>> {
        let target = self.pg.as_ref()?;
        let (instances, _) = store::pg::instances(target).ok()?;
        // A lease is an account's, or a room's where rooms are leased one by one: an account is held by every
        // instance that holds one of its rooms.
        let mut holders: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for instance in instances {
            for unit in instance.accounts {
                let account = unit.split_once(':').map_or(unit.as_str(), |(account, _)| account).to_owned();
                holders.entry(account).or_default().insert(instance.name.clone());
            }
        }
        Some(
            holders
                .into_iter()
                .map(|(account, names)| (account, names.into_iter().collect::<Vec<_>>().join(", ")))
                .collect(),
        )
    }

    fn provisioned(&self) -> Result<(Listed, Vec<LeftOut>), ProvisionError> {
        self.provisioner.list()
    }

    fn provision(&self, bridge: Provisioned) -> Result<Outcome, ProvisionError> {
        self.provisioner.put(bridge)
    }

    fn unprovision(&self, name: &str) -> Result<Outcome, ProvisionError> {
        self.provisioner.remove(name)
    }

    fn drop_letters(&self, keys: &[u64]) -> Result<usize, String> {
        match &self.pg {
            Some(target) => store::pg::drop_letters(target, keys),
            None => store::admin::drop_letters(&self.dir, keys),
        }
        .map_err(|e| e.to_string())
    }
}

/// Each bridge's rooms, as the page lists them.
pub(super) fn layout(config: &Config) -> Layout {
    config
        .bridges
        .iter()
        .map(|bridge| {
            let rooms = bridge.rooms.iter().map(|room| (room.addr.to_string(), room.direction.as_str())).collect();
            (bridge.name.clone(), rooms)
        })
        .collect()
}
