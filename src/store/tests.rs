use super::*;
use crate::model::{AccountId, Content, EventKind, Message, Platform, RoomAddr, RoomId};
use std::sync::{Arc, Mutex};

fn record(text: &str) -> Record {
    let room = RoomAddr::new(AccountId::new(Platform::Fishroom, "t"), RoomId::new("r"));
    let kind = EventKind::Message(Message { content: Content::text(text), ..Message::default() });
    Record { event: Event::new(room, None, None, kind), client_ids: vec![RemoteId::new("c1")], group: Some(7) }
}

fn settings() -> StoreSettings {
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

fn temp() -> PathBuf {
    std::env::temp_dir().join(format!("chatbridge-store-{}", uuid::Uuid::new_v4()))
}

fn text(stored: &Stored) -> String {
    match &stored.record.event.kind {
        EventKind::Message(m) => m.content.to_plain_text(),
        _ => unreachable!(),
    }
}

type Events = Arc<Mutex<Vec<StoreEvent>>>;

/// Opens a store whose events (but the periodic counts) are recorded.
fn open(dir: &Path, settings: &StoreSettings) -> (Store, Opened, Events) {
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
fn rows_survive_a_reopen_and_deleted_ones_do_not() {
    let dir = temp();
    let (store, opened, events) = open(&dir, &settings());
    assert!(opened.outbox.is_empty());
    for (key, text) in [(1, "one"), (2, "two"), (3, "three")] {
        store.put(key, "fishroom.t:r".into(), "b".into(), &record(text));
    }
    store.delete(2);
    store.end();
    drop(store);
    assert!(
        matches!(events.lock().unwrap()[..], [StoreEvent::Committed { written: 2, skipped: 1 }]),
        "row 2, deleted before its transaction committed, is never written: {:?}",
        events.lock().unwrap()
    );
    let (_store, opened, _) = open(&dir, &StoreSettings { full_sync: true, ..settings() });
    let keys: Vec<u64> = opened.outbox.iter().map(|s| s.key).collect();
    assert_eq!(keys, [1, 3]);
    assert_eq!(text(&opened.outbox[1]), "three");
    assert_eq!(opened.outbox[1].record.client_ids, [RemoteId::new("c1")]);
    assert_eq!(opened.outbox[1].record.group, Some(7));
    assert_eq!((opened.outbox[1].room.to_string().as_str(), opened.outbox[1].bridge.as_str()), ("fishroom.t:r", "b"));
    assert_eq!(opened.last_key, 3);
    let _ = std::fs::remove_dir_all(dir);
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
fn nothing_is_committed_before_the_end_mark() {
    let dir = temp();
    let (store, _, events) = open(&dir, &settings());
    store.put(1, "fishroom.t:r".into(), "b".into(), &record("one"));
    std::thread::sleep(Duration::from_millis(100));
    let reader = Connection::open(dir.join(FILE_NAME)).unwrap();
    let rows = |reader: &Connection| reader.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0));
    assert_eq!(rows(&reader).unwrap(), 0, "an input's work is not committed half-done");
    assert!(events.lock().unwrap().is_empty());
    store.cursor("fishroom.t:r".into(), "42".into());
    store.end();
    drop(store);
    assert_eq!(rows(&reader).unwrap(), 1);
    assert!(matches!(events.lock().unwrap()[..], [StoreEvent::Committed { written: 1, skipped: 0 }]));
    let (_store, opened, _) = open(&dir, &settings());
    assert_eq!(opened.cursors, [("fishroom.t:r".parse().unwrap(), crate::model::Cursor::new("42"))]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_id_map_survives_a_reopen_and_old_groups_are_pruned() {
    let dir = temp();
    let (store, _, _) = open(&dir, &settings());
    let addr = |room: &str| room.parse::<RoomAddr>().unwrap();
    store.group(1, Some((addr("missevan.a:1"), RemoteId::new("m1"))), Some("ann".into()), "hello".into(), 5);
    store.copy(1, addr("yunhu.b:g"), vec![RemoteId::new("y1"), RemoteId::new("y2")]);
    store.group(2, None, None, "second".into(), 6);
    store.end();
    drop(store);
    let (_store, opened, _) = open(&dir, &settings());
    assert_eq!(opened.last_group, Some(2));
    assert_eq!(opened.groups.len(), 2);
    let first = &opened.groups[0];
    assert_eq!((first.id, first.sender.as_deref(), first.text.as_str(), first.time), (1, Some("ann"), "hello", 5));
    assert_eq!(
        first.members,
        [
            StoredMember { room: "missevan.a:1".parse().unwrap(), ids: vec!["m1".into()], ours: false },
            StoredMember { room: "yunhu.b:g".parse().unwrap(), ids: vec!["y1".into(), "y2".into()], ours: true },
        ]
    );
    drop(_store);
    // With a maximum age of zero everything is old: pruned at the next start.
    std::thread::sleep(Duration::from_millis(5));
    let (_store, opened, _) = open(&dir, &StoreSettings { id_map_max_age: Duration::ZERO, ..settings() });
    assert!(opened.groups.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_spilled_room_is_read_in_slices() {
    let dir = temp();
    let (store, _, _) = open(&dir, &settings());
    for key in 1..=10 {
        store.put(key, "fishroom.t:r".into(), "b".into(), &record(&key.to_string()));
    }
    store.end();
    drop(store);
    let (store, opened, events) = open(&dir, &StoreSettings { per_room: 4, ..settings() });
    assert_eq!(opened.outbox.len(), 4);
    assert_eq!(opened.backlog, [("fishroom.t:r".parse().unwrap(), 6)]);
    store.load("fishroom.t:r".parse().unwrap(), 4, 3);
    store.end();
    drop(store);
    let events = events.lock().unwrap();
    let Some(StoreEvent::Loaded { rows, through, exhausted, .. }) = events.first() else { panic!("{events:?}") };
    assert_eq!(rows.iter().map(text).collect::<Vec<_>>(), ["5", "6", "7"]);
    assert_eq!((*through, *exhausted), (7, false));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dead_letters_are_listed_and_requeued_at_the_next_start() {
    let dir = temp();
    let (store, _, _) = open(&dir, &settings());
    store.put(1, "fishroom.t:r".into(), "b".into(), &record("lost cause"));
    store.put(2, "fishroom.t:r".into(), "b".into(), &record("fine"));
    store.end();
    store.dead_letter(1, "attempts exhausted: 503".into());
    store.end();
    drop(store);
    let letters = admin::dead_letters(&dir).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].key, letters[0].reason.as_str()), (1, "attempts exhausted: 503"));
    assert!(letters[0].summary.ends_with("lost cause"), "{}", letters[0].summary);
    assert_eq!(admin::requeue(&dir, Some(&[1, 99])).unwrap(), 1);
    let (_store, opened, _) = open(&dir, &settings());
    // Back at the end of its room's queue, with a fresh key.
    let order: Vec<(u64, String)> = opened.outbox.iter().map(|s| (s.key, text(s))).collect();
    assert_eq!(order, [(2, "fine".to_owned()), (3, "lost cause".to_owned())]);
    drop(_store);
    assert!(admin::dead_letters(&dir).unwrap().is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn rows_of_rooms_no_longer_configured_are_kept_then_expire_to_the_dead_letters() {
    let dir = temp();
    let (store, _, _) = open(&dir, &settings());
    store.put(1, "fishroom.t:gone".into(), "removed".into(), &record("orphan"));
    store.end();
    drop(store);
    let (store, opened, _) = open(&dir, &settings());
    assert_eq!((opened.orphans, opened.outbox.len()), (1, 0), "kept, not queued");
    drop(store);
    let queues = admin::queues(&dir).unwrap().unwrap();
    assert_eq!((queues[0].room.as_str(), queues[0].messages), ("fishroom.t:gone", 1));
    std::thread::sleep(Duration::from_millis(5));
    let (store, opened, _) = open(&dir, &StoreSettings { orphan_max_age: Duration::ZERO, ..settings() });
    assert_eq!(opened.orphans, 0);
    drop(store);
    assert_eq!(admin::dead_letters(&dir).unwrap()[0].reason, "room no longer in the configuration");
    let _ = std::fs::remove_dir_all(dir);
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

#[test]
fn a_queued_event_reads_back_as_a_record_for_each_destination() {
    let dir = temp();
    let (store, _, events) = open(&dir, &settings());
    let original = record("once for all");
    let event = Arc::new(original.event.clone());
    let room = |name: &str| RoomAddr::new(AccountId::new(Platform::Fishroom, "t"), RoomId::new(name));
    store.put_event(1, room("r"), "b".into(), Arc::clone(&event), original.client_ids.clone(), original.group);
    store.put_event(2, room("s"), "b".into(), event, vec![RemoteId::new("c2")], None);
    store.end();
    drop(store);
    assert!(matches!(events.lock().unwrap()[..], [StoreEvent::Committed { written: 2, skipped: 0 }]));
    let (_store, opened, _) = open(&dir, &settings());
    assert_eq!(opened.outbox[0].record, original);
    assert_eq!(opened.outbox[1].room.to_string(), "fishroom.t:s");
    assert_eq!(opened.outbox[1].record.event, original.event);
    assert_eq!(
        (opened.outbox[1].record.client_ids.as_slice(), opened.outbox[1].record.group),
        (&[RemoteId::new("c2")][..], None)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn rows_of_the_open_transaction_are_read_and_dead_lettered_like_written_ones() {
    let dir = temp();
    let (store, _, events) = open(&dir, &settings());
    for key in 1..=3 {
        store.put(key, "fishroom.t:r".into(), "b".into(), &record(&key.to_string()));
    }
    // No end mark in between: all of it is one transaction, the rows still pending in the writer.
    store.dead_letter(1, "given up".into());
    store.load("fishroom.t:r".parse().unwrap(), 0, 10);
    store.end();
    drop(store);
    let events = events.lock().unwrap();
    let loaded = events.iter().find_map(|e| match e {
        StoreEvent::Loaded { rows, .. } => Some(rows.iter().map(text).collect::<Vec<_>>()),
        _ => None,
    });
    assert_eq!(loaded.unwrap(), ["2", "3"]);
    let letters = admin::dead_letters(&dir).unwrap();
    assert_eq!((letters.len(), letters[0].key, letters[0].reason.as_str()), (1, 1, "given up"));
    let _ = std::fs::remove_dir_all(dir);
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

/// Waits until `events` holds one that `matches`.
fn wait_for(events: &Events, what: &str, matches: impl Fn(&StoreEvent) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !events.lock().unwrap().iter().any(&matches) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {:?}", events.lock().unwrap());
        std::thread::sleep(Duration::from_millis(10));
    }
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
fn a_full_outbox_stops_the_intake_and_the_dead_letters_keep_their_newest() {
    let dir = temp();
    let settings = StoreSettings { max_outbox: 10, max_dead_letters: 3, ..settings() };
    let (store, _, events) = open_recording(&dir, &settings, true);
    for key in 1..=10 {
        store.put(key, "fishroom.t:r".into(), "b".into(), &record("queued"));
    }
    store.end();
    wait_for(
        &events,
        "the full outbox",
        |e| matches!(e, StoreEvent::Failing { reason } if reason.contains("max_stored")),
    );
    // Deliveries make room: under 90 % the intake opens again.
    for key in 1..=2 {
        store.delete(key);
    }
    store.end();
    wait_for(&events, "room again", |e| matches!(e, StoreEvent::Recovered));
    // Six dead letters, three kept: the newest.
    for key in 3..=8 {
        store.dead_letter(key, "gave up".into());
        store.end();
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_for(&events, "the count", |e| matches!(e, StoreEvent::Sizes { outbox: 2, dead_letters: 3 }));
    drop(store);
    let letters = super::admin::dead_letters(&dir).unwrap();
    let keys: Vec<u64> = letters.iter().map(|l| l.key).collect();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| *k >= 6), "the oldest went: {keys:?}");
}

#[test]
fn a_lock_that_cannot_be_taken_says_so() {
    let dir = temp();
    std::fs::create_dir_all(dir.join(LOCK_FILE)).unwrap();
    let error = Store::open(&dir, &settings(), |_, _| true, |_| {}).err().expect("no lock, no store");
    let text = error.to_string();
    assert!(text.starts_with("cannot lock") && text.contains(LOCK_FILE), "{text}");
}
