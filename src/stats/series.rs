//! The figures of one room, or of one account as a whole: counts, the queue, and what the status page shows of
//! them (issue #32 §1). Atomics: counting takes no lock.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use super::Metric;
use super::minutes::Minutes;

#[derive(Debug, Default)]
pub struct Series {
    pub(super) counts: [AtomicU64; Metric::ALL.len()],
    pub(super) queued: AtomicU64,
    /// The age of the oldest message waiting, in milliseconds.
    pub(super) lag_ms: AtomicU64,
    /// A room's relayed messages, or an account's reconnects, per minute over the last hour.
    pub(super) hour: Minutes,
    /// When a message from the room last came in, and one to it was last relayed (ms since the epoch; 0: never).
    last_in_ms: AtomicI64,
    last_out_ms: AtomicI64,
    /// The room's next send waits for its account's send limit.
    limited: AtomicBool,
    /// A live room's audience as the platform last said, plus one (0: never said).
    online: AtomicU64,
}

/// A room's figures at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoomFigures {
    pub per_minute: Vec<u32>,
    pub last_in_ms: Option<i64>,
    pub last_out_ms: Option<i64>,
    pub limited: bool,
    pub online: Option<u64>,
}

impl Series {
    pub fn add(&self, metric: Metric) {
        self.counts[metric as usize].fetch_add(1, Ordering::Relaxed);
        match metric {
            Metric::Received => self.last_in_ms.store(crate::model::Time::now().0, Ordering::Relaxed),
            Metric::Relayed => {
                self.last_out_ms.store(crate::model::Time::now().0, Ordering::Relaxed);
                self.hour.add();
            }
            Metric::Reconnect => self.hour.add(),
            _ => {}
        }
    }

    pub fn set_queued(&self, depth: usize) {
        self.queued.store(depth as u64, Ordering::Relaxed);
    }

    pub fn set_lag(&self, lag: Duration) {
        self.lag_ms.store(u64::try_from(lag.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// A live room's audience, as its platform says it.
    pub fn set_online(&self, online: u64) {
        self.online.store(online.saturating_add(1), Ordering::Relaxed);
    }

    /// Whether the room's next send waits for its account's send limit.
    pub fn set_limited(&self, limited: bool) {
        self.limited.store(limited, Ordering::Relaxed);
    }

    pub(super) fn figures(&self) -> RoomFigures {
        let when = |at: &AtomicI64| Some(at.load(Ordering::Relaxed)).filter(|t| *t > 0);
        RoomFigures {
            per_minute: self.hour.last_hour().to_vec(),
            last_in_ms: when(&self.last_in_ms),
            last_out_ms: when(&self.last_out_ms),
            limited: self.limited.load(Ordering::Relaxed),
            online: self.online.load(Ordering::Relaxed).checked_sub(1),
        }
    }
}

/// What the operator paused: bridges by name, rooms by address (`account:room`). Nothing is handed to a paused
/// room, or to any room for a paused bridge; what comes for them queues.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Paused {
    pub bridges: BTreeSet<String>,
    pub rooms: BTreeSet<String>,
}

impl Paused {
    pub fn is_empty(&self) -> bool {
        self.bridges.is_empty() && self.rooms.is_empty()
    }
}
