//! Durable state in `state_dir` (one SQLite database, WAL):
//!
//! - the **outbox** — every message queued for a destination, from the moment it is queued until the platform
//!   acknowledged it, so a restart delivers what a crash left behind; a destination whose queue is full in
//!   memory spills here instead of dropping;
//! - the **id map** — which remote id in which room is a copy of which message, so edits, recalls and replies
//!   made after a restart find the copies made before it;
//! - per-room **cursors** — how far each room has been read, so gap filling knows where to start;
//! - **dead letters** — messages given up on, kept for `chatbridge deadletters`.
//!
//! Writes go through one thread of their own. The router marks the end of the work of each input with
//! [`Store::end`]; the writer commits only at such a mark, so the outbox rows an event produced, its id-map
//! group and its room's cursor are one transaction — a crash keeps all of them or none. Bursts of inputs
//! share a transaction (batching).
//!
//! The router hands a message to its adapter without waiting for the commit: the outbox row is queued to the
//! writer first, so it is in the same transaction as the source room's cursor, and the acknowledgement's
//! delete comes after it. A copy acknowledged before its transaction commits is never written at all (the
//! put and the delete cancel in the writer's pending rows). What a crash can do is therefore only what it
//! could do before the commit anyway: the messages of the open transaction are read again from their source
//! (the cursor did not move) — delivered at least once, never lost.

pub mod admin;
mod backend;
mod files;
pub mod idmap;
mod intake;
mod members;
pub mod pg;
pub mod provisioned;
mod schema;
mod transaction;
mod writer;

use files::{Held, LOCK_FILE, lock, private_dir, private_file};
use schema::{SCHEMA_VERSION, decode, migrate, now, prune, row_to_stored, startup};

pub use backend::{Backend, Opening, open};
pub use writer::PageLimit;
// What the router's persistence port exchanges.
pub use crate::router::port::{Closing, Opened, Record, StoreEvent, Stored, StoredGroup, StoredMember};
use writer::{Limits, write};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tracing::{error, info, warn};

use crate::model::{Event, RemoteId, RoomAddr, Time};

/// The longest a transaction of the writer stays open while inputs keep coming: what a crash can cost is
/// the open transaction, so this bounds how many messages a crash makes their sources deliver again.
pub(crate) const MAX_BATCH: Duration = Duration::from_millis(5);

/// How long the PostgreSQL writer pauses after the inputs it has before it looks for more, and commits when there
/// are none: under a steady stream the inputs of a few milliseconds share one commit (one write of each touched
/// page instead of many), and the writer is woken once per pause, not once per input. (The SQLite writer sleeps
/// through its whole window at once: `writer::gather`.)
pub(crate) const GATHER: Duration = Duration::from_millis(1);

/// How often the writer prunes the id map of entries older than its maximum age.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The database's file name inside `state_dir`.
pub const FILE_NAME: &str = "chatbridge.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state directory {path}: {source}")]
    Directory { path: PathBuf, source: std::io::Error },
    #[error("cannot open the database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("the database {path} is from a newer chatbridge (schema {found}, this build knows {SCHEMA_VERSION})")]
    Newer { path: PathBuf, found: i64 },
    #[error("{path} is locked: another chatbridge uses this state directory (two would deliver everything twice)")]
    Locked { path: PathBuf },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: std::io::Error },
    #[error("the database {path} is damaged: {found}")]
    Damaged { path: PathBuf, found: String },
    #[error("PostgreSQL at {target}: {reason}")]
    Postgres { target: String, reason: String },
    #[error(
        "the database at {target} is from a newer chatbridge (schema {found}, this build knows {})",
        pg::schema::SCHEMA_VERSION
    )]
    PgNewer { target: String, found: i32 },
}

