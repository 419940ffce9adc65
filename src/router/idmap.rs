//! The id map: every copy of one message, grouped. A lookup by any member finds the whole group, so an
//! edit, recall or reply of a copy finds the original and every other copy. In memory and bounded (an LRU
//! of groups) until the store replaces it; [`IdStore`] is the interface the store implements.

use std::num::NonZeroUsize;

use lru::LruCache;

mod group;
use group::Group;

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
    fn new_group(&mut self, origin: Option<(&RoomAddr, &RemoteId)>, snippet: &Snippet) -> GroupId;
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

/// The seed of the index's hashes of ids: one per process, so that no one can choose ids that collide.
static ID_HASH: std::sync::LazyLock<foldhash::fast::RandomState> = std::sync::LazyLock::new(Default::default);

fn hash_of(id: &str) -> u64 {
    use std::hash::BuildHasher;
    ID_HASH.hash_one(id)
}

/// The in-memory id map: an LRU of groups (each packed, [`group::Group`]) plus an index from room and id to group.
/// Rooms are few and every group names its members' rooms: they are kept once, and a group holds each room's place
/// among them. The index holds each id's hash, not the id (which the group has): a look-up checks the group it finds
/// has the id, so two ids of one room whose 64-bit hashes collide (randomly seeded) cost the older one its entry in
/// memory (with the store, a look-up that misses memory reads it from there), never a wrong answer.
pub struct MemoryIdMap {
    groups: LruCache<GroupId, Group>,
    rooms: Vec<RoomAddr>,
    /// Each room's place in `rooms`, and its ids' groups.
    index: Map<RoomAddr, (u32, Map<u64, GroupId>)>,
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
    fn room_entry(&mut self, room: &RoomAddr) -> &mut (u32, Map<u64, GroupId>) {
        if !self.index.contains_key(room) {
            let place = u32::try_from(self.rooms.len()).expect("fewer than 2^32 rooms");
            self.rooms.push(room.clone());
            self.index.insert(room.clone(), (place, Map::default()));
        }
        self.index.get_mut(room).expect("just inserted")
    }

    /// Adds `ids` to the member in `room` (ours or the original) of a group in memory, and to the index.
    fn record(&mut self, group: GroupId, room: &RoomAddr, ids: &[RemoteId], ours: bool, pending: bool) {
        if !self.groups.contains(&group) {
            return;
        }
        let (place, index) = self.room_entry(room);
        let place = *place;
        for id in ids {
            index.insert(hash_of(id.as_str()), group);
        }
        self.groups.get_mut(&group).expect("checked above").add(place, ours, pending, ids);
    }

    /// Adds a group, evicting the least recently used one (and its index entries) when full.
    fn insert(&mut self, id: GroupId, group: Group) {
        if let Some((old, evicted)) = self.groups.push(id, group)
            && old != id
        {
            for (room, remote) in evicted.ids() {
                let Some((_, ids)) = self.index.get_mut(&self.rooms[room as usize]) else { continue };
                let hash = hash_of(remote);
                if ids.get(&hash) == Some(&old) {
                    ids.remove(&hash);
                }
            }
        }
    }

    /// The group of `id` in `room` and the room's place, when memory has it.
    fn find(&mut self, room: &RoomAddr, id: &RemoteId) -> Option<(GroupId, u32)> {
        let (place, ids) = self.index.get(room)?;
        let (place, group) = (*place, *ids.get(&hash_of(id.as_str()))?);
        self.groups.get(&group)?.has(place, id.as_str()).then_some((group, place))
    }
}

impl IdStore for MemoryIdMap {
    fn new_group(&mut self, origin: Option<(&RoomAddr, &RemoteId)>, snippet: &Snippet) -> GroupId {
        let id = GroupId(self.next);
        self.next += 1;
        let origin = origin.map(|(room, remote)| {
            let (place, index) = self.room_entry(room);
            index.insert(hash_of(remote.as_str()), id);
            (*place, remote)
        });
        self.insert(id, Group::new(snippet, origin));
        id
    }

    fn add_pending(&mut self, group: GroupId, room: &RoomAddr, ids: &[RemoteId]) {
        self.record(group, room, ids, true, true);
    }

    fn add_copy(&mut self, group: GroupId, room: &RoomAddr, ids: &[RemoteId]) {
        self.record(group, room, ids, true, false);
    }

    fn group_of(&mut self, room: &RoomAddr, id: &RemoteId) -> Option<GroupId> {
        self.find(room, id).map(|(group, _)| group)
    }

    fn knows(&mut self, room: &RoomAddr, id: &RemoteId) -> bool {
        self.find(room, id).is_some()
    }

