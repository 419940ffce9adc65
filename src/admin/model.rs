//! What the status page and the admin API show: one snapshot, built from the accounts' states, the counters and
//! the dead letters, serialised as the API's JSON and rendered as the page.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::link::AccountState;
use crate::model::{AccountId, Time};
use crate::stats::{Metric, Stats};

#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub version: &'static str,
    pub commit: &'static str,
    pub uptime_s: u64,
    /// With a shared store: this instance's name.
    pub instance: Option<String>,
    pub last_reload: Option<ReloadView>,
    pub accounts: Vec<AccountView>,
    pub bridges: Vec<BridgeView>,
    pub dead_letters: Vec<DeadLetterView>,
    /// Why the dead letters could not be read, when they could not.
    pub dead_letters_error: Option<String>,
    /// The last warnings and errors of the log, newest first.
    pub warnings: Vec<crate::telemetry::ring::Entry>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReloadView {
    pub at_ms: i64,
    pub applied: bool,
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AccountView {
    pub id: String,
    pub platform: &'static str,
    /// `connecting`, `connected`, `backing_off`, `stopped`.
    pub state: &'static str,
    /// When it came to this state (ms since the epoch), as far as this daemon has seen.
    pub since_ms: i64,
    pub error: Option<String>,
    /// What an operator can do about the error.
    pub advice: Option<&'static str>,
    pub reconnects: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BridgeView {
    pub name: String,
    pub rooms: Vec<RoomView>,
    /// Messages relayed into its rooms per minute over the last hour, oldest first.
    pub per_minute: Vec<u32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RoomView {
    pub room: String,
    pub direction: &'static str,
    /// Messages waiting for the room, and the age of the oldest (ms).
    pub queued: usize,
    pub lag_ms: u64,
    /// Messages received from it, relayed to it, and given up for it.
    pub received: u64,
    pub relayed: u64,
    pub dead_lettered: u64,
}

/// A dead letter, as the page and the API list it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DeadLetterView {
    pub key: u64,
    pub room: String,
    pub bridge: String,
    pub failed_at_ms: i64,
    pub reason: String,
    pub summary: String,
    /// Marked to go back to the queue at the daemon's next start.
    pub requeued: bool,
}

/// A bridge's rooms as the configuration names them: `(room address, direction)`.
pub type Layout = Vec<(String, Vec<(String, &'static str)>)>;

fn state_name(state: &AccountState) -> (&'static str, Option<String>) {
    match state {
        AccountState::Connecting => ("connecting", None),
        AccountState::Connected => ("connected", None),
        AccountState::BackingOff { reason, .. } => ("backing_off", Some(reason.clone())),
        AccountState::Stopped { reason } => ("stopped", Some(reason.clone())),
    }
}

/// What to do about an account's error, by what it says.
pub fn advice(state: &AccountState, error: &str) -> Option<&'static str> {
    let error = error.to_ascii_lowercase();
    match state {
        AccountState::Stopped { .. }
            if error.contains("token") || error.contains("password") || error.contains("login") =>
        {
            Some("the platform refused the account's credentials: renew the secret, then reload")
        }
        AccountState::Stopped { .. } => Some("the account stopped: see the error, correct the configuration, reload"),
        AccountState::BackingOff { .. } => Some(
            "reconnecting by itself; messages for it wait in the queue. If it lasts, check the platform's address and the network",
        ),
        _ => None,
    }
}

/// The snapshot of now: `since` says when each account came to its state.
pub fn snapshot(
    stats: &Stats,
    states: &BTreeMap<AccountId, AccountState>,
    since: &BTreeMap<AccountId, Time>,
    layout: &Layout,
    started: std::time::Instant,
    letters: Result<Vec<DeadLetterView>, String>,
) -> Snapshot {
    let labeled = stats.labeled();
    let count = |metric: Metric, account: &str, room: Option<&str>| -> u64 {
        labeled
            .iter()
            .filter(|((m, a, r), _)| *m == metric && a == account && room.is_none_or(|room| r == room))
            .map(|(_, n)| *n)
            .sum()
    };
    let accounts = states
        .iter()
        .map(|(id, state)| {
            let (name, error) = state_name(state);
            AccountView {
                id: id.to_string(),
                platform: id.platform().as_str(),
                state: name,
                since_ms: since.get(id).map_or(0, |t| t.0),
                advice: error.as_deref().and_then(|e| advice(state, e)),
                error,
                reconnects: count(Metric::Reconnect, &id.to_string(), None),
            }
        })
        .collect();
    let queued: BTreeMap<String, usize> = stats.queued().into_iter().collect();
    let minutes: BTreeMap<String, [u32; 60]> = stats.relayed_per_minute().into_iter().collect();
    let lags: BTreeMap<String, u64> =
        stats.lags().into_iter().map(|(room, lag)| (room, lag.as_millis() as u64)).collect();
    let bridges = layout
        .iter()
        .map(|(name, rooms)| BridgeView {
            name: name.clone(),
            per_minute: (0..60)
                .map(|m| {
                    rooms
                        .iter()
                        .filter_map(|(room, _)| {
                            let (account, public) = split_room(room);
                            minutes.get(&format!("{account}:{public}")).map(|counts| counts[m])
                        })
                        .sum()
                })
                .collect(),
            rooms: rooms
                .iter()
                .map(|(room, direction)| {
                    let (account, public) = split_room(room);
                    let key = format!("{account}:{public}");
                    RoomView {
                        room: room.clone(),
                        direction,
                        queued: queued.get(&key).copied().unwrap_or(0),
                        lag_ms: lags.get(&key).copied().unwrap_or(0),
                        received: count(Metric::Received, account, Some(&public)),
                        relayed: count(Metric::Relayed, account, Some(&public)),
                        dead_lettered: count(Metric::DeadLettered, account, Some(&public)),
                    }
                })
                .collect(),
        })
        .collect();
    let (dead_letters, dead_letters_error) = match letters {
        Ok(mut letters) => {
            letters.sort_by(|a, b| b.failed_at_ms.cmp(&a.failed_at_ms).then(b.key.cmp(&a.key)));
            (letters, None)
        }
        Err(e) => (Vec::new(), Some(e)),
    };
    Snapshot {
        version: env!("CARGO_PKG_VERSION"),
        commit: crate::BUILD_COMMIT,
        uptime_s: started.elapsed().as_secs(),
        instance: stats.instance.get().cloned(),
        last_reload: stats.last_reload().map(|r| ReloadView { at_ms: r.at.0, applied: r.applied, errors: r.errors }),
        accounts,
        bridges,
        dead_letters,
        dead_letters_error,
        warnings: crate::telemetry::ring::recent(),
    }
}

/// `fishroom.tuna:general` as the counters label it: the account, and the room (a private one hashed).
fn split_room(room: &str) -> (&str, String) {
    match room.split_once(':') {
        Some((account, room)) => (account, crate::stats::public_room(room)),
        None => (room, String::new()),
    }
}
