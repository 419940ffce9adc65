//! The id map: every copy of one message, grouped. A lookup by any member finds the whole group, so an
//! edit, recall or reply of a copy finds the original and every other copy. In memory and bounded (an LRU
//! of groups) until the store replaces it; [`IdStore`] is the interface the store implements.

use std::num::NonZeroUsize;

use lru::LruCache;

use crate::model::{RemoteId, RoomAddr, Time};
use crate::router::Map;

/// One message and its copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub u64);

/// What a reply needs when its quoted message cannot be referenced natively.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Snippet {
    pub sender: Option<String>,
    pub text: String,
    pub time: Time,
}

/// What a merged copy says, line by line: a recall or an edit of one of its messages edits the copy to match.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MergedLines {
    /// The copy's sender field (the bridge's name), where the platform has one.
    pub sender: Option<String>,
    /// Each message's group and its line as it stands now (`None` once the message is recalled).
    pub lines: Vec<(GroupId, Option<String>)>,
}

impl MergedLines {
    /// The copy's text now: the lines still standing.
    pub fn text(&self) -> String {
        self.lines.iter().filter_map(|(_, line)| line.as_deref()).collect::<Vec<_>>().join("\n")
    }
}

/// The operations the router and the destination queues need from the id map.
pub trait IdStore: Send {
    /// A new group for a message seen in `origin` (with its id, when the platform gives one).
    fn new_group(&mut self, origin: Option<(&RoomAddr, &RemoteId)>, snippet: Snippet) -> GroupId;
    /// Registers the client-chosen ids of a copy about to be sent: from now on they are ours (the loop
    /// guard), though edits, recalls and replies wait for the confirmed ids.
    fn add_pending(&mut self, group: GroupId, room: &RoomAddr, ids: &[RemoteId]);
    /// Records the confirmed ids of our copy in `room` (the parts of a split message, in order).
    fn add_copy(&mut self, group: GroupId, room: &RoomAddr, ids: &[RemoteId]);
    /// The group a message id belongs to (read from the store when it is no longer in memory).
    fn group_of(&mut self, room: &RoomAddr, id: &RemoteId) -> Option<GroupId>;
    /// Whether a message id is known in memory (the duplicate check of live messages: never a disk read).
    fn knows(&mut self, room: &RoomAddr, id: &RemoteId) -> bool;
    /// Whether an id is one we sent or are sending (the loop guard).
    fn is_ours(&mut self, room: &RoomAddr, id: &RemoteId) -> bool;
    /// The confirmed ids of a group's member in `room`: our copy's parts, or the original.
    fn ids_in(&mut self, group: GroupId, room: &RoomAddr) -> Option<Vec<RemoteId>>;
    fn snippet(&mut self, group: GroupId) -> Option<Snippet>;
    /// Puts back a group the store kept: its members as `(room, ids, ours)`.
    fn restore(&mut self, group: GroupId, snippet: Snippet, members: Vec<(RoomAddr, Vec<RemoteId>, bool)>);
    /// New groups get ids after `last` (the highest the store has seen).
    fn continue_after(&mut self, last: GroupId);
    /// `group`'s message went to `room` merged into the copy of group `merged` (coalescing): a reply to it there
    /// points at that copy. Kept in memory only.
    fn merged_into(&mut self, group: GroupId, room: &RoomAddr, merged: GroupId);
    /// The group whose copy in `room` carries `group`'s message merged with others.
    fn merged_copy(&mut self, group: GroupId, room: &RoomAddr) -> Option<GroupId>;
    /// The lines of the merged copy of group `merged` (kept in memory only, as `merged_into`).
    fn merged_lines(&mut self, merged: GroupId) -> Option<&mut MergedLines>;
    fn set_merged_lines(&mut self, merged: GroupId, lines: MergedLines);
}

#[derive(Debug)]
struct Member {
    room: RoomAddr,
    /// Confirmed ids (the parts, in order).
    ids: Vec<RemoteId>,
    /// Client-chosen ids registered before the send.
    pending: Vec<RemoteId>,
    ours: bool,
}

#[derive(Debug)]
struct Group {
    members: Vec<Member>,
    snippet: Snippet,
    /// Rooms where the message went merged into another group's copy.
    merged: Vec<(RoomAddr, GroupId)>,
    /// For a merged copy: what it says, line by line.
    lines: Option<Box<MergedLines>>,
}

/// The in-memory id map: an LRU of groups plus an index from room and id to group (nested, so a
/// lookup borrows its key instead of cloning it).
pub struct MemoryIdMap {
    groups: LruCache<GroupId, Group>,
    index: Map<RoomAddr, Map<RemoteId, GroupId>>,
    next: u64,
}

