//! `chatbridge bench`: a load tool that measures a running bridge from outside, through matterbridge's API
//! paths, so chatbridge and any other bridge speaking that API can be put side by side. It posts messages to
//! one endpoint, reads them from another endpoint's websocket, and counts what arrived, what was lost and
//! what came twice, with latencies; given the daemon's pid it reads its CPU time and peak memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// What to measure.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// API root that receives the posts, e.g. `http://127.0.0.1:4242`.
    pub post_url: String,
    /// API root whose websocket delivers the relayed messages.
    pub read_url: String,
    pub post_gateway: String,
    pub token: Option<String>,
    pub messages: usize,
    pub concurrency: usize,
    /// Messages per second offered, all senders together (`None`: as fast as they go).
    pub rate: Option<f64>,
    /// How long to wait for stragglers after the last post.
    pub grace: Duration,
    /// The daemon's process, for CPU time and peak memory.
    pub pid: Option<u32>,
    /// Posting stops after this long, whatever is left to post (the run then waits `grace` for stragglers).
    pub time_limit: Option<Duration>,
}

/// What was measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Messages posted (fewer than asked when the time limit ended the run).
    pub sent: usize,
    /// Posts that failed: no answer, or an answer other than 200.
    pub failed: usize,
    pub delivered: usize,
    pub lost: usize,
    pub duplicated: usize,
    /// Messages that arrived before an earlier message of the same sender.
    pub out_of_order: usize,
    pub seconds: f64,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub cpu_ms_per_message: Option<f64>,
    pub peak_rss_kib: Option<u64>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "sent {}  failed posts {}  delivered {}  lost {}  duplicated {}  out of order {}",
            self.sent, self.failed, self.delivered, self.lost, self.duplicated, self.out_of_order
        )?;
        writeln!(f, "throughput {:.0} msg/s over {:.2} s", self.throughput, self.seconds)?;
        writeln!(
            f,
            "latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
            self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms
        )?;
        if let Some(cpu) = self.cpu_ms_per_message {
            writeln!(f, "daemon CPU {cpu:.4} ms per relayed message")?;
        }
        if let Some(rss) = self.peak_rss_kib {
            writeln!(f, "daemon peak RSS {:.1} MiB", rss as f64 / 1024.0)?;
        }
        Ok(())
    }
}

