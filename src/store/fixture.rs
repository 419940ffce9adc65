//! What the store tests share: a fixture per backend (SQLite in a temporary directory; PostgreSQL on a
//! throw-away server, where one is installed), their settings, and rows to write.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::admin::{DeadLetter, Queue};
use super::pg::PgTarget;
use super::pg::testing::TestPostgres;
use super::*;
use crate::model::{AccountId, Content, EventKind, Message, Platform, RoomAddr, RoomId};
use crate::router::port::Persist;

pub(super) fn settings() -> StoreSettings {
    StoreSettings {
        full_sync: false,
        id_map_max_age: Duration::from_secs(3600),
        id_map_capacity: 100,
        orphan_max_age: Duration::from_secs(3600),
        per_room: 100,
        page_limit: PageLimit::default(),
        max_outbox: 1_000_000,
        max_dead_letters: 100_000,
    }
}

pub(super) type Events = Arc<Mutex<Vec<StoreEvent>>>;

/// Where a contract test keeps its state.
pub(super) enum Fixture {
    Sqlite(PathBuf),
    Postgres(Box<PgTarget>),
}

impl Fixture {
    pub(super) fn sqlite() -> Self {
        Fixture::Sqlite(std::env::temp_dir().join(format!("chatbridge-store-{}", uuid::Uuid::new_v4())))
    }

    /// A fresh database on the shared test server; `None` where PostgreSQL is not installed.
    pub(super) fn postgres() -> Option<Self> {
        let url = TestPostgres::shared()?.database();
        Some(Fixture::Postgres(Box::new(PgTarget::parse(&url).unwrap())))
    }

    fn backend(&self) -> Backend<'_> {
        match self {
            Fixture::Sqlite(dir) => Backend::Sqlite(dir),
            Fixture::Postgres(target) => Backend::Postgres(target),
        }
    }

    /// Opens the store, recording its events (the periodic counts only when `sizes`; never the shared store's
    /// sweeps, which say every few seconds that the rows written here wait in the store).
    pub(super) fn open_recording(&self, settings: &StoreSettings, sizes: bool) -> (Opening, Events) {
        let events: Events = Arc::default();
        let sink = Arc::clone(&events);
        let record = move |e: StoreEvent| {
            if !matches!(e, StoreEvent::Arrived { .. }) && (sizes || !matches!(e, StoreEvent::Sizes { .. })) {
                sink.lock().unwrap().push(e);
            }
        };
        let opening =
            open(self.backend(), settings, leasing("test"), Arc::default(), |_, bridge| bridge == "b", record).unwrap();
        (opening, events)
    }

    pub(super) fn open(&self, settings: &StoreSettings) -> (Box<dyn Persist>, Opened, Events) {
        let (opening, events) = self.open_recording(settings, false);
        (opening.persist, opening.opened, events)
    }

    pub(super) fn dead_letters(&self) -> Vec<DeadLetter> {
        match self {
            Fixture::Sqlite(dir) => admin::dead_letters(dir).unwrap(),
            Fixture::Postgres(target) => pg::dead_letters(target).unwrap(),
        }
    }

    pub(super) fn requeue(&self, keys: Option<&[u64]>) -> usize {
        match self {
            Fixture::Sqlite(dir) => admin::requeue(dir, keys).unwrap(),
            Fixture::Postgres(target) => pg::requeue(target, keys).unwrap(),
        }
    }

    pub(super) fn queues(&self) -> Vec<Queue> {
        match self {
            Fixture::Sqlite(dir) => admin::queues(dir).unwrap().unwrap_or_default(),
            Fixture::Postgres(target) => pg::queues(target).unwrap(),
        }
    }

    /// How many outbox rows are committed, read from outside the store.
    pub(super) fn outbox_rows(&self) -> usize {
        self.queues().iter().map(|q| q.messages).sum()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Fixture::Sqlite(dir) = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// How a test instance takes part in a shared store: it holds every account the tests write for.
pub(super) fn leasing(instance: &str) -> pg::lease::LeaseSettings {
    let accounts = ["fishroom.t", "missevan.a", "yunhu.b"].iter().map(|a| a.parse().unwrap()).collect();
    pg::lease::LeaseSettings { instance: instance.to_owned(), ttl: Duration::from_secs(15), accounts }
}

pub(super) fn room(name: &str) -> RoomAddr {
    RoomAddr::new(AccountId::new(Platform::Fishroom, "t"), RoomId::new(name))
}

pub(super) fn event(text: &str) -> Arc<Event> {
    let kind = EventKind::Message(Message { content: Content::text(text), ..Message::default() });
    Arc::new(Event::new(room("r"), None, None, kind))
}

/// A row for `room` in bridge `bridge`, in the store only (as a spilled one).
pub(super) fn row<'a>(
    key: u64,
    room: &'a RoomAddr,
    bridge: &'a str,
    event: &'a Arc<Event>,
    client_ids: &'a [RemoteId],
    group: Option<u64>,
) -> crate::router::port::Put<'a> {
    crate::router::port::Put { key, room, bridge, event, client_ids, group, in_memory: false }
}

/// Queues `text` for `fishroom.t:r` in bridge `b` under `key`.
pub(super) fn put(store: &dyn Persist, key: u64, text: &str) {
    store.put(row(key, &room("r"), "b", &event(text), &[RemoteId::new("c1")], Some(7)));
}

pub(super) fn text(stored: &Stored) -> String {
    match &stored.record.event.kind {
        EventKind::Message(m) => m.content.to_plain_text(),
        _ => unreachable!(),
    }
}

/// Waits until `events` holds one that `matches`.
pub(super) fn wait_for(events: &Events, what: &str, matches: impl Fn(&StoreEvent) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !events.lock().unwrap().iter().any(&matches) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {:?}", events.lock().unwrap());
        std::thread::sleep(Duration::from_millis(10));
    }
}
