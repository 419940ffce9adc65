//! The router with its store: spilling, dead letters, the id map across a restart; and the waits that
//! keep attempts from being spent (rate limits, an account that is reconnecting).

use std::path::{Path, PathBuf};

use super::*;
use crate::store::{Store, StoreSettings};

struct Durable {
    h: Harness,
    events: mpsc::UnboundedReceiver<StoreEvent>,
}

fn temp() -> PathBuf {
    std::env::temp_dir().join(format!("chatbridge-router-{}", uuid::Uuid::new_v4()))
}

/// Bridge `x` over a, b (rich: client ids, edits, recalls) and c, with its store in `dir`.
fn durable(general: &str, dir: &Path) -> Durable {
    durable_cached(general, dir, 100)
}

/// The same, with the id map in memory holding only `cache` groups (the rest read from the store).
fn durable_cached(general: &str, dir: &Path, cache: usize) -> Durable {
    let mut h = harness(ABC, [text_only(), rich(), text_only()], general);
    let config = Config::parse(&format!("{general}{ACCOUNTS}{ABC}"), "t.toml").unwrap();
    let settings = StoreSettings {
        full_sync: false,
        id_map_max_age: Duration::from_secs(3600),
        id_map_capacity: cache,
        orphan_max_age: Duration::from_secs(3600),
        per_room: config.general.queue_capacity,
        page_limit: crate::store::PageLimit::default(),
        max_outbox: 1_000_000,
        max_dead_letters: 100_000,
    };
    let (tx, events) = mpsc::unbounded_channel();
    let configured = config.destinations();
    let (store, opened) = Store::open(
        dir,
        &settings,
        |room, bridge| configured.contains(&(room.to_owned(), bridge.to_owned())),
        move |e| {
            let _ = tx.send(e);
        },
    )
    .unwrap();
    h.router.ids = Box::new(crate::store::idmap::DurableIdMap::open(dir, cache).unwrap());
    let (_, unused) = mpsc::unbounded_channel();
    h.router.with_store(Box::new(store), unused, opened);
    Durable { h, events }
}

impl Durable {
    /// Hands the router what the store reported until it has been quiet for a moment.
    async fn settle(&mut self) {
        while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(150), self.events.recv()).await {
            self.h.router.store_event(event);
            self.h.router.end();
        }
    }
}

