//! The store contract: what the router relies on from a store, as test bodies run against every backend
//! (the fixtures of `fixture.rs`).

use std::time::Duration;

use super::fixture::*;
use super::*;
use crate::model::RoomAddr;

fn rows_survive_a_reopen_and_deleted_ones_do_not(f: &Fixture) {
    let (store, opened, events) = f.open(&settings());
    assert!(opened.outbox.is_empty());
    for (key, text) in [(1, "one"), (2, "two"), (3, "three")] {
        put(&*store, key, text);
    }
    store.delete(2, &room("r"));
    store.end();
    drop(store);
    assert!(
        matches!(events.lock().unwrap()[..], [StoreEvent::Committed { written: 2, skipped: 1 }]),
        "row 2, deleted before its transaction committed, is never written: {:?}",
        events.lock().unwrap()
    );
    let (_store, opened, _) = f.open(&StoreSettings { full_sync: true, ..settings() });
    let keys: Vec<u64> = opened.outbox.iter().map(|s| s.key).collect();
    assert_eq!(keys, [1, 3]);
    assert_eq!(text(&opened.outbox[1]), "three");
    assert_eq!(opened.outbox[1].record.client_ids, [RemoteId::new("c1")]);
    assert_eq!(opened.outbox[1].record.group, Some(7));
    assert_eq!((opened.outbox[1].room.to_string().as_str(), opened.outbox[1].bridge.as_str()), ("fishroom.t:r", "b"));
    assert!(opened.last_key >= 3, "new keys continue after every key given: {}", opened.last_key);
}

fn nothing_is_committed_before_the_end_mark(f: &Fixture) {
    let (store, _, events) = f.open(&settings());
    put(&*store, 1, "one");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(f.outbox_rows(), 0, "an input's work is not committed half-done");
    assert!(events.lock().unwrap().is_empty());
    store.cursor(&room("r"), &crate::model::Cursor::new("42"));
    store.end();
    drop(store);
    assert_eq!(f.outbox_rows(), 1);
    assert!(matches!(events.lock().unwrap()[..], [StoreEvent::Committed { written: 1, skipped: 0 }]));
    let (_store, opened, _) = f.open(&settings());
    assert_eq!(opened.cursors, [(room("r"), crate::model::Cursor::new("42"))]);
}

fn the_id_map_survives_a_reopen_and_old_groups_are_pruned(f: &Fixture) {
    use crate::router::idmap::{GroupId, IdStore, Snippet};
    let (store, _, _) = f.open(&settings());
    let addr = |room: &str| room.parse::<RoomAddr>().unwrap();
    let snippet = |sender: Option<&str>, text: &str, time| Snippet {
        sender: sender.map(str::to_owned),
        text: text.to_owned(),
        time: crate::model::Time(time),
    };
    store.group(1, Some((&addr("missevan.a:1"), &RemoteId::new("m1"))), snippet(Some("ann"), "hello", 5));
    store.copy(1, &addr("yunhu.b:g"), &[RemoteId::new("y1"), RemoteId::new("y2")]);
    store.group(2, None, snippet(None, "second", 6));
    store.copy(2, &addr("yunhu.b:h"), &[RemoteId::new("h1")]);
    store.end();
    drop(store);
    let (opening, _) = f.open_recording(&settings(), false);
    let opened = &opening.opened;
    assert!(opened.last_group >= Some(2), "new groups continue after every group given");
    assert_eq!(opened.groups.len(), 2);
    let first = &opened.groups[0];
    assert_eq!((first.id, first.sender.as_deref(), first.text.as_str(), first.time), (1, Some("ann"), "hello", 5));
    assert_eq!(
        first.members,
        [
            StoredMember { room: addr("missevan.a:1"), ids: vec!["m1".into()], ours: false },
            StoredMember { room: addr("yunhu.b:g"), ids: vec!["y1".into(), "y2".into()], ours: true },
        ]
    );
    // A group no longer in memory is read from the store by its id (a copy another run made)…
    let mut ids = opening.ids;
    assert_eq!(ids.ids_in(GroupId(2), &addr("yunhu.b:h")), Some(vec![RemoteId::new("h1")]));
    assert_eq!(ids.snippet(GroupId(2)).map(|s| s.text), Some("second".to_owned()));
    assert_eq!(ids.ids_in(GroupId(99), &addr("yunhu.b:g")), None);
    // … or by any member's id.
    assert_eq!(ids.group_of(&addr("yunhu.b:g"), &RemoteId::new("y2")), Some(GroupId(1)));
    assert_eq!(ids.ids_in(GroupId(1), &addr("missevan.a:1")), Some(vec![RemoteId::new("m1")]));
    assert_eq!(ids.group_of(&addr("yunhu.b:g"), &RemoteId::new("nope")), None);
    drop(ids);
    drop(opening.persist);
    // With a maximum age of zero everything is old: pruned at the next start.
    std::thread::sleep(Duration::from_millis(5));
    let (_store, opened, _) = f.open(&StoreSettings { id_map_max_age: Duration::ZERO, ..settings() });
    assert!(opened.groups.is_empty());
}

