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
pub mod idmap;
mod writer;

pub use writer::PageLimit;
// What the router's persistence port exchanges.
pub use crate::router::port::{Closing, Opened, Record, StoreEvent, Stored, StoredGroup, StoredMember};
use writer::{Limits, write};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tracing::{error, info, warn};

use crate::model::{Event, RemoteId, RoomAddr, Time};

/// The schema version this build writes; older databases are migrated forward on open.
const SCHEMA_VERSION: i64 = 2;

/// The longest a transaction of the writer stays open while inputs keep coming: what a crash can cost is
/// the open transaction, so this bounds how many messages a crash makes their sources deliver again.
const MAX_BATCH: Duration = Duration::from_millis(5);

/// How long the writer pauses after the inputs it has before it looks for more, and commits when there are
/// none: under a steady stream the inputs of a few milliseconds share one commit (one write of each touched
/// page instead of many), and the writer is woken once per pause, not once per input.
const GATHER: Duration = Duration::from_millis(1);

/// How often the writer prunes the id map of entries older than its maximum age.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

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

/// An outbox row waiting in the writer for its transaction's commit.
enum Pending {
    Encoded { room: String, record: Vec<u8> },
    Event { room: RoomAddr, event: Arc<Event>, client_ids: Vec<RemoteId>, group: Option<u64> },
}

/// How often the writer counts the outbox and the dead letters (often in unit tests, which wait for it).
#[cfg(not(test))]
const SIZE_EVERY: Duration = Duration::from_secs(10);
#[cfg(test)]
const SIZE_EVERY: Duration = Duration::from_millis(100);

enum Op {
    Put { key: u64, bridge: String, row: Pending },
    Delete { key: u64 },
    DeadLetter { key: u64, reason: String },
    Group { id: u64, origin: Option<(RoomAddr, RemoteId)>, sender: Option<String>, text: String, time: i64 },
    Copy { group: u64, room: RoomAddr, ids: Vec<RemoteId> },
    Cursor { room: String, cursor: String },
    Load { room: String, after: u64, limit: usize },
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
        // The page cache holds what the writer's inserts and deletes touch (the tables' recent ends).
        db.pragma_update(None, "cache_size", -1024).map_err(open)?;
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
    pub fn load(&self, room: String, after: u64, limit: usize) {
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

    fn cursor(&self, room: &RoomAddr, cursor: &str) {
        Store::cursor(self, room.to_string(), cursor.to_owned());
    }

    fn group(&self, id: u64, origin: Option<(&RoomAddr, &RemoteId)>, snippet: &crate::router::idmap::Snippet) {
        let origin = origin.map(|(room, id)| (room.clone(), id.clone()));
        Store::group(self, id, origin, snippet.sender.clone(), snippet.text.clone(), snippet.time.0);
    }

    fn put(&self, key: u64, room: &RoomAddr, bridge: &str, event: &Arc<Event>, ids: &[RemoteId], group: Option<u64>) {
        Store::put_event(self, key, room.clone(), bridge.to_owned(), Arc::clone(event), ids.to_vec(), group);
    }

    fn delete(&self, key: u64) {
        Store::delete(self, key);
    }

    fn dead_letter(&self, key: u64, reason: String) {
        Store::dead_letter(self, key, reason);
    }

    fn copy(&self, group: u64, room: &RoomAddr, ids: &[RemoteId]) {
        Store::copy(self, group, room.clone(), ids.to_vec());
    }

    fn load(&self, room: &RoomAddr, after: u64, limit: usize) {
        Store::load(self, room.to_string(), after, limit);
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

/// A file the store holds open, as it was opened: removed or replaced under a running daemon, what the
/// store writes is lost at the next start (the database) or a second daemon can start (the lock).
struct Held {
    path: PathBuf,
    id: (u64, u64),
}

impl Held {
    fn of(path: PathBuf) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&path).ok()?;
        Some(Self { path, id: (meta.dev(), meta.ino()) })
    }

    /// Why the file is no longer the one held, if it is not.
    fn gone(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(&self.path) {
            Err(_) => Some(format!("{} was removed", self.path.display())),
            Ok(meta) if (meta.dev(), meta.ino()) != self.id => Some(format!("{} was replaced", self.path.display())),
            Ok(_) => None,
        }
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

/// Takes the state directory's lock (released by the kernel when the process ends, however it ends).
/// Creates the state directory, for its owner only (0700). One that exists is left as it is (it may be
/// shared on purpose), with a WARN when others can read it.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o007 != 0 {
            warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777), "The state directory is open to other users; the database in it is not (0600).");
        }
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Makes a file of the state directory readable and writable by its owner only (0600).
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// The lock's file name inside `state_dir`.
const LOCK_FILE: &str = "chatbridge.lock";

