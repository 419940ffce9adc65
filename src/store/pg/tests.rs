//! What only the PostgreSQL store does: migrations shared by instances, and a server that goes away.

use std::time::Duration;

use super::testing::TestPostgres;
use super::*;
use crate::settings::Secret;
use crate::store::fixture::{Events, leasing, put, room, settings, wait_for};

fn target(url: &Secret) -> PgTarget {
    PgTarget::parse(url).unwrap()
}

fn open(target: &PgTarget) -> (PgStore, Opened, Events) {
    open_as(target, "test")
}

fn open_as(target: &PgTarget, instance: &str) -> (PgStore, Opened, Events) {
    let events: Events = Default::default();
    let sink = Arc::clone(&events);
    let notify = move |e: StoreEvent| {
        if !matches!(e, StoreEvent::Sizes { .. } | StoreEvent::Arrived { .. }) {
            sink.lock().unwrap().push(e);
        }
    };
    let opened = PgStore::open(target, &settings(), leasing(instance), Arc::default(), |_, _| true, notify).unwrap();
    (opened.store, opened.opened, events)
}

#[test]
fn the_schema_is_migrated_once_whoever_starts_first() {
    let Some(server) = TestPostgres::shared() else { return };
    let target = target(&server.database());
    assert_eq!(status(&target).unwrap(), SchemaState { found: 0, current: schema::SCHEMA_VERSION });
    // Four instances starting at once: each migration is applied once, and every one of them finds it done.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let target = target.clone();
            std::thread::spawn(move || migrate(&target).unwrap())
        })
        .collect();
    let mut from: Vec<i32> = threads.into_iter().map(|t| t.join().unwrap().from).collect();
    from.sort();
    let current = schema::SCHEMA_VERSION;
    assert_eq!(from, [0, current, current, current]);
    assert_eq!(status(&target).unwrap().found, schema::SCHEMA_VERSION);
    // Each start is a run of its own: keys and group ids never meet.
    let (first, a, _) = open_as(&target, "one");
    let (second, b, _) = open_as(&target, "two");
    assert_ne!(first.run(), second.run());
    assert!(a.last_key.abs_diff(b.last_key) >= 1 << schema::RUN_SHIFT);
}

/// A database a build of schema 1 made is brought to the current schema when the store opens, and works.
#[test]
fn a_database_of_schema_1_is_migrated_when_the_store_opens() {
    let Some(server) = TestPostgres::shared() else { return };
    let url = server.database();
    let target = target(&url);
    blocking(&target, |client| {
        Box::pin(async move {
            client
                .batch_execute(&format!(
                    "CREATE TABLE chatbridge_migrations (version integer PRIMARY KEY, applied timestamptz NOT NULL \
                     DEFAULT now()); {} INSERT INTO chatbridge_migrations (version) VALUES (1); \
                     INSERT INTO outbox (key, account, room, bridge, record, queued_at) \
                     VALUES (99, 'missevan.fm', 'missevan.fm:5', 'b', '\\x00', 9999999999999);",
                    schema::STEPS[0]
                ))
                .await
                .unwrap();
            Ok(())
        })
    })
    .unwrap();
    let (store, _, events) = open(&target);
    let store: Box<dyn crate::router::port::Persist> = Box::new(store);
    put(&*store, 7, "queued after the upgrade");
    store.end();
    wait_for(&events, "the commit", |e| matches!(e, StoreEvent::Committed { .. }));
    store.close();
    assert_eq!(status(&target).unwrap().found, schema::SCHEMA_VERSION, "opening migrated it");
    // Schema 4: a Missevan room's rows belong to the room's own lease.
    assert_eq!(server.query(&url, "SELECT account FROM outbox WHERE key = 99").trim(), "missevan.fm:5");
    server.query(&url, "DELETE FROM outbox WHERE key = 99");
    assert_eq!(
        server.query(&url, "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'outbox_by_room_seq'").trim(),
        "1"
    );
    let (_store, opened, _) = open(&target);
    assert_eq!(opened.outbox.iter().map(|s| s.key).collect::<Vec<_>>(), [7]);
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let Some(server) = TestPostgres::shared() else { return };
    let target = target(&server.database());
    migrate(&target).unwrap();
    blocking(&target, |client| {
        Box::pin(async move {
            client.execute("INSERT INTO chatbridge_migrations (version) VALUES (99)", &[]).await.unwrap();
            Ok(())
        })
    })
    .unwrap();
    let error = PgStore::open(&target, &settings(), leasing("test"), Arc::default(), |_, _| true, |_| {})
        .err()
        .expect("refused");
    assert!(error.to_string().contains("newer chatbridge (schema 99"), "{error}");
}

