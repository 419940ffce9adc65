//! Rooms spread across instances, not only accounts (issue #34 §2): one Missevan account's rooms are leased one by
//! one, so a second instance that joins takes some of them over (the first hands them over settled), and when one is
//! SIGKILLed the other takes its rooms once their leases expire — every message of every room arriving once and in
//! its room's order, including what was said while nobody ran a room (Missevan's history). Through the binary and the
//! simulators, on PostgreSQL; skipped, with one line saying so, where PostgreSQL is not installed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chatbridge::store::pg::testing::TestPostgres;

use crate::binary::{temp_dir, write_config};
use crate::harness::{fishroom, missevan, missevan_account};
use crate::postgres::{daemon, owners, until};

const ROOMS: [u64; 6] = [5101, 5102, 5103, 5104, 5105, 5106];
const TTL: Duration = Duration::from_secs(3);

/// Each instance's Missevan room leases.
fn rooms_by_instance(owners: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for (unit, owner) in owners {
        if unit.starts_with("missevan.fm:") {
            *by.entry(owner.clone()).or_default() += 1;
        }
    }
    by
}

/// Per room, the texts that arrived (`<room>-<n>`), in the order they arrived.
fn arrived(posted: &[String]) -> BTreeMap<u64, Vec<usize>> {
    let mut by: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for text in posted {
        if let Some((room, n)) = text.split_once('-')
            && let (Ok(room), Ok(n)) = (room.parse(), n.parse())
        {
            by.entry(room).or_default().push(n);
        }
    }
    by
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_accounts_rooms_spread_over_instances_and_move_on_a_join_and_a_sigkill() {
    let Some(server) = TestPostgres::shared() else { return };
    let _one = crate::chaos::ONE_AT_A_TIME.lock().await;
    let fm = missevan(&ROOMS, None).await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let url = server.database();
    let dir = temp_dir("pg-room-leases");
    let mut bridges = String::new();
    for room in ROOMS {
        bridges.push_str(&format!(
            "\n[[bridge]]\nname = \"r{room}\"\nformat = \"{{text}}\"\n\
             [[bridge.room]]\nroom = \"missevan.fm:{room}\"\ndirection = \"in\"\n\
             [[bridge.room]]\nroom = \"fishroom.tuna:general\"\ndirection = \"out\"\n"
        ));
    }
    let config = |name: &str| {
        let general = crate::postgres::patient_instance(&url, name);
        let accounts = format!(
            "{}{}send_rate = 0\n",
            missevan_account("fm", &fm, "send_rate = 0\n"),
            crate::harness::account("tuna", &fish, "11", "key")
        );
        write_config(&dir.join(name), &format!("{general}{accounts}{bridges}"))
    };
    let mut said: BTreeMap<u64, usize> = ROOMS.iter().map(|r| (*r, 0)).collect();
    let say_round = |said: &mut BTreeMap<u64, usize>, rooms: &[u64]| {
        for room in rooms {
            let n = said.get_mut(room).expect("a room");
            fm.say(*room, 42, "小明", &format!("{room}-{n}"));
            *n += 1;
        }
    };
    let all_arrived = |said: &BTreeMap<u64, usize>| {
        let posted: Vec<String> = fish.posted().into_iter().map(|p| p.content).collect();
        let by = arrived(&posted);
        said.iter().all(|(room, n)| by.get(room).map_or(0, Vec::len) >= *n)
    };

    // One instance runs the six rooms and the Fishroom account: seven leases.
    let mut a = daemon(&config("a"));
    until("a holds every lease", Duration::from_secs(20), || {
        let owners = owners(server, &url);
        owners.len() == 7 && owners.values().all(|o| o == "a")
    })
    .await;
    // Each room relays (a probe, not counted) once its socket has joined.
    let started = Instant::now();
    loop {
        for room in ROOMS {
            fm.say(room, 42, "小明", &format!("p{room}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let posted: Vec<String> = fish.posted().into_iter().map(|p| p.content).collect();
        if ROOMS.iter().all(|room| posted.contains(&format!("p{room}"))) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "not every room relays: {posted:?}");
    }
    for _ in 0..5 {
        say_round(&mut said, &ROOMS);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until("the first rounds arrive", Duration::from_secs(20), || all_arrived(&said)).await;

    // A second joins under traffic: a hands some rooms over, settled; b takes them; the rooms keep relaying.
    let mut b = daemon(&config("b"));
    let joined = Instant::now();
    loop {
        let by = rooms_by_instance(&owners(server, &url));
        if by.get("a").copied().unwrap_or(0) >= 2
            && by.get("b").copied().unwrap_or(0) >= 2
            && by.values().sum::<usize>() == 6
        {
            break;
        }
        assert!(joined.elapsed() < Duration::from_secs(20), "the rooms do not spread: {:?}", owners(server, &url));
        say_round(&mut said, &ROOMS);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..5 {
        say_round(&mut said, &ROOMS);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until("every room relays after the spread", Duration::from_secs(20), || all_arrived(&said)).await;

    // b is SIGKILLed; while nobody runs its rooms, they speak too (Missevan keeps history); a takes them over once
    // their leases expire.
    let b_rooms: Vec<u64> = owners(server, &url)
        .into_iter()
        .filter(|(unit, owner)| owner == "b" && unit.starts_with("missevan.fm:"))
        .filter_map(|(unit, _)| unit.rsplit(':').next().and_then(|r| r.parse().ok()))
        .collect();
    assert!(!b_rooms.is_empty());
    b.kill().expect("SIGKILL");
    b.wait().expect("reaped");
    let killed = Instant::now();
    say_round(&mut said, &b_rooms);
    let takeover = until("a takes b's rooms over", TTL + Duration::from_secs(5), || {
        let owners = owners(server, &url);
        owners.len() == 7 && owners.values().all(|o| o == "a")
    })
    .await;
    for _ in 0..5 {
        say_round(&mut said, &ROOMS);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until("every message arrives", Duration::from_secs(30), || all_arrived(&said)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let posted: Vec<String> = fish.posted().into_iter().map(|p| p.content).collect();
    let by = arrived(&posted);
    for (room, n) in &said {
        let got = &by[room];
        assert_eq!(got, &(0..*n).collect::<Vec<_>>(), "room {room}: every message once, in order");
    }
    println!(
        "rooms spread over two instances; b SIGKILLed holding {} rooms, taken over {:?} after (lease {TTL:?})",
        b_rooms.len(),
        killed.elapsed().min(takeover + Duration::from_secs(1))
    );
    crate::binary::sigterm(&a);
    crate::binary::wait_exit(&mut a, Duration::from_secs(10));
}
