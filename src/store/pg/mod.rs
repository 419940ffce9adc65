//! The PostgreSQL store (`general.store = "postgres://…"`): the same data as the SQLite store — outbox, id map,
//! cursors, dead letters — in a database several instances can share.
//!
//! Everything the store does runs on one thread of its own with its own runtime (as the SQLite store's
//! writer does): a writer connection that gathers the router's operations into transactions (the same
//! batching as SQLite's, each batch a few pipelined statements over arrays), and a reader connection for the id
//! map's lookups of groups no longer in memory. The router's calls never wait for the database but those
//! lookups, which wait for one round trip as SQLite's wait for one page read.
//!
//! Keys and group ids are given per run: each start takes a number from the `chatbridge_runs` sequence and
//! gives keys and ids from `run << 40` up, so instances sharing the database never give the same one.

mod admin;
mod batch;
mod connect;
mod held;
pub mod lease;
mod listen;
pub(super) mod provisioned;
mod reader;
pub mod schema;
mod taken;
#[doc(hidden)]
pub mod testing;
mod unit;
mod writer;

pub use admin::{
    Instance, SchemaState, dead_letters, drop_letters, instances, migrate, queues, requeue, requeue_now, status,
};
use connect::reason;
pub use connect::{PgTarget, blocking};
pub use reader::PgReader;

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;
use tracing::{error, warn};

use super::{Closing, Op, Opened, Pending, StoreError, StoreEvent, StoreSettings};
use crate::model::{RemoteId, RoomAddr};

/// The account a write is for, and the epoch of its lease when the write was made (`None`: not held then).
/// The writer refuses a write whose epoch is not the lease's current one (fencing).
#[derive(Debug, Clone)]
pub(super) struct Fence {
    account: String,
    epoch: Option<i64>,
}

/// An operation as the router gave it, with its fence (none for a write that is no account's: a group
/// without an origin).
pub(super) struct Stamped {
    op: Op,
    fence: Option<Fence>,
    /// For a put the router keeps in its queue too: the epoch of the destination account's lease, which marks
    /// the row as held under it.
    holder: Option<i64>,
}

/// The PostgreSQL store's writing side (the router's persistence port).
pub struct PgStore {
    gathered: std::cell::RefCell<Vec<Stamped>>,
    ops: Option<mpsc::UnboundedSender<Vec<Stamped>>>,
    thread: Option<JoinHandle<Closing>>,
    /// This start's number (the prefix of its keys and group ids).
    run: i64,
    held: lease::Held,
}

/// What [`PgStore::open`] starts besides the store.
pub struct PgOpened {
    pub store: PgStore,
    pub opened: Opened,
    pub reader: PgReader,
    pub leases: lease::Leases,
}

impl PgStore {
    /// Connects, migrates, reads what the database holds, and starts the writer, the id-map reader, the
    /// outbox listener and the lease task (which claims this instance's share of `leases.accounts`).
    pub fn open(
        target: &PgTarget,
        settings: &StoreSettings,
        leasing: lease::LeaseSettings,
        stats: Arc<crate::stats::Stats>,
        configured: impl Fn(&str, &str) -> bool + Send + 'static,
        notify: impl Fn(StoreEvent) + Send + Sync + 'static,
    ) -> Result<PgOpened, StoreError> {
        let (ops, inputs) = mpsc::unbounded_channel();
        let (barrier, barriers) = mpsc::unbounded_channel();
        let (reads, requests) = mpsc::unbounded_channel();
        let (lease_events, events) = mpsc::unbounded_channel();
        let (commands, lease_commands) = mpsc::unbounded_channel();
        let (started, start) = std::sync::mpsc::sync_channel(1);
        let held = lease::Held::default();
        let settings = settings.clone();
        let target = target.clone();
        let notify: listen::Notify = Arc::new(notify);
        let bridges_changed = Arc::new(tokio::sync::Notify::new());
        let thread_bridges = Arc::clone(&bridges_changed);
        let thread_held = held.clone();
        let thread = std::thread::Builder::new()
            .name("chatbridge-pg".into())
            .spawn(move || {
                let held = thread_held;
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let reason = format!("cannot start a runtime: {e}");
                        let _ = started.send(Err(StoreError::Postgres { target: target.describe(), reason }));
                        return Closing::default();
                    }
                };
                runtime.block_on(async move {
                    let opening = async {
                        let error = |e: tokio_postgres::Error| target.error(&e);
                        let mut client = target.connect().await.map_err(error)?;
                        schema::migrate(&mut client).await.map_err(|e| match e {
                            schema::MigrateError::Newer { found } => {
                                StoreError::PgNewer { target: target.describe(), found }
                            }
                            schema::MigrateError::Postgres(e) => target.error(&e),
                        })?;
                        if lease::name_taken(&client, &leasing.instance, leasing.ttl).await.map_err(error)? {
                            warn!(
                                instance = %leasing.instance,
                                "An instance of this name renewed its leases moments ago: this instance's last run if it \
                                 crashed (its accounts come back as their leases expire), else another instance, which \
                                 needs a general.instance of its own."
                            );
                        }
                        let run: i64 =
                            client.query_one("SELECT nextval('chatbridge_runs')", &[]).await.map_err(error)?.get(0);
                        // This instance's share of the accounts is claimed before anything is read, so that
                        // what their rooms hold is queued at once; the share counts the instances started with it.
                        let mut leases = lease::LeaseTask {
                            target: target.clone(),
                            client: target.connect().await.map_err(error)?,
                            run,
                            settings: leasing,
                            held: held.clone(),
                            events: lease_events,
                            stats,
                            releasing: Default::default(),
                            soonest: None,
                            barrier,
                        };
                        leases.first_round().await.map_err(error)?;
                        let opened =
                            schema::startup(&mut client, run, &held, &settings, &configured).await.map_err(error)?;
                        let reader = target.connect().await.map_err(error)?;
                        Ok::<_, StoreError>((client, reader, leases, run, opened))
                    };
                    let (client, reader, leases, run, opened) = match opening.await {
                        Ok(done) => done,
                        Err(e) => {
                            let _ = started.send(Err(e));
                            return Closing::default();
                        }
                    };
                    // Which rooms are configured mattered at the start only: at thousands of bridges it is a copy
                    // of every one, not to be kept for as long as the writer runs.
                    drop(configured);
                    let _ = started.send(Ok((run, opened)));
                    tokio::spawn(reader::serve(target.clone(), reader, requests));
                    let released = Arc::new(tokio::sync::Notify::new());
                    let told = listen::Told { released: Arc::clone(&released), bridges: thread_bridges };
                    tokio::spawn(listen::listen(target.clone(), held.clone(), Arc::clone(&notify), told));
                    let (stop_leases, stopped) = tokio::sync::oneshot::channel();
                    let leasing = tokio::spawn(leases.run(lease_commands, stopped, released));
                    let writer = writer::Writer::new(target, client, run, settings, held);
                    let closing = writer::write(writer, inputs, barriers, notify).await;
                    // What was acknowledged is written: the leases go back at once.
                    let _ = stop_leases.send(());
                    let _ = leasing.await;
                    closing
                })
            })
            .map_err(|e| StoreError::Postgres { target: "postgres".into(), reason: e.to_string() })?;
        let (run, opened) = match start.recv() {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(StoreError::Postgres {
                    target: "postgres".into(),
                    reason: "the store's thread stopped".into(),
                });
            }
        };
        let store =
            Self { gathered: Default::default(), ops: Some(ops), thread: Some(thread), run, held: held.clone() };
        let reader = PgReader::new(reads);
        let leases = lease::Leases { events, commands, held, reader: reader.clone(), bridges_changed };
        Ok(PgOpened { store, opened, reader, leases })
    }

    /// This start's number in `chatbridge_runs`.
    pub fn run(&self) -> i64 {
        self.run
    }

    /// Gathers `op`, fenced by the lease of `room` (none for a write that is no room's: a group).
    fn send(&self, op: Op, room: Option<&RoomAddr>, holder: Option<i64>) {
        let fence = room.map(|room| {
            let account = room.lease();
            let epoch = self.held.epoch(&account);
            Fence { account, epoch }
        });
        self.gathered.borrow_mut().push(Stamped { op, fence, holder });
    }

    fn finish(&mut self) -> Closing {
        crate::router::port::Persist::end(self);
        self.ops = None;
        self.thread.take().and_then(|thread| thread.join().ok()).unwrap_or_default()
    }
}

