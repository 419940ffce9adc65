//! The router's persistence port: what the router asks of a store so that queued messages, the id map and
//! the read cursors survive a restart, and what a store reports back. The SQLite store (`store`) implements it;
//! [`InMemory`] serves `durable = false`. A networked store implements the same trait without the router
//! changing.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::model::{Cursor, Event, RemoteId, RoomAddr};
use crate::router::idmap::Snippet;

/// Where the router keeps what must outlive the process. Calls gather one input's work; [`Persist::end`] marks
/// the input done (a store may commit after it). None of them waits: results come back as [`StoreEvent`]s.
pub trait Persist: Send {
    /// Whether queued messages survive a restart. When they do, a full room queue waits in the store (spills)
    /// instead of dropping its oldest, and a message given up goes to the dead letters instead of nowhere.
    fn durable(&self) -> bool;
    /// Whether other instances share the store: a room whose account runs elsewhere gets its messages
    /// through the store only, and rows of this instance's rooms may come from others ([`StoreEvent::Arrived`]).
    fn shared(&self) -> bool {
        false
    }
    /// Whether sends to `room` may go out now (with a shared store: this instance holds its lease — the room's
    /// own, or its account's — renewed recently enough).
    fn may_send(&self, _room: &RoomAddr) -> bool {
        true
    }
    /// Whether this instance runs `room` (with a shared store: holds its lease); a room it does not run gets its
    /// messages through the store only, even when its account runs here with other rooms.
    fn holds(&self, _room: &RoomAddr) -> bool {
        true
    }
    /// A source room's read cursor moved (stored with the outbox rows its event produced).
    fn cursor(&self, room: &RoomAddr, cursor: &Cursor);
    /// A new id-map group, with the original's id when it has one.
    fn group(&self, id: u64, origin: Option<(&RoomAddr, &RemoteId)>, snippet: Snippet);
    /// A message queued for a room.
    fn put(&self, row: Put<'_>);
    /// Delivered (or needs no sending): the row of `room` goes.
    fn delete(&self, key: u64, room: &RoomAddr);
    /// Given up: the row moves to the dead letters.
    fn dead_letter(&self, key: u64, room: &RoomAddr, reason: String);
    /// The confirmed ids of the copy of `group` in `room`.
    fn copy(&self, group: u64, room: &RoomAddr, ids: &[RemoteId]);
    /// Reads up to `limit` rows of `room` after key `after`; answered with [`StoreEvent::Loaded`].
    fn load(&self, room: &RoomAddr, after: u64, limit: usize);
    /// Moves dead letters back to the outbox, in key order with the keys `first..` (the router's), answered with
    /// [`StoreEvent::Requeued`]. `false`: this store takes requeues another way (or has no dead letters).
    fn requeue(&self, _keys: &[u64], _first: u64) -> bool {
        false
    }
    /// One input's work is complete.
    fn end(&self);
    /// Writes what it was given and stops; says what it keeps.
    fn close(self: Box<Self>) -> Closing;
}

/// One message queued for one room.
pub struct Put<'a> {
    /// Its outbox key.
    pub key: u64,
    pub room: &'a RoomAddr,
    pub bridge: &'a str,
    pub event: &'a Arc<Event>,
    pub client_ids: &'a [RemoteId],
    pub group: Option<u64>,
    /// Whether the router keeps it in its queue too; otherwise it waits in the store only (the queue spilled,
    /// or — with a store several instances share — another instance sends to the room), to be read back.
    pub in_memory: bool,
}

/// `durable = false`: nothing is kept, nothing is reported.
pub struct InMemory {
    /// Keeps the router's report channel open (it never carries anything).
    _reports: mpsc::UnboundedSender<StoreEvent>,
}

impl InMemory {
    /// The port and its (silent) report channel.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<StoreEvent>) {
        let (reports, receiver) = mpsc::unbounded_channel();
        (Self { _reports: reports }, receiver)
    }
}

