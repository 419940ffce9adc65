//! The one reconnect backoff every adapter uses: exponential from `min`, capped at `max`, with jitter,
//! reset once a connection has stayed up for 30 seconds.

use std::time::{Duration, Instant};

/// A connection that lasted this long counts as stable: the next failure starts from `min` again.
pub const STABLE_AFTER: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    up_since: Option<Instant>,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { min, max: max.max(min), failures: 0, up_since: None, rng: fastrand::Rng::new() }
    }

    #[cfg(test)]
    fn seeded(min: Duration, max: Duration, seed: u64) -> Self {
        Self { rng: fastrand::Rng::with_seed(seed), ..Self::new(min, max) }
    }

    /// The un-jittered delay after `failures` consecutive failures.
    pub fn ceiling(&self, failures: u32) -> Duration {
        crate::link::doubled(self.min, self.max, failures)
    }

    /// The delay before the next attempt: between half and all of the ceiling.
    pub fn next_delay(&mut self) -> Duration {
        if self.up_since.take().is_some_and(|t| t.elapsed() >= STABLE_AFTER) {
            self.failures = 0;
        }
        let ceiling = self.ceiling(self.failures);
        self.failures = self.failures.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(self.rng.f64())
    }

    /// The connection is up; if it stays up for [`STABLE_AFTER`], the next failure starts over.
    pub fn connected(&mut self) {
        self.up_since = Some(Instant::now());
    }

    #[cfg(test)]
    fn connected_at(&mut self, at: Instant) {
        self.up_since = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn delays_double_up_to_the_cap_with_jitter() {
        let mut backoff = Backoff::seeded(S, 60 * S, 7);
        let ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60];
        for expected in ceilings {
            let d = backoff.next_delay();
            let ceiling = expected * S;
            assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} outside [{:?}, {ceiling:?}]", ceiling / 2);
        }
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let mut a = Backoff::seeded(S, 60 * S, 1);
        let mut b = Backoff::seeded(S, 60 * S, 2);
        let da: Vec<_> = (0..5).map(|_| a.next_delay()).collect();
        let db: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_ne!(da, db);
    }

    #[test]
    fn a_stable_connection_resets_the_schedule() {
        let mut backoff = Backoff::seeded(S, 60 * S, 3);
        for _ in 0..5 {
            backoff.next_delay();
        }
        backoff.connected_at(Instant::now() - STABLE_AFTER - S);
        assert!(backoff.next_delay() <= S, "reset to the first step");

        for _ in 0..4 {
            backoff.next_delay();
        }
        backoff.connected(); // up just now: not stable yet
        assert!(backoff.next_delay() >= 16 * S);
    }

    #[test]
    fn huge_failure_counts_do_not_overflow() {
        let backoff = Backoff::new(S, 60 * S);
        assert_eq!(backoff.ceiling(1000), 60 * S);
    }
}
