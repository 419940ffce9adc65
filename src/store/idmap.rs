//! The id map with the store behind it: the most recent groups in memory (the router's `MemoryIdMap`, sized by
//! `id_map_capacity`), every group on disk (written through by the router). A lookup by id that misses memory
//! reads the group from the database and keeps it in memory again, so an edit, recall or reply reaches every
//! message of the last `id_map_max_age`, while memory holds only the recent ones.
//!
//! The read is a point lookup by primary key on a read-only connection of its own, done on the router's task:
//! it happens only for edits, recalls and replies of messages no longer in memory, and for gap-filled messages
//! (is this one relayed already?) — never for live messages, whose duplicate check and loop guard stay in memory.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tracing::warn;

use crate::model::{RemoteId, RoomAddr, Time};
use crate::router::idmap::{GroupId, IdStore, MemoryIdMap, MergedLines, Snippet};

/// A group as a store reads it: its id, snippet and members `(room, ids, ours)`.
pub type Found = (GroupId, Snippet, Members);

/// How a store reads one group by a member's id (SQLite: a page read; PostgreSQL: one round trip).
pub trait GroupRead: Send {
    fn read(&self, room: &RoomAddr, id: &RemoteId) -> Result<Option<Found>, String>;
    /// A group by its id.
    fn read_group(&self, group: GroupId) -> Result<Option<Found>, String>;
}

pub struct DurableIdMap {
    cache: MemoryIdMap,
    reader: Box<dyn GroupRead>,
}

impl DurableIdMap {
    /// An id map whose misses `reader` reads.
    pub fn new(reader: Box<dyn GroupRead>, capacity: usize) -> Self {
        Self { cache: MemoryIdMap::new(capacity), reader }
    }

    /// Opens the SQLite store's database (already created and migrated by [`super::Store::open`]) for reading.
    pub fn open(dir: &Path, capacity: usize) -> Result<Self, super::StoreError> {
        Ok(Self::new(Box::new(SqliteReader::open(dir)?), capacity))
    }
}

/// Reads groups from the SQLite database, on a read-only connection of its own.
struct SqliteReader {
    db: Connection,
}

impl SqliteReader {
    fn open(dir: &Path) -> Result<Self, super::StoreError> {
        let path = dir.join(super::FILE_NAME);
        let open = |source| super::StoreError::Open { path: path.clone(), source };
        let db = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(open)?;
        db.busy_timeout(std::time::Duration::from_secs(1)).map_err(open)?;
        // Point lookups of old groups: a small page cache does.
        db.pragma_update(None, "cache_size", -256).map_err(open)?;
        Ok(Self { db })
    }

    /// The group of `id` in `room` as the database has it, with its members.
    fn read(&self, room: &RoomAddr, id: &RemoteId) -> rusqlite::Result<Option<(GroupId, Snippet, Members)>> {
        let group: Option<i64> = self
            .db
            .prepare_cached("SELECT grp FROM ids WHERE remote = ?1 AND room = ?2")?
            .query_row(params![id.as_str(), room.to_string()], |row| row.get(0))
            .optional()?;
        let Some(group) = group else { return Ok(None) };
        self.group(group)
    }

    /// A group and its members, by id.
    fn group(&self, group: i64) -> rusqlite::Result<Option<(GroupId, Snippet, Members)>> {
        let row = self
            .db
            .prepare_cached("SELECT sender, text, time, members FROM groups WHERE id = ?1")?
            .query_row(params![group], |row| {
                Ok((
                    Snippet { sender: row.get(0)?, text: row.get(1)?, time: Time(row.get(2)?) },
                    row.get::<_, String>(3)?,
                ))
            })
            .optional()?;
        let Some((snippet, members)) = row else { return Ok(None) };
        let members = super::members::read(&self.db, group, &members)?
            .into_iter()
            .map(|m| (m.room, m.ids.into_iter().map(RemoteId::new).collect(), m.ours))
            .collect();
        Ok(Some((GroupId(group as u64), snippet, members)))
    }
}

