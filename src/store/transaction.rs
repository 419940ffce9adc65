//! One transaction of the store's writer: the operations of the inputs it gathered, as SQL — outbox rows put, deleted
//! or moved to the dead letters, the id map's groups and copies, cursors, loads and requeues.

use super::*;

/// What the open transaction has gathered besides its SQL (borrowing the operations it writes, which the
/// writer keeps until their transaction commits).
#[derive(Default)]
pub(super) struct Batch<'a> {
    /// Outbox rows not written yet, by key (with their bridge): written at the commit, or before anything
    /// that reads or moves outbox rows; a delete of one of them cancels it.
    pub(super) pending: BTreeMap<u64, (&'a str, &'a Pending)>,
    pub(super) written: u64,
    pub(super) skipped: u64,
    pub(super) loaded: Vec<(RoomAddr, Vec<Stored>, u64, bool)>,
    pub(super) requeued: Vec<Vec<Stored>>,
}

/// What a transaction prepares once for all its operations: the statements every message runs (a `prepare_cached`
/// looks the statement up by its whole text and copies the text, each time), and the id map's rows it gathers.
#[derive(Default)]
struct Prepared<'t, 'a> {
    delete: Option<rusqlite::CachedStatement<'t>>,
    idmap: super::members::Gathered<'a>,
}

impl<'t> Prepared<'t, '_> {
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
}

/// Writes `carry` as one transaction.
pub(super) fn transaction<'a>(
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
        prepared.idmap.write(&tx)?;
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
pub(super) fn unwritten_rows(carry: &[Vec<Op>]) -> u64 {
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
        Op::Group { .. } => prepared.idmap.group(op),
        Op::Copy { group, room, ids } => prepared.idmap.copy(tx, *group, room, ids)?,
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
