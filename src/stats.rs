//! Counters shared by the router and the adapters (atomics: no lock, no task owns them).

use std::sync::atomic::{AtomicU64, Ordering};

/// One monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
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
    /// Copies given up: attempts exhausted, queue overflow, account stopped.
    pub dropped: Counter,
    /// Frames or bodies from a platform that could not be parsed (logged and skipped).
    pub malformed: Counter,
    /// Rooms the platform refused (unknown room, join refused): nothing is received from them.
    pub rooms_unusable: Counter,
}