impl MemoryIdMap {
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).expect("capacity is at least 1");
        Self { groups: LruCache::new(capacity), index: Map::default(), next: 0 }
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    fn record(&mut self, group: GroupId, room: &RoomAddr, ids: &[RemoteId], pending: bool) {
        let Some(entry) = self.groups.get_mut(&group) else { return };
        let member = match entry.members.iter().position(|m| &m.room == room && m.ours) {
            Some(i) => &mut entry.members[i],
            None => {
                let member = Member { room: room.clone(), ids: Vec::new(), pending: Vec::new(), ours: true };
                entry.members.push(member);
                entry.members.last_mut().expect("just pushed")
            }
        };
        let list = if pending { &mut member.pending } else { &mut member.ids };
        // Most copies are one message: room for exactly what comes (a first push would make room for four).
        list.reserve_exact(ids.len());
        for id in ids {
            if !list.contains(id) {
                list.push(id.clone());
            }
            self.index.entry(room.clone()).or_default().insert(id.clone(), group);
        }
    }

    /// Adds a group, evicting the least recently used one (and its index entries) when full.
    fn insert(&mut self, id: GroupId, group: Group) {
        if let Some((old, evicted)) = self.groups.push(id, group)
            && old != id
        {
            for member in evicted.members {
                for remote in member.ids.into_iter().chain(member.pending) {
                    let Some(ids) = self.index.get_mut(&member.room) else { continue };
                    if ids.get(&remote) == Some(&old) {
                        ids.remove(&remote);
                    }
                }
            }
        }
    }

    fn member(&mut self, group: GroupId, room: &RoomAddr) -> Option<&Member> {
        self.groups.get(&group)?.members.iter().find(|m| &m.room == room)
    }
}

impl IdStore for MemoryIdMap {
    fn new_group(&mut self, origin: Option<(&RoomAddr, &RemoteId)>, snippet: Snippet) -> GroupId {
        let id = GroupId(self.next);
        self.next += 1;
        // The origin and, most often, one destination (a first push would make room for four).
        let mut members = Vec::with_capacity(2);
        if let Some((room, remote)) = origin {
            members.push(Member { room: room.clone(), ids: vec![remote.clone()], pending: Vec::new(), ours: false });
            self.index.entry(room.clone()).or_default().insert(remote.clone(), id);
        }
        self.insert(id, Group { members, snippet, merged: Vec::new(), lines: None });
        id
    }

    fn add_pending(&mut self, group: GroupId, room: &RoomAddr, ids: &[RemoteId]) {
        self.record(group, room, ids, true);
    }

    fn add_copy(&mut self, group: GroupId, room: &RoomAddr, ids: &[RemoteId]) {
        self.record(group, room, ids, false);
    }

    fn group_of(&mut self, room: &RoomAddr, id: &RemoteId) -> Option<GroupId> {
        let group = *self.index.get(room)?.get(id)?;
        self.groups.get(&group).map(|_| group)
    }

    fn knows(&mut self, room: &RoomAddr, id: &RemoteId) -> bool {
        self.group_of(room, id).is_some()
    }

    fn is_ours(&mut self, room: &RoomAddr, id: &RemoteId) -> bool {
        let Some(group) = self.group_of(room, id) else { return false };
        self.member(group, room).is_some_and(|m| m.ours && (m.ids.contains(id) || m.pending.contains(id)))
    }

    fn ids_in(&mut self, group: GroupId, room: &RoomAddr) -> Option<Vec<RemoteId>> {
        self.member(group, room).map(|m| m.ids.clone())
    }

    fn snippet(&mut self, group: GroupId) -> Option<Snippet> {
        self.groups.get(&group).map(|g| g.snippet.clone())
    }

    fn restore(&mut self, group: GroupId, snippet: Snippet, members: Vec<(RoomAddr, Vec<RemoteId>, bool)>) {
        let mut restored = Vec::with_capacity(members.len());
        for (room, ids, ours) in members {
            for id in &ids {
                self.index.entry(room.clone()).or_default().insert(id.clone(), group);
            }
            restored.push(Member { room, ids, pending: Vec::new(), ours });
        }
        // What only memory knows (merges) survives a group read again from the store.
        let (merged, lines) = self.groups.pop(&group).map(|g| (g.merged, g.lines)).unwrap_or_default();
        self.insert(group, Group { members: restored, snippet, merged, lines });
    }

    fn continue_after(&mut self, last: GroupId) {
        self.next = self.next.max(last.0 + 1);
    }