#[tokio::test]
async fn a_full_queue_spills_to_the_store_and_drains_in_order() {
    let dir = temp();
    let mut d = durable("[general]\nqueue_capacity = 4\n", &dir);
    for i in 0..30 {
        d.h.input(message("a", None, "alice", &format!("m{i}")));
    }
    d.settle().await;
    assert!(d.h.router.outbox.len(&room("c")) <= 4, "no more than the capacity in memory");
    let mut arrived = Vec::new();
    while let Some(request) = d.h.next("c") {
        arrived.push(text_of(&sent_message(request)));
        d.h.delivered("c", &[]);
        d.settle().await;
    }
    let expected: Vec<String> = (0..30).map(|i| format!("[fishroom] alice: m{i}")).collect();
    assert_eq!(arrived, expected, "every message, in order");
    assert_eq!((d.h.stats.dropped.get(), d.h.stats.dead_lettered.get()), (0, 0));
    drop(d);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_message_goes_out_without_waiting_for_its_commit_and_stays_queued_until_acknowledged() {
    let dir = temp();
    let mut d = durable("", &dir);
    d.h.input(message("a", None, "alice", "hi"));
    // The router has heard nothing from the store (no commit reported): the copies are out anyway.
    assert_eq!(text_of(&sent_message(d.h.next("c").expect("handed over at once"))), "[fishroom] alice: hi");
    assert!(d.h.next("b").is_some());
    // Each queued row is either written by its transaction or, acknowledged before it, never written: counted.
    d.settle().await;
    let stats = &d.h.stats;
    assert!(stats.store_commits.get() >= 1);
    assert_eq!(stats.store_rows_written.get() + stats.store_rows_skipped.get(), 2);
    // Neither is acknowledged when the daemon stops: both rows were committed with the input, and come back.
    drop(d);
    let d = durable("", &dir);
    assert_eq!(d.h.router.outbox.len(&room("b")) + d.h.router.outbox.len(&room("c")), 2);
    drop(d);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_spilled_backlog_is_delivered_after_a_restart() {
    let dir = temp();
    let mut d = durable("[general]\nqueue_capacity = 3\n", &dir);
    for i in 0..10 {
        d.h.input(message("a", None, "alice", &format!("m{i}")));
    }
    d.settle().await;
    // Stops with everything queued: the first is in flight, three in memory, the rest spilled.
    drop(d);
    let mut d = durable("[general]\nqueue_capacity = 3\n", &dir);
    let restored: Vec<RoomAddr> = d.h.router.rooms.keys().cloned().collect();
    for room in restored {
        d.h.router.pump(&room);
    }
    let mut arrived = Vec::new();
    while let Some(request) = d.h.next("c") {
        arrived.push(text_of(&sent_message(request)));
        d.h.delivered("c", &[]);
        d.settle().await;
    }
    let expected: Vec<String> = (0..10).map(|i| format!("[fishroom] alice: m{i}")).collect();
    assert_eq!(arrived, expected);
    drop(d);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn edits_and_recalls_after_a_restart_find_the_copies_made_before_it() {
    let dir = temp();
    let mut d = durable("", &dir);
    d.h.input(message("a", Some("m1"), "alice", "hello"));
    d.settle().await;
    d.h.next("b").unwrap();
    d.h.delivered("b", &["b-copy"]);
    d.h.next("c").unwrap();
    d.h.delivered("c", &["c-copy"]);
    d.settle().await;
    drop(d);

    let mut d = durable("", &dir);
    d.h.input(edited("a", "m1", "hello again"));
    d.settle().await;
    match d.h.next("b").unwrap().action {
        SendAction::Edit { target, message } => {
            assert_eq!(target, RemoteId::new("b-copy"));
            assert_eq!(text_of(&message), "[fishroom] alice: hello again");
        }
        other => panic!("expected an edit, got {other:?}"),
    }
    d.h.delivered("b", &[]);
    d.h.next("c").unwrap();
    d.h.delivered("c", &[]);
    d.h.input(event("a", None, "alice", EventKind::Recalled { target: RemoteId::new("m1") }));
    d.settle().await;
    match d.h.next("b").unwrap().action {
        SendAction::Recall { targets } => assert_eq!(targets, [RemoteId::new("b-copy")]),
        other => panic!("expected a recall, got {other:?}"),
    }
    // And the copy is still ours: its echo is not relayed back.
    d.h.input(message("b", Some("b-copy"), "bridge", "[fishroom] alice: hello again"));
    assert!(d.h.next("a").is_none() && d.h.next("c").is_none());
    drop(d);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_edit_of_a_message_no_longer_in_memory_is_found_in_the_store() {
    let dir = temp();
    // Two groups in memory: the first message is long gone from it when its edit comes.
    let mut d = durable_cached("", &dir, 2);
    for (i, id) in ["m1", "m2", "m3", "m4"].into_iter().enumerate() {
        d.h.input(message("a", Some(id), "alice", &format!("text {i}")));
        d.settle().await;
        d.h.next("b").unwrap();
        d.h.delivered("b", &[&format!("b-{id}")]);
        d.h.next("c").unwrap();
        d.h.delivered("c", &[]);
        d.settle().await;
    }
    d.h.input(edited("a", "m1", "fixed"));
    d.settle().await;
    match d.h.next("b").unwrap().action {
        SendAction::Edit { target, .. } => assert_eq!(target, RemoteId::new("b-m1")),
        other => panic!("expected an edit of the first copy, got {other:?}"),
    }
    // And a gap-filled repeat of an old message is known as relayed, though memory forgot it.
    d.h.delivered("b", &[]);
    d.h.next("c").unwrap();
    d.h.delivered("c", &[]);
    let mut again = message("a", Some("m2"), "alice", "text 1");
    again.origin.replayed = true;
    d.h.input(again);
    assert!(d.h.next("b").is_none() && d.h.next("c").is_none());
    assert_eq!(d.h.stats.duplicates.get(), 1);
    drop(d);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn attempts_and_age_exhausted_move_a_message_to_the_dead_letters() {
    let dir = temp();
    let mut d = durable("[general]\nmax_attempts = 1\nmax_age = \"0s\"\n", &dir);
    d.h.input(message("a", None, "alice", "doomed"));
    d.settle().await;
    d.h.next("c").unwrap();
    d.h.ack("c", Err(SendFailure::Transient { after: None, reason: "503".into() }));
    d.settle().await;
    assert_eq!(d.h.stats.dead_lettered.get(), 1);
    assert_eq!(d.h.stats.dropped.get(), 0);
    drop(d);
    let letters = crate::store::admin::dead_letters(&dir).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].room, "fishroom.c:r");
    assert!(letters[0].reason.contains("503"), "{}", letters[0].reason);
    assert!(letters[0].summary.ends_with("doomed"), "{}", letters[0].summary);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_young_message_is_retried_past_its_attempts() {
    let dir = temp();
    let mut d = durable("[general]\nmax_attempts = 1\nmax_age = \"1h\"\n", &dir);
    d.h.input(message("a", None, "alice", "patient"));
    d.settle().await;
    d.h.next("c").unwrap();
    d.h.ack("c", Err(SendFailure::Transient { after: None, reason: "503".into() }));
    assert_eq!(d.h.stats.dead_lettered.get(), 0, "an hour has not passed");
    assert!(d.h.router.rooms[&room("c")].retry_at.is_some(), "a retry is scheduled");
    drop(d);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_rate_limited_account_waits_and_the_others_do_not() {
    let mut h = harness(ABC, [text_only(), text_only(), text_only()], "");
    let limit = crate::config::SendLimit { per_second: 20.0, burst: 1 };
    h.router.buckets.insert(room("b").account, Bucket::new(limit, std::time::Instant::now()));
    for text in ["one", "two"] {
        h.input(message("a", None, "alice", text));
    }
    h.next("b").unwrap();
    h.delivered("b", &[]);
    assert!(h.next("b").is_none(), "b's second message waits for a token");
    h.next("c").unwrap();
    h.delivered("c", &[]);
    assert!(h.next("c").is_some(), "c is not held by b's limit");
    // The wait is a scheduled retry of the room (about 50 ms), fired here by hand.
    let expired = std::future::poll_fn(|cx| h.router.retries.poll_expired(cx)).await.unwrap();
    assert_eq!(expired.get_ref(), &room("b"));
    h.router.rooms.get_mut(&room("b")).unwrap().retry_at = None;
    h.router.pump(&room("b"));
    let second = h.next("b").expect("sent once a token is due");
    assert_eq!(second.attempt, 1, "waiting spent no attempt");
}

#[tokio::test]
async fn a_retry_after_pauses_the_whole_account() {
    let mut h = harness(AB, [text_only(), text_only(), text_only()], "");
    h.input(message("a", None, "alice", "one"));
    h.next("b").unwrap();
    let pause = Duration::from_secs(30);
    h.ack("b", Err(SendFailure::Transient { after: Some(pause), reason: "429".into() }));
    let bucket = h.router.buckets.get_mut(&room("b").account).unwrap();
    let wait = bucket.take(std::time::Instant::now()).unwrap_err();
    assert!(wait > Duration::from_secs(29), "{wait:?}");
}

#[tokio::test]
async fn sends_wait_while_their_account_reconnects() {
    let mut h = harness(AB, [text_only(), text_only(), text_only()], "");
    let until = crate::model::Time::now();
    let backing_off = AccountState::BackingOff { delay: Duration::from_secs(1), until, reason: "down".into() };
    h.router.handle(RouterInput::State { account: room("b").account, state: backing_off });
    h.input(message("a", None, "alice", "later"));
    assert!(h.next("b").is_none(), "held while the account reconnects");
    h.router.handle(RouterInput::State { account: room("b").account, state: AccountState::Connected });
    let request = h.next("b").expect("sent once connected");
    assert_eq!(request.attempt, 1);
}
