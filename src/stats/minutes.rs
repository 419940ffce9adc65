//! Counts per minute over the last hour (the status page's picture of each bridge): sixty buckets, each holding the
//! minute it counts for, reset when a new minute takes it. Counting takes no lock; a count racing a minute's turn
//! may land in either minute.

use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug)]
pub struct Minutes(std::sync::OnceLock<Box<Buckets>>);

/// Made at the first count: thousands of rooms may be bridged and quiet, and the buckets are 480 bytes.
#[derive(Debug)]
struct Buckets {
    /// The minute (since the epoch) each bucket counts for.
    minute: [AtomicU32; 60],
    count: [AtomicU32; 60],
}

impl Default for Minutes {
    fn default() -> Self {
        Self(std::sync::OnceLock::new())
    }
}

impl Default for Buckets {
    fn default() -> Self {
        Self { minute: std::array::from_fn(|_| AtomicU32::new(0)), count: std::array::from_fn(|_| AtomicU32::new(0)) }
    }
}

fn now() -> u32 {
    (crate::model::Time::now().0 / 60_000) as u32
}

impl Minutes {
    pub fn add(&self) {
        self.add_at(now());
    }

    fn add_at(&self, minute: u32) {
        let buckets = self.0.get_or_init(Box::default);
        let i = (minute % 60) as usize;
        if buckets.minute[i].swap(minute, Ordering::Relaxed) != minute {
            buckets.count[i].store(0, Ordering::Relaxed);
        }
        buckets.count[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The last sixty minutes' counts, oldest first, the current minute last.
    pub fn last_hour(&self) -> [u32; 60] {
        self.last_hour_at(now())
    }

    fn last_hour_at(&self, minute: u32) -> [u32; 60] {
        let mut out = [0u32; 60];
        let Some(buckets) = self.0.get() else { return out };
        for (k, slot) in out.iter_mut().enumerate() {
            let m = minute.wrapping_sub(59 - k as u32);
            let i = (m % 60) as usize;
            if buckets.minute[i].load(Ordering::Relaxed) == m {
                *slot = buckets.count[i].load(Ordering::Relaxed);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_of_minutes_and_no_older() {
        let minutes = Minutes::default();
        assert_eq!(minutes.last_hour_at(1000), [0; 60], "nothing counted, nothing made");
        assert!(minutes.0.get().is_none());
        for _ in 0..3 {
            minutes.add_at(1000);
        }
        minutes.add_at(1030);
        let hour = minutes.last_hour_at(1030);
        assert_eq!((hour[29], hour[59], hour.iter().sum::<u32>()), (3, 1, 4));
        // An hour on, minute 1000's bucket is taken by 1060: the old count is gone.
        minutes.add_at(1060);
        let hour = minutes.last_hour_at(1060);
        assert_eq!((hour[59], hour.iter().sum::<u32>()), (1, 2), "{hour:?}");
    }
}
