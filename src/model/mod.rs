//! The shared event model: what every adapter turns its wire format into, and what the router and the
//! destination queues work on. No I/O and no async here.

mod capabilities;
mod content;
mod ids;
pub mod rich;

use std::fmt;
use std::str::FromStr;

pub use capabilities::{Capabilities, ClientIdForm, MediaKinds};
pub use content::{Content, Segment, Style, push_plain};
pub use ids::{AccountId, EventId, RemoteId, RoomAddr, RoomId, Time, UserId, lease_of};

/// The hash map of the hot paths (the router's state, the metrics' series): foldhash, randomly seeded (keys
/// include remote ids).
pub type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Where a room's reading stands, in the form its platform gives (a time, a sequence number): opaque to the router
/// and the store, read back by the adapter that wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    pub fn new(cursor: impl Into<String>) -> Self {
        Self(cursor.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The cursor read back in the form its adapter wrote (`None` when it is not in that form).
    pub fn parse<T: FromStr>(&self) -> Option<T> {
        self.0.parse().ok()
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The platforms chatbridge knows.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Platform {
    Missevan,
    Heihei,
    Iirose,
    Fishroom,
    Yunhu,
    /// chatbridge's own HTTP API, compatible with matterbridge's: bots and tools as a "platform".
    Api,
}

impl Platform {
    pub const ALL: [Platform; 6] =
        [Platform::Missevan, Platform::Heihei, Platform::Iirose, Platform::Fishroom, Platform::Yunhu, Platform::Api];

    /// Whether each room of an account is leased on its own, so that one account's rooms spread over the
    /// instances sharing a store: where the platform gives each room a connection of its own (Missevan: one socket
    /// per room). Elsewhere one connection carries every room of the account (Heihei's channel socket, IIROSE's
    /// and Yunhu's sockets, Fishroom's receiving token, the API's listener), so the account is leased whole.
    pub fn leases_per_room(self) -> bool {
        matches!(self, Platform::Missevan)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Missevan => "missevan",
            Platform::Heihei => "heihei",
            Platform::Iirose => "iirose",
            Platform::Fishroom => "fishroom",
            Platform::Yunhu => "yunhu",
            Platform::Api => "api",
        }
    }

    /// The platform's name as people write it (in lines the bridge writes itself).
    pub fn display_name(self) -> &'static str {
        match self {
            Platform::Missevan => "Missevan",
            Platform::Heihei => "Heihei",
            Platform::Iirose => "IIROSE",
            Platform::Fishroom => "Fishroom",
            Platform::Yunhu => "Yunhu",
            Platform::Api => "the API",
        }
    }

    /// The known platform names, comma-separated, for error messages.
    pub fn known_list() -> String {
        Self::ALL.map(Platform::as_str).join(", ")
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|p| p.as_str() == s).ok_or(())
    }
}

/// Who said something.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub avatar: Option<String>,
    /// The bridge's own account (its echoes are never relayed).
    pub is_self: bool,
    /// What marks the sender where the platform shows it (live rooms' levels, medals, ranks; group tags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badges: Option<Box<Badges>>,
}

impl User {
    pub fn new(id: impl Into<std::sync::Arc<str>>, name: impl Into<String>) -> Self {
        Self { id: UserId::new(id), name: name.into(), avatar: None, is_self: false, badges: None }
    }
}

/// A sender's marks, as the templates' `{badge}`, `{level}` and `{medal}` show them (issue #33 §2); empty where
/// the platform has none.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Badges {
    /// The most telling mark: a Missevan noble rank (else the fan medal), a Yunhu tag.
    pub badge: String,
    /// The user's level (Missevan).
    pub level: Option<u32>,
    /// The fan medal with its level (Missevan: `name 7`).
    pub medal: String,
}

impl Badges {
    /// `None` where nothing marks the sender.
    pub fn or_none(self) -> Option<Box<Self>> {
        (!self.badge.is_empty() || self.level.is_some() || !self.medal.is_empty()).then(|| Box::new(self))
    }
}

/// Where an event was seen.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    pub room: RoomAddr,
    /// The platform's id of the message, where it has one.
    pub remote_id: Option<RemoteId>,
    /// How far the room has been read once this event is handled (a sequence number, a time, an id — the
    /// adapter's to interpret): stored with the event's outbox rows, and where gap filling resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Cursor>,
    /// Fetched by gap filling after a reconnect or restart rather than received live: relayed only if it
    /// was not relayed before and is within `general.gap_fill_window`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

/// A reply: IIROSE quotes carry a name, a time and the quoted text but no id; Yunhu replies carry an id and text.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Reply {
    /// The quoted message's id in the origin room, resolved through the id map by the destination.
    pub target: Option<RemoteId>,
    pub quoted_sender: Option<String>,
    pub quoted_text: Option<String>,
    pub quoted_time: Option<Time>,
    /// The quoted message's image, where the platform gives it (Yunhu `quote_image_url`): media like the
    /// message's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted_image: Option<String>,
}

