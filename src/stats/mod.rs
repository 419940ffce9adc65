//! Counters shared by the router and the adapters: totals as atomics, and the same counts per account
//! and room (a short lock, never held across an await), served as Prometheus metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::model::{AccountId, RoomAddr};

pub mod kinds;
pub mod media;
pub mod minutes;
mod series;
mod watched;

pub use series::{Paused, RoomFigures, Series};
pub use watched::{LastReload, Reading, Reads, StoreHealth};

/// One monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The counts kept per account and room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    Received,
    Relayed,
    Rejected,
    Dropped,
    DeadLettered,
    Malformed,
    RoomUnusable,
    Reconnect,
    Coalesced,
    Summarised,
    RateLimited,
}

impl Metric {
    pub const ALL: [Metric; 11] = [
        Metric::Received,
        Metric::Relayed,
        Metric::Rejected,
        Metric::Dropped,
        Metric::DeadLettered,
        Metric::Malformed,
        Metric::RoomUnusable,
        Metric::Reconnect,
        Metric::Coalesced,
        Metric::Summarised,
        Metric::RateLimited,
    ];

    /// The Prometheus name and help text.
    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            Metric::Received => ("chatbridge_messages_received_total", "Events received from a platform."),
            Metric::Relayed => ("chatbridge_messages_relayed_total", "Copies a platform confirmed."),
            Metric::Rejected => {
                ("chatbridge_messages_rejected_total", "Copies a platform refused, or sent to an unusable room.")
            }
            Metric::Dropped => (
                "chatbridge_messages_dropped_total",
                "Copies given up without a store to keep them (durable = false): attempts exhausted, queue full, account stopped.",
            ),
            Metric::DeadLettered => (
                "chatbridge_messages_dead_lettered_total",
                "Copies moved to the dead-letter table (attempts and age exhausted, account stopped); see `chatbridge deadletters`.",
            ),
            Metric::Malformed => {
                ("chatbridge_frames_malformed_total", "Frames or items that could not be parsed (skipped).")
            }
            Metric::RoomUnusable => {
                ("chatbridge_rooms_unusable_total", "Rooms the platform refused (unknown room, join refused).")
            }
            Metric::Reconnect => ("chatbridge_reconnects_total", "Connections lost and tried again."),
            Metric::Coalesced => (
                "chatbridge_messages_coalesced_total",
                "Messages that went out merged with others into one platform message (they waited for a send token).",
            ),
            Metric::Summarised => (
                "chatbridge_messages_summarised_total",
                "Messages older than the room's max_lag replaced by one summary line (on_lag = \"summarise\").",
            ),
            Metric::RateLimited => (
                "chatbridge_api_posts_rate_limited_total",
                "Posts to an API account refused (429) for coming faster than its post_rate.",
            ),
        }
    }
}

/// Upper bounds (seconds) of the send latency histogram.
pub const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Time from handing a send to an adapter to its acknowledgement.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// (bucket counts, count, sum in seconds).
    pub fn snapshot(&self) -> (Vec<u64>, u64, f64) {
        let buckets = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (buckets, self.count.load(Ordering::Relaxed), sum)
    }
}