fn lock(dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::Lock { path: path.clone(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked { path }),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Lock { path, source }),
    }
}

/// Brings the schema to [`SCHEMA_VERSION`], one version at a time, each step in its own transaction.
fn migrate(db: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let open = |source| StoreError::Open { path: path.to_owned(), source };
    let version: i64 = db.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(open)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Newer { path: path.to_owned(), found: version });
    }
    let steps: [&str; 2] = [
        // 1: the outbox.
        "CREATE TABLE IF NOT EXISTS outbox (
            key INTEGER PRIMARY KEY,
            room TEXT NOT NULL,
            bridge TEXT NOT NULL,
            record BLOB NOT NULL,
            queued_at INTEGER NOT NULL
        );",
        // 2: the id map, cursors, dead letters, and the outbox read per room.
        "CREATE TABLE groups (
            id INTEGER PRIMARY KEY,
            sender TEXT,
            text TEXT NOT NULL,
            time INTEGER NOT NULL,
            created INTEGER NOT NULL
        );
        CREATE TABLE copies (
            room TEXT NOT NULL,
            remote TEXT NOT NULL,
            grp INTEGER NOT NULL,
            part INTEGER NOT NULL,
            ours INTEGER NOT NULL,
            PRIMARY KEY (room, remote)
        ) WITHOUT ROWID;
        CREATE INDEX copies_by_group ON copies (grp);
        CREATE TABLE cursors (
            room TEXT PRIMARY KEY,
            cursor TEXT NOT NULL,
            updated INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE deadletters (
            key INTEGER PRIMARY KEY,
            room TEXT NOT NULL,
            bridge TEXT NOT NULL,
            record BLOB NOT NULL,
            queued_at INTEGER NOT NULL,
            failed_at INTEGER NOT NULL,
            reason TEXT NOT NULL,
            requeued INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX outbox_by_room ON outbox (room, key);",
    ];
    for (index, step) in steps.iter().enumerate() {
        let target = index as i64 + 1;
        if version >= target {
            continue;
        }
        let tx = db.transaction().map_err(open)?;
        tx.execute_batch(step).map_err(open)?;
        tx.pragma_update(None, "user_version", target).map_err(open)?;
        tx.commit().map_err(open)?;
        if version > 0 {
            info!(path = %path.display(), from = version, to = target, "State database migrated.");
        }
    }
    Ok(())
}

fn now() -> i64 {
    Time::now().0
}

/// The start-up pass: re-queues dead letters marked for it, expires old orphans and old id-map entries,
/// and reads what the router needs.
fn startup(
    db: &mut Connection,
    settings: &StoreSettings,
    configured: &impl Fn(&str, &str) -> bool,
) -> rusqlite::Result<Opened> {
    let tx = db.transaction()?;
    let mut opened = Opened::default();
    let max_key = |tx: &rusqlite::Transaction<'_>| -> rusqlite::Result<i64> {
        tx.query_row(
            "SELECT MAX(COALESCE((SELECT MAX(key) FROM outbox), 0), COALESCE((SELECT MAX(key) FROM deadletters), 0))",
            [],
            |row| row.get(0),
        )
    };
    // Re-queued dead letters go to the end of their room's queue, with fresh keys.
    let requeued: Vec<i64> = {
        let mut query = tx.prepare("SELECT key FROM deadletters WHERE requeued = 1 ORDER BY key")?;
        query.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?
    };
    for old in &requeued {
        let key = max_key(&tx)? + 1;
        tx.execute(
            "INSERT INTO outbox (key, room, bridge, record, queued_at)
             SELECT ?1, room, bridge, record, ?2 FROM deadletters WHERE key = ?3",
            params![key, now(), old],
        )?;
        tx.execute("DELETE FROM deadletters WHERE key = ?1", params![old])?;
    }
    if !requeued.is_empty() {
        info!(messages = requeued.len(), "Dead letters re-queued.");
    }
    // What each destination holds; rooms no longer configured are orphans.
    let rooms: Vec<(String, String, usize, i64)> = {
        let mut query =
            tx.prepare("SELECT room, bridge, COUNT(*), MIN(queued_at) FROM outbox GROUP BY room, bridge")?;
        query
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)? as usize, row.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let orphan_cutoff = now() - settings.orphan_max_age.as_millis() as i64;
    for (room, bridge, count, oldest) in rooms {
        if configured(&room, &bridge) {
            let mut query = tx.prepare_cached(
                "SELECT key, room, bridge, record FROM outbox WHERE room = ?1 AND bridge = ?2 ORDER BY key LIMIT ?3",
            )?;
            let rows = query.query_map(params![room, bridge, settings.per_room as i64], row_to_stored)?;
            let mut loaded = 0;
            for row in rows {
                loaded += 1;
                if let Some(stored) = decode(row?) {
                    opened.outbox.push(stored);
                }
            }
            if count > loaded {
                opened.backlog.push((room, count - loaded));
            }
            continue;
        }
        if oldest < orphan_cutoff {
            let moved = tx.execute(
                "INSERT INTO deadletters (key, room, bridge, record, queued_at, failed_at, reason)
                 SELECT key, room, bridge, record, queued_at, ?1, 'room no longer in the configuration'
                 FROM outbox WHERE room = ?2 AND bridge = ?3 AND queued_at < ?4",
                params![now(), room, bridge, orphan_cutoff],
            )?;
            tx.execute(
                "DELETE FROM outbox WHERE room = ?1 AND bridge = ?2 AND queued_at < ?3",
                params![room, bridge, orphan_cutoff],
            )?;
            warn!(%room, %bridge, messages = moved, "Queued messages for a room no longer in the configuration expired; they are in the dead letters.");
            opened.orphans += count - moved;
        } else {
            warn!(%room, %bridge, messages = count, "Queued messages for a room no longer in the configuration are kept until they expire (see `chatbridge check`).");
            opened.orphans += count;
        }
    }
    opened.outbox.sort_by_key(|s| s.key);
    opened.last_key = max_key(&tx)? as u64;
    prune(&tx, settings.id_map_max_age)?;
    opened.last_group =
        tx.query_row("SELECT MAX(id) FROM groups", [], |row| row.get::<_, Option<i64>>(0))?.map(|g| g as u64);
    opened.groups = load_groups(&tx, settings.id_map_capacity)?;
    opened.cursors = {
        let mut query = tx.prepare("SELECT room, cursor FROM cursors")?;
        query.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<rusqlite::Result<_>>()?
    };
    tx.commit()?;
    Ok(opened)
}