fn a_spilled_room_is_read_in_slices(f: &Fixture) {
    let (store, _, _) = f.open(&settings());
    for key in 1..=10 {
        put(&*store, key, &key.to_string());
    }
    store.end();
    drop(store);
    let (store, opened, events) = f.open(&StoreSettings { per_room: 4, ..settings() });
    assert_eq!(opened.outbox.len(), 4);
    assert_eq!(opened.backlog, [(room("r"), 6)]);
    store.load(&room("r"), 4, 3);
    store.end();
    wait_for(&events, "the first read", |e| matches!(e, StoreEvent::Loaded { .. }));
    let Some(StoreEvent::Loaded { rows, through, exhausted, .. }) = events.lock().unwrap().pop() else {
        unreachable!()
    };
    assert_eq!(rows.iter().map(text).collect::<Vec<_>>(), ["5", "6", "7"]);
    assert!(!exhausted);
    // The next read, from where the last one said it got to, goes on with the rest.
    store.load(&room("r"), through, 5);
    store.end();
    drop(store);
    let events = events.lock().unwrap();
    let Some(StoreEvent::Loaded { rows, exhausted, .. }) = events.first() else { panic!("{events:?}") };
    assert_eq!(rows.iter().map(text).collect::<Vec<_>>(), ["8", "9", "10"]);
    assert!(exhausted);
}

fn dead_letters_are_listed_and_requeued_at_the_next_start(f: &Fixture) {
    let (store, _, _) = f.open(&settings());
    put(&*store, 1, "lost cause");
    put(&*store, 2, "fine");
    store.end();
    store.dead_letter(1, &room("r"), "attempts exhausted: 503".into());
    store.end();
    drop(store);
    let letters = f.dead_letters();
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].key, letters[0].reason.as_str()), (1, "attempts exhausted: 503"));
    assert!(letters[0].summary.ends_with("lost cause"), "{}", letters[0].summary);
    assert_eq!(f.requeue(Some(&[1, 99])), 1);
    let (_store, opened, _) = f.open(&settings());
    // Back at the end of its room's queue, with a fresh key.
    let order: Vec<String> = opened.outbox.iter().map(text).collect();
    assert_eq!(order, ["fine", "lost cause"]);
    assert!(opened.outbox[1].key > 2 && opened.last_key >= opened.outbox[1].key);
    drop(_store);
    assert!(f.dead_letters().is_empty());
}

fn rows_of_rooms_no_longer_configured_are_kept_then_expire_to_the_dead_letters(f: &Fixture) {
    let (store, _, _) = f.open(&settings());
    store.put(row(1, &room("gone"), "removed", &event("orphan"), &[], None));
    store.end();
    drop(store);
    let (store, opened, _) = f.open(&settings());
    assert_eq!((opened.orphans, opened.outbox.len()), (1, 0), "kept, not queued");
    drop(store);
    let queues = f.queues();
    assert_eq!((queues[0].room.as_str(), queues[0].messages), ("fishroom.t:gone", 1));
    std::thread::sleep(Duration::from_millis(5));
    let (store, opened, _) = f.open(&StoreSettings { orphan_max_age: Duration::ZERO, ..settings() });
    assert_eq!(opened.orphans, 0);
    drop(store);
    assert_eq!(f.dead_letters()[0].reason, "room no longer in the configuration");
}