/// What the daemon has done since it started.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events the adapters received from their platforms.
    pub received: Counter,
    /// Copies the platforms confirmed.
    pub relayed: Counter,
    /// Events not relayed because they were our own (the loop guard).
    pub echoes: Counter,
    /// Events no bridge takes (unsupported kinds, filtered senders and kinds, private messages).
    pub filtered: Counter,
    /// Copies the platform refused (content filter, bad request, misconfigured room).
    pub rejected: Counter,
    /// Copies given up: attempts exhausted, queue overflow, account stopped (without a store).
    pub dropped: Counter,
    /// Copies moved to the dead-letter table.
    pub dead_lettered: Counter,
    /// Events seen again (gap filling overlapping what was already relayed): not relayed twice.
    pub duplicates: Counter,
    /// Frames or bodies from a platform that could not be parsed (logged and skipped).
    pub malformed: Counter,
    /// Rooms the platform refused (unknown room, join refused): nothing is received from them.
    pub rooms_unusable: Counter,
    /// Lost connections tried again.
    pub reconnects: Counter,
    /// Events a platform handed to a connection after its session closed, when nothing took them in any more.
    pub lost_after_close: Counter,
    pub coalesced: Counter,
    pub summarised: Counter,
    /// Posts to API accounts refused for their rate.
    pub rate_limited: Counter,
    /// Transactions of the store's writer.
    pub store_commits: Counter,
    /// Times the allocator's free memory was given back to the system (`trim`).
    pub memory_given_back: Counter,
    /// Outbox rows the store wrote.
    pub store_rows_written: Counter,
    /// Outbox rows never written: their copy was acknowledged before the transaction holding them committed.
    pub store_rows_skipped: Counter,
    /// Writes the shared store refused: this instance no longer held the account's lease (fencing).
    pub fencing_refusals: Counter,
    /// With a shared store: account leases renewed, and accounts taken over (claimed) by this instance.
    pub lease_renewals: Counter,
    pub lease_takeovers: Counter,
    /// Account leases this instance holds now.
    pub leases_held: AtomicU64,
    /// This instance's name, with a store instances share (`/health` shows it).
    pub instance: std::sync::OnceLock<String>,
    /// Send latency.
    pub latency: Histogram,
    /// Whether the store can write (`None`) or why not: while it cannot, no message is taken in.
    pub store: StoreHealth,
    /// Websocket clients of the API accounts connected now.
    /// What the operator paused (the router keeps it up to date).
    pub paused: std::sync::Mutex<Paused>,
    pub websocket_clients: AtomicU64,
    /// Rows in the store's outbox and dead letters (counted every few seconds).
    pub stored_outbox: AtomicU64,
    pub stored_dead_letters: AtomicU64,
    /// The series of each room, and of each account for account-wide counts (created on first use).
    series: RwLock<crate::model::Map<Label, Arc<Series>>>,
    /// What the last reload did (`/health`, `/metrics`, `STATUS=`); `None` before the first.
    pub reload: std::sync::Mutex<Option<LastReload>>,
    /// Reads in flight that a stop waits for.
    pub reads: Reads,
    /// The media store's counters.
    pub media: media::MediaCounts,
    /// Events of kinds the bridge does not carry, by platform and kind.
    pub unknown_kinds: kinds::UnknownKinds,
    /// Failed logins to the status page, and actions refused for a missing CSRF token or another origin.
    pub admin_login_failures: Counter,
    pub admin_refused: Counter,
    /// State changes the webhook delivered, and gave up (its queue full, or its receiver failing).
    pub webhook_sent: Counter,
    pub webhook_dropped: Counter,
}

/// A room as the unauthenticated `/metrics` may show it: a private conversation (`user/<id>`) by a salted hash
/// of its id — the same within one run, and not the person's id.
pub fn public_room(room: &str) -> String {
    static SALT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| uuid::Uuid::new_v4().to_string());
    match room.strip_prefix("user/") {
        Some(id) => {
            use md5::Digest;
            let digest = md5::Md5::digest(format!("{}{id}", *SALT).as_bytes());
            let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
            format!("user/#{hex}")
        }
        None => room.to_owned(),
    }
}

/// What a series is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Label {
    Room(RoomAddr),
    Account(AccountId),
}

impl Stats {
    /// The series of a room; keep it to count without looking it up again.
    pub fn room(&self, room: &RoomAddr) -> Arc<Series> {
        self.series_of(Label::Room(room.clone()))
    }

    /// The series of a room, if anything made one.
    pub fn room_if_any(&self, room: &RoomAddr) -> Option<Arc<Series>> {
        self.series.read().expect("a stats lock is never poisoned").get(&Label::Room(room.clone())).cloned()
    }

    fn series_of(&self, label: Label) -> Arc<Series> {
        if let Some(series) = self.series.read().expect("a stats lock is never poisoned").get(&label) {
            return Arc::clone(series);
        }
        let mut all = self.series.write().expect("a stats lock is never poisoned");
        Arc::clone(all.entry(label).or_default())
    }