/// How the store keeps things.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// `synchronous = FULL` (power-loss safety) instead of `NORMAL` (process-crash safety).
    pub full_sync: bool,
    /// Id-map entries older than this are pruned.
    pub id_map_max_age: Duration,
    /// The most groups of the id map loaded at start (the in-memory map's capacity).
    pub id_map_capacity: usize,
    /// Outbox rows of rooms no longer in the configuration move to the dead letters after this long.
    pub orphan_max_age: Duration,
    /// The most rows per room loaded at start; the rest is read as the queue drains.
    pub per_room: usize,
    /// Tests only: a database size limit standing in for a full disk.
    pub page_limit: PageLimit,
    /// The outbox rows at which no more messages are taken in (until deliveries bring it under 90 %).
    pub max_outbox: u64,
    /// The dead letters kept; past it, the oldest are removed.
    pub max_dead_letters: u64,
}

/// A [`Record`] as the writer writes a [`Store::put_event`] row (the same JSON).
#[derive(serde::Serialize)]
struct EncodedRecord<'a> {
    event: &'a serde_json::value::RawValue,
    client_ids: &'a [RemoteId],
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<u64>,
}

/// The last event [`encode`] serialised, kept for the next row of the same event.
type LastEncoded<'a> = Option<(&'a Arc<Event>, Box<serde_json::value::RawValue>)>;

/// A pending row as written: its room and its record's JSON. An event queued for several destinations is
/// serialised once (`last` keeps it for the next row of the same event).
fn encode<'a>(row: &'a Pending, last: &mut LastEncoded<'a>) -> (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, [u8]>) {
    use std::borrow::Cow;
    match row {
        Pending::Encoded { room, record } => (Cow::Borrowed(room.as_str()), Cow::Borrowed(record.as_slice())),
        Pending::Event { room, event, client_ids, group } => {
            if !last.as_ref().is_some_and(|(seen, _)| Arc::ptr_eq(seen, event)) {
                let encoded = serde_json::value::to_raw_value(&**event).expect("an event serialises");
                *last = Some((event, encoded));
            }
            let event = &last.as_ref().expect("just set").1;
            let record = EncodedRecord { event, client_ids, group: *group };
            let record = serde_json::to_vec(&record).expect("a record serialises");
            (Cow::Owned(room.to_string()), Cow::Owned(record))
        }
    }
}

/// An outbox row waiting in the writer for its transaction's commit.
enum Pending {
    Encoded { room: String, record: Vec<u8> },
    Event { room: RoomAddr, event: Arc<Event>, client_ids: Vec<RemoteId>, group: Option<u64> },
}

/// How often the writer counts the outbox and the dead letters (often in unit tests, which wait for it).
#[cfg(not(test))]
pub(crate) const SIZE_EVERY: Duration = Duration::from_secs(10);
#[cfg(test)]
pub(crate) const SIZE_EVERY: Duration = Duration::from_millis(100);

enum Op {
    Put { key: u64, bridge: String, row: Pending },
    Delete { key: u64 },
    DeadLetter { key: u64, reason: String },
    Group { id: u64, origin: Option<(RoomAddr, RemoteId)>, sender: Option<String>, text: String, time: i64 },
    Copy { group: u64, room: RoomAddr, ids: Vec<RemoteId> },
    Cursor { room: String, cursor: String },
    Load { room: RoomAddr, after: u64, limit: usize },
    Requeue { keys: Vec<u64>, first: u64 },
}

/// The store's writing side.
pub struct Store {
    /// One input's operations, gathered until [`Store::end`] sends them to the writer together.
    gathered: std::cell::RefCell<Vec<Op>>,
    ops: Option<mpsc::Sender<Vec<Op>>>,
    writer: Option<JoinHandle<Closing>>,
    /// Held while the store is open: one daemon per state directory.
    _lock: std::fs::File,
}

