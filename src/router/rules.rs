//! The compiled rules of the bridges: for an event in a room, which rooms receive it.

use crate::config::{Bridge, BridgeRoom};
use crate::model::{Event, EventKind, RoomAddr};
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
    bridges: Vec<Bridge>,
    /// Rooms that feed bridges → where they sit.
    sources: Map<RoomAddr, Vec<Destination>>,
}

impl Rules {
    pub fn new(bridges: Vec<Bridge>) -> Self {
        let mut sources: Map<RoomAddr, Vec<Destination>> = Map::default();
        for (b, bridge) in bridges.iter().enumerate() {
            for (r, room) in bridge.rooms.iter().enumerate() {
                if room.direction.feeds() {
                    let at = Destination { bridge: b as u32, room: r as u32 };
                    sources.entry(room.addr.clone()).or_default().push(at);
                }
            }
        }
        Self { bridges, sources }
    }

    pub fn bridges(&self) -> &[Bridge] {
        &self.bridges
    }

    pub fn room(&self, at: Destination) -> &BridgeRoom {
        &self.bridges[at.bridge as usize].rooms[at.room as usize]
    }

    /// The room `room` (an address as text) of the bridge named `bridge`, if the configuration still has it.
    pub fn find(&self, bridge: &str, room: &str) -> Option<Destination> {
        let b = self.bridges.iter().position(|b| b.name == bridge)?;
        let r = self.bridges[b].rooms.iter().position(|r| r.addr.to_string() == room)?;
        Some(Destination { bridge: b as u32, room: r as u32 })
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
        let Some(sources) = self.sources.get(origin) else { return Err(Skip::NoBridge) };
        let sender = event.sender.as_ref().map_or("", |s| s.name.as_str());
        for source in sources {
            let source_room = self.room(*source);
            if source_room.ignore_senders.iter().any(|re| re.is_match(sender)) {
                continue;
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