#[test]
fn an_unreachable_server_is_named_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = Secret::resolve(&format!("postgres://bridge:hunter2@127.0.0.1:{port}/chat?connect_timeout=2")).unwrap();
    let error = PgStore::open(&target(&url), &settings(), leasing("test"), Arc::default(), |_, _| true, |_| {})
        .err()
        .expect("nothing listens there");
    let text = error.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}/chat")) && !text.contains("hunter2"), "{text}");
}

#[test]
fn libpq_tls_options_are_read_where_tokio_postgres_does_not() {
    let (url, root) = crate::settings::libpq_options(
        "postgres://u:p@db.example:5433/chat?sslmode=verify-full&sslrootcert=/etc/ssl/our%20ca.pem&application_name=x",
    );
    assert_eq!(url, "postgres://u:p@db.example:5433/chat?sslmode=require&application_name=x");
    assert_eq!(root, Some(std::path::PathBuf::from("/etc/ssl/our ca.pem")));
    let (kv, root) =
        crate::settings::libpq_options("host=db.example sslmode=verify-ca sslrootcert='/etc/ca.pem' dbname=chat");
    assert_eq!(kv, "host=db.example sslmode=require dbname=chat");
    assert_eq!(root, Some(std::path::PathBuf::from("/etc/ca.pem")));
    let plain = "postgres://u@h/chat?sslmode=disable";
    assert_eq!(crate::settings::libpq_options(plain), (plain.to_owned(), None));
    // A file that is not there, or not certificates, is a configuration error, before anything connects.
    let missing = Secret::resolve("postgres://u@h/chat?sslrootcert=/nonexistent/ca.pem").unwrap();
    let error = PgTarget::parse(&missing).err().expect("refused");
    assert!(error.contains("/nonexistent/ca.pem") && error.contains("cannot be read"), "{error}");
    let not_pem = Secret::resolve("postgres://u@h/chat?sslrootcert=Cargo.toml").unwrap();
    assert!(PgTarget::parse(&not_pem).err().expect("refused").contains("no certificate"));
    let contradiction = Secret::resolve("postgres://u@h/chat?sslmode=disable&sslrootcert=/etc/ca.pem").unwrap();
    assert!(PgTarget::parse(&contradiction).err().expect("refused").contains("sslmode=disable"));
}

/// The same server over TLS: trusted through `sslrootcert` (certificate and host name verified), refused with
/// the system's roots, which do not know the tests' authority.
#[test]
fn tls_verifies_the_server_against_sslrootcert() {
    let Some(server) = TestPostgres::shared() else { return };
    let plain = server.database();
    let tls = |options: &str| {
        let url = plain.expose().replace("sslmode=disable", options);
        Secret::resolve(&url).unwrap()
    };
    let ca = server.ca_file();
    let trusted = target(&tls(&format!("sslmode=verify-full&sslrootcert={}", ca.display())));
    migrate(&trusted).unwrap();
    let (store, _, events) = open(&trusted);
    let store: Box<dyn crate::router::port::Persist> = Box::new(store);
    put(&*store, 1, "over TLS");
    store.end();
    wait_for(&events, "the commit", |e| matches!(e, StoreEvent::Committed { .. }));
    store.close();
    let encrypted = blocking(&trusted, |client| {
        Box::pin(async move {
            let row = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await;
            Ok(row.map(|r| r.get::<_, bool>(0)).unwrap_or(false))
        })
    })
    .unwrap();
    assert!(encrypted, "the connection is TLS");
    let error = status(&target(&tls("sslmode=require"))).expect_err("an unknown authority is refused");
    assert!(error.to_string().to_lowercase().contains("certificate"), "{error}");
}

#[test]
fn a_server_restart_loses_nothing_the_writer_was_given() {
    let Some(server) = TestPostgres::start() else { return };
    let target = target(&server.database());
    let (store, _, events) = open(&target);
    let store: Box<dyn crate::router::port::Persist> = Box::new(store);
    for key in 1..=50 {
        put(&*store, key, &format!("before {key}"));
        store.end();
    }
    wait_for(&events, "the first commits", |e| matches!(e, StoreEvent::Committed { .. }));
    server.kill();
    for key in 51..=100 {
        put(&*store, key, &format!("during {key}"));
        store.end();
    }
    store.delete(1, &room("r"));
    store.end();
    wait_for(&events, "the failure", |e| matches!(e, StoreEvent::Failing { .. }));
    std::thread::sleep(Duration::from_millis(300));
    server.resume();
    wait_for(&events, "the recovery", |e| matches!(e, StoreEvent::Recovered));
    let closing = store.close();
    assert_eq!(closing, Closing { stored: Some(99), unwritten: 0 });
    let (_store, opened, _) = open(&target);
    let keys: Vec<u64> = opened.outbox.iter().map(|s| s.key).collect();
    assert_eq!(keys, (2..=100).collect::<Vec<_>>());
}

