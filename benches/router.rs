//! The router's budget (design §9): at least 1,000,000 events/s on one core for rules + format, no I/O.
//!
//! - `rules_and_format`: for each event, the rules pick the destinations and each copy is rendered with
//!   its room's format — the routing work itself.
//! - `router_task`: the whole per-message work of the router task — loop guard, id map group, queueing,
//!   rendering, handing the send to the destination's channel and processing its acknowledgement.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::mpsc;

use chatbridge::adapters::RouterInput;
use chatbridge::config::{Config, SendLimit};
use chatbridge::model::{
    AccountId, Capabilities, Content, Event, EventKind, Message, Platform, RemoteId, RoomAddr, RoomId, User,
};
use chatbridge::router::directory::Directory;
use chatbridge::router::idmap::MemoryIdMap;
use chatbridge::router::queue::MemoryOutbox;
use chatbridge::router::render::{Target, render};
use chatbridge::router::rules::Rules;
use chatbridge::router::{AccountLink, Router, RouterSettings};
use chatbridge::stats::Stats;

const BATCH: usize = 10_000;

fn config() -> Config {
    let mut source = String::new();
    // A token each: check refuses two accounts on one Fishroom token (they would take each other's messages).
    for (n, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
        source.push_str(&format!("[accounts.fishroom.{name}]\ntoken_id = \"{n}\"\ntoken_key = \"k\"\n"));
    }
    source.push_str(
        "[[bridge]]\nname = \"fans\"\nrooms = [\"fishroom.a:r\", \"fishroom.b:r\", \"fishroom.c:r\"]\n\
         [[bridge]]\nname = \"other\"\nignore_senders = [\"^bot_\"]\nrooms = [\"fishroom.d:r\", \"fishroom.b:r\"]\n",
    );
    Config::parse(&source, "bench.toml").expect("bench config is valid")
}

fn room(name: &str) -> RoomAddr {
    RoomAddr::new(AccountId::new(Platform::Fishroom, name), RoomId::new("r"))
}

fn events() -> Vec<Event> {
    events_from(0)
}

/// `BATCH` messages with remote ids from `first` on (the router drops a message whose id it relayed before).
fn events_from(first: usize) -> Vec<Event> {
    (first..first + BATCH)
        .map(|i| {
            let content = Content::text(format!("message number {i} with a bit of text in it"));
            let kind = EventKind::Message(Message { content, ..Message::default() });
            Event::new(room("a"), Some(RemoteId::new(i.to_string())), Some(User::new("u1", "alice")), kind)
        })
        .collect()
}

fn rules_and_format(c: &mut Criterion) {
    let rules = Rules::new(config().bridges);
    let events = events();
    let mut ids = MemoryIdMap::new(1000);
    let directory = Directory::default();
    let mut destinations = Vec::new();
    let mut group = c.benchmark_group("router");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("rules_and_format", |b| {
        b.iter(|| {
            let mut sent = 0usize;
            for event in &events {
                if rules.destinations(event, &mut destinations).is_ok() {
                    for &to in &destinations {
                        let target = Target {
                            room: rules.room(to),
                            source: rules.source_room(to, &event.origin.room),
                            bridge: rules.bridge_name(to),
                            caps: Capabilities::default(),
                            media: &Vec::new(),
                        };
                        let rendered = render(event, &target, &mut ids, &directory);
                        sent += std::hint::black_box(&rendered as *const _ as usize) & 1;
                    }
                }
            }
            sent
        })
    });
    group.finish();
}

fn router_task(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let _guard = runtime.enter();
    let config = config();
    let mut links = HashMap::new();
    let mut receivers = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let (tx, rx) = mpsc::unbounded_channel();
        links.insert(
            AccountId::new(Platform::Fishroom, name),
            AccountLink {
                caps: Capabilities::default(),
                sends: tx.into(),
                limit: SendLimit::default_for(Platform::Api),
            },
        );
        receivers.push((room(name), rx));
    }
    let settings = RouterSettings {
        max_attempts: 5,
        max_age: Duration::from_secs(600),
        queue_capacity: 1000,
        gap_fill_window: Duration::from_secs(3600),
        retry_delay: Duration::from_secs(1),
        retry_max: Duration::from_secs(60),
        shutdown_timeout: Duration::from_secs(1),
    };
    let stats = Arc::new(Stats::default());
    let mut router = Router::new(
        Rules::new(config.bridges),
        links,
        Box::new(MemoryOutbox::new()),
        Box::new(MemoryIdMap::new(100_000)),
        settings,
        Arc::clone(&stats),
    );
    let mut next = 0;
    let mut group = c.benchmark_group("router");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("router_task", |b| {
        b.iter_batched(
            || {
                next += BATCH;
                events_from(next)
            },
            |events| {
                for event in events {
                    router.handle(RouterInput::Event(event));
                    // Each destination acknowledges at once, so the next message goes out.
                    for (room, rx) in &mut receivers {
                        while rx.try_recv().is_ok() {
                            router.handle(RouterInput::Ack { room: room.clone(), result: Ok(Vec::new()) });
                        }
                    }
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
    assert_eq!(
        stats.duplicates.get(),
        0,
        "every message is new: the benchmark measures relaying, not the duplicate check"
    );
}

criterion_group!(benches, rules_and_format, router_task);
criterion_main!(benches);