impl Store {
    /// Opens (creating and migrating as needed) the database in `dir`, returns what it holds, and starts the
    /// writer. `configured(room, bridge)` says whether an outbox row's destination is still in the
    /// configuration; `notify` receives the writer's reports.
    pub fn open(
        dir: &Path,
        settings: &StoreSettings,
        configured: impl Fn(&str, &str) -> bool,
        notify: impl Fn(StoreEvent) + Send + 'static,
    ) -> Result<(Self, Opened), StoreError> {
        private_dir(dir).map_err(|source| StoreError::Directory { path: dir.to_owned(), source })?;
        let lock = lock(dir)?;
        let path = dir.join(FILE_NAME);
        let open = |source| StoreError::Open { path: path.clone(), source };
        let mut db = Connection::open(&path).map_err(open)?;
        // The outbox holds what people said: readable by the daemon's user only (SQLite gives its WAL and
        // shared-memory files the database file's mode).
        private_file(&path).map_err(|source| StoreError::Directory { path: path.clone(), source })?;
        private_file(&dir.join(LOCK_FILE)).map_err(|source| StoreError::Directory { path: dir.to_owned(), source })?;
        db.pragma_update(None, "journal_mode", "WAL").map_err(open)?;
        db.pragma_update(None, "synchronous", if settings.full_sync { "FULL" } else { "NORMAL" }).map_err(open)?;
        db.busy_timeout(Duration::from_secs(5)).map_err(open)?;
        migrate(&mut db, &path)?;
        let opened = startup(&mut db, settings, &configured).map_err(open)?;
        // Checkpoints (copying the WAL into the database file) are the writer's, between transactions, at most
        // once a second: nothing waits for a commit, so nothing waits for a checkpoint either.
        db.pragma_update(None, "wal_autocheckpoint", 0).map_err(open)?;
        // The page cache holds what the writer's inserts and deletes touch: the recent ends of six B-trees, a few
        // pages each. 256 KiB holds them (1 MiB measured no different for the writer's CPU, and was a tenth of
        // the daemon's memory after a burst).
        db.pragma_update(None, "cache_size", -256).map_err(open)?;
        let thread = |e| StoreError::Directory { path: dir.to_owned(), source: e };
        let (ops, receiver) = mpsc::channel();
        let max_age = settings.id_map_max_age;
        let limits = Limits {
            pages: settings.page_limit.clone(),
            max_outbox: settings.max_outbox,
            max_dead_letters: settings.max_dead_letters,
        };
        let held: Vec<Held> = [path.clone(), dir.join(LOCK_FILE)].into_iter().filter_map(Held::of).collect();
        let writer = std::thread::Builder::new()
            .name("chatbridge-store".into())
            .spawn(move || write(db, receiver, notify, max_age, limits, held))
            .map_err(thread)?;
        let store =
            Self { gathered: std::cell::RefCell::new(Vec::new()), ops: Some(ops), writer: Some(writer), _lock: lock };
        Ok((store, opened))
    }

    /// Queues an outbox row (written with the next transaction).
    pub fn put(&self, key: u64, room: String, bridge: String, record: &Record) {
        let record = serde_json::to_vec(record).expect("a record serialises");
        self.send(Op::Put { key, bridge, row: Pending::Encoded { room, record } });
    }

    /// [`Store::put`] for a queued event: the writer serialises it (once for all the destinations of an event
    /// that need writing), and not at all when the copy is acknowledged before the transaction commits.
    pub fn put_event(
        &self,
        key: u64,
        room: RoomAddr,
        bridge: String,
        event: Arc<Event>,
        client_ids: Vec<RemoteId>,
        group: Option<u64>,
    ) {
        self.send(Op::Put { key, bridge, row: Pending::Event { room, event, client_ids, group } });
    }

    pub fn delete(&self, key: u64) {
        self.send(Op::Delete { key });
    }

    /// Moves an outbox row to the dead letters.
    pub fn dead_letter(&self, key: u64, reason: String) {
        self.send(Op::DeadLetter { key, reason });
    }