#[test]
fn a_store_closed_while_the_server_is_gone_says_what_it_could_not_keep() {
    let Some(server) = TestPostgres::start() else { return };
    let target = target(&server.database());
    let (store, _, events) = open(&target);
    let store: Box<dyn crate::router::port::Persist> = Box::new(store);
    for key in 1..=3 {
        put(&*store, key, "kept");
    }
    store.end();
    wait_for(&events, "the first commit", |e| matches!(e, StoreEvent::Committed { .. }));
    server.kill();
    for key in 4..=10 {
        put(&*store, key, "lost");
        store.end();
    }
    wait_for(&events, "the failure", |e| matches!(e, StoreEvent::Failing { .. }));
    let closing = store.close();
    assert_eq!(closing, Closing { stored: None, unwritten: 7 });
}

#[test]
fn writes_under_a_lease_another_instance_took_are_refused_and_counted() {
    let Some(server) = TestPostgres::shared() else { return };
    let target = target(&server.database());
    let (store, _, events) = open(&target);
    let store: Box<dyn crate::router::port::Persist> = Box::new(store);
    put(&*store, 1, "delivered here, acknowledged too late");
    store.end();
    wait_for(&events, "the row", |e| matches!(e, StoreEvent::Committed { .. }));
    // Another instance claims the account's lease (a new epoch, another run) while this one still runs it.
    blocking(&target, |client| {
        Box::pin(async move {
            let taken = client
                .execute("UPDATE leases SET run = run + 1000, owner = 'other', epoch = epoch + 1 WHERE account = 'fishroom.t'", &[])
                .await
                .unwrap();
            assert_eq!(taken, 1);
            Ok(())
        })
    })
    .unwrap();
    // Its acknowledgement and its cursor are refused: the row stays for the new owner.
    store.delete(1, &room("r"));
    store.cursor(&room("r"), &crate::model::Cursor::new("9"));
    store.end();
    wait_for(&events, "the refusal", |e| matches!(e, StoreEvent::Fenced { refused: 2 }));
    drop(store);
    let left = blocking(&target, |client| {
        Box::pin(async move {
            let rows: i64 = client.query_one("SELECT COUNT(*) FROM outbox", &[]).await.unwrap().get(0);
            let cursors: i64 = client.query_one("SELECT COUNT(*) FROM cursors", &[]).await.unwrap().get(0);
            Ok((rows, cursors))
        })
    })
    .unwrap();
    assert_eq!(left, (1, 0), "the row is still there and no cursor was written");
}

/// A claim only reads (issue #34 §2): the rows keep no mark of it, a second claim before the acknowledgements does
/// not read them again, and once acknowledged they are gone for every claim.
#[test]
fn a_claim_only_reads_and_leaves_out_what_was_read_until_it_is_acknowledged() {
    let Some(server) = TestPostgres::shared() else { return };
    let url = server.database();
    let target = target(&url);
    let (store, _, events) = open(&target);
    let store: Box<dyn crate::router::port::Persist> = Box::new(store);
    put(&*store, 1, "one");
    put(&*store, 2, "two");
    store.end();
    wait_for(&events, "the rows", |e| matches!(e, StoreEvent::Committed { .. }));
    let loaded = |events: &Events| -> Vec<Vec<u64>> {
        events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                StoreEvent::Loaded { rows, .. } => Some(rows.iter().map(|r| r.key).collect()),
                _ => None,
            })
            .collect()
    };
    store.load(&room("r"), 0, 10);
    store.end();
    wait_for(&events, "the first claim", |e| matches!(e, StoreEvent::Loaded { .. }));
    assert_eq!(loaded(&events), [vec![1, 2]]);
    assert_eq!(
        server.query(&url, "SELECT COUNT(*) FROM outbox WHERE holder IS NOT NULL").trim(),
        "0",
        "nothing marked"
    );
    // Read again before any acknowledgement: nothing (both are in the router's memory).
    store.load(&room("r"), 0, 10);
    store.end();
    let claims = |n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while loaded(&events).len() < n {
            assert!(std::time::Instant::now() < deadline, "claim {n} answered");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    claims(2);
    assert_eq!(loaded(&events)[1], Vec::<u64>::new());
    // One acknowledged, a third row queued: the next claim reads only the new one.
    store.delete(1, &room("r"));
    put(&*store, 3, "three");
    store.end();
    store.load(&room("r"), 0, 10);
    store.end();
    claims(3);
    assert_eq!(loaded(&events)[2], vec![3]);
    assert_eq!(server.query(&url, "SELECT string_agg(key::text, ',' ORDER BY key) FROM outbox").trim(), "2,3");
}