    fn merged_into(&mut self, group: GroupId, room: &RoomAddr, merged: GroupId) {
        if let Some(entry) = self.groups.peek_mut(&group) {
            entry.merged.push((room.clone(), merged));
        }
    }

    fn merged_copy(&mut self, group: GroupId, room: &RoomAddr) -> Option<GroupId> {
        self.groups.get(&group)?.merged.iter().find(|(r, _)| r == room).map(|(_, m)| *m)
    }

    fn merged_lines(&mut self, merged: GroupId) -> Option<&mut MergedLines> {
        self.groups.get_mut(&merged)?.lines.as_deref_mut()
    }

    fn set_merged_lines(&mut self, merged: GroupId, lines: MergedLines) {
        if let Some(entry) = self.groups.peek_mut(&merged) {
            entry.lines = Some(Box::new(lines));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, Platform, RoomId};

    fn room(name: &str) -> RoomAddr {
        RoomAddr::new(AccountId::new(Platform::Fishroom, "t"), RoomId::new(name))
    }

    fn id(s: &str) -> RemoteId {
        RemoteId::new(s)
    }

    #[test]
    fn any_member_finds_the_whole_group_parts_included() {
        let mut map = MemoryIdMap::new(10);
        let g = map.new_group(Some((&room("a"), &id("m1"))), Snippet::default());
        map.add_copy(g, &room("b"), &[id("p1"), id("p2"), id("p3")]);
        map.add_copy(g, &room("c"), &[id("c1")]);
        for (r, i) in [("a", "m1"), ("b", "p2"), ("c", "c1")] {
            assert_eq!(map.group_of(&room(r), &id(i)), Some(g));
        }
        assert_eq!(map.ids_in(g, &room("b")), Some(vec![id("p1"), id("p2"), id("p3")]));
        assert_eq!(map.ids_in(g, &room("a")), Some(vec![id("m1")]));
        assert!(map.is_ours(&room("b"), &id("p3")));
        assert!(!map.is_ours(&room("a"), &id("m1")), "the original is not ours");
        assert!(!map.is_ours(&room("b"), &id("m1")), "ids are per room");
    }

    #[test]
    fn pending_ids_are_ours_but_only_confirmed_ids_are_copies() {
        let mut map = MemoryIdMap::new(10);
        let g = map.new_group(Some((&room("a"), &id("m1"))), Snippet::default());
        map.add_pending(g, &room("b"), &[id("c1")]);
        assert!(map.is_ours(&room("b"), &id("c1")));
        assert_eq!(map.ids_in(g, &room("b")), Some(vec![]));
        map.add_copy(g, &room("b"), &[id("s1")]);
        assert_eq!(map.ids_in(g, &room("b")), Some(vec![id("s1")]));
        assert!(map.is_ours(&room("b"), &id("c1")) && map.is_ours(&room("b"), &id("s1")));
    }

    #[test]
    fn restored_groups_work_as_before_and_new_ones_continue_after_them() {
        let mut map = MemoryIdMap::new(10);
        let members = vec![(room("a"), vec![id("m1")], false), (room("b"), vec![id("p1"), id("p2")], true)];
        map.restore(GroupId(41), Snippet { text: "hi".into(), ..Snippet::default() }, members);
        map.continue_after(GroupId(41));
        assert_eq!(map.group_of(&room("b"), &id("p2")), Some(GroupId(41)));
        assert_eq!(map.ids_in(GroupId(41), &room("b")), Some(vec![id("p1"), id("p2")]));
        assert!(map.is_ours(&room("b"), &id("p1")) && !map.is_ours(&room("a"), &id("m1")));
        assert_eq!(map.snippet(GroupId(41)).unwrap().text, "hi");
        assert_eq!(map.new_group(None, Snippet::default()), GroupId(42));
    }

    #[test]
    fn oldest_groups_are_evicted_with_their_index() {
        let mut map = MemoryIdMap::new(2);
        let first = map.new_group(Some((&room("a"), &id("1"))), Snippet::default());
        map.new_group(Some((&room("a"), &id("2"))), Snippet::default());
        map.new_group(Some((&room("a"), &id("3"))), Snippet::default());
        assert_eq!(map.len(), 2);
        assert_eq!(map.group_of(&room("a"), &id("1")), None);
        assert!(map.snippet(first).is_none());
        assert!(map.group_of(&room("a"), &id("3")).is_some());
        assert_eq!(map.index.values().map(Map::len).sum::<usize>(), 2, "evicted ids leave the index");
    }
}
