//! Typed identifiers: no bare `String` crosses a module boundary.

use std::fmt;
use std::sync::Arc;

use super::Platform;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn new(value: impl Into<Arc<str>>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map(Self::new)
            }
        }
    };
}

string_id!(
    /// The room part of a room address, in the platform's own form (`general`, `group/big`, `host/42`).
    RoomId
);
string_id!(
    /// A user's id on one platform.
    UserId
);
string_id!(
    /// A message id as the platform knows it (server-assigned or chosen by us before the send).
    RemoteId
);

impl RoomId {
    /// A private conversation with one user (`user/…`, `im/…`) rather than a room.
    pub fn is_conversation(&self) -> bool {
        self.0.starts_with("user/") || self.0.starts_with("im/")
    }
}

/// An account: `<platform>.<name>`, the key of `[accounts.<platform>.<name>]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId {
    platform: Platform,
    name: Arc<str>,
}

impl AccountId {
    pub fn new(platform: Platform, name: impl Into<Arc<str>>) -> Self {
        Self { platform, name: name.into() }
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.platform, self.name)
    }
}

impl serde::Serialize for AccountId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for AccountId {
    type Err = String;

    /// `<platform>.<name>`, as [`fmt::Display`] writes it.
    fn from_str(text: &str) -> Result<Self, String> {
        let (platform, name) = text.split_once('.').ok_or_else(|| "expected <platform>.<name>".to_owned())?;
        let platform = platform.parse().map_err(|()| format!("unknown platform `{platform}`"))?;
        Ok(AccountId::new(platform, name))
    }
}

impl<'de> serde::Deserialize<'de> for AccountId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({self})")
    }
}

/// A room address, `<account id>:<room>`: one conversation on one account.
///
/// Its hash is computed once, when it is made: the router looks a message's rooms up a few dozen times on its way
/// (queues, states, counters), and hashing three fields of text each time was a few percent of its CPU. So an address
/// is made with [`RoomAddr::new`] (or parsed, or read) and its fields are read, never assigned: one assigned would
/// leave the hash of the old address, and maps would no longer find it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(from = "RoomAddrParts")]
pub struct RoomAddr {
    pub account: AccountId,
    pub room: RoomId,
    #[serde(skip_serializing)]
    hash: u64,
}

/// What a room address is made of, as it is read.
#[derive(serde::Deserialize)]
struct RoomAddrParts {
    account: AccountId,
    room: RoomId,
}

impl From<RoomAddrParts> for RoomAddr {
    fn from(parts: RoomAddrParts) -> Self {
        Self::new(parts.account, parts.room)
    }
}

/// The seed of room addresses' hashes: one per process, so that no one can choose room names that collide.
static ROOM_HASH: std::sync::LazyLock<foldhash::fast::RandomState> = std::sync::LazyLock::new(Default::default);

impl RoomAddr {
    pub fn new(account: AccountId, room: RoomId) -> Self {
        use std::hash::BuildHasher;
        let hash = ROOM_HASH.hash_one((&account, &room));
        Self { account, room, hash }
    }

    pub fn platform(&self) -> Platform {
        self.account.platform()
    }

    /// The lease that decides which instance runs the room, when several share a store: the room's own where its
    /// platform gives each room a connection of its own ([`Platform::leases_per_room`]), else its account's.
    pub fn lease(&self) -> String {
        if self.platform().leases_per_room() { self.to_string() } else { self.account.to_string() }
    }
}

/// [`RoomAddr::lease`] of a room address as text (`<platform>.<account>:<room>`), as the store keeps it.
pub fn lease_of(room: &str) -> &str {
    let (account, _) = room.split_once(':').unwrap_or((room, ""));
    let per_room =
        account.split_once('.').and_then(|(p, _)| p.parse::<Platform>().ok()).is_some_and(|p| p.leases_per_room());
    if per_room { room } else { account }
}

impl std::str::FromStr for RoomAddr {
    type Err = String;

    /// `<platform>.<account>:<room>`, as [`fmt::Display`] writes it.
    fn from_str(text: &str) -> Result<Self, String> {
        let (account, room) =
            text.split_once(':').ok_or_else(|| format!("`{text}` is not <platform>.<account>:<room>"))?;
        let (platform, name) =
            account.split_once('.').ok_or_else(|| format!("`{account}` is not <platform>.<name>"))?;
        let platform = platform.parse().map_err(|()| format!("unknown platform `{platform}`"))?;
        Ok(RoomAddr::new(AccountId::new(platform, name), RoomId::new(room)))
    }
}

impl PartialEq for RoomAddr {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.account == other.account && self.room == other.room
    }
}

impl Eq for RoomAddr {}

impl std::hash::Hash for RoomAddr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialOrd for RoomAddr {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RoomAddr {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.account, &self.room).cmp(&(&other.account, &other.room))
    }
}

impl fmt::Display for RoomAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.account, self.room)
    }
}

impl fmt::Debug for RoomAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomAddr({self})")
    }
}

/// The id of one event inside chatbridge (uuid v7: sortable by creation time).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize)]
pub struct EventId(pub uuid::Uuid);

impl EventId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Milliseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Time(pub i64);

impl Time {
    pub fn now() -> Self {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Self(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However a room address is made — parsed, built, read back from the store's JSON — equal addresses are
    /// equal, hash alike and find each other in a map; the stored form has no hash in it.
    #[test]
    fn room_addresses_made_apart_are_one_key() {
        let built = RoomAddr::new(AccountId::new(Platform::Yunhu, String::from("bot")), RoomId::new("group/1"));
        let parsed: RoomAddr = "yunhu.bot:group/1".parse().unwrap();
        let json = serde_json::to_string(&built).unwrap();
        assert_eq!(json, r#"{"account":"yunhu.bot","room":"group/1"}"#);
        let read: RoomAddr = serde_json::from_str(&json).unwrap();
        assert!(built == parsed && parsed == read);
        let mut map = crate::model::Map::default();
        map.insert(built, 1);
        assert_eq!((map.get(&parsed), map.get(&read)), (Some(&1), Some(&1)));
        let other: RoomAddr = "yunhu.bot:group/2".parse().unwrap();
        assert!(other != parsed && !map.contains_key(&other));
        assert!(other > parsed, "ordered by account, then room");
    }
}
