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

/// A member's ids: most copies are one message, kept without an allocation of their own.
#[derive(Debug, Default)]
enum Ids {
    #[default]
    None,
    One(RemoteId),
    Many(Vec<RemoteId>),
}

impl Ids {
    fn as_slice(&self) -> &[RemoteId] {
        match self {
            Ids::None => &[],
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(ids) => ids,
        }
    }

    fn contains(&self, id: &RemoteId) -> bool {
        self.as_slice().contains(id)
    }

    /// Adds `id` after the others, unless it is one of them.
    fn push(&mut self, id: &RemoteId) {
        *self = match std::mem::take(self) {
            Ids::None => Ids::One(id.clone()),
            Ids::One(first) if &first == id => Ids::One(first),
            Ids::One(first) => Ids::Many(vec![first, id.clone()]),
            Ids::Many(mut ids) => {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
                Ids::Many(ids)
            }
        };
    }

    fn from_vec(mut ids: Vec<RemoteId>) -> Self {
        match ids.len() {
            0 => Ids::None,
            1 => Ids::One(ids.pop().expect("one")),
            _ => Ids::Many(ids),
        }
    }
}

#[derive(Debug)]
struct Member {
    /// The room, as its place in [`MemoryIdMap::rooms`].
    room: u32,
    ours: bool,
    /// Confirmed ids (the parts, in order).
    ids: Ids,
    /// Client-chosen ids registered before the send.
    pending: Ids,
}

#[derive(Debug)]
struct Group {
    members: Vec<Member>,
    snippet: Snippet,
    /// What only coalescing gives a group (most have none).
    merges: Option<Box<Merges>>,
}

#[derive(Debug, Default)]
struct Merges {
    /// Rooms where the message went merged into another group's copy.
    merged: Vec<(RoomAddr, GroupId)>,
    /// For a merged copy: what it says, line by line.
    lines: Option<MergedLines>,
}

/// The in-memory id map: an LRU of groups plus an index from room and id to group (nested, so a lookup borrows its
/// key instead of cloning it). Rooms are few and a group names each of its members' rooms: they are kept once,
/// and a member holds its room's place among them.
pub struct MemoryIdMap {
    groups: LruCache<GroupId, Group>,
    rooms: Vec<RoomAddr>,
    /// Each room's place in `rooms`, and its ids' groups.
    index: Map<RoomAddr, (u32, Map<RemoteId, GroupId>)>,
    next: u64,
}

impl MemoryIdMap {
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).expect("capacity is at least 1");
        Self { groups: LruCache::new(capacity), rooms: Vec::new(), index: Map::default(), next: 0 }
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// `room`'s place in `rooms` (given one when new) and its ids' groups.
    fn room_entry(&mut self, room: &RoomAddr) -> &mut (u32, Map<RemoteId, GroupId>) {
        if !self.index.contains_key(room) {
            let place = u32::try_from(self.rooms.len()).expect("fewer than 2^32 rooms");
            self.rooms.push(room.clone());
            self.index.insert(room.clone(), (place, Map::default()));
        }
        self.index.get_mut(room).expect("just inserted")
    }

    /// `room`'s place in `rooms`, when it has one.
    fn place(&self, room: &RoomAddr) -> Option<u32> {
        self.index.get(room).map(|(place, _)| *place)
    }

    fn record(&mut self, group: GroupId, room: &RoomAddr, ids: &[RemoteId], pending: bool) {
        if !self.groups.contains(&group) {
            return;
        }
        let (place, index) = self.room_entry(room);
        let place = *place;
        for id in ids {
            index.insert(id.clone(), group);
        }
        let entry = self.groups.get_mut(&group).expect("checked above");
        let member = match entry.members.iter().position(|m| m.room == place && m.ours) {
            Some(i) => &mut entry.members[i],
            None => {
                let member = Member { room: place, ours: true, ids: Ids::None, pending: Ids::None };
                entry.members.push(member);
                entry.members.last_mut().expect("just pushed")
            }
        };
        let list = if pending { &mut member.pending } else { &mut member.ids };
        for id in ids {
            list.push(id);
        }
    }

    /// Adds a group, evicting the least recently used one (and its index entries) when full.
    fn insert(&mut self, id: GroupId, group: Group) {
        if let Some((old, evicted)) = self.groups.push(id, group)
            && old != id
        {
            for member in evicted.members {
                let Some((_, ids)) = self.index.get_mut(&self.rooms[member.room as usize]) else { continue };
                for remote in member.ids.as_slice().iter().chain(member.pending.as_slice()) {
                    if ids.get(remote) == Some(&old) {
                        ids.remove(remote);
                    }
                }
            }
        }
    }

    fn member(&mut self, group: GroupId, room: &RoomAddr) -> Option<&Member> {
        let place = self.place(room)?;
        self.groups.get(&group)?.members.iter().find(|m| m.room == place)
    }
}

