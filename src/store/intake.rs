//! Whether the daemon may take messages in, as a store's writer sees it: not while writes fail, not while
//! the outbox is at `max_stored` (until it is under 90 %), never again once the store's files were replaced.
//! Both stores' writers keep one of these and report its changes as [`StoreEvent`]s.

use tracing::{error, info};

use super::StoreEvent;

#[derive(Default)]
pub(super) struct Intake {
    /// Set for good: what the store holds changed under the daemon.
    gone: Option<String>,
    /// The last write error, while writes fail.
    error: Option<String>,
    /// Set while the outbox is full.
    full: Option<String>,
    /// What the daemon was last told: taking messages in (`None`) or not, and why.
    reported: Option<String>,
}

impl Intake {
    pub(super) fn is_gone(&self) -> bool {
        self.gone.is_some()
    }

    pub(super) fn gone(&mut self, reason: String) {
        self.gone = Some(reason);
    }

    /// A write failed (`Some`) or wrote again (`None`).
    pub(super) fn failing(&mut self, error: Option<String>) {
        self.error = error;
    }

    pub(super) fn is_failing(&self) -> bool {
        self.error.is_some()
    }

    /// The outbox's row count, against its limit.
    pub(super) fn outbox(&mut self, rows: u64, max: u64) {
        if rows >= max && self.full.is_none() {
            error!(
                messages = rows,
                max, "The outbox is full (general.max_stored): no message is taken in until deliveries make room."
            );
            self.full = Some(format!("the outbox holds {rows} messages, its limit (general.max_stored)"));
        } else if rows < max / 10 * 9 && self.full.is_some() {
            info!(messages = rows, "The outbox has room again.");
            self.full = None;
        }
    }

    /// Tells the daemon when what it may do changed.
    pub(super) fn report(&mut self, notify: &impl Fn(StoreEvent)) {
        let wanted = self.gone.clone().or_else(|| self.error.clone()).or_else(|| self.full.clone());
        if wanted != self.reported {
            match &wanted {
                Some(reason) => notify(StoreEvent::Failing { reason: reason.clone() }),
                None => notify(StoreEvent::Recovered),
            }
            self.reported = wanted;
        }
    }
}