/// A chat message.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub content: Content,
    pub reply: Option<Reply>,
    /// A private conversation: relayed only through a room address naming that conversation.
    pub private: bool,
    /// An action (`/me waves`; the API's `event: "user_action"`): the text says what the sender does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub action: bool,
    /// What an API client attached (matterbridge's `Extra`), passed on untouched to API clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<serde_json::Value>,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    /// A new message.
    Message(Message),
    /// A message was edited; `target` is its id in the origin room.
    Edited { target: RemoteId, content: Content },
    /// A message was recalled (deleted).
    Recalled { target: RemoteId },
    /// Someone entered the room.
    Joined,
    /// Someone left the room.
    Left,
    /// A gift was sent (live rooms).
    Gift { name: String, count: u32, value: Option<u64> },
    /// A system line, horn or toast.
    Notice { text: String },
    /// An event the adapter does not map: data, logged at debug, never an error.
    Unsupported { kind: String, raw: String },
}

impl EventKind {
    /// The kind as the `events` filter of a bridge names it; `None` for kinds never relayed.
    pub fn filter_kind(&self) -> Option<EventFilter> {
        Some(match self {
            EventKind::Message(_) => EventFilter::Message,
            EventKind::Edited { .. } => EventFilter::Edit,
            EventKind::Recalled { .. } => EventFilter::Recall,
            EventKind::Joined => EventFilter::Join,
            EventKind::Left => EventFilter::Leave,
            EventKind::Gift { .. } => EventFilter::Gift,
            EventKind::Notice { .. } => EventFilter::Notice,
            EventKind::Unsupported { .. } => return None,
        })
    }
}

/// One thing that happened in one room.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub id: EventId,
    pub origin: Origin,
    pub time: Time,
    pub sender: Option<User>,
    pub kind: EventKind,
}

impl Event {
    pub fn new(room: RoomAddr, remote_id: Option<RemoteId>, sender: Option<User>, kind: EventKind) -> Self {
        let origin = Origin { room, remote_id, cursor: None, replayed: false };
        Self { id: EventId::new(), origin, time: Time::now(), sender, kind }
    }
}

/// The event kinds a bridge room may receive (its `events` list).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum EventFilter {
    Message,
    Edit,
    Recall,
    Join,
    Leave,
    Gift,
    Notice,
}

impl EventFilter {
    pub const ALL: [EventFilter; 7] = [
        EventFilter::Message,
        EventFilter::Edit,
        EventFilter::Recall,
        EventFilter::Join,
        EventFilter::Leave,
        EventFilter::Gift,
        EventFilter::Notice,
    ];
    /// What a room receives when its bridge does not say.
    pub const DEFAULT: [EventFilter; 3] = [EventFilter::Message, EventFilter::Edit, EventFilter::Recall];

    pub fn as_str(self) -> &'static str {
        match self {
            EventFilter::Message => "message",
            EventFilter::Edit => "edit",
            EventFilter::Recall => "recall",
            EventFilter::Join => "join",
            EventFilter::Leave => "leave",
            EventFilter::Gift => "gift",
            EventFilter::Notice => "notice",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl FromStr for EventFilter {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

/// A set of event kinds, as a bit set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct EventSet(u8);

impl EventSet {
    pub fn of(kinds: impl IntoIterator<Item = EventFilter>) -> Self {
        Self(kinds.into_iter().fold(0, |acc, k| acc | k.bit()))
    }

    pub fn contains(self, kind: EventFilter) -> bool {
        self.0 & kind.bit() != 0
    }
}

impl Default for EventSet {
    fn default() -> Self {
        Self::of(EventFilter::DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_names_round_trip() {
        for p in Platform::ALL {
            assert_eq!(p.as_str().parse::<Platform>(), Ok(p));
        }
        assert!("irc".parse::<Platform>().is_err());
        assert_eq!(Platform::known_list(), "missevan, heihei, iirose, fishroom, yunhu, api");
    }

    #[test]
    fn default_event_set_is_message_edit_recall() {
        let set = EventSet::default();
        for kind in EventFilter::ALL {
            let expected = matches!(kind, EventFilter::Message | EventFilter::Edit | EventFilter::Recall);
            assert_eq!(set.contains(kind), expected, "{kind:?}");
        }
    }

    #[test]
    fn account_and_room_addresses_display() {
        let room = RoomAddr::new(AccountId::new(Platform::Fishroom, "tuna"), RoomId::new("general"));
        assert_eq!(room.to_string(), "fishroom.tuna:general");
    }
}
