//! The store's writer thread: gathers the router's operations into transactions, keeps a transaction that
//! fails until it commits, and tells the daemon whether messages may be taken in.

use super::transaction::{Batch, transaction, unwritten_rows};
use super::*;

/// The first wait before a failed transaction is tried again; it doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long a closing store keeps trying to write what it was given.
const CLOSE_RETRIES: Duration = Duration::from_secs(3);

/// What the writer keeps within bounds.
pub(super) struct Limits {
    pub(super) pages: PageLimit,
    pub(super) max_outbox: u64,
    pub(super) max_dead_letters: u64,
}

/// A test's stand-in for a full disk: the database may grow to this many pages (0: no limit). Real full
/// disks and this limit fail the same way (`SQLITE_FULL`, "database or disk is full").
#[derive(Clone, Debug, Default)]
pub struct PageLimit(Arc<std::sync::atomic::AtomicU64>);

impl PageLimit {
    pub fn set(&self, pages: u64) {
        self.0.store(pages, std::sync::atomic::Ordering::SeqCst);
    }

    fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The writer: gathers inputs (each one input's operations) until [`MAX_BATCH`] has passed since the first (or a
/// load came), then writes them as one transaction, so a burst of inputs is one transaction and one input's work is
/// never split between two.
///
/// A transaction that fails (a full disk, an I/O error) is never dropped: its operations are kept and
/// written again, with what came meanwhile, until they commit — after [`StoreEvent::Failing`], so that the
/// daemon stops taking messages in, and with [`StoreEvent::Recovered`] once they are written.
pub(super) fn write(
    mut db: Connection,
    inputs: mpsc::Receiver<Vec<Op>>,
    notify: impl Fn(StoreEvent),
    max_age: Duration,
    limits: Limits,
    held: Vec<Held>,
) -> Closing {
    let limit = &limits.pages;
    let mut last_prune = Instant::now();
    let mut last_checkpoint = Instant::now();
    // Commits since the last checkpoint: an idle writer still checkpoints them within a second.
    let mut unchecked = false;
    // The operations of the transaction being written, kept until it commits.
    let mut carry: Vec<Vec<Op>> = Vec::new();
    let mut closed = false;
    let mut failing: Option<(Instant, u64)> = None;
    let mut retry = RETRY_MIN;
    let mut limit_applied = 0;
    let mut intake = super::intake::Intake::default();
    let mut last_look = Instant::now();
    let mut last_size: Option<Instant> = None;
    loop {
        if last_look.elapsed() >= CHECKPOINT_EVERY {
            last_look = Instant::now();
            if !intake.is_gone()
                && let Some(reason) = held.iter().find_map(Held::gone)
            {
                error!(reason = %reason, "The state directory changed under the running daemon: what is stored now would be lost, or a second daemon could start. No message is taken in; restart the daemon.");
                intake.gone(reason);
            }
        }
        if carry.is_empty() && last_size.is_none_or(|t| t.elapsed() >= SIZE_EVERY) {
            last_size = Some(Instant::now());
            if let Some((outbox, dead_letters)) = sizes(&db, &limits) {
                notify(StoreEvent::Sizes { outbox, dead_letters });
                intake.outbox(outbox, limits.max_outbox);
            }
        }
        intake.report(&notify);
        if carry.is_empty() {
            if closed {
                break;
            }
            let wait =
                CHECKPOINT_EVERY.saturating_sub(if unchecked { last_checkpoint.elapsed() } else { Duration::ZERO });
            let first = match inputs.recv_timeout(wait) {
                Ok(ops) => ops,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if unchecked {
                        checkpoint(&db, "PASSIVE");
                        (last_checkpoint, unchecked) = (Instant::now(), false);
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            carry.push(first);
        }
        closed |= gather(&inputs, &mut carry);
        let pages = limit.get();
        if pages != limit_applied {
            let pages = if pages == 0 { i64::MAX } else { pages as i64 };
            let _ = db.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()));
            limit_applied = limit.get();
        }
        let prune_due = last_prune.elapsed() >= PRUNE_EVERY;
        let mut batch = Batch::default();
        match transaction(&mut db, &carry, &mut batch, prune_due.then_some(max_age)) {
            Ok(()) => {
                if prune_due {
                    last_prune = Instant::now();
                }
                if batch.written + batch.skipped > 0 {
                    notify(StoreEvent::Committed { written: batch.written, skipped: batch.skipped });
                }
                // Requeued rows are told first: a read of the same transaction may hold them too.
                for rows in batch.requeued {
                    notify(StoreEvent::Requeued { rows });
                }
                for (room, rows, through, exhausted) in batch.loaded {
                    notify(StoreEvent::Loaded { room, rows, through, exhausted });
                }
                carry.clear();
                if let Some((since, attempts)) = failing.take() {
                    info!(attempts, after = ?since.elapsed(), "The state database is written again; nothing was lost.");
                    intake.failing(None);
                }
                retry = RETRY_MIN;
                unchecked = true;
            }
            Err(e) => {
                drop(batch);
                let (since, attempts) = failing.get_or_insert_with(|| {
                    error!(error = %e, "Writing the state database failed; the changes are kept in memory and written again, and no message is taken in until they are.");
                    (Instant::now(), 0)
                });
                if !intake.is_failing() {
                    intake.failing(Some(e.to_string()));
                    intake.report(&notify);
                }
                *attempts += 1;
                if (*attempts).is_power_of_two() && *attempts > 1 {
                    warn!(error = %e, attempts = *attempts, failing_for = ?since.elapsed(), "The state database still cannot be written.");
                }
                if closed && since.elapsed() >= CLOSE_RETRIES {
                    break;
                }
                std::thread::sleep(retry);
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        }
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            checkpoint(&db, "PASSIVE");
            (last_checkpoint, unchecked) = (Instant::now(), false);
        }
    }
    let unwritten = unwritten_rows(&carry);
    if unwritten > 0 {
        error!(
            messages = unwritten,
            "The state database could not be written before the store closed: these queued messages are lost."
        );
    }
    checkpoint(&db, "TRUNCATE");
    let stored = db.query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get::<_, i64>(0)).ok().map(|n| n as u64);
    Closing { stored, unwritten }
}

/// Counts the outbox and the dead letters, removing the oldest dead letters past their limit.
fn sizes(db: &Connection, limits: &Limits) -> Option<(u64, u64)> {
    let count = |table: &str| db.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| row.get::<_, i64>(0));
    let outbox = count("outbox").ok()? as u64;
    let mut dead_letters = count("deadletters").ok()? as u64;
    if dead_letters > limits.max_dead_letters {
        let excess = dead_letters - limits.max_dead_letters;
        let removed = db
            .execute(
                "DELETE FROM deadletters WHERE key IN (SELECT key FROM deadletters ORDER BY failed_at, key LIMIT ?1)",
                params![excess as i64],
            )
            .ok()? as u64;
        warn!(
            removed,
            max = limits.max_dead_letters,
            "The dead letters are at their limit (general.max_dead_letters): the oldest were removed."
        );
        dead_letters -= removed;
    }
    Some((outbox, dead_letters))
}

/// Takes the inputs that come within the gathering window ([`MAX_BATCH`] from the first), sleeping through it once
/// rather than in steps: nothing waits for a commit (copies go out before theirs), so a longer window costs no
/// latency, and each wake-up of this thread costs CPU — at a thousand messages a second, steps of a millisecond woke it
/// once per message. A load ends the window at once: the router waits for what it loads. True when the store closed.
fn gather(inputs: &mpsc::Receiver<Vec<Op>>, carry: &mut Vec<Vec<Op>>) -> bool {
    let started = Instant::now();
    loop {
        loop {
            match inputs.try_recv() {
                Ok(ops) => carry.push(ops),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return true,
            }
        }
        if carry.iter().flatten().any(|op| matches!(op, Op::Load { .. })) {
            return false;
        }
        let Some(left) = MAX_BATCH.checked_sub(started.elapsed()).filter(|left| !left.is_zero()) else {
            return false;
        };
        std::thread::sleep(left);
    }
}