/// The `limit` most recent groups, with their members, oldest first.
fn load_groups(tx: &rusqlite::Transaction<'_>, limit: usize) -> rusqlite::Result<Vec<StoredGroup>> {
    let mut groups: Vec<StoredGroup> = {
        let mut query = tx.prepare("SELECT id, sender, text, time FROM groups ORDER BY id DESC LIMIT ?1")?;
        query
            .query_map(params![limit as i64], |row| {
                Ok(StoredGroup {
                    id: row.get::<_, i64>(0)? as u64,
                    sender: row.get(1)?,
                    text: row.get(2)?,
                    time: row.get(3)?,
                    members: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<_>>()?
    };
    groups.reverse();
    let Some(first) = groups.first().map(|g| g.id) else { return Ok(groups) };
    let mut query =
        tx.prepare("SELECT grp, room, remote, ours FROM copies WHERE grp >= ?1 ORDER BY grp, room, part")?;
    let rows = query.query_map(params![first as i64], |row| {
        Ok((row.get::<_, i64>(0)? as u64, row.get::<_, String>(1)?, row.get::<_, String>(2)?, row.get::<_, bool>(3)?))
    })?;
    let position: std::collections::HashMap<u64, usize> = groups.iter().enumerate().map(|(i, g)| (g.id, i)).collect();
    for row in rows {
        let (grp, room, remote, ours) = row?;
        let Some(&i) = position.get(&grp) else { continue };
        let members = &mut groups[i].members;
        match members.iter_mut().find(|m| m.room == room && m.ours == ours) {
            Some(member) => member.ids.push(remote),
            None => members.push(StoredMember { room, ids: vec![remote], ours }),
        }
    }
    Ok(groups)
}

/// Deletes id-map entries older than `max_age`.
fn prune(tx: &rusqlite::Transaction<'_>, max_age: Duration) -> rusqlite::Result<usize> {
    let cutoff = now() - max_age.as_millis() as i64;
    let Some(last) = tx
        .query_row("SELECT MAX(id) FROM groups WHERE created < ?1", params![cutoff], |row| row.get::<_, Option<i64>>(0))
        .optional()?
        .flatten()
    else {
        return Ok(0);
    };
    // Groups are created in id order: everything up to the newest expired one goes.
    let groups = tx.execute("DELETE FROM groups WHERE id <= ?1", params![last])?;
    tx.execute("DELETE FROM copies WHERE grp <= ?1", params![last])?;
    if groups > 0 {
        info!(groups, "Id map: entries older than its maximum age pruned.");
    }
    Ok(groups)
}

type Row = (i64, String, String, Vec<u8>);

fn row_to_stored(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn decode((key, room, bridge, record): Row) -> Option<Stored> {
    match serde_json::from_slice(&record) {
        Ok(record) => Some(Stored { key: key as u64, room, bridge, record }),
        Err(e) => {
            error!(key, error = %e, "An outbox row cannot be read; it is left in place.");
            None
        }
    }
}

#[cfg(test)]
mod tests;
