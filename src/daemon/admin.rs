//! The admin side's [`Operator`](crate::admin::Operator): the dead letters in the daemon's store (SQLite in
//! `state_dir`, or PostgreSQL), and the layout of the bridges for the status page.

use std::path::PathBuf;

use crate::admin::Operator;
use crate::admin::model::{DeadLetterView, Layout};
use crate::config::Config;
use crate::store;

pub(super) struct StoreOperator {
    dir: PathBuf,
    pg: Option<store::pg::PgTarget>,
}

impl StoreOperator {
    pub(super) fn new(config: &Config) -> Self {
        let pg = config
            .general
            .store
            .as_ref()
            .and_then(|store| store.resolve().ok())
            .and_then(|url| store::pg::PgTarget::parse(&url).ok());
        Self { dir: config.general.state_dir.clone(), pg }
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
        match &self.pg {
            Some(target) => store::pg::requeue(target, Some(keys)),
            None => store::admin::requeue(&self.dir, Some(keys)),
        }
        .map_err(|e| e.to_string())
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
