//! The PostgreSQL store's writer: the SQLite writer's batching and failure handling over one connection,
//! which it opens again when the server went away.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use tokio::sync::mpsc;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;
use tracing::{error, info, warn};

use super::schema::{decode, now, prune};
use super::{PgTarget, reason};
use crate::model::RoomAddr;
use crate::store::intake::Intake;
use crate::store::{
    Closing, GATHER, MAX_BATCH, Op, PRUNE_EVERY, Pending, SIZE_EVERY, StoreEvent, StoreSettings, Stored, encode,
};

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long a closing store keeps trying to write what it was given.
const CLOSE_RETRIES: Duration = Duration::from_secs(3);

const INSERT_OUTBOX: &str = "INSERT INTO outbox (key, account, room, bridge, record, queued_at, holder)
     SELECT k, a, r, b, rec, $6, $7
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bytea[]) WITH ORDINALITY AS t(k, a, r, b, rec, n)
     ORDER BY n
     ON CONFLICT (key) DO UPDATE SET record = EXCLUDED.record";
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
const LOAD: &str = "SELECT key, room, bridge, record FROM outbox WHERE room = $1 AND key > $2 ORDER BY key LIMIT $3";

/// The writer's connection and what it needs to open it again.
pub(super) struct Writer {
    target: PgTarget,
    client: Option<Client>,
    /// The connection's prepared statements.
    cache: HashMap<&'static str, tokio_postgres::Statement>,
    run: i64,
    settings: StoreSettings,
}

impl Writer {
    pub(super) fn new(target: PgTarget, client: Client, run: i64, settings: StoreSettings) -> Self {
        Self { target, client: Some(client), cache: HashMap::new(), run, settings }
    }

    /// The connection, opened again when it was lost.
    async fn client(&mut self) -> Result<&mut Client, String> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            self.cache.clear();
            let client = self.target.connect().await.map_err(|e| reason(&e))?;
            info!(database = %self.target.describe(), "Connected to PostgreSQL again.");
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("just set"))
    }
}

