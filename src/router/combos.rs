//! Gift combos (issue #33 §2): a fan who sends the same gift again and again within seconds sends one gift
//! message each time (Missevan's `gift/send`, Heihei's `gift` with the same `gift_uuid`). For a destination room with
//! `gift_combo` (3 s unless set; `0s`: each as it comes), gifts of one sender, one gift and one source room are held
//! while they keep coming, and go as one line with the total: `fan sent 30 × 小鱼干`. Held at most
//! [`HOLD_MAX`] past the first, so a long combo still shows; a reload in between sends it where the room still is.

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::time::{DelayQueue, delay_queue};

use super::rules::Destination;
use super::*;

/// The longest a combo is held past its first gift.
const HOLD_MAX: Duration = Duration::from_secs(10);

/// `(bridge, destination room, source room, sender id, gift name)`.
pub(super) type Key = (String, RoomAddr, RoomAddr, String, String);

struct Held {
    event: Event,
    count: u32,
    first: std::time::Instant,
    timer: delay_queue::Key,
}

#[derive(Default)]
pub(super) struct Combos {
    held: HashMap<Key, Held>,
    pub(super) due: DelayQueue<Key>,
}

impl Router {
    /// Takes the destinations that hold combos out of `destinations`, adding the gift to the combo held for each.
    pub(super) fn hold_combo(&mut self, event: &Event, destinations: &mut Vec<Destination>) {
        let EventKind::Gift { name, count, .. } = &event.kind else { return };
        let sender = event.sender.as_ref().map(|s| s.id.as_str().to_owned()).unwrap_or_default();
        destinations.retain(|at| {
            let room = self.rules.room(*at);
            let window = room.gift_combo;
            if window.is_zero() {
                return true;
            }
            let key = (
                self.rules.bridge_name(*at).to_owned(),
                room.addr.clone(),
                event.origin.room.clone(),
                sender.clone(),
                name.clone(),
            );
            match self.combos.held.get_mut(&key) {
                Some(held) => {
                    held.count = held.count.saturating_add(*count);
                    // Quiet for `window` ends it, but never later than HOLD_MAX after the first.
                    let left = HOLD_MAX.saturating_sub(held.first.elapsed());
                    self.combos.due.reset(&held.timer, window.min(left));
                }
                None => {
                    let timer = self.combos.due.insert(key.clone(), window);
                    let held = Held { event: event.clone(), count: *count, first: std::time::Instant::now(), timer };
                    self.combos.held.insert(key, held);
                }
            }
            false
        });
    }

    /// A combo ended: one gift line with the total, queued for its destination like any message.
    pub(super) fn combo_due(&mut self, key: Key) {
        let Some(held) = self.combos.held.remove(&key) else { return };
        let (bridge, room, ..) = key;
        let Some(at) = self.rules.find_addr(&bridge, &room) else { return };
        let mut event = held.event;
        if let EventKind::Gift { count, .. } = &mut event.kind {
            *count = held.count;
        }
        self.enqueue(event, &[at]);
    }
}

impl Router {
    /// A stop: what is held (combos, presence lines) goes now rather than being lost with the process.
    pub(super) fn release_held(&mut self) {
        self.combos.due.clear();
        let combos: Vec<Key> = self.combos.held.keys().cloned().collect();
        for key in combos {
            self.combo_due(key);
        }
        self.presence_release();
    }
}
