//! Memory given back to the system once the daemon's rooms settle.
//!
//! A start, a reload or leases moving between instances allocate and free a great deal at once: the configuration
//! parsed, a TLS handshake and a gap fill for every room joined, rooms handed to another instance. The C library's
//! allocator keeps what is freed between live blocks for later, so the resident memory stays at the high-water
//! mark — at 5,000 rooms on three instances, about 8 KB a room of pages nothing uses (docs/performance.md,
//! "Thousands of rooms"). [`Trimmer`] asks the allocator to return them a few seconds after the last such change.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long the rooms must have been still before memory is given back: joining a room goes on for a moment
/// after its lease or its configuration came.
pub const QUIET: Duration = Duration::from_secs(3);

/// Returns the allocator's free pages to the system; false where the allocator cannot (not glibc).
pub fn give_back() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` takes no pointer and only releases memory the allocator holds free.
        unsafe { libc::malloc_trim(0) };
        true
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Told of every change of the rooms; gives memory back once they have been still for [`QUIET`].
#[derive(Clone, Default)]
pub struct Trimmer {
    changed: Arc<Notify>,
}

impl Trimmer {
    /// The rooms changed (a start, a reload, a lease moved).
    pub fn changed(&self) {
        self.changed.notify_one();
    }

    /// Runs until `closed`: after each burst of changes, [`QUIET`] of stillness, then [`give_back`] and `given`
    /// (the daemon counts it in `/metrics`).
    pub async fn run(self, closed: CancellationToken, given: impl Fn() + Send) {
        loop {
            tokio::select! {
                _ = self.changed.notified() => {}
                _ = closed.cancelled() => return,
            }
            loop {
                tokio::select! {
                    _ = self.changed.notified() => {}
                    _ = tokio::time::sleep(QUIET) => break,
                    _ = closed.cancelled() => return,
                }
            }
            let _ = tokio::task::spawn_blocking(give_back).await;
            given();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn memory_goes_back_once_after_a_burst_of_changes_is_over() {
        let trimmer = Trimmer::default();
        let closed = CancellationToken::new();
        let count = Arc::new(AtomicUsize::new(0));
        let given = {
            let count = Arc::clone(&count);
            move || {
                count.fetch_add(1, Ordering::Relaxed);
            }
        };
        let task = tokio::spawn(trimmer.clone().run(closed.clone(), given));
        // A burst: a change every second for five seconds, each within QUIET of the one before.
        for _ in 0..5 {
            trimmer.changed();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert_eq!(count.load(Ordering::Relaxed), 0, "nothing while the rooms still change");
        tokio::time::sleep(QUIET * 2).await;
        assert_eq!(count.load(Ordering::Relaxed), 1, "once, after the burst");
        tokio::time::sleep(QUIET * 10).await;
        assert_eq!(count.load(Ordering::Relaxed), 1, "and not again while nothing changes");
        trimmer.changed();
        tokio::time::sleep(QUIET * 2).await;
        assert_eq!(count.load(Ordering::Relaxed), 2);
        closed.cancel();
        task.await.unwrap();
    }
}
