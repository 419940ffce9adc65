//! What the daemon is doing now, watched rather than counted: whether the store can write, the reads in flight a
//! stop waits for, and what the last reload did.

use super::Stats;

/// Reads in flight whose answer a platform would not give again (a Fishroom poll: the server takes the messages
/// off its queue when it answers, whether the client still waits or not). A stop waits for them.
#[derive(Debug, Default)]
pub struct Reads(tokio::sync::watch::Sender<usize>);

/// One read in flight, until dropped.
pub struct Reading<'a>(&'a Reads);

impl Reads {
    pub fn begin(&self) -> Reading<'_> {
        self.0.send_modify(|n| *n += 1);
        Reading(self)
    }

    /// How many reads are in flight, as they change.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<usize> {
        self.0.subscribe()
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.0.send_modify(|n| *n -= 1);
    }
}

/// The last reload's result: applied, or refused with the problems of the file (the running configuration stays).
#[derive(Clone, Debug, PartialEq)]
pub struct LastReload {
    pub at: crate::model::Time,
    pub applied: bool,
    pub errors: Vec<String>,
}

impl Stats {
    /// Records a reload's result.
    pub fn reloaded(&self, applied: bool, errors: Vec<String>) {
        let record = LastReload { at: crate::model::Time::now(), applied, errors };
        *self.reload.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(record);
    }

    /// The last reload's result, if there was one.
    pub fn last_reload(&self) -> Option<LastReload> {
        self.reload.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// The store's state, watched by everything that takes messages in.
#[derive(Debug)]
pub struct StoreHealth(tokio::sync::watch::Sender<Option<String>>);

impl Default for StoreHealth {
    fn default() -> Self {
        Self(tokio::sync::watch::channel(None).0)
    }
}

impl StoreHealth {
    /// Why the store cannot write, while it cannot.
    pub fn failing(&self) -> Option<String> {
        self.0.borrow().clone()
    }

    pub fn set(&self, failing: Option<String>) {
        self.0.send_replace(failing);
    }

    /// Returns once the store can write.
    pub async fn writable(&self) {
        let mut watch = self.0.subscribe();
        let _ = watch.wait_for(Option::is_none).await;
    }
}
