//! The store's writer thread: gathers the router's operations into transactions, keeps a transaction that
//! fails until it commits, and tells the daemon whether messages may be taken in.

use super::*;

/// What the open transaction has gathered besides its SQL (borrowing the operations it writes, which the
/// writer keeps until their transaction commits).
#[derive(Default)]
struct Batch<'a> {
    /// Outbox rows not written yet, by key (with their bridge): written at the commit, or before anything
    /// that reads or moves outbox rows; a delete of one of them cancels it.
    pending: BTreeMap<u64, (&'a str, &'a Pending)>,
    written: u64,
    skipped: u64,
    loaded: Vec<(RoomAddr, Vec<Stored>, u64, bool)>,
    requeued: Vec<Vec<Stored>>,
}

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

/// What a transaction prepares once for all its operations: the statements every message runs (a `prepare_cached`
/// looks the statement up by its whole text and copies the text, each time) and each room's address as text.
#[derive(Default)]
struct Prepared<'t, 'a> {
    group: Option<rusqlite::CachedStatement<'t>>,
    origin: Option<rusqlite::CachedStatement<'t>>,
    copy: Option<rusqlite::CachedStatement<'t>>,
    delete: Option<rusqlite::CachedStatement<'t>>,
    rooms: std::collections::HashMap<&'a RoomAddr, String>,
}

impl<'t, 'a> Prepared<'t, 'a> {
    fn statement<'s>(
        slot: &'s mut Option<rusqlite::CachedStatement<'t>>,
        tx: &'t rusqlite::Transaction<'_>,
        sql: &str,
    ) -> rusqlite::Result<&'s mut rusqlite::CachedStatement<'t>> {
        if slot.is_none() {
            *slot = Some(tx.prepare_cached(sql)?);
        }
        Ok(slot.as_mut().expect("just prepared"))
    }

    /// `room` as text, from `rooms` (a field of its own, borrowed beside a statement).
    fn room<'r>(rooms: &'r mut std::collections::HashMap<&'a RoomAddr, String>, room: &'a RoomAddr) -> &'r str {
        rooms.entry(room).or_insert_with(|| room.to_string())
    }
}

/// Writes `carry` as one transaction.
fn transaction<'a>(
    db: &mut Connection,
    carry: &'a [Vec<Op>],
    batch: &mut Batch<'a>,
    prune_older_than: Option<Duration>,
) -> rusqlite::Result<()> {
    let tx = db.transaction()?;
    {
        let mut prepared = Prepared::default();
        // Only a room's last cursor of the transaction needs writing.
        let mut cursors: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
        for op in carry.iter().flatten() {
            match op {
                Op::Cursor { room, cursor } => {
                    cursors.insert(room, cursor);
                }
                op => apply(&tx, op, batch, &mut prepared)?,
            }
        }
        flush(&tx, batch)?;
        for (room, cursor) in cursors {
            tx.prepare_cached("INSERT OR REPLACE INTO cursors (room, cursor, updated) VALUES (?1, ?2, ?3)")?
                .execute(params![room, cursor, now()])?;
        }
    }
    if let Some(max_age) = prune_older_than {
        prune(&tx, max_age)?;
    }
    tx.commit()
}

/// The outbox rows `carry` would write (puts not cancelled by a delete or moved to the dead letters).
fn unwritten_rows(carry: &[Vec<Op>]) -> u64 {
    let mut keys = std::collections::BTreeSet::new();
    for op in carry.iter().flatten() {
        match op {
            Op::Put { key, .. } => {
                keys.insert(*key);
            }
            Op::Delete { key } | Op::DeadLetter { key, .. } => {
                keys.remove(key);
            }
            _ => {}
        }
    }
    keys.len() as u64
}

