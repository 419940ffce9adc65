//! The compiled rules of the bridges: for an event in a room, which rooms receive it.

use crate::config::{Bridge, BridgeRoom};
use crate::model::{Event, EventKind, Message, RoomAddr};
use crate::router::Map;

/// A room of a bridge, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Destination {
    pub bridge: u32,
    pub room: u32,
}

/// Why an event goes nowhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// No bridge is fed by the room.
    NoBridge,
    /// The kind is never relayed (`Unsupported`).
    Unsupported,
    /// A private message outside a conversation address.
    Private,
    /// Every bridge's filters turned it away.
    Filtered,
}

pub struct Rules {
    /// The configured bridges, then (after a reload) bridges holding only rooms the configuration no longer
    /// has but that still had messages queued: they are delivered there, and no new message goes there.
    bridges: Vec<Bridge>,
    /// How many of `bridges` are configured ones.
    configured: usize,
    /// Every room → where it sits (kept ones too): looked up for each event routed and each row read from the
    /// store, among what may be thousands of bridges.
    at: Map<RoomAddr, Vec<Destination>>,
}

impl Rules {
    pub fn new(bridges: Vec<Bridge>) -> Self {
        let mut at: Map<RoomAddr, Vec<Destination>> = Map::default();
        for (b, bridge) in bridges.iter().enumerate() {
            for (r, room) in bridge.rooms.iter().enumerate() {
                at.entry(room.addr.clone()).or_default().push(Destination { bridge: b as u32, room: r as u32 });
            }
        }
        Self { configured: bridges.len(), bridges, at }
    }

    /// The configured bridges.
    pub fn bridges(&self) -> &[Bridge] {
        &self.bridges[..self.configured]
    }

    /// Every room of every bridge, kept ones included, with its bridge's name.
    pub fn rooms(&self) -> impl Iterator<Item = (&str, &BridgeRoom)> {
        self.bridges.iter().flat_map(|b| b.rooms.iter().map(move |r| (b.name.as_str(), r)))
    }

    pub fn room(&self, at: Destination) -> &BridgeRoom {
        &self.bridges[at.bridge as usize].rooms[at.room as usize]
    }

    /// The room `room` of the bridge named `bridge`, if the configuration still has it (or keeps it for what was
    /// queued before a reload).
    pub fn find_addr(&self, bridge: &str, room: &RoomAddr) -> Option<Destination> {
        self.at.get(room)?.iter().copied().find(|d| self.bridges[d.bridge as usize].name == bridge)
    }

    /// Whether any bridge has `room`.
    pub fn has_room(&self, room: &RoomAddr) -> bool {
        self.at.contains_key(room)
    }

    /// Keeps a room that a reload removed from bridge `bridge`, for the messages already queued for it:
    /// they are rendered with its old options; nothing new is routed to it.
    pub fn keep(&mut self, bridge: &str, room: BridgeRoom) -> Destination {
        if let Some(at) = self.find_addr(bridge, &room.addr) {
            return at;
        }
        let kept = self.bridges[self.configured..].iter().position(|b| b.name == bridge);
        let b = match kept {
            Some(b) => self.configured + b,
            None => {
                self.bridges.push(Bridge { name: bridge.to_owned(), rooms: std::sync::Arc::from([]), notices: None });
                self.bridges.len() - 1
            }
        };
        let at = Destination { bridge: b as u32, room: self.bridges[b].rooms.len() as u32 };
        self.at.entry(room.addr.clone()).or_default().push(at);
        // A kept bridge is made anew room by room: rooms are kept rarely (a reload that removed them).
        let mut rooms = self.bridges[b].rooms.to_vec();
        rooms.push(room);
        self.bridges[b].rooms = rooms.into();
        at
    }

    /// The room `origin` as a room of the bridge `at` belongs to (its options say how its messages are rewritten
    /// there), if that bridge has it.
    pub fn source_room(&self, at: Destination, origin: &RoomAddr) -> Option<&BridgeRoom> {
        self.bridges[at.bridge as usize].rooms.iter().find(|r| r.addr == *origin)
    }

    pub fn bridge_name(&self, at: Destination) -> &str {
        &self.bridges[at.bridge as usize].name
    }

    /// Fills `out` with the rooms that receive `event`, each room once even when it shares several
    /// bridges with the origin (the first bridge in the file gives its format).
    pub fn destinations(&self, event: &Event, out: &mut Vec<Destination>) -> Result<(), Skip> {
        out.clear();
        let Some(kind) = event.kind.filter_kind() else { return Err(Skip::Unsupported) };
        let origin = &event.origin.room;
        if let EventKind::Message(m) = &event.kind
            && m.private
            && !origin.room.is_conversation()
        {
            return Err(Skip::Private);
        }
        // The bridges the room feeds: configured ones (a kept room only delivers what was queued for it).
        let feeds = |d: &&Destination| (d.bridge as usize) < self.configured && self.room(**d).direction.feeds();
        let Some(sources) = self.at.get(origin).filter(|at| at.iter().any(|d| feeds(&d))) else {
            return Err(Skip::NoBridge);
        };
        let sender = event.sender.as_ref().map_or("", |s| s.name.as_str());
        // The text `ignore_text` looks at, made once for the event and only where a room has such a filter.
        let mut plain: Option<String> = None;
        for source in sources.iter().filter(feeds) {
            let source_room = self.room(*source);
            if source_room.ignore_senders.iter().any(|re| re.is_match(sender)) {
                continue;
            }
            if !source_room.ignore_text.is_empty()
                && let EventKind::Message(Message { content, .. }) | EventKind::Edited { content, .. } = &event.kind
            {
                let text = plain.get_or_insert_with(|| content.to_plain_text());
                if source_room.ignore_text.iter().any(|re| re.is_match(text)) {
                    continue;
                }
            }
            let bridge = &self.bridges[source.bridge as usize];
            for (r, room) in bridge.rooms.iter().enumerate() {
                let at = Destination { bridge: source.bridge, room: r as u32 };
                if at == *source
                    || room.addr == *origin
                    || !room.direction.receives()
                    || !room.events.contains(kind)
                    || out.iter().any(|d| self.room(*d).addr == room.addr)
                {
                    continue;
                }
                out.push(at);
            }
        }
        if out.is_empty() { Err(Skip::Filtered) } else { Ok(()) }
    }
}
