//! What a lease is of: an account, or — where a platform gives each room a connection of its own
//! ([`crate::model::Platform::leases_per_room`]) — a room. The lease task names both as text in `leases.account`.

use crate::model::AccountId;

/// What a lease is of.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    Account(AccountId),
    Room(crate::model::RoomAddr),
}

impl Unit {
    pub fn parse(unit: &str) -> Option<Self> {
        if unit.contains(':') { unit.parse().ok().map(Unit::Room) } else { unit.parse().ok().map(Unit::Account) }
    }

    pub fn account(&self) -> &AccountId {
        match self {
            Unit::Account(account) => account,
            Unit::Room(room) => &room.account,
        }
    }
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unit::Account(account) => account.fmt(f),
            Unit::Room(room) => room.fmt(f),
        }
    }
}

/// The leases the rooms of `accounts` need: an account's own unless its platform leases each room, then each room's.
pub fn units<'a>(accounts: impl IntoIterator<Item = (&'a AccountId, Vec<crate::model::RoomAddr>)>) -> Vec<String> {
    let mut units = std::collections::BTreeSet::new();
    for (account, rooms) in accounts {
        if account.platform().leases_per_room() {
            units.extend(rooms.iter().map(ToString::to_string));
        } else {
            units.insert(account.to_string());
        }
    }
    units.into_iter().collect()
}
