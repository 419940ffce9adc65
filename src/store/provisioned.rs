//! Bridges provisioned at runtime (issue #34), where the state is: the `bridges` table beside the outbox (SQLite
//! in `state_dir`, or PostgreSQL), and a version that every change raises, which running daemons watch. A change is
//! checked against the bridges already there and written in one transaction, one change at a time.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::{FILE_NAME, StoreError, pg};
use crate::config::{General, Provisioned};

/// Where a configuration's provisioned bridges are kept.
#[derive(Clone)]
pub enum Bridges {
    Sqlite(PathBuf),
    Postgres(Box<pg::PgTarget>),
}

/// What the store holds: its version and every bridge, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listed {
    pub version: i64,
    pub bridges: Vec<Provisioned>,
}

/// What a change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// Written, with the version that has it; `created`: the name was new.
    Written { version: i64, created: bool },
    /// Refused by the check, with its answer.
    Refused(crate::config::Problems),
    /// A removal of a name the store does not have.
    NotFound,
}

impl Bridges {
    /// Where `general` keeps its state; none without a store (`durable = false`).
    pub fn of(general: &General) -> Result<Option<Self>, StoreError> {
        if !general.durable {
            return Ok(None);
        }
        Ok(Some(match &general.store {
            None => Bridges::Sqlite(general.state_dir.clone()),
            Some(store) => {
                let describe = |reason: String| StoreError::Postgres { target: "general.store".into(), reason };
                Bridges::Postgres(Box::new(pg::PgTarget::parse(&store.resolve().map_err(describe)?).map_err(describe)?))
            }
        }))
    }

    /// Every provisioned bridge, by name (none where the store was never created).
    pub fn list(&self) -> Result<Listed, StoreError> {
        match self {
            Bridges::Sqlite(dir) => list(dir),
            Bridges::Postgres(target) => pg::provisioned::list(target),
        }
    }

    /// The version alone: what a daemon compares with the one it applied.
    pub fn version(&self) -> Result<i64, StoreError> {
        match self {
            Bridges::Sqlite(dir) => version(dir),
            Bridges::Postgres(target) => pg::provisioned::list(target).map(|l| l.version),
        }
    }

    /// Adds or replaces `bridge`, once `check` accepts it beside the others (called inside the transaction).
    pub fn put(
        &self,
        bridge: Provisioned,
        check: impl FnOnce(&[Provisioned]) -> Result<(), crate::config::Problems> + Send + 'static,
    ) -> Result<Changed, StoreError> {
        match self {
            Bridges::Sqlite(dir) => put(dir, bridge, check),
            Bridges::Postgres(target) => pg::provisioned::put(target, bridge, check),
        }
    }

    /// Removes the bridge `name`.
    pub fn remove(&self, name: &str) -> Result<Changed, StoreError> {
        match self {
            Bridges::Sqlite(dir) => remove(dir, name),
            Bridges::Postgres(target) => pg::provisioned::remove(target, name),
        }
    }
}

fn error(dir: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Open { path: dir.join(FILE_NAME), source }
}

/// The database, read-only, when it exists and has the table.
fn reader(dir: &Path) -> Result<Option<Connection>, StoreError> {
    let path = dir.join(FILE_NAME);
    if !path.exists() {
        return Ok(None);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let db = Connection::open_with_flags(&path, flags).map_err(error(dir))?;
    db.busy_timeout(std::time::Duration::from_secs(5)).map_err(error(dir))?;
    let has: bool = db
        .query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'provision')", [], |row| row.get(0))
        .map_err(error(dir))?;
    Ok(has.then_some(db))
}

fn list(dir: &Path) -> Result<Listed, StoreError> {
    let Some(db) = reader(dir)? else { return Ok(Listed::default()) };
    read(&db).map_err(error(dir))
}

fn read(db: &Connection) -> rusqlite::Result<Listed> {
    let version = db.query_row("SELECT version FROM provision WHERE id = 1", [], |row| row.get(0))?;
    let mut query = db.prepare("SELECT name, spec FROM bridges ORDER BY name")?;
    let bridges = query
        .query_map([], |row| Ok(Provisioned { name: row.get(0)?, toml: row.get(1)? }))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Listed { version, bridges })
}

fn version(dir: &Path) -> Result<i64, StoreError> {
    let Some(db) = reader(dir)? else { return Ok(0) };
    db.query_row("SELECT version FROM provision WHERE id = 1", [], |row| row.get(0)).map_err(error(dir))
}

/// The database for a change: created (and migrated) where the state directory is this user's own, so that a
/// command run as root does not leave the service a database it cannot write.
fn writer(dir: &Path) -> Result<Connection, StoreError> {
    let path = dir.join(FILE_NAME);
    if !path.exists() {
        let owner = std::fs::metadata(dir).map(|m| std::os::unix::fs::MetadataExt::uid(&m)).ok();
        if owner.is_none() || owner != crate::config::effective_uid() {
            return Err(StoreError::Directory {
                path: dir.to_owned(),
                source: std::io::Error::other(
                    "there is no state database yet, and the state directory is not this user's: start the daemon once, or run this as the service's user",
                ),
            });
        }
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut db = Connection::open_with_flags(&path, flags).map_err(error(dir))?;
    db.busy_timeout(std::time::Duration::from_secs(5)).map_err(error(dir))?;
    db.pragma_update(None, "journal_mode", "WAL").map_err(error(dir))?;
    super::migrate(&mut db, &path)?;
    Ok(db)
}

fn put(
    dir: &Path,
    bridge: Provisioned,
    check: impl FnOnce(&[Provisioned]) -> Result<(), crate::config::Problems>,
) -> Result<Changed, StoreError> {
    let mut db = writer(dir)?;
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(error(dir))?;
    let listed = read(&tx).map_err(error(dir))?;
    if let Err(problems) = check(&listed.bridges) {
        return Ok(Changed::Refused(problems));
    }
    let created = !listed.bridges.iter().any(|b| b.name == bridge.name);
    tx.execute(
        "INSERT INTO bridges (name, spec, updated) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated = excluded.updated",
        params![bridge.name, bridge.toml, super::schema::now()],
    )
    .map_err(error(dir))?;
    let version = bump(&tx).map_err(error(dir))?;
    tx.commit().map_err(error(dir))?;
    Ok(Changed::Written { version, created })
}

fn remove(dir: &Path, name: &str) -> Result<Changed, StoreError> {
    if reader(dir)?.is_none() {
        return Ok(Changed::NotFound);
    }
    let mut db = writer(dir)?;
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(error(dir))?;
    let gone = tx.execute("DELETE FROM bridges WHERE name = ?1", params![name]).map_err(error(dir))?;
    if gone == 0 {
        return Ok(Changed::NotFound);
    }
    let version = bump(&tx).map_err(error(dir))?;
    tx.commit().map_err(error(dir))?;
    Ok(Changed::Written { version, created: false })
}

fn bump(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<i64> {
    tx.query_row("UPDATE provision SET version = version + 1 WHERE id = 1 RETURNING version", [], |row| row.get(0))
        .optional()
        .map(Option::unwrap_or_default)
}
