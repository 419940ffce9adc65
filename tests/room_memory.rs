//! Memory per idle room (issue #34 §3): what one more Missevan room, bridged to a Yunhu group, holds on the heap
//! once it is joined and quiet — its receiving task, its socket, its bridge. Counted by an allocator that adds up
//! every byte live outside the simulators' threads, between the daemon running 100 rooms and, after a reload, 600.
//! A test binary of its own, so no other test's allocations are counted. The resident memory per room at 5,000
//! rooms on three instances is `benches/rooms.sh`'s (docs/performance.md).

#[path = "common/counting.rs"]
mod counting;
use counting::Counting;

use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use chatbridge::sim::missevan::{MissevanSim, MissevanSimConfig};
use chatbridge::sim::yunhu::{YunhuSim, YunhuSimConfig};

static LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Set on the simulators' threads: what they hold is the platform's, not the daemon's.
    static SIMULATOR: Cell<bool> = const { Cell::new(false) };
}

fn note(delta: isize) {
    if !SIMULATOR.try_with(Cell::get).unwrap_or(false) {
        LIVE.fetch_add(delta, Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting(note);

const FIRST_ROOM: u64 = 100_000;
const BEFORE: usize = 100;
const AFTER: usize = 600;
/// Bytes of heap an idle room may hold, in this (unoptimised) test build: 10.0 KB measured, against 29.7 KB
/// before each room's task boxed its handshake, gap fill and relaying, read its socket in 2 KiB, and quiet rooms
/// stopped getting counters and per-minute buckets of their own.
const BUDGET: isize = 14 << 10;

fn config(missevan: &MissevanSim, yunhu: &YunhuSim, state_dir: &std::path::Path, rooms: usize) -> String {
    let mut text = format!(
        "[general]\nstate_dir = {:?}\nlog_level = \"warn\"\n\n[accounts.missevan.fm]\ncookie = \"token=fan-token\"\n\
         api_url = \"{}\"\nws_url = \"{}\"\nsend_rate = 0\n\n[accounts.yunhu.bot]\ntoken = \"bot-token\"\n\
         api_url = \"{}\"\nws_url = \"{}\"\nsend_rate = 0\n",
        state_dir.display(),
        missevan.api_url(),
        missevan.ws_url(),
        yunhu.api_url(),
        yunhu.ws_url()
    );
    for i in 0..rooms {
        let room = FIRST_ROOM + i as u64;
        text.push_str(&format!(
            "\n[[bridge]]\nname = \"r{i}\"\n[[bridge.room]]\nroom = \"missevan.fm:{room}\"\ndirection = \"in\"\n\
             [[bridge.room]]\nroom = \"yunhu.bot:group/g{i}\"\ndirection = \"out\"\n"
        ));
    }
    text
}

/// Waits until the simulator has seen `rooms` rooms joined, then until the daemon's heap is still; the median of
/// a second's samples.
async fn idle_heap(missevan: &MissevanSim, rooms: usize) -> isize {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let joined: std::collections::HashSet<u64> = missevan.joins().iter().map(|(room, _)| *room).collect();
        if joined.len() >= rooms {
            break;
        }
        assert!(Instant::now() < deadline, "only {} of {rooms} rooms joined", joined.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut samples = Vec::new();
    for _ in 0..11 {
        samples.push(LIVE.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[test]
fn an_idle_missevan_room_holds_little_heap() {
    let simulators = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(|| SIMULATOR.with(|s| s.set(true)))
        .enable_all()
        .build()
        .expect("a runtime");
    let started = simulators.block_on(simulators.spawn(async {
        let missevan = MissevanSim::start(MissevanSimConfig {
            rooms: (0..AFTER as u64).map(|i| FIRST_ROOM + i).collect(),
            users: vec![("fan-token".into(), 3_414_815, "bridgebot".into())],
            room_buffer: 16,
            ..MissevanSimConfig::default()
        })
        .await
        .expect("the Missevan simulator starts");
        let yunhu = YunhuSim::start(YunhuSimConfig {
            users: vec![("bot-token".into(), "9001".into(), "bridgebot".into())],
            discard_uploads: true,
        })
        .await
        .expect("the Yunhu simulator starts");
        (missevan, yunhu)
    }));
    let (missevan, yunhu) = started.expect("the simulators start");
    let state_dir = std::env::temp_dir().join(format!("chatbridge-room-memory-{}", uuid::Uuid::new_v4()));
    let daemon_runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    let per_room = daemon_runtime.block_on(async {
        let parse = |rooms| {
            chatbridge::config::Config::parse(&config(&missevan, &yunhu, &state_dir, rooms), "rooms.toml")
                .unwrap_or_else(|p| panic!("the configuration is valid:\n{p}"))
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let daemon = chatbridge::Daemon::start(parse(BEFORE), stop.clone()).expect("the daemon starts");
        let before = idle_heap(&missevan, BEFORE).await;
        let reloaded = daemon.reloader().reload(parse(AFTER)).await;
        assert!(matches!(reloaded, chatbridge::Reloaded::Applied { .. }), "{reloaded:?}");
        let after = idle_heap(&missevan, AFTER).await;
        stop.cancel();
        daemon.wait().await;
        (after - before) / (AFTER - BEFORE) as isize
    });
    eprintln!("heap per idle room: {per_room} bytes");
    assert!(per_room > 0, "the rooms were counted");
    assert!(per_room <= BUDGET, "an idle room holds {per_room} bytes of heap, over {BUDGET}");
    let _ = std::fs::remove_dir_all(&state_dir);
}