    fn is_ours(&mut self, room: &RoomAddr, id: &RemoteId) -> bool {
        let Some((group, place)) = self.find(room, id) else { return false };
        self.groups.get(&group).is_some_and(|g| g.is_ours(place, id.as_str()))
    }

    fn ids_in(&mut self, group: GroupId, room: &RoomAddr) -> Option<Vec<RemoteId>> {
        let place = self.index.get(room)?.0;
        self.groups.get(&group)?.ids_in(place)
    }

    fn snippet(&mut self, group: GroupId) -> Option<Snippet> {
        self.groups.get(&group).map(Group::snippet)
    }

    fn restore(&mut self, group: GroupId, snippet: Snippet, members: Vec<(RoomAddr, Vec<RemoteId>, bool)>) {
        let mut restored = Group::new(&snippet, None);
        for (room, ids, ours) in members {
            let (place, index) = self.room_entry(&room);
            for id in &ids {
                index.insert(hash_of(id.as_str()), group);
            }
            restored.add(*place, ours, false, &ids);
        }
        // What only memory knows (merges) survives a group read again from the store.
        restored.merges = self.groups.pop(&group).and_then(|g| g.merges);
        self.insert(group, restored);
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
        let g = map.new_group(Some((&room("a"), &id("m1"))), &Snippet::default());
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
        let g = map.new_group(Some((&room("a"), &id("m1"))), &Snippet::default());
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
        assert_eq!(map.new_group(None, &Snippet::default()), GroupId(42));
    }

    #[test]
    fn confirmed_ids_keep_the_order_they_came_in_whichever_were_chosen_before() {
        let mut map = MemoryIdMap::new(10);
        let g = map.new_group(Some((&room("a"), &id("m1"))), &Snippet::default());
        map.add_pending(g, &room("b"), &[id("c1"), id("c2")]);
        map.add_copy(g, &room("b"), &[id("c2"), id("c1"), id("s3")]);
        assert_eq!(map.ids_in(g, &room("b")), Some(vec![id("c2"), id("c1"), id("s3")]));
        map.add_copy(g, &room("b"), &[id("c2")]);
        assert_eq!(
            map.ids_in(g, &room("b")),
            Some(vec![id("c2"), id("c1"), id("s3")]),
            "known ids are not added again"
        );
        assert!(["c1", "c2", "s3"].iter().all(|i| map.is_ours(&room("b"), &id(i))));
        let h = map.new_group(None, &Snippet::default());
        map.add_pending(h, &room("b"), &[id("d1")]);
        map.add_copy(h, &room("b"), &[id("t0"), id("d1")]);
        assert_eq!(map.ids_in(h, &room("b")), Some(vec![id("t0"), id("d1")]));
        assert_eq!(map.snippet(g), Some(Snippet::default()));
    }

    #[test]
    fn an_index_entry_naming_a_group_without_the_id_is_no_answer() {
        let mut map = MemoryIdMap::new(10);
        let snippet = Snippet { sender: Some("ann".into()), text: "hi".into(), time: Time(7) };
        map.new_group(Some((&room("a"), &id("m1"))), &snippet);
        let other = map.new_group(Some((&room("a"), &id("m2"))), &Snippet::default());
        // What a collision of two ids' hashes would leave: m1's entry naming m2's group.
        map.index.get_mut(&room("a")).unwrap().1.insert(hash_of("m1"), other);
        assert_eq!(map.group_of(&room("a"), &id("m1")), None);
        assert!(!map.knows(&room("a"), &id("m1")) && !map.is_ours(&room("a"), &id("m1")));
        assert_eq!(map.group_of(&room("a"), &id("m2")), Some(other));
        assert_eq!(map.snippet(GroupId(0)), Some(snippet), "the sender and text come back apart");
    }

    #[test]
    fn oldest_groups_are_evicted_with_their_index() {
        let mut map = MemoryIdMap::new(2);
        let first = map.new_group(Some((&room("a"), &id("1"))), &Snippet::default());
        map.new_group(Some((&room("a"), &id("2"))), &Snippet::default());
        map.new_group(Some((&room("a"), &id("3"))), &Snippet::default());
        assert_eq!(map.len(), 2);
        assert_eq!(map.group_of(&room("a"), &id("1")), None);
        assert!(map.snippet(first).is_none());
        assert!(map.group_of(&room("a"), &id("3")).is_some());
        assert_eq!(map.index.values().map(|(_, ids)| ids.len()).sum::<usize>(), 2, "evicted ids leave the index");
    }
}
