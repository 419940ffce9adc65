//! A token bucket: `burst` tokens refilled at `per_second`, and the pause a peer's retry-after imposes. The router
//! paces each account's sends with one; an API account paces what its clients post with another.

use std::time::{Duration, Instant};

/// A rate: a token bucket of `burst` refilled at `per_second` (0: no limit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SendLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl SendLimit {
    pub fn is_limited(&self) -> bool {
        self.per_second > 0.0
    }
}

#[derive(Debug)]
pub struct Bucket {
    limit: SendLimit,
    tokens: f64,
    last: Instant,
    /// The platform asked for a pause (retry-after) until then.
    paused_until: Option<Instant>,
}

impl Bucket {
    /// A full bucket.
    pub fn new(limit: SendLimit, now: Instant) -> Self {
        Self { limit, tokens: f64::from(limit.burst.max(1)), last: now, paused_until: None }
    }

    /// Takes a token, or says how long until one is due.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(until - now);
            }
            self.paused_until = None;
        }
        if !self.limit.is_limited() {
            return Ok(());
        }
        let burst = f64::from(self.limit.burst.max(1));
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.limit.per_second).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.limit.per_second;
            Err(Duration::from_secs_f64(wait).max(Duration::from_millis(1)))
        }
    }

    /// Nothing is sent before `until` (the platform's retry-after).
    pub fn pause_until(&mut self, until: Instant) {
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(SendLimit { per_second: 2.0, burst: 3 }, start);
        for _ in 0..3 {
            assert_eq!(bucket.take(start), Ok(()));
        }
        let wait = bucket.take(start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(bucket.take(start + Duration::from_millis(499)).is_err());
        assert_eq!(bucket.take(start + Duration::from_millis(500)), Ok(()));
        // A long idle spell refills to the burst, no more.
        let later = start + Duration::from_secs(60);
        let taken = (0..10).filter(|_| bucket.take(later).is_ok()).count();
        assert_eq!(taken, 3);
    }

    #[test]
    fn no_limit_never_waits_but_a_pause_does() {
        let start = Instant::now();
        let mut bucket = Bucket::new(SendLimit { per_second: 0.0, burst: 1 }, start);
        assert!((0..1000).all(|_| bucket.take(start).is_ok()));
        bucket.pause_until(start + Duration::from_secs(2));
        assert_eq!(bucket.take(start + Duration::from_secs(1)), Err(Duration::from_secs(1)));
        assert_eq!(bucket.take(start + Duration::from_secs(2)), Ok(()));
    }
}