impl Persist for InMemory {
    fn durable(&self) -> bool {
        false
    }
    fn cursor(&self, _: &RoomAddr, _: &Cursor) {}
    fn group(&self, _: u64, _: Option<(&RoomAddr, &RemoteId)>, _: Snippet) {}
    fn put(&self, _: Put<'_>) {}
    fn delete(&self, _: u64, _: &RoomAddr) {}
    fn dead_letter(&self, _: u64, _: &RoomAddr, _: String) {}
    fn copy(&self, _: u64, _: &RoomAddr, _: &[RemoteId]) {}
    fn load(&self, _: &RoomAddr, _: u64, _: usize) {}
    fn end(&self) {}
    fn close(self: Box<Self>) -> Closing {
        Closing { stored: Some(0), unwritten: 0 }
    }
}

/// One queued message as stored: what the router needs to send it again.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub event: Event,
    pub client_ids: Vec<RemoteId>,
    /// The message's id-map group (absent in rows written before the id map was stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<u64>,
}

/// A stored outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub key: u64,
    pub room: RoomAddr,
    pub bridge: String,
    pub record: Record,
    /// Another run of the daemon had it in its queue (it may have been sent before that run stopped).
    pub held_before: bool,
}

/// One id-map group as stored: the message's snippet and every member (origin and copies).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredGroup {
    pub id: u64,
    pub sender: Option<String>,
    pub text: String,
    pub time: i64,
    pub members: Vec<StoredMember>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredMember {
    pub room: RoomAddr,
    /// The ids, in part order.
    pub ids: Vec<String>,
    /// A copy we made (not the original).
    pub ours: bool,
}

/// What the store held at start.
#[derive(Debug, Default)]
pub struct Opened {
    /// The first rows of each configured room's outbox, in key order.
    pub outbox: Vec<Stored>,
    /// Per room (`room`, rows beyond those in `outbox`): read later, as the room's queue drains.
    pub backlog: Vec<(RoomAddr, usize)>,
    /// The most recent groups of the id map, oldest first.
    pub groups: Vec<StoredGroup>,
    /// The highest group id ever given (new groups continue after it).
    pub last_group: Option<u64>,
    /// Each room's cursor.
    pub cursors: Vec<(RoomAddr, Cursor)>,
    /// The highest outbox key ever given, in the outbox or the dead letters.
    pub last_key: u64,
    /// Outbox rows of rooms that are not in the configuration (kept until they expire).
    pub orphans: usize,
}

/// What the writer reports to the router.
#[derive(Debug)]
pub enum StoreEvent {
    /// A transaction committed: `written` outbox rows went to the database, `skipped` were acknowledged
    /// before it committed and never needed writing.
    Committed { written: u64, skipped: u64 },
    /// Rows read for a room whose queue spilled to the store (`load`), in key order; `through` is the
    /// last key read (rows that could not be decoded are left out, not read again); `exhausted` when fewer
    /// rows than asked for were there.
    Loaded { room: RoomAddr, rows: Vec<Stored>, through: u64, exhausted: bool },
    /// A transaction failed: its changes are kept and written again. No message should be taken in until
    /// [`StoreEvent::Recovered`].
    Failing { reason: String },
    /// What failed is written.
    Recovered,
    /// How many rows the outbox and the dead letters hold (counted every few seconds).
    Sizes { outbox: u64, dead_letters: u64 },
    /// Rows for `room` that this instance does not hold came into the store (another instance queued them, or
    /// the room's account came here from another instance): they are read like spilled ones.
    Arrived { room: RoomAddr },
    /// Dead letters moved back to the outbox (`requeue`): the rows, in key order.
    Requeued { rows: Vec<Stored> },
    /// Writes refused because this instance no longer holds the lease of the account they were for
    /// (fencing): an instance that lost an account neither sends nor acknowledges for it.
    Fenced { refused: u64 },
}

/// How the writer ended: what the outbox holds, and what it could not write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Closing {
    /// Outbox rows in the database when the writer stopped (the messages a restart delivers); `None` when
    /// the database could not be read.
    pub stored: Option<u64>,
    /// Outbox rows it was given but could not write (lost).
    pub unwritten: u64,
}