fn a_queued_event_reads_back_as_a_record_for_each_destination(f: &Fixture) {
    let (store, _, events) = f.open(&settings());
    let event = event("once for all");
    store.put(row(1, &room("r"), "b", &event, &[RemoteId::new("c1")], Some(7)));
    store.put(row(2, &room("s"), "b", &event, &[RemoteId::new("c2")], None));
    store.end();
    drop(store);
    assert!(matches!(events.lock().unwrap()[..], [StoreEvent::Committed { written: 2, skipped: 0 }]));
    let (_store, opened, _) = f.open(&settings());
    assert_eq!(
        opened.outbox[0].record,
        Record { event: (*event).clone(), client_ids: vec![RemoteId::new("c1")], group: Some(7) }
    );
    assert_eq!(opened.outbox[1].room.to_string(), "fishroom.t:s");
    assert_eq!(opened.outbox[1].record.event, *event);
    assert_eq!(
        (opened.outbox[1].record.client_ids.as_slice(), opened.outbox[1].record.group),
        (&[RemoteId::new("c2")][..], None)
    );
}

fn rows_of_the_open_transaction_are_read_and_dead_lettered_like_written_ones(f: &Fixture) {
    let (store, _, events) = f.open(&settings());
    for key in 1..=3 {
        put(&*store, key, &key.to_string());
    }
    // No end mark in between: all of it is one transaction, the rows still pending in the writer.
    store.dead_letter(1, &room("r"), "given up".into());
    store.load(&room("r"), 0, 10);
    store.end();
    drop(store);
    let events = events.lock().unwrap();
    let loaded = events.iter().find_map(|e| match e {
        StoreEvent::Loaded { rows, .. } => Some(rows.iter().map(text).collect::<Vec<_>>()),
        _ => None,
    });
    assert_eq!(loaded.unwrap(), ["2", "3"]);
    let letters = f.dead_letters();
    assert_eq!((letters.len(), letters[0].key, letters[0].reason.as_str()), (1, 1, "given up"));
}

fn a_full_outbox_stops_the_intake_and_the_dead_letters_keep_their_newest(f: &Fixture) {
    let settings = StoreSettings { max_outbox: 10, max_dead_letters: 3, ..settings() };
    let (opening, events) = f.open_recording(&settings, true);
    let store = opening.persist;
    for key in 1..=10 {
        put(&*store, key, "queued");
    }
    store.end();
    wait_for(
        &events,
        "the full outbox",
        |e| matches!(e, StoreEvent::Failing { reason } if reason.contains("max_stored")),
    );
    // Deliveries make room: under 90 % the intake opens again.
    for key in 1..=2 {
        store.delete(key, &room("r"));
    }
    store.end();
    wait_for(&events, "room again", |e| matches!(e, StoreEvent::Recovered));
    // Six dead letters, three kept: the newest.
    for key in 3..=8 {
        store.dead_letter(key, &room("r"), "gave up".into());
        store.end();
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_for(&events, "the count", |e| matches!(e, StoreEvent::Sizes { outbox: 2, dead_letters: 3 }));
    drop(store);
    let keys: Vec<u64> = f.dead_letters().iter().map(|l| l.key).collect();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| *k >= 6), "the oldest went: {keys:?}");
}

/// Each contract test, once per backend.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(&super::Fixture::sqlite()) })*
        }
        mod postgres {
            $(#[test] fn $name() { if let Some(f) = super::Fixture::postgres() { super::$name(&f) } })*
        }
    };
}

contract!(
    rows_survive_a_reopen_and_deleted_ones_do_not,
    nothing_is_committed_before_the_end_mark,
    the_id_map_survives_a_reopen_and_old_groups_are_pruned,
    a_spilled_room_is_read_in_slices,
    dead_letters_are_listed_and_requeued_at_the_next_start,
    rows_of_rooms_no_longer_configured_are_kept_then_expire_to_the_dead_letters,
    a_queued_event_reads_back_as_a_record_for_each_destination,
    rows_of_the_open_transaction_are_read_and_dead_lettered_like_written_ones,
    a_full_outbox_stops_the_intake_and_the_dead_letters_keep_their_newest,
);
