//! A bridge that says when a side is down (issue #32 §4, `[[bridge]] notices = true`): when an account of the
//! bridge has been down (backing off, or stopped) for `notice_after`, one line goes to the bridge's rooms of other
//! accounts; when it is back and has stayed connected for [`STABLE`], one more, with what was kept for it. One of
//! each per outage: an account that flaps within an outage already said says nothing new, and one whose outages
//! are shorter than `notice_after` says nothing at all. The lines are queued like any message (rate-limited, kept
//! in the store, never sent to the room that is down).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio_util::time::DelayQueue;
use tracing::info;

use super::Router;
use super::rules::Destination;
use crate::link::AccountState;
use crate::model::{AccountId, Event, EventKind};

/// How long an account must stay connected before it is said to be back (or `notice_after`, when shorter).
pub const STABLE: Duration = Duration::from_secs(30);

/// A check that falls due.
#[derive(Debug)]
pub(super) enum Check {
    /// Is the account still down, in the same outage (the bridge, by index; when it went down)?
    Down(AccountId, u32, std::time::Instant),
    /// Is it still up?
    Back(AccountId),
}

#[derive(Default)]
pub(super) struct Notices {
    /// Accounts down now, since when.
    down: HashMap<AccountId, std::time::Instant>,
    /// (account, bridge) said to be down and not yet said to be back.
    said: HashSet<(AccountId, u32)>,
    /// Messages waiting for an account's rooms when it came back.
    kept: HashMap<AccountId, usize>,
    pub(super) checks: DelayQueue<Check>,
}

impl Router {
    /// An account's state changed.
    pub(super) fn notice_state(&mut self, account: &AccountId, state: &AccountState) {
        match state {
            AccountState::BackingOff { .. } | AccountState::Stopped { .. } => {
                if self.notices.down.contains_key(account) {
                    return;
                }
                let since = std::time::Instant::now();
                self.notices.down.insert(account.clone(), since);
                for (b, bridge) in self.rules.bridges().iter().enumerate() {
                    let Some(after) = bridge.notices else { continue };
                    let here = bridge.rooms.iter().any(|room| room.addr.account == *account);
                    if here && !self.notices.said.contains(&(account.clone(), b as u32)) {
                        self.notices.checks.insert(Check::Down(account.clone(), b as u32, since), after);
                    }
                }
            }
            AccountState::Connected => {
                if self.notices.down.remove(account).is_some() && self.notices.said.iter().any(|(a, _)| a == account) {
                    let kept = self.kept_for(account);
                    self.notices.kept.insert(account.clone(), kept);
                    // Stable for as long as it took to say it was down, at most STABLE.
                    let after = self.rules.bridges().iter().filter_map(|b| b.notices).min().unwrap_or(STABLE);
                    self.notices.checks.insert(Check::Back(account.clone()), after.min(STABLE));
                }
            }
            AccountState::Connecting => {}
        }
    }

    /// Messages waiting for the account's rooms, in memory and in the store.
    fn kept_for(&self, account: &AccountId) -> usize {
        self.rooms
            .iter()
            .filter(|(room, _)| room.account == *account)
            .map(|(room, state)| self.outbox.len(room) + state.spilled)
            .sum()
    }

    pub(super) fn notice_due(&mut self, check: Check) {
        match check {
            Check::Down(account, bridge, since) => {
                let same_outage = self.notices.down.get(&account) == Some(&since);
                if same_outage && self.notices.said.insert((account.clone(), bridge)) {
                    let text = format!("{account} is unreachable; messages to it are kept and will be delivered.");
                    self.say(bridge, &account, text);
                }
            }
            Check::Back(account) => {
                if self.notices.down.contains_key(&account) {
                    // Down again before it was stable: the same outage goes on.
                    return;
                }
                let kept = self.notices.kept.remove(&account).unwrap_or(0);
                let left = self.kept_for(&account);
                let text = match (kept, left) {
                    (0, _) => format!("{account} is back."),
                    (1, 0) => format!("{account} is back; 1 queued message delivered."),
                    (kept, 0) => format!("{account} is back; {kept} queued messages delivered."),
                    (kept, left) => format!(
                        "{account} is back; {} of {kept} queued messages delivered, the rest on their way.",
                        kept.saturating_sub(left)
                    ),
                };
                let bridges: Vec<u32> =
                    self.notices.said.iter().filter(|(a, _)| *a == account).map(|(_, b)| *b).collect();
                for bridge in bridges {
                    self.notices.said.remove(&(account.clone(), bridge));
                    self.say(bridge, &account, text.clone());
                }
            }
        }
    }

    /// Queues `text` for the rooms of `bridge` that receive and are not `account`'s.
    fn say(&mut self, bridge: u32, account: &AccountId, text: String) {
        let Some(rules) = self.rules.bridges().get(bridge as usize) else { return };
        let Some(origin) = rules.rooms.iter().find(|room| room.addr.account == *account).map(|room| room.addr.clone())
        else {
            return;
        };
        let destinations: Vec<Destination> = rules
            .rooms
            .iter()
            .enumerate()
            .filter(|(_, room)| room.direction.receives() && room.addr.account != *account)
            .map(|(r, _)| Destination { bridge, room: r as u32 })
            .collect();
        info!(bridge = %rules.name, account = %account, rooms = destinations.len(), notice = %text, "Telling the bridge.");
        let event = Event::new(origin, None, None, EventKind::Notice { text });
        self.enqueue(event, &destinations);
    }
}
