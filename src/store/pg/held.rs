//! The leases this instance holds, as the store's side of the router and the writer read them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The accounts this instance holds, with the epoch of each lease: read by the store's side of the router
/// (each write stamped with its account's epoch) and the writer (which refuses stale ones).
///
/// Each lease also has a local deadline, two thirds of the lease after the round that claimed or renewed it
/// began: past it, nothing is handed to the account's adapter (an instance frozen past its lease sends nothing
/// when it wakes, even before its lease task has seen the account go).
///
/// Nothing is handed out either while the writer cannot write: an acknowledgement that cannot be written
/// would be refused once the lease is claimed again, and the message sent twice.
#[derive(Clone, Default)]
pub struct Held(Arc<Mutex<HashMap<String, (i64, Instant)>>>, Arc<std::sync::atomic::AtomicBool>);

impl Held {
    /// The writer's word: it writes (false), or its writes fail (true).
    pub(super) fn set_failing(&self, failing: bool) {
        self.1.store(failing, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn epoch(&self, account: &str) -> Option<i64> {
        self.0.lock().expect("not poisoned").get(account).map(|(epoch, _)| *epoch)
    }

    /// Whether the account may be sent for now: held, and renewed recently enough.
    pub fn current(&self, account: &str) -> bool {
        !self.1.load(std::sync::atomic::Ordering::Relaxed)
            && self.0.lock().expect("not poisoned").get(account).is_some_and(|(_, until)| Instant::now() < *until)
    }

    pub fn accounts(&self) -> Vec<String> {
        self.0.lock().expect("not poisoned").keys().cloned().collect()
    }

    pub(super) fn set(&self, account: &str, epoch: Option<(i64, Instant)>) {
        let mut held = self.0.lock().expect("not poisoned");
        match epoch {
            Some(lease) => held.insert(account.to_owned(), lease),
            None => held.remove(account),
        };
    }

    pub(super) fn extend(&self, account: &str, until: Instant) {
        if let Some((_, at)) = self.0.lock().expect("not poisoned").get_mut(account) {
            *at = until;
        }
    }

    pub(super) fn len(&self) -> usize {
        self.0.lock().expect("not poisoned").len()
    }
}
