//! The rows the router has read from the outbox and not yet acknowledged, per room: a read of a room's rows (a
//! claim) only reads — the room's lease already says that only this instance sends them — and leaves these out, so
//! that nothing in the router's memory, in flight, or acknowledged but not yet committed is read again. Kept by the
//! writer, which learns what a transaction read and deleted only once it committed.
//!
//! A claim under a lease another holder had before (its epoch above 1, not seen here yet) may find rows that holder
//! read and sent without its acknowledgement committing (it died, or was frozen): until the room's backlog has been
//! read through, every row is marked as maybe sent (the adapters that can look for an earlier copy then do).

use std::collections::{HashMap, HashSet};

#[derive(Default)]
pub(super) struct Taken {
    /// By room: the epoch the keys were read under, and the keys.
    rooms: HashMap<String, (i64, HashSet<i64>)>,
    /// The room of each key read, to forget it when its row goes.
    room_of: HashMap<i64, String>,
    /// Rooms whose backlog from an earlier holder is still being read.
    takeover: HashSet<String>,
}

impl Taken {
    /// What a claim of `room` under `epoch` leaves out; whether its rows may have been sent by an earlier holder.
    pub(super) fn before_claim(&mut self, room: &str, epoch: i64) -> (Vec<i64>, bool) {
        match self.rooms.get(room) {
            Some((seen, keys)) if *seen == epoch => (keys.iter().copied().collect(), self.takeover.contains(room)),
            _ => {
                // A new lease of the room (or the first claim here): what an older epoch read is forgotten.
                if let Some((_, keys)) = self.rooms.remove(room) {
                    keys.iter().for_each(|k| {
                        self.room_of.remove(k);
                    });
                }
                self.rooms.insert(room.to_owned(), (epoch, HashSet::new()));
                if epoch > 1 {
                    self.takeover.insert(room.to_owned());
                }
                (Vec::new(), epoch > 1)
            }
        }
    }

    /// A committed claim read `keys` of `room` under `epoch`; `exhausted`: it read the rest of the room's rows.
    pub(super) fn took(&mut self, room: &str, epoch: i64, keys: &[i64], exhausted: bool) {
        let entry = self.rooms.entry(room.to_owned()).or_insert_with(|| (epoch, HashSet::new()));
        if entry.0 != epoch {
            return;
        }
        for key in keys {
            entry.1.insert(*key);
            self.room_of.insert(*key, room.to_owned());
        }
        if exhausted {
            self.takeover.remove(room);
        }
    }

    /// Rows deleted or moved to the dead letters, committed.
    pub(super) fn gone(&mut self, keys: &[i64]) {
        for key in keys {
            if let Some(room) = self.room_of.remove(key)
                && let Some((_, keys)) = self.rooms.get_mut(&room)
            {
                keys.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_rows_are_left_out_until_they_go_and_a_new_lease_starts_afresh() {
        let mut taken = Taken::default();
        assert_eq!(taken.before_claim("r", 1), (vec![], false));
        taken.took("r", 1, &[5, 6], false);
        let (mut out, maybe) = taken.before_claim("r", 1);
        out.sort();
        assert_eq!((out, maybe), (vec![5, 6], false));
        taken.gone(&[5]);
        assert_eq!(taken.before_claim("r", 1).0, vec![6]);
        // The lease came back under a new epoch: what the old one read is read again, as maybe sent, until the
        // backlog is read through.
        assert_eq!(taken.before_claim("r", 3), (vec![], true));
        taken.took("r", 3, &[6], false);
        assert_eq!(taken.before_claim("r", 3), (vec![6], true));
        taken.took("r", 3, &[7], true);
        assert!(!taken.before_claim("r", 3).1);
    }
}
