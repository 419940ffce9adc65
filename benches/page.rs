//! The status page's budget (issue #32 §1): the page for 1,000 rooms drawn in ≤ 50 ms and weighing ≤ 200 KB.
//! Two shapes of 1,000 rooms — a hub (100 bridges of 10 rooms) and pairs (500 bridges of 2 rooms, one live room to
//! one group each) — every room with traffic, every bridge's picture with all sixty minutes drawn (the heaviest
//! chart), 100 dead letters. Measured: the snapshot from the counters, the drawing, and the gzip a browser gets.
//! The sizes are printed before the timings. `cargo bench --bench page`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

use chatbridge::admin::model::{DeadLetterView, Inputs, Layout, snapshot};
use chatbridge::admin::page::{gzip, render};
use chatbridge::link::AccountState;
use chatbridge::model::{AccountId, Platform, RoomAddr, RoomId, Time};
use chatbridge::stats::{Metric, Stats};

struct Shape {
    name: &'static str,
    stats: Stats,
    layout: Layout,
    states: BTreeMap<AccountId, AccountState>,
    since: BTreeMap<AccountId, Time>,
}

fn shape(name: &'static str, bridges: usize, rooms: usize) -> Shape {
    let stats = Stats::default();
    let live = AccountId::new(Platform::Missevan, "fans");
    let groups = AccountId::new(Platform::Yunhu, "bot");
    let mut layout = Layout::new();
    let mut n = 0u64;
    for b in 0..bridges {
        let mut members = Vec::new();
        for r in 0..rooms {
            let (account, room) = if r == 0 {
                (live.clone(), format!("{}", 868_900_000 + b))
            } else {
                (groups.clone(), format!("group-{b}-{r}"))
            };
            let addr = RoomAddr::new(account, RoomId::new(room));
            let series = stats.room(&addr);
            for _ in 0..(n % 7 + 3) {
                stats.add(Metric::Received, &series);
                stats.add(Metric::Relayed, &series);
            }
            series.set_queued((n % 5) as usize);
            n += 1;
            members.push((addr.to_string(), "inout"));
        }
        layout.push((format!("fan-room-{b}"), members));
    }
    let states = [(live.clone(), AccountState::Connected), (groups.clone(), AccountState::Connected)].into();
    let since = [(live, Time::now()), (groups, Time::now())].into();
    Shape { name, stats, layout, states, since }
}

fn letters() -> Vec<DeadLetterView> {
    (1..=100)
        .map(|key| DeadLetterView {
            key,
            room: format!("yunhu.bot:group-{key}-1"),
            bridge: format!("fan-room-{key}"),
            failed_at_ms: Time::now().0 - key as i64 * 1000,
            reason: "3 attempts over 2m; the last: the server answered 502".to_owned(),
            summary: "missevan.fans:868900001: a message of a usual length, as fans write them in a live room"
                .to_owned(),
            requeued: false,
        })
        .collect()
}

fn page(c: &mut Criterion) {
    let started = std::time::Instant::now();
    for shape in [shape("hub", 100, 10), shape("pairs", 500, 2)] {
        let inputs = || Inputs {
            states: &shape.states,
            since: &shape.since,
            layout: &shape.layout,
            started,
            letters: Ok(letters()),
            holders: None,
            config_file: Some("/etc/chatbridge/config.toml".to_owned()),
        };
        let mut heaviest = snapshot(&shape.stats, inputs());
        for bridge in &mut heaviest.bridges {
            bridge.per_minute = (0..60u32).map(|m| m * 7 % 23 + 1).collect();
        }
        let html = render(&heaviest, Some("c5Xb1f0D9n3kQ7rT2vW8yZ4aE6gH0jL1mN5pR9sU3xY"), true);
        let zipped = gzip(&html);
        if let Some(path) = std::env::var_os("CHATBRIDGE_PAGE_DUMP") {
            let _ = std::fs::write(std::path::Path::new(&path).join(format!("page-{}.html", shape.name)), &html);
        }
        println!(
            "page {}: {} rooms, {} bytes drawn, {} bytes gzipped",
            shape.name,
            heaviest.bridges.iter().map(|b| b.rooms.len()).sum::<usize>(),
            html.len(),
            zipped.len()
        );
        let mut group = c.benchmark_group(format!("status_page_{}", shape.name));
        group.bench_function("snapshot", |b| b.iter(|| black_box(snapshot(&shape.stats, inputs()))));
        group.bench_function("render", |b| b.iter(|| black_box(render(&heaviest, Some("csrf"), true).len())));
        group.bench_function("gzip", |b| b.iter(|| black_box(gzip(&html).len())));
        group.finish();
    }
}

criterion_group!(benches, page);
criterion_main!(benches);
