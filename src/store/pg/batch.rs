//! One transaction of the PostgreSQL writer: the operations it was given sorted by kind, fenced against the
//! leases, and written as a few pipelined statements over arrays; claims of rows answered in queue order.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures_util::future::try_join_all;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::lease::Held;
use super::schema::{decode, now, prune};
use super::taken::Taken;
use super::{Fence, Stamped};
use crate::model::RoomAddr;
use crate::store::{Op, Pending, Stored, encode};

const INSERT_OUTBOX: &str = "INSERT INTO outbox (key, account, room, bridge, record, queued_at, holder)
     SELECT k, a, r, b, rec, $7, h
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::bigint[])
         WITH ORDINALITY AS t(k, a, r, b, rec, h, n)
     ORDER BY n
     ON CONFLICT (key) DO UPDATE SET record = EXCLUDED.record";
const NOTIFY: &str = "SELECT pg_notify('chatbridge_outbox', r) FROM unnest($1::text[]) AS t(r)";
/// The leases this instance holds among the accounts of a transaction, locked against a takeover until it
/// commits.
const FENCES: &str = "SELECT account, epoch FROM leases
     WHERE run = $1 AND account = ANY($2) AND expires > clock_timestamp() FOR SHARE";
/// A room's rows this epoch does not hold or has not read yet ([`Taken`]), in the order they were queued: only read,
/// as the room's lease says this instance alone sends them. Column 4: held in another instance's memory before.
const READ: &str = "SELECT key, room, bridge, record, holder IS NOT NULL, seq FROM outbox
     WHERE room = $1 AND holder IS DISTINCT FROM $2 AND key <> ALL($4::bigint[]) ORDER BY seq LIMIT $3";
/// Takes a room's rows this run does not hold yet, in the order they were queued, marking them held: at start,
/// before the writer (and its [`Taken`]) runs.
pub(super) const CLAIM: &str = "WITH picked AS (
         SELECT key, holder AS was FROM outbox WHERE room = $1 AND holder IS DISTINCT FROM $2
         ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED)
     UPDATE outbox o SET holder = $2 FROM picked WHERE o.key = picked.key
     RETURNING o.key, o.room, o.bridge, o.record, picked.was IS NOT NULL, o.seq";
const DELETE_OUTBOX: &str = "DELETE FROM outbox WHERE key = ANY($1::bigint[])";
const DEAD_LETTER_STORED: &str = "WITH gone AS (
         DELETE FROM outbox o USING unnest($1::bigint[], $2::text[]) AS d(key, reason)
         WHERE o.key = d.key
         RETURNING o.key, o.room, o.bridge, o.record, o.queued_at, d.reason)
     INSERT INTO deadletters (key, room, bridge, record, queued_at, failed_at, reason)
     SELECT key, room, bridge, record, queued_at, $3, reason FROM gone
     ON CONFLICT (key) DO UPDATE SET failed_at = EXCLUDED.failed_at, reason = EXCLUDED.reason, requeued = false";
const DEAD_LETTER_NEW: &str = "INSERT INTO deadletters (key, room, bridge, record, queued_at, failed_at, reason)
     SELECT k, r, b, rec, $6, $6, reason
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::text[]) AS t(k, r, b, rec, reason)
     ON CONFLICT (key) DO UPDATE SET failed_at = EXCLUDED.failed_at, reason = EXCLUDED.reason, requeued = false";
const INSERT_GROUPS: &str = "INSERT INTO groups (id, sender, text, time, created)
     SELECT id, s, t, tm, $5 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS g(id, s, t, tm)
     ON CONFLICT (id) DO UPDATE SET sender = EXCLUDED.sender, text = EXCLUDED.text, time = EXCLUDED.time";
const UPSERT_COPIES: &str = "INSERT INTO copies (room, remote, grp, part, ours)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::integer[], $5::boolean[])
     ON CONFLICT (room, remote) DO UPDATE SET grp = EXCLUDED.grp, part = EXCLUDED.part, ours = EXCLUDED.ours";
const UPSERT_CURSORS: &str = "INSERT INTO cursors (room, cursor, updated)
     SELECT r, c, $3 FROM unnest($1::text[], $2::text[]) AS t(r, c)
     ON CONFLICT (room) DO UPDATE SET cursor = EXCLUDED.cursor, updated = EXCLUDED.updated";