/// What one transaction gathered, by kind, in the order the operations came.
#[derive(Default)]
struct Gathered<'a> {
    puts: BTreeMap<u64, (&'a str, &'a Pending)>,
    deletes: Vec<i64>,
    dead_stored: Vec<(i64, &'a str)>,
    dead_new: Vec<(u64, &'a str, &'a Pending, &'a str)>,
    groups: Vec<&'a Op>,
    copies: Vec<(String, &'a str, i64, i32, bool)>,
    cursors: HashMap<&'a str, &'a str>,
    loads: Vec<(&'a RoomAddr, u64, usize)>,
    skipped: u64,
}

fn gather_ops<'a>(carry: &'a [Vec<Op>]) -> Gathered<'a> {
    let mut g = Gathered::default();
    for op in carry.iter().flatten() {
        match op {
            Op::Put { key, bridge, row } => {
                g.puts.insert(*key, (bridge, row));
            }
            Op::Delete { key } => match g.puts.remove(key) {
                Some(_) => g.skipped += 1,
                None => g.deletes.push(*key as i64),
            },
            Op::DeadLetter { key, reason } => match g.puts.remove(key) {
                Some((bridge, row)) => g.dead_new.push((*key, bridge, row, reason)),
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
            Op::Load { room, after, limit } => g.loads.push((room, *after, *limit)),
        }
    }
    g
}

/// The account part of a room's address (`<platform>.<account>`).
fn account_of(room: &str) -> &str {
    room.split_once(':').map_or(room, |(account, _)| account)
}

type Loaded = Vec<(RoomAddr, Vec<Stored>, u64, bool)>;

/// Writes `carry` as one transaction; returns the rows written and skipped, and the rows read.
async fn transaction(
    client: &mut Client,
    cache: &mut HashMap<&'static str, tokio_postgres::Statement>,
    carry: &[Vec<Op>],
    run: i64,
    prune_older_than: Option<Duration>,
) -> Result<(u64, u64, Loaded), tokio_postgres::Error> {
    let g = gather_ops(carry);
    let at = now();
    // Arrays of the statements' parameters, built before the statements borrow them.
    let mut last = None;
    let (mut keys, mut accounts, mut rooms, mut bridges, mut records) = (vec![], vec![], vec![], vec![], vec![]);
    for (key, (bridge, row)) in &g.puts {
        let (room, record) = encode(row, &mut last);
        keys.push(*key as i64);
        accounts.push(account_of(&room).to_owned());
        rooms.push(room.into_owned());
        bridges.push(*bridge);
        records.push(record.into_owned());
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
        statements.push((INSERT_OUTBOX, vec![&keys, &accounts, &rooms, &bridges, &records, &at, &run]));
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
    let prepared = try_join_all(missing.iter().map(|sql| client.prepare(sql))).await?;
    cache.extend(missing.into_iter().zip(prepared));
    let tx = client.transaction().await?;
    try_join_all(statements.iter().map(|(sql, params)| tx.execute(&cache[sql], params))).await?;
    if let Some(max_age) = prune_older_than {
        prune(&tx, max_age).await?;
    }
    let mut loaded = Vec::new();
    for (room, after, limit) in g.loads {
        let rows = tx.query(LOAD, &[&room.to_string(), &(after as i64), &(limit as i64)]).await?;
        let through = rows.iter().map(|r| r.get::<_, i64>(0) as u64).max().unwrap_or(0).max(after);
        let exhausted = rows.len() < limit;
        loaded.push((room.clone(), rows.iter().filter_map(decode).collect(), through, exhausted));
    }
    tx.commit().await?;
    Ok((written, g.skipped, loaded))
}

/// Counts the outbox and the dead letters, removing the oldest dead letters past their limit.
async fn sizes(client: &Client, max_dead_letters: u64) -> Result<(u64, u64), tokio_postgres::Error> {
    let row = client.query_one("SELECT (SELECT COUNT(*) FROM outbox), (SELECT COUNT(*) FROM deadletters)", &[]).await?;
    let (outbox, mut dead_letters) = (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64);
    if dead_letters > max_dead_letters {
        let excess = (dead_letters - max_dead_letters) as i64;
        let removed = client
            .execute(
                "DELETE FROM deadletters WHERE key IN (SELECT key FROM deadletters ORDER BY failed_at, key LIMIT $1)",
                &[&excess],
            )
            .await?;
        warn!(
            removed,
            max = max_dead_letters,
            "The dead letters are at their limit (general.max_dead_letters): the oldest were removed."
        );
        dead_letters -= removed;
    }
    Ok((outbox, dead_letters))
}

/// The rows `carry` would write (puts not cancelled by a delete or moved to the dead letters).
fn unwritten_rows(carry: &[Vec<Op>]) -> u64 {
    let g = gather_ops(carry);
    g.puts.len() as u64
}

/// The writer: gathers inputs as the SQLite writer does and writes them as one transaction; a transaction
/// that fails is kept and written again (the connection opened again when it was lost) until it commits,
/// with [`StoreEvent::Failing`] meanwhile so that no message is taken in.
pub(super) async fn write(
    mut writer: Writer,
    mut inputs: mpsc::UnboundedReceiver<Vec<Op>>,
    notify: impl Fn(StoreEvent),
) -> Closing {
    let mut carry: Vec<Vec<Op>> = Vec::new();
    let mut closed = false;
    let mut intake = Intake::default();
    let mut failing: Option<(Instant, u64)> = None;
    let mut retry = RETRY_MIN;
    let mut last_prune = Instant::now();
    let mut last_size: Option<Instant> = None;
    loop {
        if carry.is_empty() && last_size.is_none_or(|t| t.elapsed() >= SIZE_EVERY) {
            last_size = Some(Instant::now());
            let max_dead = writer.settings.max_dead_letters;
            if let Ok(client) = writer.client().await
                && let Ok((outbox, dead_letters)) = sizes(client, max_dead).await
            {
                notify(StoreEvent::Sizes { outbox, dead_letters });
                intake.outbox(outbox, writer.settings.max_outbox);
            }
        }
        intake.report(&notify);
        if carry.is_empty() {
            if closed {
                break;
            }
            match tokio::time::timeout(SIZE_EVERY, inputs.recv()).await {
                Ok(Some(ops)) => carry.push(ops),
                Ok(None) => break,
                Err(_) => continue,
            }
        }
        closed |= gather(&mut inputs, &mut carry).await;
        let prune_due = last_prune.elapsed() >= PRUNE_EVERY;
        let max_age = writer.settings.id_map_max_age;
        let run = writer.run;
        let result = match writer.client().await {
            Ok(_) => {
                let client = writer.client.as_mut().expect("connected");
                let prune = prune_due.then_some(max_age);
                transaction(client, &mut writer.cache, &carry, run, prune).await.map_err(|e| reason(&e))
            }
            Err(e) => Err(e),
        };
        match result {
            Ok((written, skipped, loaded)) => {
                if prune_due {
                    last_prune = Instant::now();
                }
                if written + skipped > 0 {
                    notify(StoreEvent::Committed { written, skipped });
                }
                for (room, rows, through, exhausted) in loaded {
                    notify(StoreEvent::Loaded { room, rows, through, exhausted });
                }
                carry.clear();
                if let Some((since, attempts)) = failing.take() {
                    info!(attempts, after = ?since.elapsed(), "PostgreSQL is written again; nothing was lost.");
                    intake.failing(None);
                }
                retry = RETRY_MIN;
            }
            Err(e) => {
                let (since, attempts) = failing.get_or_insert_with(|| {
                    error!(error = %e, database = %writer.target.describe(), "Writing to PostgreSQL failed; the changes are kept in memory and written again, and no message is taken in until they are.");
                    (Instant::now(), 0)
                });
                if !intake.is_failing() {
                    intake.failing(Some(e.clone()));
                    intake.report(&notify);
                }
                *attempts += 1;
                if (*attempts).is_power_of_two() && *attempts > 1 {
                    warn!(error = %e, attempts = *attempts, failing_for = ?since.elapsed(), "PostgreSQL still cannot be written.");
                }
                if closed && since.elapsed() >= CLOSE_RETRIES {
                    break;
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
    let unwritten = unwritten_rows(&carry);
    if unwritten > 0 {
        error!(
            messages = unwritten,
            "PostgreSQL could not be written before the store closed: these queued messages are lost."
        );
    }
    let stored = match writer.client().await {
        Ok(client) => {
            client.query_one("SELECT COUNT(*) FROM outbox", &[]).await.ok().map(|r| r.get::<_, i64>(0) as u64)
        }
        Err(_) => None,
    };
    Closing { stored, unwritten }
}

/// Takes the inputs that come within the gathering window; true when the store closed.
async fn gather(inputs: &mut mpsc::UnboundedReceiver<Vec<Op>>, carry: &mut Vec<Vec<Op>>) -> bool {
    let started = Instant::now();
    loop {
        loop {
            match inputs.try_recv() {
                Ok(ops) => carry.push(ops),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return true,
            }
        }
        let Some(left) = MAX_BATCH.checked_sub(started.elapsed()) else { return false };
        tokio::time::sleep(GATHER.min(left)).await;
        match inputs.try_recv() {
            Ok(ops) => carry.push(ops),
            Err(mpsc::error::TryRecvError::Empty) => return false,
            Err(mpsc::error::TryRecvError::Disconnected) => return true,
        }
    }
}