/// The daemon's CPU time (user + system) so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel's USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// A process's resident memory now (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The daemon's peak resident memory (`VmHWM`), in KiB.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Runs one measurement.
pub async fn run(options: LoadOptions) -> anyhow::Result<LoadReport> {
    crate::adapters::install_crypto_provider();
    let ws_url = format!("{}/api/websocket", options.read_url.trim_end_matches('/')).replacen("http", "ws", 1);
    let mut request = ws_url.as_str().into_client_request()?;
    if let Some(token) = &options.token {
        request.headers_mut().insert("Authorization", format!("Bearer {token}").parse()?);
    }
    let (mut reader, _) = tokio_tungstenite::connect_async_with_config(request, None, true).await?;
    // The first frame says the reader is connected.
    tokio::time::timeout(Duration::from_secs(10), reader.next()).await?;

    let cpu_before = options.pid.and_then(cpu_time);
    let http = crate::adapters::http_client(Duration::from_secs(30));
    let started = Instant::now();
    let sent_at: Arc<Vec<std::sync::OnceLock<Instant>>> =
        Arc::new((0..options.messages).map(|_| std::sync::OnceLock::new()).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    // Which sender posted each message: a sender posts in order, so its messages must arrive in order.
    let sender_of: Arc<Vec<std::sync::atomic::AtomicU32>> =
        Arc::new((0..options.messages).map(|_| std::sync::atomic::AtomicU32::new(0)).collect());
    let run_tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let stop_posting = options.time_limit.map(|limit| started + limit);
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..options.concurrency.max(1) {
        let (http, sent_at, next, options, tag) =
            (http.clone(), Arc::clone(&sent_at), Arc::clone(&next), options.clone(), run_tag.clone());
        let (failed, sender_of) = (Arc::clone(&failed), Arc::clone(&sender_of));
        senders.spawn(async move {
            let url = format!("{}/api/message", options.post_url.trim_end_matches('/'));
            loop {
                if stop_posting.is_some_and(|stop| Instant::now() >= stop) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= options.messages {
                    return;
                }
                sender_of[i].store(sender as u32, Ordering::Relaxed);
                if let Some(rate) = options.rate {
                    tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into()).await;
                }
                let body = serde_json::json!({"text": format!("load {tag} {i}"), "username": "load", "gateway": options.post_gateway});
                let mut request = http.post(&url).json(&body);
                if let Some(token) = &options.token {
                    request = request.bearer_auth(token);
                }
                let _ = sent_at[i].set(Instant::now());
                match request.send().await {
                    Ok(answer) if answer.status() == reqwest::StatusCode::OK => {}
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    let mut last_of_sender: HashMap<u32, usize> = HashMap::new();
    let mut out_of_order = 0;
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut latencies = Vec::with_capacity(options.messages);
    let mut last_arrival = started;
    let mut senders_done = false;
    let mut expected = options.messages;
    let mut deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        if senders_done && seen.len() >= expected {
            break;
        }
        let frame = tokio::select! {
            _ = senders.join_next(), if !senders_done => {
                if senders.is_empty() {
                    senders_done = true;
                    expected = sent_at.iter().filter(|at| at.get().is_some()).count();
                    deadline = Instant::now() + options.grace;
                }
                continue;
            }
            _ = tokio::time::sleep_until(deadline.into()) => break,
            frame = reader.next() => frame,
        };
        let Some(Ok(WsMessage::Text(text))) = frame else {
            if frame.is_none() {
                break;
            }
            continue;
        };
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        let Some(body) = message["text"].as_str() else { continue };
        // The text arrives with the bridge's format around it: find our tag inside.
        let Some(rest) = body.split_once(&format!("load {run_tag} ")).map(|(_, rest)| rest) else { continue };
        let Some(i) = rest.split_whitespace().next().and_then(|n| n.parse::<usize>().ok()) else { continue };
        let now = Instant::now();
        let count = seen.entry(i).or_insert(0);
        *count += 1;
        if *count == 1
            && let Some(at) = sent_at.get(i).and_then(|s| s.get())
        {
            latencies.push(now.duration_since(*at).as_secs_f64() * 1000.0);
            last_arrival = now;
            let latest = last_of_sender.entry(sender_of[i].load(Ordering::Relaxed)).or_insert(i);
            if *latest > i {
                out_of_order += 1;
            } else {
                *latest = i;
            }
        }
    }
    let delivered = seen.len();
    let sent = sent_at.iter().filter(|at| at.get().is_some()).count();
    let duplicated: usize = seen.values().map(|n| n - 1).sum();
    latencies.sort_by(f64::total_cmp);
    let seconds = last_arrival.duration_since(started).as_secs_f64().max(1e-9);
    let cpu_ms_per_message = match (options.pid.and_then(cpu_time), cpu_before) {
        (Some(after), Some(before)) if delivered > 0 => {
            Some((after - before).as_secs_f64() * 1000.0 / delivered as f64)
        }
        _ => None,
    };
    Ok(LoadReport {
        sent,
        failed: failed.load(Ordering::Relaxed),
        delivered,
        lost: sent.saturating_sub(delivered),
        duplicated,
        out_of_order,
        seconds,
        throughput: delivered as f64 / seconds,
        p50_ms: percentile(&latencies, 50.0),
        p95_ms: percentile(&latencies, 95.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        cpu_ms_per_message,
        peak_rss_kib: options.pid.and_then(peak_rss),
    })
}

/// Two API accounts bridged by gateway `load`: the configuration `chatbridge bench` runs in-process, with its
/// store in `state_dir` (`None`: `durable = false`).
pub fn in_process_config(post_port: u16, read_port: u16, state_dir: Option<&std::path::Path>) -> String {
    let store = match state_dir {
        Some(dir) => format!("state_dir = {:?}\n", dir.display().to_string()),
        None => "durable = false\n".to_owned(),
    };
    format!(
        "[general]\nshutdown_timeout = \"2s\"\nqueue_capacity = 100000\n{store}\n\
         [accounts.api.post]\nlisten = \"127.0.0.1:{post_port}\"\npost_rate = 0\n\n\
         [accounts.api.read]\nlisten = \"127.0.0.1:{read_port}\"\n\n\
         [[bridge]]\nname = \"load\"\nformat = \"{{text}}\"\nnick_format = \"{{nick}}\"\n\
         [[bridge.room]]\nroom = \"api.post:load\"\ndirection = \"in\"\n\
         [[bridge.room]]\nroom = \"api.read:load\"\ndirection = \"out\"\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 51.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }

    #[test]
    fn own_process_figures_are_readable() {
        let pid = std::process::id();
        assert!(cpu_time(pid).is_some());
        assert!(peak_rss(pid).unwrap() > 0);
    }
}
