//! The PostgreSQL schema, its migrations, and what the store reads at start.
//!
//! Every migration is one transaction, applied under an advisory lock, so instances starting together apply
//! each once; `chatbridge_migrations` records which are applied.

use tokio_postgres::{Client, GenericClient};
use tracing::{info, warn};

use super::super::{Opened, StoreSettings, Stored, StoredGroup};
use crate::model::RoomAddr;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = 4;

/// The advisory lock the migrations are applied under (any constant of our own).
const MIGRATION_LOCK: i64 = 0x6368_6174_6272_6467;

/// The steps, version 1 first.
pub(super) const STEPS: [&str; 4] = [
    // 1: the same data as the SQLite store, plus what several instances share: the run that wrote or holds
    // each outbox row, its order of arrival (`seq`), the instances and the account leases.
    "CREATE SEQUENCE chatbridge_runs;
     CREATE TABLE outbox (
         key bigint PRIMARY KEY,
         seq bigserial NOT NULL,
         account text NOT NULL,
         room text NOT NULL,
         bridge text NOT NULL,
         record bytea NOT NULL,
         queued_at bigint NOT NULL,
         holder bigint
     );
     CREATE INDEX outbox_by_room ON outbox (room, key);
     CREATE INDEX outbox_by_account ON outbox (account, seq);
     CREATE TABLE groups (
         id bigint PRIMARY KEY,
         sender text,
         text text NOT NULL,
         time bigint NOT NULL,
         created bigint NOT NULL
     );
     CREATE INDEX groups_by_created ON groups (created);
     CREATE TABLE copies (
         room text NOT NULL,
         remote text NOT NULL,
         grp bigint NOT NULL,
         part integer NOT NULL,
         ours boolean NOT NULL,
         PRIMARY KEY (room, remote)
     );
     CREATE INDEX copies_by_group ON copies (grp);
     CREATE TABLE cursors (
         room text PRIMARY KEY,
         cursor text NOT NULL,
         updated bigint NOT NULL
     );
     CREATE TABLE deadletters (
         key bigint PRIMARY KEY,
         room text NOT NULL,
         bridge text NOT NULL,
         record bytea NOT NULL,
         queued_at bigint NOT NULL,
         failed_at bigint NOT NULL,
         reason text NOT NULL,
         requeued boolean NOT NULL DEFAULT false
     );
     CREATE TABLE instances (
         name text PRIMARY KEY,
         run bigint NOT NULL,
         started timestamptz NOT NULL,
         heartbeat timestamptz NOT NULL,
         stopping boolean NOT NULL DEFAULT false
     );
     CREATE TABLE leases (
         account text PRIMARY KEY,
         owner text,
         run bigint,
         epoch bigint NOT NULL DEFAULT 0,
         expires timestamptz
     );",
    // 2: a room's rows in their order of arrival, as an instance takes them (`CLAIM`): without it every claim
    // sorted all of the room's rows, held ones included (2.3 ms a claim at 2,000 msg/s across two instances).
    "CREATE INDEX outbox_by_room_seq ON outbox (room, seq);
     ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
         autovacuum_vacuum_cost_delay = 0);",
    // 3: bridges provisioned at runtime (`chatbridge bridges`, the admin API); `provision`'s one row is locked by
    // each change, so changes are checked and written one at a time, and its version is what instances apply.
    "CREATE TABLE bridges (
         name text PRIMARY KEY,
         spec text NOT NULL,
         updated bigint NOT NULL
     );
     CREATE TABLE provision (
         id integer PRIMARY KEY CHECK (id = 1),
         version bigint NOT NULL
     );
     INSERT INTO provision (id, version) VALUES (1, 0);",
    // 4: Missevan rooms are leased one by one (a socket each), so their rows belong to the room's lease, not the
    // account's; the account's old lease goes once no instance holds it.
    "UPDATE outbox SET account = room WHERE room LIKE 'missevan.%';
     DELETE FROM leases WHERE account LIKE 'missevan.%' AND position(':' in account) = 0
         AND (run IS NULL OR expires < clock_timestamp());",
];

/// The lease of an outbox row (`outbox.account`) from its `room`, in SQL: [`crate::model::lease_of`]'s rule, made
/// from [`crate::model::Platform::leases_per_room`] so the two cannot disagree.
pub(super) fn lease_of_room() -> String {
    let per_room: Vec<String> = crate::model::Platform::ALL
        .iter()
        .filter(|p| p.leases_per_room())
        .map(|p| format!("room LIKE '{}.%'", p.as_str()))
        .collect();
    if per_room.is_empty() {
        return "split_part(room, ':', 1)".to_owned();
    }
    format!("CASE WHEN {} THEN room ELSE split_part(room, ':', 1) END", per_room.join(" OR "))
}

