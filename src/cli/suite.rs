//! `chatbridge bench --suite`: the API path's figures from one command. Each round starts the null relay (the floor:
//! the same stack with no bridge in it, `--null-relay`) and chatbridge (two API accounts bridged, the store on, as
//! `chatbridge bench` configures it) as processes of their own, alternately, and measures each the same way with the
//! load tool: time to ready, idle memory, 20,000 messages from 8 senders (then memory again), from 1 sender, at
//! 10,000 and at 1,000 messages a second. It prints min / median / max over the rounds for both, chatbridge as a
//! multiple of the floor, and the targets — a markdown table, with the date, the machine and its load.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::load::{self, LoadOptions, LoadReport};

pub struct SuiteOptions {
    pub rounds: usize,
    pub messages: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Subject {
    Floor,
    Chatbridge,
}

/// One subject's figures in one round.
#[derive(Default)]
struct Round {
    ready_ms: f64,
    idle_kib: f64,
    after_kib: f64,
    many: LoadReport,
    one: LoadReport,
    fast: LoadReport,
    slow: LoadReport,
}

/// A subject running as a process of its own.
struct Running {
    child: Child,
    post: u16,
    read: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts the subject; the time until both its listeners answer `/api/health`.
async fn start(subject: Subject, dir: &Path, round: usize) -> anyhow::Result<(Running, f64)> {
    let exe = std::env::current_exe()?;
    let (post, read) = (free_port()?, free_port()?);
    let mut command = Command::new(exe);
    match subject {
        Subject::Chatbridge => {
            let state = dir.join(format!("state-{round}"));
            let config = dir.join(format!("bench-{round}.toml"));
            std::fs::write(&config, load::in_process_config(post, read, Some(&state)))?;
            command.arg("run").arg("-c").arg(&config);
        }
        Subject::Floor => {
            command.args(["bench", "--null-relay", &format!("127.0.0.1:{post}"), &format!("127.0.0.1:{read}")]);
        }
    }
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).env("RUST_LOG", "warn");
    let http = crate::adapters::http_client(Duration::from_secs(2));
    let started = Instant::now();
    let running = Running { child: command.spawn()?, post, read };
    let ready = |port: u16| {
        let http = http.clone();
        async move {
            let answer = http.get(format!("http://127.0.0.1:{port}/api/health")).send().await;
            answer.is_ok_and(|a| a.status().is_success())
        }
    };
    loop {
        if ready(post).await && ready(read).await {
            return Ok((running, started.elapsed().as_secs_f64() * 1000.0));
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(20), "{subject:?} did not get ready in 20 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn load(running: &Running, messages: usize, concurrency: usize, rate: Option<f64>) -> anyhow::Result<LoadReport> {
    load::run(LoadOptions {
        post_url: format!("http://127.0.0.1:{}", running.post),
        read_url: format!("http://127.0.0.1:{}", running.read),
        post_gateway: "load".into(),
        token: None,
        messages,
        concurrency,
        rate,
        grace: Duration::from_secs(5),
        pid: Some(running.child.id()),
        time_limit: Some(Duration::from_secs(300)),
    })
    .await
}

async fn measure(subject: Subject, dir: &Path, round: usize, messages: usize) -> anyhow::Result<Round> {
    let (running, ready_ms) = start(subject, dir, round).await?;
    let pid = running.child.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_kib = load::rss_kib(pid).unwrap_or_default() as f64;
    let many = load(&running, messages, 8, None).await?;
    let after_kib = load::rss_kib(pid).unwrap_or_default() as f64;
    let one = load(&running, messages, 1, None).await?;
    let fast = load(&running, messages, 8, Some(10_000.0)).await?;
    let slow = load(&running, messages, 8, Some(1_000.0)).await?;
    Ok(Round { ready_ms, idle_kib, after_kib, many, one, fast, slow })
}

/// min / median / max.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let median = if values.is_empty() {
        f64::NAN
    } else if values.len() % 2 == 1 {
        values[values.len() / 2]
    } else {
        (values[values.len() / 2 - 1] + values[values.len() / 2]) / 2.0
    };
    (values.first().copied().unwrap_or(f64::NAN), median, values.last().copied().unwrap_or(f64::NAN))
}

/// What a line is held to: an absolute target (`issue #20`) and how far from the floor chatbridge may be
/// (`issue #21`, tightened by `issue #35`), as the factor of the floor's median it must stay within.
struct Line {
    what: &'static str,
    decimals: usize,
    figure: fn(&Round) -> f64,
    target: Option<(&'static str, f64, bool)>,
    from_floor: Option<(&'static str, f64, bool)>,
}

const LINES: &[Line] = &[
    Line {
        what: "msg/s, 1 sender",
        decimals: 0,
        figure: |r| r.one.throughput,
        target: None,
        from_floor: Some(("≥ 0.9×", 0.9, true)),
    },
    Line {
        what: "CPU ms per message, 1 sender",
        decimals: 3,
        figure: |r| cpu(&r.one),
        target: None,
        from_floor: Some(("≤ 1.3×", 1.3, false)),
    },
    Line {
        what: "msg/s, 8 senders",
        decimals: 0,
        figure: |r| r.many.throughput,
        target: Some(("≥ 17,000", 17_000.0, true)),
        from_floor: Some(("≥ 0.9×", 0.9, true)),
    },
    Line {
        what: "CPU ms per message, 8 senders",
        decimals: 3,
        figure: |r| cpu(&r.many),
        target: Some(("≤ 0.06", 0.06, false)),
        from_floor: Some(("≤ 1.3×", 1.3, false)),
    },
    Line { what: "p50 ms, 8 senders", decimals: 2, figure: |r| r.many.p50_ms, target: None, from_floor: None },
    Line { what: "p99 ms, 8 senders", decimals: 2, figure: |r| r.many.p99_ms, target: None, from_floor: None },
    Line {
        what: "CPU ms per message at 10,000 msg/s",
        decimals: 3,
        figure: |r| cpu(&r.fast),
        target: None,
        from_floor: Some(("≤ 1.3×", 1.3, false)),
    },
    Line { what: "p50 ms at 10,000 msg/s", decimals: 2, figure: |r| r.fast.p50_ms, target: None, from_floor: None },
    Line {
        what: "p99 ms at 10,000 msg/s",
        decimals: 2,
        figure: |r| r.fast.p99_ms,
        target: None,
        from_floor: Some(("≤ 2×", 2.0, false)),
    },
    Line {
        what: "CPU ms per message at 1,000 msg/s",
        decimals: 3,
        figure: |r| cpu(&r.slow),
        target: Some(("≤ 0.08", 0.08, false)),
        from_floor: Some(("≤ 1.5×", 1.5, false)),
    },
    Line { what: "p50 ms at 1,000 msg/s", decimals: 2, figure: |r| r.slow.p50_ms, target: None, from_floor: None },
    Line {
        what: "p99 ms at 1,000 msg/s",
        decimals: 2,
        figure: |r| r.slow.p99_ms,
        target: Some(("≤ 1.2", 1.2, false)),
        from_floor: Some(("≤ 1.5×", 1.5, false)),
    },
    Line {
        what: "idle RSS, MB",
        decimals: 1,
        figure: |r| r.idle_kib / 1000.0,
        target: Some(("≤ 8.5", 8.5, false)),
        from_floor: None,
    },
    Line {
        what: "RSS after 20,000 messages, MB",
        decimals: 1,
        figure: |r| r.after_kib / 1000.0,
        target: Some(("≤ 11", 11.0, false)),
        from_floor: Some(("≤ 1.3×", 1.3, false)),
    },
    Line { what: "start to API ready, ms", decimals: 1, figure: |r| r.ready_ms, target: None, from_floor: None },
];

fn cpu(report: &LoadReport) -> f64 {
    report.cpu_ms_per_message.unwrap_or(f64::NAN)
}

fn met(value: f64, bound: f64, at_least: bool) -> &'static str {
    match (value.is_nan(), at_least) {
        (true, _) => "?",
        (false, true) if value >= bound => "met",
        (false, false) if value <= bound => "met",
        _ => "missed",
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or_else(String::new, |kb| format!(", {:.0} GiB", kb / 1024.0 / 1024.0));
    format!("{cpu}, {cores} cores{memory}")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

pub async fn run(options: SuiteOptions) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("chatbridge-suite-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let build = if cfg!(debug_assertions) { "a debug build: figures mean little" } else { "release build" };
    let load_before = load_average();
    let began = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    eprintln!(
        "{} rounds of {} messages per measure, null relay and chatbridge alternately…",
        options.rounds, options.messages
    );
    let (mut floor, mut bridge) = (Vec::new(), Vec::new());
    let mut problems = Vec::new();
    for round in 0..options.rounds {
        let order =
            if round % 2 == 0 { [Subject::Floor, Subject::Chatbridge] } else { [Subject::Chatbridge, Subject::Floor] };
        for subject in order {
            let figures = measure(subject, &dir, round, options.messages).await?;
            for (what, r) in [
                ("8 senders", &figures.many),
                ("1 sender", &figures.one),
                ("10,000/s", &figures.fast),
                ("1,000/s", &figures.slow),
            ] {
                if r.lost + r.duplicated + r.out_of_order + r.failed > 0 {
                    problems.push(format!(
                        "{subject:?}, round {}, {what}: lost {}, duplicated {}, out of order {}, failed posts {}",
                        round + 1,
                        r.lost,
                        r.duplicated,
                        r.out_of_order,
                        r.failed
                    ));
                }
            }
            eprintln!(
                "round {} {subject:?}: {:.0} msg/s (8), {:.0} msg/s (1), CPU {:.3} ms (8) / {:.3} ms (1,000/s), p99 {:.2} ms (1,000/s)",
                round + 1,
                figures.many.throughput,
                figures.one.throughput,
                cpu(&figures.many),
                cpu(&figures.slow),
                figures.slow.p99_ms
            );
            match subject {
                Subject::Floor => floor.push(figures),
                Subject::Chatbridge => bridge.push(figures),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "chatbridge bench --suite: {} rounds, {} messages per measure, began {began} ({build})",
        options.rounds, options.messages
    );
    println!("machine: {}; load average before {load_before}, after {}", machine(), load_average());
    println!("the load tool runs on the same cores; CPU and memory are the measured process's alone\n");
    println!(
        "| measure | null relay (floor) min / median / max | chatbridge min / median / max | chatbridge ÷ floor | target | vs floor |"
    );
    println!("|---|---|---|---|---|---|");
    let count = options.messages.to_string();
    for line in LINES {
        let what = line.what.replace("20,000", &count);
        let of = |rounds: &[Round]| spread(rounds.iter().map(line.figure).collect());
        let (f, b) = (of(&floor), of(&bridge));
        let d = line.decimals;
        let ratio = b.1 / f.1;
        let target = line
            .target
            .map_or_else(String::new, |(text, bound, at_least)| format!("{text}: {}", met(b.1, bound, at_least)));
        let from_floor = line
            .from_floor
            .map_or_else(String::new, |(text, factor, at_least)| format!("{text}: {}", met(ratio, factor, at_least)));
        println!(
            "| {what} | {:.d$} / {:.d$} / {:.d$} | {:.d$} / {:.d$} / {:.d$} | {ratio:.2} | {target} | {from_floor} |",
            f.0, f.1, f.2, b.0, b.1, b.2
        );
    }
    if problems.is_empty() {
        println!("\nEvery run: nothing lost, doubled or out of order, no failed post.");
    } else {
        println!();
        for problem in problems {
            println!("{problem}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_and_verdicts() {
        assert_eq!(spread(vec![3.0, 1.0, 2.0]), (1.0, 2.0, 3.0));
        assert_eq!(spread(vec![4.0, 1.0, 2.0, 3.0]), (1.0, 2.5, 4.0));
        assert!(spread(Vec::new()).1.is_nan());
        assert_eq!(
            (met(0.05, 0.06, false), met(0.07, 0.06, false), met(18_000.0, 17_000.0, true)),
            ("met", "missed", "met")
        );
        assert_eq!(met(f64::NAN, 1.0, true), "?");
    }
}
