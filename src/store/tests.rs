use super::fixture::{Events, settings, wait_for};
use super::*;
use crate::model::{AccountId, Content, EventKind, Message, Platform, RoomAddr, RoomId};
use std::sync::Arc;

fn record(text: &str) -> Record {
    let room = RoomAddr::new(AccountId::new(Platform::Fishroom, "t"), RoomId::new("r"));
    let kind = EventKind::Message(Message { content: Content::text(text), ..Message::default() });
    Record { event: Event::new(room, None, None, kind), client_ids: vec![RemoteId::new("c1")], group: Some(7) }
}

pub(super) fn temp() -> PathBuf {
    std::env::temp_dir().join(format!("chatbridge-store-{}", uuid::Uuid::new_v4()))
}

/// Opens a store whose events (but the periodic counts) are recorded.
pub(super) fn open(dir: &Path, settings: &StoreSettings) -> (Store, Opened, Events) {
    open_recording(dir, settings, false)
}

fn open_recording(dir: &Path, settings: &StoreSettings, sizes: bool) -> (Store, Opened, Events) {
    let events: Events = Arc::default();
    let sink = Arc::clone(&events);
    let record = move |e: StoreEvent| {
        if sizes || !matches!(e, StoreEvent::Sizes { .. }) {
            sink.lock().unwrap().push(e);
        }
    };
    let (store, opened) = Store::open(dir, settings, |_, bridge| bridge == "b", record).unwrap();
    (store, opened, events)
}

#[test]
fn closing_leaves_the_wal_empty() {
    let dir = temp();
    let (store, _, _) = open(&dir, &settings());
    for key in 1..=50 {
        store.put(key, "fishroom.t:r".into(), "b".into(), &record("row"));
        store.end();
    }
    drop(store);
    let wal = std::fs::metadata(dir.join(format!("{FILE_NAME}-wal"))).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "everything was copied into the database file");
    let (_store, opened, _) = open(&dir, &settings());
    assert_eq!(opened.outbox.len(), 50);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unwritable_directory_is_named() {
    let err =
        Store::open(Path::new("/proc/chatbridge-cannot-be-here"), &settings(), |_, _| true, |_| {}).err().unwrap();
    assert!(err.to_string().contains("/proc/chatbridge-cannot-be-here"), "{err}");
}

#[test]
fn a_version_one_database_is_migrated() {
    let dir = temp();
    std::fs::create_dir_all(&dir).unwrap();
    let db = Connection::open(dir.join(FILE_NAME)).unwrap();
    db.execute_batch(
        "CREATE TABLE outbox (key INTEGER PRIMARY KEY, room TEXT NOT NULL, bridge TEXT NOT NULL,
         record BLOB NOT NULL, queued_at INTEGER NOT NULL); PRAGMA user_version = 1;",
    )
    .unwrap();
    // A version-one row: no group.
    let mut old = serde_json::to_value(record("old")).unwrap();
    old.as_object_mut().unwrap().remove("group");
    db.execute("INSERT INTO outbox VALUES (5, 'fishroom.t:r', 'b', ?1, 0)", params![serde_json::to_vec(&old).unwrap()])
        .unwrap();
    drop(db);
    let (_store, opened, _) = open(&dir, &settings());
    assert_eq!(opened.outbox.len(), 1);
    assert_eq!(opened.outbox[0].record.group, None);
    let db = Connection::open(dir.join(FILE_NAME)).unwrap();
    let version: i64 = db.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let _ = std::fs::remove_dir_all(dir);
}

/// Every table and index of the database in `dir`, with its columns as SQLite describes them.
fn schema_of(dir: &Path) -> Vec<String> {
    let db = Connection::open(dir.join(FILE_NAME)).unwrap();
    let names: Vec<(String, String)> = db
        .prepare("SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut shape = Vec::new();
    for (kind, name) in names {
        let pragma = if kind == "table" { "table_xinfo" } else { "index_xinfo" };
        let mut query = db.prepare(&format!("SELECT * FROM pragma_{pragma}(?1)")).unwrap();
        let width = query.column_count();
        let columns = query
            .query_map([&name], |row| {
                (0..width).map(|i| row.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}"))).collect()
            })
            .unwrap()
            .collect::<Result<Vec<Vec<String>>, _>>()
            .unwrap();
        let listed: String = db
            .query_row("SELECT format('%s %s', wr, strict) FROM pragma_table_list WHERE name = ?1", [&name], |row| {
                row.get(0)
            })
            .unwrap_or_default();
        shape.push(format!("{kind} {name} {listed} {columns:?}"));
    }
    shape
}

#[test]
fn a_new_database_gets_the_schema_the_migrations_give_an_old_one() {
    let (fresh, old) = (temp(), temp());
    std::fs::create_dir_all(&old).unwrap();
    let db = Connection::open(old.join(FILE_NAME)).unwrap();
    db.execute_batch(&format!("{} PRAGMA user_version = 1;", schema::STEPS[0])).unwrap();
    drop(db);
    drop(open(&fresh, &settings()));
    drop(open(&old, &settings()));
    let (fresh_schema, old_schema) = (schema_of(&fresh), schema_of(&old));
    assert!(fresh_schema.iter().any(|t| t.starts_with("table ids 1")), "{fresh_schema:#?}");
    assert_eq!(fresh_schema, old_schema);
    let version = |dir: &Path| -> i64 {
        Connection::open(dir.join(FILE_NAME)).unwrap().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
    };
    assert_eq!((version(&fresh), version(&old)), (SCHEMA_VERSION, SCHEMA_VERSION));
    let _ = (std::fs::remove_dir_all(fresh), std::fs::remove_dir_all(old));
}

#[test]
fn one_store_per_state_directory() {
    let dir = temp();
    let (store, _, _) = open(&dir, &settings());
    let second = Store::open(&dir, &settings(), |_, _| true, |_| {}).err().expect("the directory is in use");
    assert!(matches!(second, StoreError::Locked { .. }), "{second}");
    assert!(second.to_string().contains("another chatbridge"), "{second}");
    drop(store);
    let (_again, _, _) = open(&dir, &settings());
    let _ = std::fs::remove_dir_all(dir);
}

/// A lock released a moment after the start tries it (a store just closed, whose lock a process being started by
/// another thread still shares until its exec) is waited for; one held for good is refused after the wait.
#[test]
fn a_lock_released_a_moment_later_is_waited_for() {
    let dir = temp();
    std::fs::create_dir_all(&dir).unwrap();
    let held = files::lock_within(&dir, std::time::Duration::ZERO).unwrap();
    let releasing = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(held);
    });
    let started = std::time::Instant::now();
    let taken = files::lock_within(&dir, std::time::Duration::from_secs(2)).expect("taken once released");
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    releasing.join().unwrap();
    let refused = files::lock_within(&dir, std::time::Duration::from_millis(200)).expect_err("still held");
    assert!(matches!(refused, StoreError::Locked { .. }));
    drop(taken);
    let _ = std::fs::remove_dir_all(dir);
}