/// The schema version of the database (0: none yet).
pub async fn version(client: &impl GenericClient) -> Result<i32, tokio_postgres::Error> {
    let exists: bool = client.query_one("SELECT to_regclass('chatbridge_migrations') IS NOT NULL", &[]).await?.get(0);
    if !exists {
        return Ok(0);
    }
    let row = client.query_one("SELECT COALESCE(MAX(version), 0) FROM chatbridge_migrations", &[]).await?;
    Ok(row.get(0))
}

/// What [`migrate`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub from: i32,
    pub to: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("the database is from a newer chatbridge (schema {found}, this build knows {SCHEMA_VERSION})")]
    Newer { found: i32 },
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

/// Brings the schema to [`SCHEMA_VERSION`], one version at a time.
pub async fn migrate(client: &mut Client) -> Result<Migrated, MigrateError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS chatbridge_migrations (
             version integer PRIMARY KEY,
             applied timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let from = version(&tx).await?;
    if from > SCHEMA_VERSION {
        return Err(MigrateError::Newer { found: from });
    }
    for (index, step) in STEPS.iter().enumerate() {
        let target = index as i32 + 1;
        if from >= target {
            continue;
        }
        tx.batch_execute(step).await?;
        tx.execute("INSERT INTO chatbridge_migrations (version) VALUES ($1)", &[&target]).await?;
        if from > 0 {
            info!(from, to = target, "PostgreSQL schema migrated.");
        }
    }
    tx.commit().await?;
    Ok(Migrated { from, to: SCHEMA_VERSION })
}

/// Keys and group ids a run gives: `run << RUN_SHIFT` up, so that instances never give the same one.
pub const RUN_SHIFT: u32 = 40;

pub(super) fn now() -> i64 {
    crate::model::Time::now().0
}