impl crate::router::port::Persist for PgStore {
    fn durable(&self) -> bool {
        true
    }

    fn shared(&self) -> bool {
        true
    }

    fn may_send(&self, room: &RoomAddr) -> bool {
        self.held.current(&room.lease())
    }

    fn holds(&self, room: &RoomAddr) -> bool {
        self.held.epoch(&room.lease()).is_some()
    }

    fn cursor(&self, room: &RoomAddr, cursor: &crate::model::Cursor) {
        let op = Op::Cursor { room: room.to_string(), cursor: cursor.as_str().to_owned() };
        self.send(op, Some(room), None);
    }

    fn group(&self, id: u64, origin: Option<(&RoomAddr, &RemoteId)>, snippet: crate::router::idmap::Snippet) {
        // Like a put: what was received is kept.
        let origin = origin.map(|(room, id)| (room.clone(), id.clone()));
        let (sender, text, time) = (snippet.sender, snippet.text, snippet.time.0);
        self.send(Op::Group { id, origin, sender, text, time }, None, None);
    }

    fn put(&self, row: crate::router::port::Put<'_>) {
        let pending = Pending::Event {
            room: row.room.clone(),
            event: Arc::clone(row.event),
            client_ids: row.client_ids.to_vec(),
            group: row.group,
        };
        // A message received is always written, for whoever sends it: refusing it would lose it where the
        // source keeps no history; at worst the source's new instance reads it again (at least once).
        let holder = if row.in_memory { self.held.epoch(&row.room.lease()) } else { None };
        let op = Op::Put { key: row.key, bridge: row.bridge.to_owned(), row: pending };
        self.send(op, None, holder);
    }

    fn delete(&self, key: u64, room: &RoomAddr) {
        self.send(Op::Delete { key }, Some(room), None);
    }

    fn dead_letter(&self, key: u64, room: &RoomAddr, reason: String) {
        self.send(Op::DeadLetter { key, reason }, Some(room), None);
    }

    fn copy(&self, group: u64, room: &RoomAddr, ids: &[RemoteId]) {
        self.send(Op::Copy { group, room: room.clone(), ids: ids.to_vec() }, Some(room), None);
    }

    fn load(&self, room: &RoomAddr, after: u64, limit: usize) {
        self.send(Op::Load { room: room.clone(), after, limit }, Some(room), None);
    }

    fn end(&self) {
        let ops = std::mem::take(&mut *self.gathered.borrow_mut());
        if ops.is_empty() {
            return;
        }
        if let Some(sender) = &self.ops
            && sender.send(ops).is_err()
        {
            error!("The PostgreSQL store's writer has stopped: state is no longer saved.");
        }
    }

    fn close(mut self: Box<Self>) -> Closing {
        self.finish()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests;
