use rusqlite::{Connection, params};

use super::super::fixture::settings;
use super::super::idmap::DurableIdMap;
use super::super::schema::STEPS;
use super::super::tests::{open, temp};
use super::super::*;
use crate::router::idmap::{GroupId, IdStore, Snippet};
use crate::router::port::Persist;

fn addr(room: &str) -> RoomAddr {
    room.parse().unwrap()
}

fn snippet(text: &str) -> Snippet {
    Snippet { sender: Some("ann".to_owned()), text: text.to_owned(), time: Time(5) }
}

fn member(room: &str, ids: &[&str], ours: bool) -> StoredMember {
    StoredMember { room: addr(room), ids: ids.iter().map(|&id| id.to_owned()).collect(), ours }
}

fn count(dir: &Path, sql: &str) -> i64 {
    Connection::open(dir.join(FILE_NAME)).unwrap().query_row(sql, [], |row| row.get(0)).unwrap()
}

#[test]
fn a_schema_three_id_map_is_moved_into_its_groups_rows() {
    let dir = temp();
    std::fs::create_dir_all(&dir).unwrap();
    let db = Connection::open(dir.join(FILE_NAME)).unwrap();
    for step in &STEPS[..3] {
        db.execute_batch(step).unwrap();
    }
    db.execute_batch(
        "PRAGMA user_version = 3;
         INSERT INTO groups (id, sender, text, time, created) VALUES (1, 'ann', 'hello', 5, unixepoch() * 1000),
             (2, NULL, 'two', 6, unixepoch() * 1000);
         INSERT INTO copies (room, remote, grp, part, ours) VALUES
             ('missevan.a:1', 'm1', 1, 0, 0), ('yunhu.b:g', 'y2', 1, 1, 1), ('yunhu.b:g', 'y1', 1, 0, 1),
             ('yunhu.b:h', 'h1', 2, 0, 1), ('yunhu.b:h', 'lost', 99, 0, 1);",
    )
    .unwrap();
    drop(db);
    let (store, opened, _) = open(&dir, &settings());
    drop(store);
    let members: Vec<_> = opened.groups.iter().map(|g| (g.id, g.members.clone())).collect();
    assert_eq!(
        members,
        [
            (1, vec![member("missevan.a:1", &["m1"], false), member("yunhu.b:g", &["y1", "y2"], true)]),
            (2, vec![member("yunhu.b:h", &["h1"], true)]),
        ]
    );
    // An id whose group is gone is not carried over; the table of copies is.
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM ids"), 4);
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'copies'"), 0);
    let mut ids = DurableIdMap::open(&dir, 10).unwrap();
    assert_eq!(ids.group_of(&addr("yunhu.b:g"), &RemoteId::new("y2")), Some(GroupId(1)));
    assert_eq!(ids.ids_in(GroupId(1), &addr("yunhu.b:g")), Some(vec![RemoteId::new("y1"), RemoteId::new("y2")]));
    assert_eq!(ids.group_of(&addr("yunhu.b:h"), &RemoteId::new("lost")), None);
    let _ = std::fs::remove_dir_all(dir);
}

/// Waits until `sql` counts `n` in the committed database.
fn until(dir: &Path, sql: &str, n: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while count(dir, sql) != n {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {sql} to be {n}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_copy_confirmed_after_its_group_was_committed_joins_its_row() {
    let dir = temp();
    let (store, _, _) = open(&dir, &settings());
    Persist::group(&store, 1, Some((&addr("missevan.a:1"), &RemoteId::new("m1"))), snippet("hello"));
    store.end();
    until(&dir, "SELECT COUNT(*) FROM groups", 1);
    Persist::copy(&store, 1, &addr("yunhu.b:g"), &[RemoteId::new("y1")]);
    store.end();
    until(&dir, "SELECT COUNT(*) FROM ids", 2);
    Persist::copy(&store, 1, &addr("yunhu.b:g"), &[RemoteId::new("y2")]);
    Persist::copy(&store, 1, &addr("fishroom.c:r"), &[RemoteId::new("f1")]);
    store.end();
    drop(store);
    let (store, opened, _) = open(&dir, &settings());
    drop(store);
    assert_eq!(
        opened.groups[0].members,
        [
            member("missevan.a:1", &["m1"], false),
            member("yunhu.b:g", &["y1", "y2"], true),
            member("fishroom.c:r", &["f1"], true)
        ]
    );
    let mut ids = DurableIdMap::open(&dir, 10).unwrap();
    assert_eq!(ids.group_of(&addr("fishroom.c:r"), &RemoteId::new("f1")), Some(GroupId(1)));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_id_a_later_group_took_belongs_to_that_group_only() {
    let dir = temp();
    let (store, _, _) = open(&dir, &settings());
    let room = addr("missevan.a:1");
    Persist::group(&store, 1, Some((&room, &RemoteId::new("x"))), snippet("first"));
    Persist::copy(&store, 1, &addr("yunhu.b:g"), &[RemoteId::new("y1")]);
    Persist::group(&store, 2, Some((&room, &RemoteId::new("x"))), snippet("second"));
    // Four id rows, written by one statement: the later row for "x" wins within it too.
    Persist::copy(&store, 2, &addr("yunhu.b:g"), &[RemoteId::new("y2")]);
    store.end();
    drop(store);
    let (store, opened, _) = open(&dir, &settings());
    drop(store);
    assert_eq!(opened.groups[0].members, [member("yunhu.b:g", &["y1"], true)]);
    assert_eq!(opened.groups[1].members, [member("missevan.a:1", &["x"], false), member("yunhu.b:g", &["y2"], true)]);
    let mut ids = DurableIdMap::open(&dir, 10).unwrap();
    assert_eq!(ids.group_of(&room, &RemoteId::new("x")), Some(GroupId(2)));
    assert_eq!(ids.ids_in(GroupId(1), &room), None);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn pruning_takes_a_groups_ids_with_it_but_not_those_a_newer_group_took() {
    let dir = temp();
    let (store, _, _) = open(&dir, &settings());
    let room = addr("missevan.a:1");
    for group in 1..=1500 {
        Persist::group(&store, group, Some((&room, &RemoteId::new(format!("m{group}")))), snippet("old"));
        Persist::copy(&store, group, &addr("yunhu.b:g"), &[RemoteId::new(format!("y{group}"))]);
    }
    Persist::group(&store, 1501, Some((&room, &RemoteId::new("m7"))), snippet("new"));
    // A copy of a group the store does not have leaves no id behind.
    Persist::copy(&store, 4000, &addr("yunhu.b:g"), &[RemoteId::new("stray")]);
    store.end();
    drop(store);
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM ids"), 3000);
    let db = Connection::open(dir.join(FILE_NAME)).unwrap();
    db.execute("UPDATE groups SET created = 0 WHERE id <= ?1", params![1500]).unwrap();
    // A member line that cannot be read (a damaged row) leaves none of its group's ids behind either.
    db.execute("UPDATE groups SET members = 'not json' || char(10) WHERE id = 3", []).unwrap();
    drop(db);
    let (store, opened, _) = open(&dir, &settings());
    drop(store);
    assert_eq!(opened.groups.iter().map(|g| g.id).collect::<Vec<_>>(), [1501]);
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM ids"), 1);
    assert_eq!(count(&dir, "SELECT grp FROM ids WHERE remote = 'm7'"), 1501);
    let _ = std::fs::remove_dir_all(dir);
}