/// The start-up pass, as the SQLite store's: re-queues dead letters marked for it (with keys of this run),
/// expires old orphans and old id-map entries, and reads what the router needs.
pub(super) async fn startup(
    client: &mut Client,
    run: i64,
    held: &super::lease::Held,
    settings: &StoreSettings,
    configured: &impl Fn(&str, &str) -> bool,
) -> Result<Opened, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let mut opened = Opened::default();
    let first = run << RUN_SHIFT;
    let mut next = first;
    let requeued: Vec<i64> = tx
        .query("SELECT key FROM deadletters WHERE requeued ORDER BY key", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for old in &requeued {
        next += 1;
        tx.execute(
            &format!(
                "INSERT INTO outbox (key, account, room, bridge, record, queued_at)
                 SELECT $1, {}, room, bridge, record, $2 FROM deadletters WHERE key = $3",
                lease_of_room()
            ),
            &[&next, &now(), old],
        )
        .await?;
        tx.execute("DELETE FROM deadletters WHERE key = $1", &[old]).await?;
    }
    if !requeued.is_empty() {
        info!(messages = requeued.len(), "Dead letters re-queued.");
    }
    let rooms =
        tx.query("SELECT room, bridge, COUNT(*), MIN(queued_at) FROM outbox GROUP BY room, bridge", &[]).await?;
    let orphan_cutoff = now() - settings.orphan_max_age.as_millis() as i64;
    // Per configured room of an account this instance holds: its rows (of every bridge).
    let mut mine: Vec<(String, usize, i64)> = Vec::new();
    for row in rooms {
        let (room, bridge, count, oldest): (String, String, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let count = count as usize;
        if configured(&room, &bridge) {
            if let Some(epoch) = held.epoch(crate::model::lease_of(&room)) {
                match mine.iter_mut().find(|(r, _, _)| *r == room) {
                    Some((_, n, _)) => *n += count,
                    None => mine.push((room, count, epoch)),
                }
            }
            continue;
        }
        if oldest < orphan_cutoff {
            let moved = tx
                .execute(
                    "WITH gone AS (DELETE FROM outbox WHERE room = $2 AND bridge = $3 AND queued_at < $4 RETURNING *)
                     INSERT INTO deadletters (key, room, bridge, record, queued_at, failed_at, reason)
                     SELECT key, room, bridge, record, queued_at, $1, 'room no longer in the configuration' FROM gone",
                    &[&now(), &room, &bridge, &orphan_cutoff],
                )
                .await? as usize;
            warn!(%room, %bridge, messages = moved, "Queued messages for a room no longer in the configuration expired; they are in the dead letters.");
            opened.orphans += count - moved;
        } else {
            warn!(%room, %bridge, messages = count, "Queued messages for a room no longer in the configuration are kept until they expire (see `chatbridge check`).");
            opened.orphans += count;
        }
    }
    // The first rows of this instance's rooms are taken now, in the order they were queued; the rest as the
    // rooms drain.
    mine.sort();
    for (room, count, epoch) in mine {
        let rows = tx.query(super::batch::CLAIM, &[&room, &epoch, &(settings.per_room as i64)]).await?;
        let mut rows: Vec<_> = rows
            .iter()
            .map(|row| (row.get::<_, i64>(5), decode(row).map(|s| Stored { held_before: row.get(4), ..s })))
            .collect();
        rows.sort_by_key(|(seq, _)| *seq);
        let taken = rows.len();
        opened.outbox.extend(rows.into_iter().filter_map(|(_, stored)| stored));
        if count > taken
            && let Ok(addr) = room.parse::<RoomAddr>()
        {
            opened.backlog.push((addr, count - taken));
        }
    }
    opened.last_key = next as u64;
    prune(&tx, settings.id_map_max_age).await?;
    // New groups continue in this run's range; the groups read are the most recent by creation.
    opened.last_group = Some(first as u64);
    opened.groups = load_groups(&tx, settings.id_map_capacity).await?;
    for row in tx.query("SELECT room, cursor FROM cursors", &[]).await? {
        let (room, cursor): (String, String) = (row.get(0), row.get(1));
        match room.parse::<RoomAddr>() {
            Ok(room) => opened.cursors.push((room, crate::model::Cursor::new(cursor))),
            Err(e) => warn!(room = %room, error = %e, "A stored cursor names no room; it is left out."),
        }
    }
    tx.commit().await?;
    Ok(opened)
}

/// The `limit` most recently created groups, with their members, oldest first.
async fn load_groups(tx: &impl GenericClient, limit: usize) -> Result<Vec<StoredGroup>, tokio_postgres::Error> {
    let rows = tx
        .query("SELECT id, sender, text, time FROM groups ORDER BY created DESC, id DESC LIMIT $1", &[&(limit as i64)])
        .await?;
    let mut groups: Vec<StoredGroup> = rows
        .iter()
        .map(|row| StoredGroup {
            id: row.get::<_, i64>(0) as u64,
            sender: row.get(1),
            text: row.get(2),
            time: row.get(3),
            members: Vec::new(),
        })
        .collect();
    groups.reverse();
    let ids: Vec<i64> = groups.iter().map(|g| g.id as i64).collect();
    let position: std::collections::HashMap<u64, usize> = groups.iter().enumerate().map(|(i, g)| (g.id, i)).collect();
    let rows = tx
        .query("SELECT grp, room, remote, ours FROM copies WHERE grp = ANY($1) ORDER BY grp, room, part", &[&ids])
        .await?;
    for row in rows {
        let (grp, room, remote, ours): (i64, String, String, bool) = (row.get(0), row.get(1), row.get(2), row.get(3));
        let Some(&i) = position.get(&(grp as u64)) else { continue };
        super::super::schema::add_member(&mut groups[i], &room, remote, ours);
    }
    Ok(groups)
}

/// Deletes id-map entries older than `max_age`.
pub(super) async fn prune(tx: &impl GenericClient, max_age: std::time::Duration) -> Result<u64, tokio_postgres::Error> {
    let cutoff = now() - max_age.as_millis() as i64;
    tx.execute("DELETE FROM copies WHERE grp IN (SELECT id FROM groups WHERE created < $1)", &[&cutoff]).await?;
    let groups = tx.execute("DELETE FROM groups WHERE created < $1", &[&cutoff]).await?;
    if groups > 0 {
        info!(groups, "Id map: entries older than its maximum age pruned.");
    }
    Ok(groups)
}

/// An outbox row (`key, room, bridge, record`) as the router takes it; `None` (logged) when it cannot be read.
pub(super) fn decode(row: &tokio_postgres::Row) -> Option<Stored> {
    let key: i64 = row.get(0);
    let record: &[u8] = row.get(3);
    super::super::schema::decode((key, row.get(1), row.get(2), record.to_vec()))
}