impl GroupRead for SqliteReader {
    fn read(&self, room: &RoomAddr, id: &RemoteId) -> Result<Option<Found>, String> {
        SqliteReader::read(self, room, id).map_err(|e| e.to_string())
    }

    fn read_group(&self, group: GroupId) -> Result<Option<Found>, String> {
        self.group(group.0 as i64).map_err(|e| e.to_string())
    }
}

pub type Members = Vec<(RoomAddr, Vec<RemoteId>, bool)>;

impl DurableIdMap {
    /// Reads a group from the store into memory; `None` when the store has no such group.
    fn reread(&mut self, group: GroupId) -> Option<()> {
        match self.reader.read_group(group) {
            Ok(Some((id, snippet, members))) => {
                self.cache.restore(id, snippet, members);
                Some(())
            }
            Ok(None) => None,
            Err(e) => {
                warn!(error = %e, "The id map could not be read from the store; treated as unknown.");
                None
            }
        }
    }
}

impl IdStore for DurableIdMap {
    fn new_group(&mut self, origin: Option<(&RoomAddr, &RemoteId)>, snippet: &Snippet) -> GroupId {
        self.cache.new_group(origin, snippet)
    }

    fn add_pending(&mut self, group: GroupId, room: &RoomAddr, ids: &[RemoteId]) {
        self.cache.add_pending(group, room, ids);
    }

    fn add_copy(&mut self, group: GroupId, room: &RoomAddr, ids: &[RemoteId]) {
        self.cache.add_copy(group, room, ids);
    }

    fn group_of(&mut self, room: &RoomAddr, id: &RemoteId) -> Option<GroupId> {
        if let Some(group) = self.cache.group_of(room, id) {
            return Some(group);
        }
        match self.reader.read(room, id) {
            Ok(Some((group, snippet, members))) => {
                self.cache.restore(group, snippet, members);
                Some(group)
            }
            Ok(None) => None,
            Err(e) => {
                warn!(error = %e, "The id map could not be read from the store; treated as unknown.");
                None
            }
        }
    }

    fn knows(&mut self, room: &RoomAddr, id: &RemoteId) -> bool {
        self.cache.knows(room, id)
    }

    fn is_ours(&mut self, room: &RoomAddr, id: &RemoteId) -> bool {
        self.cache.is_ours(room, id)
    }

    /// From memory; when memory has no copy in `room` (the group was evicted, or the copy was made by another
    /// run or, with a shared store, another instance), the group is read from the store.
    fn ids_in(&mut self, group: GroupId, room: &RoomAddr) -> Option<Vec<RemoteId>> {
        if let Some(ids) = self.cache.ids_in(group, room) {
            return Some(ids);
        }
        self.reread(group)?;
        self.cache.ids_in(group, room)
    }

    fn snippet(&mut self, group: GroupId) -> Option<Snippet> {
        if let Some(snippet) = self.cache.snippet(group) {
            return Some(snippet);
        }
        self.reread(group)?;
        self.cache.snippet(group)
    }

    fn restore(&mut self, group: GroupId, snippet: Snippet, members: Members) {
        self.cache.restore(group, snippet, members);
    }

    fn continue_after(&mut self, last: GroupId) {
        self.cache.continue_after(last);
    }

    fn merged_into(&mut self, group: GroupId, room: &RoomAddr, merged: GroupId) {
        self.cache.merged_into(group, room, merged);
    }

    fn merged_copy(&mut self, group: GroupId, room: &RoomAddr) -> Option<GroupId> {
        self.cache.merged_copy(group, room)
    }

    fn merged_lines(&mut self, merged: GroupId) -> Option<&mut MergedLines> {
        self.cache.merged_lines(merged)
    }

    fn set_merged_lines(&mut self, merged: GroupId, lines: MergedLines) {
        self.cache.set_merged_lines(merged, lines);
    }
}