    fn total(&self, metric: Metric) -> &Counter {
        match metric {
            Metric::Received => &self.received,
            Metric::Relayed => &self.relayed,
            Metric::Rejected => &self.rejected,
            Metric::Dropped => &self.dropped,
            Metric::DeadLettered => &self.dead_lettered,
            Metric::Malformed => &self.malformed,
            Metric::RoomUnusable => &self.rooms_unusable,
            Metric::Reconnect => &self.reconnects,
            Metric::Coalesced => &self.coalesced,
            Metric::Summarised => &self.summarised,
            Metric::RateLimited => &self.rate_limited,
        }
    }

    /// Counts one `metric` in the total and in `series` (a room's, from [`Stats::room`]).
    pub fn add(&self, metric: Metric, series: &Series) {
        self.total(metric).inc();
        series.add(metric);
    }

    /// Counts one `metric` for a room, in the total and the room's series.
    pub fn count(&self, metric: Metric, room: &RoomAddr) {
        self.add(metric, &self.room(room));
    }

    /// Counts one `metric` for an account as a whole.
    pub fn count_account(&self, metric: Metric, account: &AccountId) {
        self.add(metric, &self.series_of(Label::Account(account.clone())));
    }

    /// The number of messages waiting for a destination room.
    pub fn set_queued(&self, room: &RoomAddr, depth: usize) {
        self.room(room).set_queued(depth);
    }

    /// Every non-zero labelled count as (metric, account, room), sorted; the room is empty for account-wide
    /// counts.
    pub fn labeled(&self) -> Vec<((Metric, String, String), u64)> {
        let all = self.series.read().expect("a stats lock is never poisoned");
        let mut out = Vec::new();
        for (label, series) in all.iter() {
            let (account, room) = match label {
                Label::Room(room) => (room.account.to_string(), public_room(room.room.as_str())),
                Label::Account(account) => (account.to_string(), String::new()),
            };
            for metric in Metric::ALL {
                let value = series.counts[metric as usize].load(Ordering::Relaxed);
                if value > 0 {
                    out.push(((metric, account.clone(), room.clone()), value));
                }
            }
        }
        out.sort();
        out
    }

    /// Each room's figures for the status page, by `account:room` as `queued` names them.
    pub fn room_figures(&self) -> Vec<(String, RoomFigures)> {
        self.per_room(Series::figures)
    }

    /// Each account's reconnects over the last hour.
    pub fn reconnects_last_hour(&self) -> Vec<(AccountId, u32)> {
        let all = self.series.read().expect("a stats lock is never poisoned");
        all.iter()
            .filter_map(|(label, series)| match label {
                Label::Account(account) => Some((account.clone(), series.hour.last_hour().iter().sum())),
                Label::Room(_) => None,
            })
            .collect()
    }

    /// Queue depths by destination room, sorted.
    pub fn queued(&self) -> Vec<(String, usize)> {
        self.per_room(|series| series.queued.load(Ordering::Relaxed) as usize)
    }

    /// The age of each destination room's oldest waiting message, sorted by room.
    pub fn lags(&self) -> Vec<(String, Duration)> {
        self.per_room(|series| Duration::from_millis(series.lag_ms.load(Ordering::Relaxed)))
    }

    fn per_room<T: Ord>(&self, value: impl Fn(&Series) -> T) -> Vec<(String, T)> {
        let all = self.series.read().expect("a stats lock is never poisoned");
        let mut out: Vec<(String, T)> = all
            .iter()
            .filter_map(|(label, series)| match label {
                Label::Room(room) => {
                    Some((format!("{}:{}", room.account, public_room(room.room.as_str())), value(series)))
                }
                Label::Account(_) => None,
            })
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod public_room_tests {
    #[test]
    fn private_conversations_are_not_named_in_metrics() {
        let hidden = super::public_room("user/679a51f1d4893");
        assert!(hidden.starts_with("user/#") && !hidden.contains("679a51f1d4893"), "{hidden}");
        assert_eq!(hidden, super::public_room("user/679a51f1d4893"), "stable within a run");
        assert_ne!(hidden, super::public_room("user/679a67a46f713"));
        assert_eq!(super::public_room("5ce6a4b520a90"), "5ce6a4b520a90");
    }
}
