//! What the commands read and change in the state database outside a running daemon: the dead letters
//! (`chatbridge deadletters`) and the outbox summary `chatbridge check` prints.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, params};

use super::{FILE_NAME, Record, StoreError};

/// One dead letter, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub key: u64,
    pub room: String,
    pub bridge: String,
    /// When it was queued and when it was given up on (ms since the epoch).
    pub queued_at: i64,
    pub failed_at: i64,
    pub reason: String,
    /// `source room: text`, shortened, for the listing.
    pub summary: String,
    /// Marked to go back to the outbox at the next start.
    pub requeued: bool,
}

/// The outbox rows of one destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    pub room: String,
    pub bridge: String,
    pub messages: usize,
    pub oldest: i64,
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Opens an existing database for changes (migrating it forward).
fn open_existing(dir: &Path) -> Result<Connection, StoreError> {
    let path = path(dir);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut db =
        Connection::open_with_flags(&path, flags).map_err(|source| StoreError::Open { path: path.clone(), source })?;
    db.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|source| StoreError::Open { path: path.clone(), source })?;
    super::migrate(&mut db, &path)?;
    Ok(db)
}

/// Every dead letter, oldest first.
pub fn dead_letters(dir: &Path) -> Result<Vec<DeadLetter>, StoreError> {
    let db = open_existing(dir)?;
    let error = |source| StoreError::Open { path: path(dir), source };
    let mut query = db
        .prepare(
            "SELECT key, room, bridge, record, queued_at, failed_at, reason, requeued FROM deadletters ORDER BY key",
        )
        .map_err(error)?;
    let rows = query
        .query_map([], |row| {
            let record: Vec<u8> = row.get(3)?;
            Ok(DeadLetter {
                key: row.get::<_, i64>(0)? as u64,
                room: row.get(1)?,
                bridge: row.get(2)?,
                queued_at: row.get(4)?,
                failed_at: row.get(5)?,
                reason: row.get(6)?,
                summary: summary(&record),
                requeued: row.get(7)?,
            })
        })
        .map_err(error)?;
    rows.collect::<rusqlite::Result<_>>().map_err(error)
}

/// Marks dead letters (the given keys, or all) to go back to the outbox at the daemon's next start, at the
/// end of their room's queue. Returns how many were marked.
pub fn requeue(dir: &Path, keys: Option<&[u64]>) -> Result<usize, StoreError> {
    let mut db = open_existing(dir)?;
    let error = |source| StoreError::Open { path: path(dir), source };
    let tx = db.transaction().map_err(error)?;
    let marked = match keys {
        None => tx.execute("UPDATE deadletters SET requeued = 1", []).map_err(error)?,
        Some(keys) => {
            let mut marked = 0;
            for key in keys {
                marked += tx
                    .execute("UPDATE deadletters SET requeued = 1 WHERE key = ?1", params![*key as i64])
                    .map_err(error)?;
            }
            marked
        }
    };
    tx.commit().map_err(error)?;
    Ok(marked)
}

/// Removes dead letters for good (the status page's "drop"). Returns how many went.
pub fn drop_letters(dir: &Path, keys: &[u64]) -> Result<usize, StoreError> {
    let mut db = open_existing(dir)?;
    let error = |source| StoreError::Open { path: path(dir), source };
    let tx = db.transaction().map_err(error)?;
    let mut dropped = 0;
    for key in keys {
        dropped += tx.execute("DELETE FROM deadletters WHERE key = ?1", params![*key as i64]).map_err(error)?;
    }
    tx.commit().map_err(error)?;
    Ok(dropped)
}

/// What the outbox holds per destination, read-only; `None` when there is no database yet.
pub fn queues(dir: &Path) -> Result<Option<Vec<Queue>>, StoreError> {
    let path = path(dir);
    if !path.exists() {
        return Ok(None);
    }
    let error = |source| StoreError::Open { path: path.clone(), source };
    let db = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(error)?;
    // A damaged database must not pass for a good one: SQLite's own check of its structure first.
    let verdict: String = db.query_row("PRAGMA quick_check", [], |row| row.get(0)).map_err(error)?;
    if verdict != "ok" {
        return Err(StoreError::Damaged { path: path.clone(), found: verdict });
    }
    // A database a newer chatbridge wrote is refused by `run`: `check` says so first.
    let version: i64 = db.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(error)?;
    if version > super::schema::SCHEMA_VERSION {
        return Err(StoreError::Newer { path: path.clone(), found: version });
    }
    let mut query = db
        .prepare(
            "SELECT room, bridge, COUNT(*), MIN(queued_at) FROM outbox GROUP BY room, bridge ORDER BY room, bridge",
        )
        .map_err(error)?;
    let rows = query
        .query_map([], |row| {
            Ok(Queue {
                room: row.get(0)?,
                bridge: row.get(1)?,
                messages: row.get::<_, i64>(2)? as usize,
                oldest: row.get(3)?,
            })
        })
        .map_err(error)?;
    rows.collect::<rusqlite::Result<_>>().map(Some).map_err(error)
}

pub(super) fn summary(record: &[u8]) -> String {
    match serde_json::from_slice::<Record>(record) {
        Ok(record) => {
            let text = match &record.event.kind {
                crate::model::EventKind::Message(m) => m.content.to_plain_text(),
                other => other.filter_kind().map_or_else(|| "(event)".to_owned(), |k| format!("({k:?})")),
            };
            let mut text: String = text.chars().take(60).collect();
            text = text.replace('\n', " ");
            format!("{}: {text}", record.event.origin.room)
        }
        Err(_) => "(unreadable record)".to_owned(),
    }
}