    /// A new id-map group, with the original's id when it has one.
    /// (Rooms and ids are the router's shared values: written out as text on the writer's thread.)
    pub fn group(
        &self,
        id: u64,
        origin: Option<(RoomAddr, RemoteId)>,
        sender: Option<String>,
        text: String,
        time: i64,
    ) {
        self.send(Op::Group { id, origin, sender, text, time });
    }

    /// The confirmed ids of our copy of `group` in `room`.
    pub fn copy(&self, group: u64, room: RoomAddr, ids: Vec<RemoteId>) {
        self.send(Op::Copy { group, room, ids });
    }

    pub fn cursor(&self, room: String, cursor: String) {
        self.send(Op::Cursor { room, cursor });
    }

    /// Reads up to `limit` outbox rows of `room` with keys after `after`; answered with
    /// [`StoreEvent::Loaded`].
    pub fn load(&self, room: RoomAddr, after: u64, limit: usize) {
        self.send(Op::Load { room, after, limit });
    }

    /// Marks the end of one input's work: its operations go to the writer, which may commit after them.
    pub fn end(&self) {
        let ops = std::mem::take(&mut *self.gathered.borrow_mut());
        if ops.is_empty() {
            return;
        }
        if let Some(sender) = &self.ops
            && sender.send(ops).is_err()
        {
            error!("The store's writer has stopped: state is no longer saved.");
        }
    }

    fn send(&self, op: Op) {
        self.gathered.borrow_mut().push(op);
    }
}

impl Store {
    /// Lets the writer commit what it was given (trying for a few seconds when the database cannot be
    /// written), waits for it, and says what the outbox holds.
    pub fn close(mut self) -> Closing {
        self.finish()
    }

    fn finish(&mut self) -> Closing {
        self.end();
        self.ops = None;
        self.writer.take().and_then(|writer| writer.join().ok()).unwrap_or_default()
    }
}

impl crate::router::port::Persist for Store {
    fn durable(&self) -> bool {
        true
    }

    fn cursor(&self, room: &RoomAddr, cursor: &crate::model::Cursor) {
        Store::cursor(self, room.to_string(), cursor.as_str().to_owned());
    }

    fn group(&self, id: u64, origin: Option<(&RoomAddr, &RemoteId)>, snippet: crate::router::idmap::Snippet) {
        let origin = origin.map(|(room, id)| (room.clone(), id.clone()));
        Store::group(self, id, origin, snippet.sender, snippet.text, snippet.time.0);
    }

    fn put(&self, row: crate::router::port::Put<'_>) {
        let (room, bridge, event) = (row.room.clone(), row.bridge.to_owned(), Arc::clone(row.event));
        Store::put_event(self, row.key, room, bridge, event, row.client_ids.to_vec(), row.group);
    }

    fn delete(&self, key: u64, _: &RoomAddr) {
        Store::delete(self, key);
    }

    fn dead_letter(&self, key: u64, _: &RoomAddr, reason: String) {
        Store::dead_letter(self, key, reason);
    }

    fn copy(&self, group: u64, room: &RoomAddr, ids: &[RemoteId]) {
        Store::copy(self, group, room.clone(), ids.to_vec());
    }

    fn load(&self, room: &RoomAddr, after: u64, limit: usize) {
        Store::load(self, room.clone(), after, limit);
    }

    fn requeue(&self, keys: &[u64], first: u64) -> bool {
        self.send(Op::Requeue { keys: keys.to_vec(), first });
        true
    }

    fn end(&self) {
        Store::end(self);
    }

    fn close(self: Box<Self>) -> Closing {
        Store::close(*self)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.finish();
    }
}

/// How often the WAL is copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Copies the WAL into the database file: `PASSIVE` while running, `TRUNCATE` (which also empties the WAL)
/// when the store closes.
fn checkpoint(db: &Connection, mode: &str) {
    if let Err(e) = db.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(())) {
        warn!(error = %e, "A checkpoint of the state database failed; the next one tries again.");
    }
}

#[cfg(test)]
mod contract;
#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;
