//! Recently seen senders per room (name → that platform's user id), so a mention of a name that is a
//! known user in the destination room becomes a native mention there.

use std::num::NonZeroUsize;

use lru::LruCache;

use crate::model::{RoomAddr, User, UserId};
use crate::router::Map;

const NAMES_PER_ROOM: usize = 512;

#[derive(Default)]
pub struct Directory {
    rooms: Map<RoomAddr, LruCache<String, UserId>>,
}

impl Directory {
    pub fn saw(&mut self, room: &RoomAddr, user: &User) {
        if user.is_self || user.name.is_empty() {
            return;
        }
        let names = self
            .rooms
            .entry(room.clone())
            .or_insert_with(|| LruCache::new(NonZeroUsize::new(NAMES_PER_ROOM).expect("non-zero constant")));
        if names.get(&user.name) != Some(&user.id) {
            names.put(user.name.clone(), user.id.clone());
        }
    }

    pub fn lookup(&self, room: &RoomAddr, name: &str) -> Option<UserId> {
        self.rooms.get(room)?.peek(name).cloned()
    }
}