impl IdStore for MemoryIdMap {
    fn new_group(&mut self, origin: Option<(&RoomAddr, &RemoteId)>, snippet: Snippet) -> GroupId {
        let id = GroupId(self.next);
        self.next += 1;
        // The origin and, most often, one destination (a first push would make room for four).
        let mut members = Vec::with_capacity(2);
        if let Some((room, remote)) = origin {
            let (place, index) = self.room_entry(room);
            index.insert(remote.clone(), id);
            members.push(Member { room: *place, ours: false, ids: Ids::One(remote.clone()), pending: Ids::None });
        }
        self.insert(id, Group { members, snippet, merges: None });
        id
    }

    fn add_pending(&mut self, group: GroupId, room: &RoomAddr, ids: &[RemoteId]) {
        self.record(group, room, ids, true);
    }

    fn add_copy(&mut self, group: GroupId, room: &RoomAddr, ids: &[RemoteId]) {
        self.record(group, room, ids, false);
    }

    fn group_of(&mut self, room: &RoomAddr, id: &RemoteId) -> Option<GroupId> {
        let group = *self.index.get(room)?.1.get(id)?;
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
        self.member(group, room).map(|m| m.ids.as_slice().to_vec())
    }

    fn snippet(&mut self, group: GroupId) -> Option<Snippet> {
        self.groups.get(&group).map(|g| g.snippet.clone())
    }

    fn restore(&mut self, group: GroupId, snippet: Snippet, members: Vec<(RoomAddr, Vec<RemoteId>, bool)>) {
        let mut restored = Vec::with_capacity(members.len());
        for (room, ids, ours) in members {
            let (place, index) = self.room_entry(&room);
            for id in &ids {
                index.insert(id.clone(), group);
            }
            restored.push(Member { room: *place, ours, ids: Ids::from_vec(ids), pending: Ids::None });
        }
        // What only memory knows (merges) survives a group read again from the store.
        let merges = self.groups.pop(&group).and_then(|g| g.merges);
        self.insert(group, Group { members: restored, snippet, merges });
    }

    fn continue_after(&mut self, last: GroupId) {
        self.next = self.next.max(last.0 + 1);
    }

    fn merged_into(&mut self, group: GroupId, room: &RoomAddr, merged: GroupId) {
        if let Some(entry) = self.groups.peek_mut(&group) {
            entry.merges.get_or_insert_default().merged.push((room.clone(), merged));
        }
    }

    fn merged_copy(&mut self, group: GroupId, room: &RoomAddr) -> Option<GroupId> {
        let merges = self.groups.get(&group)?.merges.as_deref()?;
        merges.merged.iter().find(|(r, _)| r == room).map(|(_, m)| *m)
    }

    fn merged_lines(&mut self, merged: GroupId) -> Option<&mut MergedLines> {
        self.groups.get_mut(&merged)?.merges.as_deref_mut()?.lines.as_mut()
    }

    fn set_merged_lines(&mut self, merged: GroupId, lines: MergedLines) {
        if let Some(entry) = self.groups.peek_mut(&merged) {
            entry.merges.get_or_insert_default().lines = Some(lines);
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
        assert_eq!(map.index.values().map(|(_, ids)| ids.len()).sum::<usize>(), 2, "evicted ids leave the index");
    }
}