/// What one transaction gathered, by kind, in the order the operations came.
#[derive(Default)]
struct Gathered<'a> {
    puts: BTreeMap<u64, (&'a str, &'a Pending, Option<i64>)>,
    deletes: Vec<i64>,
    dead_stored: Vec<(i64, &'a str)>,
    dead_new: Vec<(u64, &'a str, &'a Pending, &'a str)>,
    groups: Vec<&'a Op>,
    copies: Vec<(String, &'a str, i64, i32, bool)>,
    cursors: HashMap<&'a str, &'a str>,
    /// Reads, each with the epoch of its room's lease.
    loads: Vec<(&'a RoomAddr, u64, usize, i64)>,
    /// Loads refused by fencing: answered with nothing.
    refused_loads: Vec<(&'a RoomAddr, u64)>,
    skipped: u64,
    refused: u64,
}

/// Sorts the operations `allowed` lets through by kind.
fn gather_ops<'a>(carry: &'a [Vec<Stamped>], allowed: impl Fn(&Option<Fence>) -> bool) -> Gathered<'a> {
    let mut g = Gathered::default();
    for Stamped { op, fence, holder } in carry.iter().flatten() {
        if !allowed(fence) {
            g.refused += 1;
            if let Op::Load { room, after, .. } = op {
                g.refused_loads.push((room, *after));
            }
            continue;
        }
        match op {
            Op::Put { key, bridge, row } => {
                g.puts.insert(*key, (bridge, row, *holder));
            }
            Op::Delete { key } => match g.puts.remove(key) {
                Some(_) => g.skipped += 1,
                None => g.deletes.push(*key as i64),
            },
            Op::DeadLetter { key, reason } => match g.puts.remove(key) {
                Some((bridge, row, _)) => g.dead_new.push((*key, bridge, row, reason)),
                None => g.dead_stored.push((*key as i64, reason)),
            },
            Op::Group { id, origin, .. } => {
                g.groups.push(op);
                if let Some((room, remote)) = origin {
                    g.copies.push((room.to_string(), remote.as_str(), *id as i64, 0, false));
                }
            }
            Op::Copy { group, room, ids } => {
                let room = room.to_string();
                for (part, remote) in ids.iter().enumerate() {
                    g.copies.push((room.clone(), remote.as_str(), *group as i64, part as i32, true));
                }
            }
            Op::Cursor { room, cursor } => {
                g.cursors.insert(room, cursor);
            }
            // The shared store requeues by itself (`admin::requeue_now`): the router never asks it to.
            Op::Requeue { .. } => {}
            Op::Load { room, after, limit } => {
                let epoch = fence.as_ref().and_then(|f| f.epoch).unwrap_or_default();
                g.loads.push((room, *after, *limit, epoch));
            }
        }
    }
    g
}

pub(super) type Loaded = Vec<(RoomAddr, Vec<Stored>, u64, bool)>;

/// What a transaction did.
pub(super) struct Outcome {
    pub(super) written: u64,
    pub(super) skipped: u64,
    pub(super) loaded: Loaded,
    /// Operations refused by fencing.
    pub(super) refused: u64,
    /// Per claim: its room, epoch, the keys it read, and whether it read the rest ([`Taken::took`]).
    pub(super) took: Vec<(String, i64, Vec<i64>, bool)>,
    /// Rows deleted or moved to the dead letters ([`Taken::gone`]).
    pub(super) gone: Vec<i64>,
}

/// Writes `carry` as one transaction: first the leases of the accounts it writes for are read and locked
/// (so no other instance can take one over until it commits), then what was made under a lease this run no
/// longer holds, or under an older epoch of it, is refused; the rest is written.
pub(super) async fn transaction(
    client: &mut Client,
    cache: &mut HashMap<&'static str, tokio_postgres::Statement>,
    carry: &[Vec<Stamped>],
    run: i64,
    held: &Held,
    taken: &mut Taken,
    prune_older_than: Option<Duration>,
) -> Result<Outcome, tokio_postgres::Error> {
    let at = now();
    let accounts: Vec<&str> = carry
        .iter()
        .flatten()
        .filter_map(|s| s.fence.as_ref().map(|f| f.account.as_str()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let tx = client.transaction().await?;
    let valid: HashMap<String, i64> = if accounts.is_empty() {
        HashMap::new()
    } else {
        tx.query(FENCES, &[&run, &accounts]).await?.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let g = gather_ops(carry, |fence| match fence {
        None => true,
        Some(Fence { account, epoch }) => epoch.is_some() && valid.get(account) == epoch.as_ref(),
    });
    // Arrays of the statements' parameters, built before the statements borrow them.
    let mut last = None;
    let (mut keys, mut owners, mut rooms, mut bridges, mut records, mut holders) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    // Rooms whose lease is held elsewhere: their instance is told at the commit. (`outbox.account` is the row's
    // lease: its account's, or the room's own where rooms are leased one by one.)
    let mut notify: Vec<String> = Vec::new();
    for (key, (bridge, row, holder)) in &g.puts {
        let (room, record) = encode(row, &mut last);
        let account = crate::model::lease_of(&room).to_owned();
        if held.epoch(&account).is_none() && !notify.iter().any(|r| *r == room) {
            notify.push(room.clone().into_owned());
        }
        keys.push(*key as i64);
        owners.push(account);
        rooms.push(room.into_owned());
        bridges.push(*bridge);
        records.push(record.into_owned());
        holders.push(*holder);
    }
    let written = keys.len() as u64;
    let (dead_keys, dead_reasons): (Vec<i64>, Vec<&str>) = g.dead_stored.iter().copied().unzip();
    let (mut new_keys, mut new_rooms, mut new_bridges, mut new_records, mut new_reasons) =
        (vec![], vec![], vec![], vec![], vec![]);
    for (key, bridge, row, reason) in &g.dead_new {
        let (room, record) = encode(row, &mut last);
        new_keys.push(*key as i64);
        new_rooms.push(room.into_owned());
        new_bridges.push(*bridge);
        new_records.push(record.into_owned());
        new_reasons.push(*reason);
    }
    let (mut group_ids, mut senders, mut texts, mut times) = (vec![], vec![], vec![], vec![]);
    for op in &g.groups {
        if let Op::Group { id, sender, text, time, .. } = op {
            group_ids.push(*id as i64);
            senders.push(sender.as_deref());
            texts.push(text.as_str());
            times.push(*time);
        }
    }
    // One row per (room, remote): the last one given.
    let mut copies: HashMap<(&str, &str), (i64, i32, bool)> = HashMap::new();
    for (room, remote, grp, part, ours) in &g.copies {
        copies.insert((room.as_str(), remote), (*grp, *part, *ours));
    }
    let (mut c_rooms, mut c_remotes, mut c_groups, mut c_parts, mut c_ours) = (vec![], vec![], vec![], vec![], vec![]);
    for ((room, remote), (grp, part, ours)) in copies {
        c_rooms.push(room);
        c_remotes.push(remote);
        c_groups.push(grp);
        c_parts.push(part);
        c_ours.push(ours);
    }
    let (cursor_rooms, cursor_values): (Vec<&str>, Vec<&str>) = g.cursors.iter().map(|(r, c)| (*r, *c)).unzip();
    // The statements go out together (pipelined) and run in this order.
    let mut statements: Vec<(&'static str, Vec<&(dyn ToSql + Sync)>)> = Vec::new();
    if !keys.is_empty() {
        statements.push((INSERT_OUTBOX, vec![&keys, &owners, &rooms, &bridges, &records, &holders, &at]));
    }
    if !notify.is_empty() {
        statements.push((NOTIFY, vec![&notify]));
    }
    if !g.deletes.is_empty() {
        statements.push((DELETE_OUTBOX, vec![&g.deletes]));
    }
    if !dead_keys.is_empty() {
        statements.push((DEAD_LETTER_STORED, vec![&dead_keys, &dead_reasons, &at]));
    }
    if !new_keys.is_empty() {
        statements.push((DEAD_LETTER_NEW, vec![&new_keys, &new_rooms, &new_bridges, &new_records, &new_reasons, &at]));
    }
    if !group_ids.is_empty() {
        statements.push((INSERT_GROUPS, vec![&group_ids, &senders, &texts, &times, &at]));
    }
    if !c_rooms.is_empty() {
        statements.push((UPSERT_COPIES, vec![&c_rooms, &c_remotes, &c_groups, &c_parts, &c_ours]));
    }
    if !cursor_rooms.is_empty() {
        statements.push((UPSERT_CURSORS, vec![&cursor_rooms, &cursor_values, &at]));
    }
    // Each statement is prepared once per connection.
    let missing: Vec<&'static str> =
        statements.iter().map(|(sql, _)| *sql).filter(|sql| !cache.contains_key(sql)).collect();
    let prepared = try_join_all(missing.iter().map(|sql| tx.prepare(sql))).await?;
    cache.extend(missing.into_iter().zip(prepared));
    try_join_all(statements.iter().map(|(sql, params)| tx.execute(&cache[sql], params))).await?;
    tracing::trace!(puts = keys.len(), deletes = g.deletes.len(), refused = g.refused, "Transaction written.");
    if let Some(max_age) = prune_older_than {
        prune(&tx, max_age).await?;
    }
    let mut loaded = Vec::new();
    let mut took = Vec::new();
    for (room, after, limit, epoch) in g.loads {
        let name = room.to_string();
        let (out, takeover) = taken.before_claim(&name, epoch);
        let rows = tx.query(READ, &[&name, &epoch, &(limit as i64), &out]).await?;
        let exhausted = rows.len() < limit;
        let keys: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
        let stored: Vec<Stored> = rows
            .iter()
            .filter_map(|row| decode(row).map(|stored| Stored { held_before: takeover || row.get(4), ..stored }))
            .collect();
        tracing::trace!(room = %room, epoch, rows = stored.len(), "Rows read.");
        took.push((name, epoch, keys, exhausted));
        loaded.push((room.clone(), stored, after, exhausted));
    }
    for (room, after) in g.refused_loads {
        loaded.push((room.clone(), Vec::new(), after, true));
    }
    tx.commit().await?;
    let gone = g.deletes.iter().copied().chain(dead_keys.iter().copied()).collect();
    Ok(Outcome { written, skipped: g.skipped, loaded, refused: g.refused, took, gone })
}

/// The rows `carry` would write (puts not cancelled by a delete or moved to the dead letters).
pub(super) fn unwritten_rows(carry: &[Vec<Stamped>]) -> u64 {
    gather_ops(carry, |_| true).puts.len() as u64
}
