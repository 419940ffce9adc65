//! One group of the in-memory id map, packed: its snippet and every member's ids in one string, the members' ids
//! described by a slice of small entries. A group is three allocations however many members it has (its node in the
//! map, the string, the entries), where one allocation an id, a list and a member made about nine. The id map holds
//! thousands of groups for as long as they are recent, allocated between the much larger buffers each message passes
//! through; every allocation of its own that outlives a message pins the memory around it (docs/performance.md,
//! "Memory after a burst").

use crate::model::{RemoteId, RoomAddr, Time};

use super::{GroupId, MergedLines, Snippet};

/// One id of one member: where its text is in the group's string.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The member's room, as its place among the id map's rooms.
    room: u32,
    start: u32,
    len: u32,
    /// Our copy (not the original).
    ours: bool,
    /// Client-chosen before the send, not confirmed.
    pending: bool,
}

#[derive(Debug)]
pub(super) struct Group {
    time: Time,
    /// The sender's name (when there is one), the snippet's text, then the ids, one after another.
    strings: Box<str>,
    sender_end: u32,
    text_end: u32,
    has_sender: bool,
    entries: Box<[Entry]>,
    /// What only coalescing gives a group (most have none).
    pub(super) merges: Option<Box<Merges>>,
}

#[derive(Debug, Default)]
pub(super) struct Merges {
    /// Rooms where the message went merged into another group's copy.
    pub(super) merged: Vec<(RoomAddr, GroupId)>,
    /// For a merged copy: what it says, line by line.
    pub(super) lines: Option<MergedLines>,
}

/// An entry's id in `strings`.
fn slice<'s>(strings: &'s str, entry: &Entry) -> &'s str {
    &strings[entry.start as usize..(entry.start + entry.len) as usize]
}

fn offset(n: usize) -> u32 {
    u32::try_from(n).expect("a group's text is under 4 GiB")
}

impl Group {
    /// A group with its snippet and, when the platform gave the message an id, its original in `origin`'s room.
    pub(super) fn new(snippet: &Snippet, origin: Option<(u32, &RemoteId)>) -> Self {
        let sender = snippet.sender.as_deref().unwrap_or("");
        let id = origin.map_or("", |(_, id)| id.as_str());
        let mut strings = String::with_capacity(sender.len() + snippet.text.len() + id.len());
        strings.push_str(sender);
        strings.push_str(&snippet.text);
        let text_end = offset(strings.len());
        strings.push_str(id);
        let entries =
            origin.map(|(room, _)| Entry { room, start: text_end, len: offset(id.len()), ours: false, pending: false });
        Self {
            time: snippet.time,
            strings: strings.into_boxed_str(),
            sender_end: offset(sender.len()),
            text_end,
            has_sender: snippet.sender.is_some(),
            entries: entries.into_iter().collect(),
            merges: None,
        }
    }

    pub(super) fn snippet(&self) -> Snippet {
        let (sender_end, text_end) = (self.sender_end as usize, self.text_end as usize);
        Snippet {
            sender: self.has_sender.then(|| self.strings[..sender_end].to_owned()),
            text: self.strings[sender_end..text_end].to_owned(),
            time: self.time,
        }
    }

    fn text_of(&self, entry: &Entry) -> &str {
        slice(&self.strings, entry)
    }

    /// Whether a member (ours or the original) is in `room`, and which: the first one there.
    fn first_in(&self, room: u32) -> Option<bool> {
        self.entries.iter().find(|e| e.room == room).map(|e| e.ours)
    }

    /// Adds ids to the member in `room`, ours or the original (made when new, even with no ids), leaving out those
    /// it has. A confirmed id that was chosen before the send (most are) is the pending entry confirmed, unless a
    /// confirmed id already follows it: the confirmed ids stay in the order they came.
    pub(super) fn add(&mut self, room: u32, ours: bool, pending: bool, ids: &[RemoteId]) {
        let member = |e: &Entry| e.room == room && e.ours == ours;
        let is_new = !self.entries.iter().any(member);
        // First what needs no new room: ids the member has, and pending ids confirmed where they stand.
        let mut fresh: Vec<&str> = Vec::new();
        for id in ids.iter().map(RemoteId::as_str) {
            let same = |e: &Entry| member(e) && e.len > 0 && slice(&self.strings, e) == id;
            if self.entries.iter().any(|e| same(e) && (pending || !e.pending)) || fresh.contains(&id) {
                continue;
            }
            let chosen = (!pending).then(|| self.entries.iter().position(|e| same(e) && e.pending)).flatten();
            match chosen {
                // Only while nothing waits to be appended: an id confirmed after an appended one comes after it.
                Some(at)
                    if fresh.is_empty()
                        && !self.entries[at + 1..].iter().any(|e| member(e) && !e.pending && e.len > 0) =>
                {
                    self.entries[at].pending = false;
                }
                _ => fresh.push(id),
            }
        }
        if fresh.is_empty() && !is_new {
            return;
        }
        let mut strings = String::with_capacity(self.strings.len() + fresh.iter().map(|id| id.len()).sum::<usize>());
        strings.push_str(&self.strings);
        let mut entries = Vec::with_capacity(self.entries.len() + fresh.len().max(1));
        entries.extend_from_slice(&self.entries);
        for id in fresh {
            entries.push(Entry { room, start: offset(strings.len()), len: offset(id.len()), ours, pending });
            strings.push_str(id);
        }
        if !entries.iter().any(member) {
            // A member with no id yet (its copy's ids are still to come): an empty entry marks it.
            entries.push(Entry { room, start: 0, len: 0, ours, pending: true });
        }
        self.strings = strings.into_boxed_str();
        self.entries = entries.into_boxed_slice();
    }

    /// Whether `id` is one of the member's in `room` (confirmed or pending).
    pub(super) fn has(&self, room: u32, id: &str) -> bool {
        self.entries.iter().any(|e| e.room == room && e.len > 0 && self.text_of(e) == id)
    }

    /// Whether `id` in `room` is ours: the first member there is our copy, and it has `id`.
    pub(super) fn is_ours(&self, room: u32, id: &str) -> bool {
        self.first_in(room) == Some(true)
            && self.entries.iter().any(|e| e.room == room && e.ours && e.len > 0 && self.text_of(e) == id)
    }

    /// The confirmed ids of the first member in `room`, in order; `None` when no member is there.
    pub(super) fn ids_in(&self, room: u32) -> Option<Vec<RemoteId>> {
        let ours = self.first_in(room)?;
        let ids = self.entries.iter().filter(|e| e.room == room && e.ours == ours && !e.pending);
        Some(ids.map(|e| RemoteId::new(self.text_of(e))).collect())
    }

    /// Every id the group has, with its member's room: what leaves the index when the group does.
    pub(super) fn ids(&self) -> impl Iterator<Item = (u32, &str)> {
        self.entries.iter().filter(|e| e.len > 0).map(|e| (e.room, self.text_of(e)))
    }
}