/// Writes the batch's pending outbox rows, in key order; an event with several destinations is serialised
/// once.
fn flush(tx: &rusqlite::Transaction<'_>, batch: &mut Batch<'_>) -> rusqlite::Result<()> {
    if batch.pending.is_empty() {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(
        "INSERT OR REPLACE INTO outbox (key, room, bridge, record, queued_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let queued_at = now();
    let mut last = None;
    for (key, (bridge, row)) in std::mem::take(&mut batch.pending) {
        let (room, record) = encode(row, &mut last);
        insert.execute(params![key as i64, room, bridge, record, queued_at])?;
        batch.written += 1;
    }
    Ok(())
}

fn apply<'t, 'a>(
    tx: &'t rusqlite::Transaction<'_>,
    op: &'a Op,
    batch: &mut Batch<'a>,
    prepared: &mut Prepared<'t, 'a>,
) -> rusqlite::Result<()> {
    match op {
        Op::Put { key, bridge, row } => {
            batch.pending.insert(*key, (bridge, row));
        }
        Op::Delete { key } if batch.pending.remove(key).is_some() => batch.skipped += 1,
        Op::Delete { key } => {
            Prepared::statement(&mut prepared.delete, tx, "DELETE FROM outbox WHERE key = ?1")?
                .execute(params![*key as i64])?;
        }
        Op::DeadLetter { key, reason } => {
            flush(tx, batch)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO deadletters (key, room, bridge, record, queued_at, failed_at, reason)
                 SELECT key, room, bridge, record, queued_at, ?2, ?3 FROM outbox WHERE key = ?1",
            )?
            .execute(params![*key as i64, now(), reason])?;
            tx.prepare_cached("DELETE FROM outbox WHERE key = ?1")?.execute(params![*key as i64])?;
        }
        Op::Group { id, origin, sender, text, time } => {
            Prepared::statement(
                &mut prepared.group,
                tx,
                "INSERT OR REPLACE INTO groups (id, sender, text, time, created) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![*id as i64, sender, text, time, now()])?;
            if let Some((room, remote)) = origin {
                let room = Prepared::room(&mut prepared.rooms, room);
                Prepared::statement(
                    &mut prepared.origin,
                    tx,
                    "INSERT OR REPLACE INTO copies (room, remote, grp, part, ours) VALUES (?1, ?2, ?3, 0, 0)",
                )?
                .execute(params![room, remote.as_str(), *id as i64])?;
            }
        }
        Op::Copy { group, room, ids } => {
            let room = Prepared::room(&mut prepared.rooms, room);
            let insert = Prepared::statement(
                &mut prepared.copy,
                tx,
                "INSERT OR REPLACE INTO copies (room, remote, grp, part, ours) VALUES (?1, ?2, ?3, ?4, 1)",
            )?;
            for (part, remote) in ids.iter().enumerate() {
                insert.execute(params![room, remote.as_str(), *group as i64, part as i64])?;
            }
        }
        // Gathered by the writer and written once per transaction.
        Op::Cursor { .. } => {}
        Op::Load { room, after, limit } => {
            flush(tx, batch)?;
            let mut query = tx.prepare_cached(
                "SELECT key, room, bridge, record FROM outbox WHERE room = ?1 AND key > ?2 ORDER BY key LIMIT ?3",
            )?;
            let rows = query.query_map(params![room.to_string(), *after as i64, *limit as i64], row_to_stored)?;
            let mut out = Vec::new();
            let mut through = *after;
            let mut scanned = 0;
            for row in rows {
                let row = row?;
                scanned += 1;
                through = through.max(row.0 as u64);
                if let Some(stored) = decode(row) {
                    out.push(stored);
                }
            }
            batch.loaded.push((room.clone(), out, through, scanned < *limit));
        }
        Op::Requeue { keys, first } => {
            // Each dead letter goes to the end of its room's queue with the next of the router's keys.
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            sorted.dedup();
            let mut out = Vec::new();
            let mut key = *first;
            for old in sorted {
                let moved = tx
                    .prepare_cached(
                        "INSERT INTO outbox (key, room, bridge, record, queued_at)
                         SELECT ?1, room, bridge, record, ?2 FROM deadletters WHERE key = ?3",
                    )?
                    .execute(params![key as i64, now(), old as i64])?;
                if moved == 0 {
                    continue;
                }
                tx.prepare_cached("DELETE FROM deadletters WHERE key = ?1")?.execute(params![old as i64])?;
                let row = tx
                    .prepare_cached("SELECT key, room, bridge, record FROM outbox WHERE key = ?1")?
                    .query_row(params![key as i64], row_to_stored)?;
                out.extend(decode(row));
                key += 1;
            }
            batch.requeued.push(out);
        }
    }
    Ok(())
}
