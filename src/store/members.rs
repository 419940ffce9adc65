//! The id map on disk (SQLite, schema 4): a group's members are kept in its own row, one line a member, and a table
//! `ids` keyed by (remote id, room) names each id's group.
//!
//! A member's line is a JSON array `[room, ours, [id, …]]` ending in a newline (JSON escapes newlines inside
//! strings), so a copy confirmed after its group was written is one append to the row's text. *Why not a table of
//! members indexed by group* (schema 2 and 3): every message then wrote two b-trees for each of its ids, and the
//! index by group cost more than the group's own row; measured with SQLite alone, the id map's rows of a relayed
//! message took 35.6k instructions that way and 19.7k this way, 12.0k written many rows a statement
//! ([`Gathered`]; docs/performance.md).
//!
//! An id that a later group took (the same id recorded twice in one room) belongs to the later group: `ids` is the
//! authority, and an id whose row names another group is left out of the older group's members when it is read.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, ToSql, Transaction, params, params_from_iter};
use tracing::warn;

use super::{Op, StoredMember, now};
use crate::model::{RemoteId, RoomAddr};

/// The id map's rows a transaction writes, gathered to be written at its end, many rows a statement: a copy confirmed
/// within the transaction that made its group (most are) joins the group's row before it is written, and SQLite's
/// work for a statement is much of its work for a row (a relayed message's id-map rows took 20.2k instructions
/// written one a statement and 12.0k twenty a statement, with SQLite alone).
#[derive(Default)]
pub(super) struct Gathered<'a> {
    /// The groups made, each with its members' lines.
    groups: Vec<Made<'a>>,
    /// Each of `groups` by its id.
    made: HashMap<u64, usize>,
    /// (id, room, group) rows for `ids`.
    ids: Vec<(&'a str, &'a RoomAddr, u64)>,
    rooms: HashMap<&'a RoomAddr, String>,
}

/// A group a transaction made: its row's fields, borrowed from its `Op::Group`, and its members' lines.
struct Made<'a> {
    id: &'a u64,
    sender: &'a Option<String>,
    text: &'a String,
    time: &'a i64,
    members: String,
}

impl<'a> Gathered<'a> {
    fn room(&mut self, room: &'a RoomAddr) -> &str {
        self.rooms.entry(room).or_insert_with(|| room.to_string())
    }

    /// A group made (`Op::Group`; any other operation is ignored).
    pub(super) fn group(&mut self, op: &'a Op) {
        let Op::Group { id, origin, sender, text, time } = op else { return };
        let mut members = String::new();
        if let Some((room, remote)) = origin {
            members = line(self.room(room), false, std::slice::from_ref(remote));
            self.ids.push((remote.as_str(), room, *id));
        }
        self.made.insert(*id, self.groups.len());
        self.groups.push(Made { id, sender, text, time, members });
    }

    /// `ids`, `group`'s copy in `room`: added to the group's row, or appended to it when an earlier transaction wrote
    /// it. A group the database does not have (pruned) gets no ids: nothing could find them.
    pub(super) fn copy(
        &mut self,
        tx: &Transaction<'_>,
        group: u64,
        room: &'a RoomAddr,
        ids: &'a [RemoteId],
    ) -> rusqlite::Result<()> {
        let line = line(self.room(room), true, ids);
        if let Some(&made) = self.made.get(&group) {
            self.groups[made].members.push_str(&line);
        } else if tx
            .prepare_cached("UPDATE groups SET members = members || ?2 WHERE id = ?1")?
            .execute(params![group as i64, line])?
            == 0
        {
            return Ok(());
        }
        self.ids.extend(ids.iter().map(|id| (id.as_str(), room, group)));
        Ok(())
    }

    /// Writes what was gathered.
    pub(super) fn write(self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let created = now();
        let groups: Vec<[&dyn ToSql; 6]> =
            self.groups.iter().map(|g| [g.id as &dyn ToSql, g.sender, g.text, g.time, &created, &g.members]).collect();
        insert_rows(tx, "INSERT OR REPLACE INTO groups (id, sender, text, time, created, members) VALUES ", &groups)?;
        let ids: Vec<[&dyn ToSql; 3]> =
            self.ids.iter().map(|(remote, room, group)| [remote as &dyn ToSql, &self.rooms[room], group]).collect();
        insert_rows(tx, "INSERT OR REPLACE INTO ids (remote, room, grp) VALUES ", &ids)
    }
}

