//! The database's schema and its migrations, and what the store reads at start.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use tracing::{info, warn};

use super::*;

/// The schema version this build writes; older databases are migrated forward on open.
pub(super) const SCHEMA_VERSION: i64 = 4;

/// Each version's step from the one before.
pub(super) const STEPS: [&str; SCHEMA_VERSION as usize] = [
    // 1: the outbox.
    "CREATE TABLE IF NOT EXISTS outbox (
        key INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        bridge TEXT NOT NULL,
        record BLOB NOT NULL,
        queued_at INTEGER NOT NULL
    );",
    // 2: the id map, cursors, dead letters, and the outbox read per room.
    "CREATE TABLE groups (
        id INTEGER PRIMARY KEY,
        sender TEXT,
        text TEXT NOT NULL,
        time INTEGER NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE TABLE copies (
        room TEXT NOT NULL,
        remote TEXT NOT NULL,
        grp INTEGER NOT NULL,
        part INTEGER NOT NULL,
        ours INTEGER NOT NULL,
        PRIMARY KEY (room, remote)
    ) WITHOUT ROWID;
    CREATE INDEX copies_by_group ON copies (grp);
    CREATE TABLE cursors (
        room TEXT PRIMARY KEY,
        cursor TEXT NOT NULL,
        updated INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE deadletters (
        key INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        bridge TEXT NOT NULL,
        record BLOB NOT NULL,
        queued_at INTEGER NOT NULL,
        failed_at INTEGER NOT NULL,
        reason TEXT NOT NULL,
        requeued INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX outbox_by_room ON outbox (room, key);",
    // 3: bridges provisioned at runtime (`chatbridge bridges`, the admin API), and a version the daemon
    // watches for their changes.
    "CREATE TABLE bridges (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        updated INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE provision (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    );
    INSERT INTO provision (id, version) VALUES (1, 0);",
    // 4: the id map's members in their group's row and its ids keyed by id (`super::members`), not a table of
    // copies indexed twice.
    "ALTER TABLE groups ADD COLUMN members TEXT NOT NULL DEFAULT '';
    CREATE TABLE ids (
        remote TEXT NOT NULL,
        room TEXT NOT NULL,
        grp INTEGER NOT NULL,
        PRIMARY KEY (remote, room)
    ) WITHOUT ROWID;
    INSERT INTO ids (remote, room, grp) SELECT remote, room, grp FROM copies WHERE grp IN (SELECT id FROM groups);
    UPDATE groups SET members = (
        SELECT group_concat(line, '' ORDER BY room, ours) FROM (
            SELECT room, ours, json_array(room, json(CASE WHEN ours THEN 'true' ELSE 'false' END),
                json_group_array(remote ORDER BY part)) || char(10) AS line
            FROM copies WHERE grp = groups.id GROUP BY room, ours))
    WHERE id IN (SELECT grp FROM copies);
    DROP TABLE copies;",
];

/// The schema a new database gets at once, as [`STEPS`] leave an old one (a test compares them). *Why not the steps*:
/// step 4 moves the id map with `ALTER TABLE`, SQLite's JSON functions and `DROP TABLE`: on an empty database that is
/// work with nothing to move, in code nothing else runs.
const CURRENT: &str = "CREATE TABLE outbox (
        key INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        bridge TEXT NOT NULL,
        record BLOB NOT NULL,
        queued_at INTEGER NOT NULL
    );
    CREATE INDEX outbox_by_room ON outbox (room, key);
    CREATE TABLE groups (
        id INTEGER PRIMARY KEY,
        sender TEXT,
        text TEXT NOT NULL,
        time INTEGER NOT NULL,
        created INTEGER NOT NULL,
        members TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE ids (
        remote TEXT NOT NULL,
        room TEXT NOT NULL,
        grp INTEGER NOT NULL,
        PRIMARY KEY (remote, room)
    ) WITHOUT ROWID;
    CREATE TABLE cursors (
        room TEXT PRIMARY KEY,
        cursor TEXT NOT NULL,
        updated INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE deadletters (
        key INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        bridge TEXT NOT NULL,
        record BLOB NOT NULL,
        queued_at INTEGER NOT NULL,
        failed_at INTEGER NOT NULL,
        reason TEXT NOT NULL,
        requeued INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE bridges (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        updated INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE provision (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    );
    INSERT INTO provision (id, version) VALUES (1, 0);";

/// Brings the schema to [`SCHEMA_VERSION`]: a new database at once ([`CURRENT`]), an old one a version at a time,
/// each step in its own transaction.
pub(super) fn migrate(db: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let open = |source| StoreError::Open { path: path.to_owned(), source };
    let version: i64 = db.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(open)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Newer { path: path.to_owned(), found: version });
    }
    let empty = || db.query_row("SELECT COUNT(*) = 0 FROM sqlite_schema", [], |row| row.get::<_, bool>(0));
    if version == 0 && empty().map_err(open)? {
        let tx = db.transaction().map_err(open)?;
        tx.execute_batch(CURRENT).map_err(open)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(open)?;
        return tx.commit().map_err(open);
    }
    for (index, step) in STEPS.iter().enumerate() {
        let target = index as i64 + 1;
        if version >= target {
            continue;
        }
        let tx = db.transaction().map_err(open)?;
        tx.execute_batch(step).map_err(open)?;
        tx.pragma_update(None, "user_version", target).map_err(open)?;
        tx.commit().map_err(open)?;
        info!(path = %path.display(), from = version, to = target, "State database migrated.");
    }
    Ok(())
}

pub(super) fn now() -> i64 {
    Time::now().0
}

/// The start-up pass: re-queues dead letters marked for it, expires old orphans and old id-map entries,
/// and reads what the router needs.
pub(super) fn startup(
    db: &mut Connection,
    settings: &StoreSettings,
    configured: &impl Fn(&str, &str) -> bool,
) -> rusqlite::Result<Opened> {
    let tx = db.transaction()?;
    let mut opened = Opened::default();
    let max_key = |tx: &rusqlite::Transaction<'_>| -> rusqlite::Result<i64> {
        tx.query_row(
            "SELECT MAX(COALESCE((SELECT MAX(key) FROM outbox), 0), COALESCE((SELECT MAX(key) FROM deadletters), 0))",
            [],
            |row| row.get(0),
        )
    };
    // Re-queued dead letters go to the end of their room's queue, with fresh keys.
    let requeued: Vec<i64> = {
        let mut query = tx.prepare("SELECT key FROM deadletters WHERE requeued = 1 ORDER BY key")?;
        query.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?
    };
    for old in &requeued {
        let key = max_key(&tx)? + 1;
        tx.execute(
            "INSERT INTO outbox (key, room, bridge, record, queued_at)
             SELECT ?1, room, bridge, record, ?2 FROM deadletters WHERE key = ?3",
            params![key, now(), old],
        )?;
        tx.execute("DELETE FROM deadletters WHERE key = ?1", params![old])?;
    }
    if !requeued.is_empty() {
        info!(messages = requeued.len(), "Dead letters re-queued.");
    }
    // What each destination holds; rooms no longer configured are orphans.
    let rooms: Vec<(String, String, usize, i64)> = {
        let mut query =
            tx.prepare("SELECT room, bridge, COUNT(*), MIN(queued_at) FROM outbox GROUP BY room, bridge")?;
        query
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)? as usize, row.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let orphan_cutoff = now() - settings.orphan_max_age.as_millis() as i64;
    for (room, bridge, count, oldest) in rooms {
        if configured(&room, &bridge) {
            let mut query = tx.prepare_cached(
                "SELECT key, room, bridge, record FROM outbox WHERE room = ?1 AND bridge = ?2 ORDER BY key LIMIT ?3",
            )?;
            let rows = query.query_map(params![room, bridge, settings.per_room as i64], row_to_stored)?;
            let mut loaded = 0;
            for row in rows {
                loaded += 1;
                if let Some(stored) = decode(row?) {
                    opened.outbox.push(stored);
                }
            }
            if count > loaded
                && let Ok(addr) = room.parse::<RoomAddr>()
            {
                opened.backlog.push((addr, count - loaded));
            }
            continue;
        }
        if oldest < orphan_cutoff {
            let moved = tx.execute(
                "INSERT INTO deadletters (key, room, bridge, record, queued_at, failed_at, reason)
                 SELECT key, room, bridge, record, queued_at, ?1, 'room no longer in the configuration'
                 FROM outbox WHERE room = ?2 AND bridge = ?3 AND queued_at < ?4",
                params![now(), room, bridge, orphan_cutoff],
            )?;
            tx.execute(
                "DELETE FROM outbox WHERE room = ?1 AND bridge = ?2 AND queued_at < ?3",
                params![room, bridge, orphan_cutoff],
            )?;
            warn!(%room, %bridge, messages = moved, "Queued messages for a room no longer in the configuration expired; they are in the dead letters.");
            opened.orphans += count - moved;
        } else {
            warn!(%room, %bridge, messages = count, "Queued messages for a room no longer in the configuration are kept until they expire (see `chatbridge check`).");
            opened.orphans += count;
        }
    }
    opened.outbox.sort_by_key(|s| s.key);
    opened.last_key = max_key(&tx)? as u64;
    prune(&tx, settings.id_map_max_age)?;
    opened.last_group =
        tx.query_row("SELECT MAX(id) FROM groups", [], |row| row.get::<_, Option<i64>>(0))?.map(|g| g as u64);
    opened.groups = load_groups(&tx, settings.id_map_capacity)?;
    opened.cursors = {
        let mut query = tx.prepare("SELECT room, cursor FROM cursors")?;
        let rows = query.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?;
        let mut cursors = Vec::new();
        for row in rows {
            let (room, cursor) = row?;
            match room.parse::<RoomAddr>() {
                Ok(room) => cursors.push((room, crate::model::Cursor::new(cursor))),
                Err(e) => warn!(room = %room, error = %e, "A stored cursor names no room; it is left out."),
            }
        }
        cursors
    };
    tx.commit()?;
    Ok(opened)
}

/// The `limit` most recent groups, with their members, oldest first.
pub(super) fn load_groups(tx: &rusqlite::Transaction<'_>, limit: usize) -> rusqlite::Result<Vec<StoredGroup>> {
    let rows: Vec<(i64, Option<String>, String, i64, String)> = {
        let mut query = tx.prepare("SELECT id, sender, text, time, members FROM groups ORDER BY id DESC LIMIT ?1")?;
        query
            .query_map(params![limit as i64], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut groups = Vec::with_capacity(rows.len());
    for (id, sender, text, time, members) in rows.into_iter().rev() {
        let members = super::members::read(tx, id, &members)?;
        groups.push(StoredGroup { id: id as u64, sender, text, time, members });
    }
    Ok(groups)
}

/// Adds a stored copy (`room`, `remote`) to its group's members, in part order (PostgreSQL reads its copies so).
pub(super) fn add_member(group: &mut StoredGroup, room: &str, remote: String, ours: bool) {
    let Ok(room) = room.parse::<RoomAddr>() else { return };
    match group.members.iter_mut().find(|m| m.room == room && m.ours == ours) {
        Some(member) => member.ids.push(remote),
        None => group.members.push(StoredMember { room, ids: vec![remote], ours }),
    }
}

/// Deletes id-map entries older than `max_age`.
pub(super) fn prune(tx: &rusqlite::Transaction<'_>, max_age: Duration) -> rusqlite::Result<usize> {
    let cutoff = now() - max_age.as_millis() as i64;
    let Some(last) = tx
        .query_row("SELECT MAX(id) FROM groups WHERE created < ?1", params![cutoff], |row| row.get::<_, Option<i64>>(0))
        .optional()?
        .flatten()
    else {
        return Ok(0);
    };
    // Groups are created in id order: everything up to the newest expired one goes.
    let groups = super::members::prune(tx, last)?;
    if groups > 0 {
        info!(groups, "Id map: entries older than its maximum age pruned.");
    }
    Ok(groups)
}

pub(super) type Row = (i64, String, String, Vec<u8>);

pub(super) fn row_to_stored(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

pub(super) fn decode((key, room, bridge, record): Row) -> Option<Stored> {
    let room = match room.parse::<RoomAddr>() {
        Ok(room) => room,
        Err(e) => {
            error!(key, room = %room, error = %e, "An outbox row names no room; it is left in place.");
            return None;
        }
    };
    match serde_json::from_slice(&record) {
        Ok(record) => Some(Stored { key: key as u64, room, bridge, record, held_before: false }),
        Err(e) => {
            error!(key, error = %e, "An outbox row cannot be read; it is left in place.");
            None
        }
    }
}
