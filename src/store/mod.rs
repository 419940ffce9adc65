//! Durable state in `state_dir` (one SQLite database, WAL): the outbox — every message queued for a
//! destination, from the moment it is queued until the platform acknowledged it, so a restart delivers what
//! a crash left behind. Writes go through one thread of their own, batched into transactions; the router
//! hands a message to its adapter only once the transaction holding it has committed.
//!
//! This is the first step of the reliability work: the id map, cursors, gap filling and dead letters are
//! still to come, and the store is switched on by `general.durable`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::{Connection, params};
use tracing::error;

use crate::model::{Event, RemoteId};

/// The schema version this build writes; older databases are migrated forward on open.
const SCHEMA_VERSION: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state directory {path}: {source}")]
    Directory { path: PathBuf, source: std::io::Error },
    #[error("cannot open the database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("the database {path} is from a newer chatbridge (schema {found}, this build knows {SCHEMA_VERSION})")]
    Newer { path: PathBuf, found: i64 },
}

/// One queued message as stored: what the router needs to send it again.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub event: Event,
    pub client_ids: Vec<RemoteId>,
}

/// A stored row, as read back at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub key: u64,
    pub room: String,
    pub bridge: String,
    pub record: Record,
}

enum Op {
    Put { key: u64, room: String, bridge: String, record: Vec<u8> },
    Delete { key: u64 },
}

/// The store's writing side; committed keys are reported through `committed`.
pub struct Store {
    ops: Option<mpsc::Sender<Op>>,
    writer: Option<JoinHandle<()>>,
}

impl Store {
    /// Opens (creating and migrating as needed) the database in `dir`, returns what the outbox holds, and
    /// starts the writer; `committed(key)` is called after each transaction with the highest key it holds.
    pub fn open(
        dir: &Path,
        full_sync: bool,
        committed: impl Fn(u64) + Send + 'static,
    ) -> Result<(Self, Vec<Stored>), StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory { path: dir.to_owned(), source })?;
        let path = dir.join("chatbridge.db");
        let open = |source| StoreError::Open { path: path.clone(), source };
        let db = Connection::open(&path).map_err(open)?;
        db.pragma_update(None, "journal_mode", "WAL").map_err(open)?;
        db.pragma_update(None, "synchronous", if full_sync { "FULL" } else { "NORMAL" }).map_err(open)?;
        let version: i64 = db.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(open)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Newer { path, found: version });
        }
        if version < 1 {
            db.execute_batch(
                "CREATE TABLE IF NOT EXISTS outbox (
                    key INTEGER PRIMARY KEY,
                    room TEXT NOT NULL,
                    bridge TEXT NOT NULL,
                    record BLOB NOT NULL,
                    queued_at INTEGER NOT NULL
                );
                PRAGMA user_version = 1;",
            )
            .map_err(open)?;
        }
        let stored = load(&db).map_err(open)?;
        let (ops, receiver) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("chatbridge-store".into())
            .spawn(move || write(db, receiver, committed))
            .map_err(|e| StoreError::Directory { path: dir.to_owned(), source: e })?;
        Ok((Self { ops: Some(ops), writer: Some(writer) }, stored))
    }

    pub fn put(&self, key: u64, room: String, bridge: String, record: &Record) {
        let record = serde_json::to_vec(record).expect("a record serialises");
        self.send(Op::Put { key, room, bridge, record });
    }

    pub fn delete(&self, key: u64) {
        self.send(Op::Delete { key });
    }

    fn send(&self, op: Op) {
        if let Some(ops) = &self.ops
            && ops.send(op).is_err()
        {
            error!("The store's writer has stopped: state is no longer saved.");
        }
    }
}

impl Drop for Store {
    /// Lets the writer commit what it was given, then waits for it.
    fn drop(&mut self) {
        self.ops.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn load(db: &Connection) -> rusqlite::Result<Vec<Stored>> {
    let mut query = db.prepare("SELECT key, room, bridge, record FROM outbox ORDER BY key")?;
    let rows = query.query_map([], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?, row.get::<_, Vec<u8>>(3)?))
    })?;
    let mut stored = Vec::new();
    for row in rows {
        let (key, room, bridge, record) = row?;
        match serde_json::from_slice(&record) {
            Ok(record) => stored.push(Stored { key: key as u64, room, bridge, record }),
            Err(e) => error!(key, error = %e, "An outbox row cannot be read; it is left in place."),
        }
    }
    Ok(stored)
}

/// The writer: each burst of operations is one transaction.
fn write(mut db: Connection, ops: mpsc::Receiver<Op>, committed: impl Fn(u64)) {
    let now = || crate::model::Time::now().0;
    while let Ok(first) = ops.recv() {
        let mut highest = None;
        let result = (|| -> rusqlite::Result<()> {
            let tx = db.transaction()?;
            let mut op = Some(first);
            while let Some(current) = op.take() {
                match current {
                    Op::Put { key, room, bridge, record } => {
                        tx.prepare_cached(
                            "INSERT OR REPLACE INTO outbox (key, room, bridge, record, queued_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        )?
                        .execute(params![key as i64, room, bridge, record, now()])?;
                        highest = Some(highest.map_or(key, |h: u64| h.max(key)));
                    }
                    Op::Delete { key } => {
                        tx.prepare_cached("DELETE FROM outbox WHERE key = ?1")?.execute(params![key as i64])?;
                    }
                }
                op = ops.try_recv().ok();
            }
            tx.commit()
        })();
        match result {
            Ok(()) => {
                if let Some(key) = highest {
                    committed(key);
                }
            }
            Err(e) => error!(error = %e, "Writing the outbox failed; these messages are not durable."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, Content, EventKind, Message, Platform, RoomAddr, RoomId};
    use std::sync::{Arc, Mutex};

    fn record(text: &str) -> Record {
        let room = RoomAddr::new(AccountId::new(Platform::Fishroom, "t"), RoomId::new("r"));
        let kind = EventKind::Message(Message { content: Content::text(text), ..Message::default() });
        Record { event: Event::new(room, None, None, kind), client_ids: vec![RemoteId::new("c1")] }
    }

    #[test]
    fn rows_survive_a_reopen_and_deleted_ones_do_not() {
        let dir = std::env::temp_dir().join(format!("chatbridge-store-{}", uuid::Uuid::new_v4()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let watermark = Arc::clone(&seen);
        let (store, stored) = Store::open(&dir, false, move |k| watermark.lock().unwrap().push(k)).unwrap();
        assert!(stored.is_empty());
        for (key, text) in [(1, "one"), (2, "two"), (3, "three")] {
            store.put(key, "fishroom.t:r".into(), "b".into(), &record(text));
        }
        store.delete(2);
        drop(store);
        assert_eq!(seen.lock().unwrap().last(), Some(&3), "commits are reported");
        let (_store, stored) = Store::open(&dir, true, |_| {}).unwrap();
        let keys: Vec<u64> = stored.iter().map(|s| s.key).collect();
        assert_eq!(keys, [1, 3]);
        assert!(matches!(&stored[1].record.event.kind, EventKind::Message(m) if m.content.to_plain_text() == "three"));
        assert_eq!(stored[1].record.client_ids, [RemoteId::new("c1")]);
        assert_eq!((stored[1].room.as_str(), stored[1].bridge.as_str()), ("fishroom.t:r", "b"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_unwritable_directory_is_named() {
        let err = Store::open(Path::new("/proc/chatbridge-cannot-be-here"), false, |_| {}).err().unwrap();
        assert!(err.to_string().contains("/proc/chatbridge-cannot-be-here"), "{err}");
    }
}