/// Runs `head` followed by a row of placeholders for each of `rows`, in statements of 32, 16, 8, 4, 2 or 1 rows (a
/// few statement texts, each prepared once and cached).
fn insert_rows<const N: usize>(tx: &Transaction<'_>, head: &str, rows: &[[&dyn ToSql; N]]) -> rusqlite::Result<()> {
    let mut left = rows;
    while !left.is_empty() {
        let take = [32, 16, 8, 4, 2, 1].into_iter().find(|&n| n <= left.len()).unwrap_or(1);
        let (chunk, rest) = left.split_at(take);
        let row = format!("({})", vec!["?"; N].join(", "));
        let sql = format!("{head}{}", vec![row.as_str(); take].join(", "));
        tx.prepare_cached(&sql)?.execute(params_from_iter(chunk.iter().flatten()))?;
        left = rest;
    }
    Ok(())
}

/// One member's line, with its newline.
pub(super) fn line(room: &str, ours: bool, ids: &[RemoteId]) -> String {
    let mut line = serde_json::to_string(&(room, ours, ids)).expect("strings and a bool are always JSON");
    line.push('\n');
    line
}

/// A member's line read: (room, ours, ids); `None` for a line that cannot be read.
type Line = Option<(String, bool, Vec<String>)>;

/// The lines of a group's `members`.
fn lines(text: &str) -> impl Iterator<Item = Line> + '_ {
    text.lines().filter(|l| !l.is_empty()).map(|l| serde_json::from_str(l).ok())
}

/// The members group `grp`'s `text` names, in the order they were written, a room's lines (of the same `ours`) as
/// one member. An id `ids` gives to another group is left out; a line that cannot be read is logged and skipped.
pub(super) fn read(db: &Connection, grp: i64, text: &str) -> rusqlite::Result<Vec<StoredMember>> {
    let mut owner = db.prepare_cached("SELECT grp FROM ids WHERE remote = ?1 AND room = ?2")?;
    let mut members: Vec<StoredMember> = Vec::new();
    for line in lines(text) {
        let Some((room_text, ours, ids)) = line else {
            warn!(group = grp, "A member of a stored id-map group cannot be read; it is left out.");
            continue;
        };
        let Ok(room) = room_text.parse::<RoomAddr>() else {
            warn!(group = grp, room = %room_text, "A member of a stored id-map group names no room; it is left out.");
            continue;
        };
        let mut kept = Vec::with_capacity(ids.len());
        for id in ids {
            let found: Option<i64> = owner.query_row(params![id, room_text], |row| row.get(0)).optional()?;
            if found == Some(grp) {
                kept.push(id);
            }
        }
        if kept.is_empty() {
            continue;
        }
        match members.iter_mut().find(|m| m.room == room && m.ours == ours) {
            Some(member) => member.ids.extend(kept),
            None => members.push(StoredMember { room, ids: kept, ours }),
        }
    }
    Ok(members)
}

/// Deletes the `ids` rows of the groups up to `last` (those that still name them), then the groups, a thousand at a
/// time so that a long-idle database's first prune does not hold every expired group in memory at once.
pub(super) fn prune(db: &Connection, last: i64) -> rusqlite::Result<usize> {
    let mut pruned = 0;
    loop {
        let chunk: Vec<(i64, String)> = {
            let mut query =
                db.prepare_cached("SELECT id, members FROM groups WHERE id <= ?1 ORDER BY id LIMIT 1000")?;
            query.query_map(params![last], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<rusqlite::Result<_>>()?
        };
        let Some(&(through, _)) = chunk.last() else { return Ok(pruned) };
        let mut delete = db.prepare_cached("DELETE FROM ids WHERE remote = ?1 AND room = ?2 AND grp = ?3")?;
        for (grp, text) in &chunk {
            let mut unread = false;
            for line in lines(text) {
                let Some((room, _, ids)) = line else {
                    unread = true;
                    continue;
                };
                for id in ids {
                    delete.execute(params![id, room, grp])?;
                }
            }
            if unread {
                // Its ids cannot be named: found by a scan of the table instead, so that none is left behind.
                let removed = db.execute("DELETE FROM ids WHERE grp = ?1", params![grp])?;
                warn!(
                    group = grp,
                    ids = removed,
                    "A pruned id-map group had a member that cannot be read; its ids were found by a scan."
                );
            }
        }
        pruned += db.execute("DELETE FROM groups WHERE id <= ?1", params![through])?;
    }
}

#[cfg(test)]
mod tests;
