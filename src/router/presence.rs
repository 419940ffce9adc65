//! `presence = "summary"` (issue #33 §2): a busy live room's joins and leaves, folded for a destination room into one
//! line every `presence_every` ("12 joined, 3 left"; the names where there are three or fewer), so that the other
//! side is not flooded. Kept by bridge, destination and source room, so that a reload in between sends the line where
//! the room still is (and nowhere once it is gone).

use std::collections::HashMap;

use tokio_util::time::DelayQueue;

use super::rules::Destination;
use super::*;

/// Names listed before a count stands for them.
const NAMES: usize = 3;

/// `(bridge, destination room, source room)`.
pub(super) type Key = (String, RoomAddr, RoomAddr);

#[derive(Default)]
struct Tally {
    joined: Vec<String>,
    joined_count: u32,
    left: Vec<String>,
    left_count: u32,
}

#[derive(Default)]
pub(super) struct Presence {
    tallies: HashMap<Key, Tally>,
    pub(super) due: DelayQueue<Key>,
}

fn part(names: &[String], count: u32, verb: &str) -> Option<String> {
    match count {
        0 => None,
        n if n as usize > names.len() => Some(format!("{n} {verb}")),
        _ => {
            let list = match names {
                [one] => one.clone(),
                [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
                [] => String::new(),
            };
            Some(format!("{list} {verb}"))
        }
    }
}

impl Router {
    /// Takes the destinations that fold presence out of `destinations`, counting the event for them.
    pub(super) fn fold_presence(&mut self, event: &Event, destinations: &mut Vec<Destination>) {
        let joined = match event.kind {
            EventKind::Joined => true,
            EventKind::Left => false,
            _ => return,
        };
        let name = event.sender.as_ref().map(|s| s.name.clone()).unwrap_or_default();
        destinations.retain(|at| {
            let room = self.rules.room(*at);
            let Some(every) = room.presence_every else { return true };
            let key = (self.rules.bridge_name(*at).to_owned(), room.addr.clone(), event.origin.room.clone());
            let fresh = !self.presence.tallies.contains_key(&key);
            let tally = self.presence.tallies.entry(key.clone()).or_default();
            let (names, count) = if joined {
                (&mut tally.joined, &mut tally.joined_count)
            } else {
                (&mut tally.left, &mut tally.left_count)
            };
            *count = count.saturating_add(1);
            if names.len() < NAMES && !name.is_empty() {
                names.push(name.clone());
            }
            if fresh {
                self.presence.due.insert(key, every);
            }
            false
        });
    }

    /// Every summary now (a stop).
    pub(super) fn presence_release(&mut self) {
        self.presence.due.clear();
        let keys: Vec<Key> = self.presence.tallies.keys().cloned().collect();
        for key in keys {
            self.presence_due(key);
        }
    }

    /// A summary is due: one notice line from the source room, queued for its destination like any message.
    pub(super) fn presence_due(&mut self, key: Key) {
        let Some(tally) = self.presence.tallies.remove(&key) else { return };
        let (bridge, room, origin) = key;
        let Some(at) = self.rules.find_addr(&bridge, &room) else { return };
        let parts: Vec<String> =
            [part(&tally.joined, tally.joined_count, "joined"), part(&tally.left, tally.left_count, "left")]
                .into_iter()
                .flatten()
                .collect();
        if parts.is_empty() {
            return;
        }
        let text = parts.join("; ");
        let event = Event::new(origin, None, None, EventKind::Notice { text });
        self.enqueue(event, &[at]);
    }
}

#[cfg(test)]
mod tests {
    use super::part;

    #[test]
    fn a_few_are_named_and_many_counted() {
        let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(part(&names(&["a"]), 1, "joined").as_deref(), Some("a joined"));
        assert_eq!(part(&names(&["a", "b", "c"]), 3, "left").as_deref(), Some("a, b and c left"));
        assert_eq!(part(&names(&["a", "b", "c"]), 12, "joined").as_deref(), Some("12 joined"));
        assert_eq!(part(&[], 0, "left"), None);
    }
}