fn big(text: &str) -> Record {
    record(&format!("{text} {}", "x".repeat(2000)))
}

#[test]
fn a_full_disk_loses_nothing_the_writer_was_given() {
    let dir = temp();
    let settings = settings();
    let (store, _, events) = open(&dir, &settings);
    // The database may not grow: every transaction that needs a page fails as on a full disk.
    settings.page_limit.set(1);
    for key in 1..=100 {
        store.put(key, "fishroom.t:r".into(), "b".into(), &big(&format!("m{key}")));
        store.end();
    }
    store.load("fishroom.t:r".parse().unwrap(), 0, 10);
    store.end();
    wait_for(&events, "the failure", |e| matches!(e, StoreEvent::Failing { reason } if reason.contains("full")));
    assert!(!events.lock().unwrap().iter().any(|e| matches!(e, StoreEvent::Loaded { .. })), "nothing read yet");
    // More space: the kept transaction goes through, and the read inside it is answered.
    settings.page_limit.set(0);
    wait_for(&events, "the recovery", |e| matches!(e, StoreEvent::Recovered));
    wait_for(&events, "the read", |e| matches!(e, StoreEvent::Loaded { rows, .. } if rows.len() == 10));
    let closing = store.close();
    assert_eq!(closing, Closing { stored: Some(100), unwritten: 0 });
    let (_store, opened, _) = open(&dir, &settings);
    assert_eq!(opened.outbox.len() + opened.backlog.iter().map(|(_, n)| n).sum::<usize>(), 100);
}

#[test]
fn a_store_closed_while_full_says_what_it_could_not_keep() {
    let dir = temp();
    let settings = settings();
    let (store, _, events) = open(&dir, &settings);
    for key in 1..=3 {
        store.put(key, "fishroom.t:r".into(), "b".into(), &record("kept"));
    }
    store.end();
    wait_for(&events, "the first commit", |e| matches!(e, StoreEvent::Committed { .. }));
    settings.page_limit.set(1);
    for key in 4..=60 {
        store.put(key, "fishroom.t:r".into(), "b".into(), &big("lost"));
        store.end();
    }
    // A delete cancels a row that was never written: it is not counted as lost.
    store.delete(60);
    store.end();
    wait_for(&events, "the failure", |e| matches!(e, StoreEvent::Failing { .. }));
    let closing = store.close();
    assert_eq!(closing, Closing { stored: Some(3), unwritten: 56 });
}

#[test]
fn a_state_directory_changed_under_the_daemon_stops_the_intake_for_good() {
    for file in [FILE_NAME, LOCK_FILE] {
        let dir = temp();
        let (store, _, events) = open(&dir, &settings());
        std::fs::remove_file(dir.join(file)).unwrap();
        wait_for(&events, "the alarm", |e| matches!(e, StoreEvent::Failing { reason } if reason.contains("removed")));
        // Writes still go somewhere (the open file), but that is no reason to take messages in again.
        store.put(1, "fishroom.t:r".into(), "b".into(), &record("x"));
        store.end();
        wait_for(&events, "the commit", |e| matches!(e, StoreEvent::Committed { .. }));
        assert!(!events.lock().unwrap().iter().any(|e| matches!(e, StoreEvent::Recovered)), "{file}");
    }
}

#[test]
fn the_state_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp();
    let (store, _, _) = open(&dir, &settings());
    store.put(1, "fishroom.t:r".into(), "b".into(), &record("private words"));
    drop(store);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(FILE_NAME)), 0o600);
    assert_eq!(mode(&dir.join(LOCK_FILE)), 0o600);
}

#[test]
fn a_lock_that_cannot_be_taken_says_so() {
    let dir = temp();
    std::fs::create_dir_all(dir.join(LOCK_FILE)).unwrap();
    let error = Store::open(&dir, &settings(), |_, _| true, |_| {}).err().expect("no lock, no store");
    let text = error.to_string();
    assert!(text.starts_with("cannot lock") && text.contains(LOCK_FILE), "{text}");
}
