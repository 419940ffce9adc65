//! Which store keeps the state — SQLite in `state_dir`, or PostgreSQL (`general.store`) — and opening it: the
//! router's port, what the store held, the id map reading it, and a shared store's leases.

use std::path::Path;
use std::sync::Arc;

use super::{Opened, Store, StoreError, StoreEvent, StoreSettings, idmap, pg};

/// Where the state is kept.
pub enum Backend<'a> {
    /// SQLite in the state directory (the default).
    Sqlite(&'a Path),
    /// PostgreSQL (`general.store`).
    Postgres(&'a pg::PgTarget),
}

impl<'a> Backend<'a> {
    /// The backend `general` names, with the target it parsed for PostgreSQL kept in `target`.
    pub fn of(general: &'a crate::config::General, target: &'a mut Option<pg::PgTarget>) -> Result<Self, StoreError> {
        match &general.store {
            None => Ok(Backend::Sqlite(&general.state_dir)),
            Some(store) => {
                let describe = |reason: String| StoreError::Postgres { target: "general.store".into(), reason };
                let url = store.resolve().map_err(describe)?;
                Ok(Backend::Postgres(target.insert(pg::PgTarget::parse(&url).map_err(describe)?)))
            }
        }
    }
}

/// An open store: the router's port, what it held, the id map that reads it, and — for a store instances
/// share — the account leases.
pub struct Opening {
    pub persist: Box<dyn crate::router::port::Persist>,
    pub opened: Opened,
    pub ids: idmap::DurableIdMap,
    pub leases: Option<pg::lease::Leases>,
}

/// Opens the store of `backend` (see [`Store::open`] and [`pg::PgStore::open`]; `leasing` says how this
/// instance takes part in a PostgreSQL store).
pub fn open(
    backend: Backend<'_>,
    settings: &StoreSettings,
    leasing: pg::lease::LeaseSettings,
    stats: Arc<crate::stats::Stats>,
    configured: impl Fn(&str, &str) -> bool + Send + 'static,
    notify: impl Fn(StoreEvent) + Send + Sync + 'static,
) -> Result<Opening, StoreError> {
    match backend {
        Backend::Sqlite(dir) => {
            let (store, opened) = Store::open(dir, settings, configured, notify)?;
            let ids = idmap::DurableIdMap::open(dir, settings.id_map_capacity)?;
            Ok(Opening { persist: Box::new(store), opened, ids, leases: None })
        }
        Backend::Postgres(target) => {
            let pg::PgOpened { store, opened, reader, leases } =
                pg::PgStore::open(target, settings, leasing, stats, configured, notify)?;
            let ids = idmap::DurableIdMap::new(Box::new(reader), settings.id_map_capacity);
            Ok(Opening { persist: Box::new(store), opened, ids, leases: Some(leases) })
        }
    }
}
