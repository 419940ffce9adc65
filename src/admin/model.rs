//! What the status page and the admin API show: one snapshot, built from the accounts' states, the counters and
//! the dead letters, serialised as the API's JSON and rendered as the page.

use std::collections::{BTreeMap, HashMap};

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
    /// The configuration file the daemon runs (and reloads) from.
    pub config_file: Option<String>,
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
    /// `connecting`, `connected`, `backing_off`, `stopped`; with a shared store, `elsewhere` (another instance runs
    /// it) or `unheld` (no instance holds its lease now).
    pub state: &'static str,
    /// When it came to this state (ms since the epoch), as far as this daemon has seen.
    pub since_ms: i64,
    pub error: Option<String>,
    /// What an operator can do about the error.
    pub advice: Option<&'static str>,
    pub reconnects: u64,
    pub reconnects_last_hour: u32,
    /// With the PostgreSQL store: the instance holding the account's lease (none: no instance holds it now).
    pub instance: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BridgeView {
    pub name: String,
    pub rooms: Vec<RoomView>,
    /// Messages relayed into its rooms per minute over the last hour, oldest first.
    pub per_minute: Vec<u32>,
    /// Paused by the operator: nothing is handed to its rooms for it; what comes queues.
    pub paused: bool,
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
    /// When a message from it last came in, and one to it was last relayed (ms since the epoch).
    pub last_in_ms: Option<i64>,
    pub last_out_ms: Option<i64>,
    /// Its next send waits for its account's send limit.
    pub waiting_on_limit: bool,
    /// Paused by the operator (itself, or its bridge).
    pub paused: bool,
    /// A live room's audience, as its platform last said (Missevan).
    pub online: Option<u64>,
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
    /// Marked to go back to the queue (at the next start, where it was marked while the daemon was stopped).
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

/// What a snapshot is made of, beside the counters.
pub struct Inputs<'a> {
    pub states: &'a BTreeMap<AccountId, AccountState>,
    /// When each account came to its state.
    pub since: &'a BTreeMap<AccountId, Time>,
    pub layout: &'a Layout,
    pub started: std::time::Instant,
    pub letters: Result<Vec<DeadLetterView>, String>,
    /// With the PostgreSQL store: which instance holds each account.
    pub holders: Option<BTreeMap<String, String>>,
    pub config_file: Option<String>,
}

/// The snapshot of now. Every figure is looked up in maps built once: a page of 1,000 rooms stays cheap.
pub fn snapshot(stats: &Stats, inputs: Inputs<'_>) -> Snapshot {
    let Inputs { states, since, layout, started, letters, holders, config_file } = inputs;
    let labeled = stats.labeled();
    let mut per_room: HashMap<(Metric, &str, &str), u64> = HashMap::with_capacity(labeled.len());
    let mut per_account: HashMap<(Metric, &str), u64> = HashMap::new();
    for ((metric, account, room), n) in &labeled {
        *per_room.entry((*metric, account, room)).or_default() += n;
        *per_account.entry((*metric, account)).or_default() += n;
    }
    let hourly: HashMap<AccountId, u32> = stats.reconnects_last_hour().into_iter().collect();
    let accounts = states
        .iter()
        .map(|(id, state)| {
            let (name, error) = state_name(state);
            let label = id.to_string();
            AccountView {
                platform: id.platform().as_str(),
                state: name,
                since_ms: since.get(id).map_or(0, |t| t.0),
                advice: error.as_deref().and_then(|e| advice(state, e)),
                error,
                reconnects: per_account.get(&(Metric::Reconnect, label.as_str())).copied().unwrap_or(0),
                reconnects_last_hour: hourly.get(id).copied().unwrap_or(0),
                instance: holders.as_ref().and_then(|h| h.get(&label).cloned()),
                id: label,
            }
        })
        .collect::<Vec<_>>();
    let accounts = with_elsewhere(accounts, layout, holders.as_ref());
    let queued: HashMap<String, usize> = stats.queued().into_iter().collect();
    let figures: HashMap<String, crate::stats::RoomFigures> = stats.room_figures().into_iter().collect();
    let lags: HashMap<String, u64> =
        stats.lags().into_iter().map(|(room, lag)| (room, lag.as_millis() as u64)).collect();
    let paused = stats.paused.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let bridges = layout
        .iter()
        .map(|(name, rooms)| {
            let bridge_paused = paused.bridges.contains(name);
            let mut per_minute = vec![0u32; 60];
            let rooms = rooms
                .iter()
                .map(|(room, direction)| {
                    let (account, public) = split_room(room);
                    let key = format!("{account}:{public}");
                    let count = |metric| per_room.get(&(metric, account, public.as_str())).copied().unwrap_or(0);
                    let figures = figures.get(&key).cloned().unwrap_or_default();
                    for (sum, n) in per_minute.iter_mut().zip(&figures.per_minute) {
                        *sum += n;
                    }
                    RoomView {
                        room: room.clone(),
                        direction,
                        queued: queued.get(&key).copied().unwrap_or(0),
                        lag_ms: lags.get(&key).copied().unwrap_or(0),
                        received: count(Metric::Received),
                        relayed: count(Metric::Relayed),
                        dead_lettered: count(Metric::DeadLettered),
                        last_in_ms: figures.last_in_ms,
                        last_out_ms: figures.last_out_ms,
                        waiting_on_limit: figures.limited,
                        paused: bridge_paused || paused.rooms.contains(room),
                        online: figures.online,
                    }
                })
                .collect();
            BridgeView { name: name.clone(), rooms, per_minute, paused: bridge_paused }
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
        config_file,
    }
}

/// With a shared store, the accounts of the configuration this instance does not run: held by another instance
/// (`elsewhere`), or by none now (`unheld`, until an instance claims its lease).
fn with_elsewhere(
    mut accounts: Vec<AccountView>,
    layout: &Layout,
    holders: Option<&BTreeMap<String, String>>,
) -> Vec<AccountView> {
    let Some(holders) = holders else { return accounts };
    let configured: std::collections::BTreeSet<&str> =
        layout.iter().flat_map(|(_, rooms)| rooms.iter().map(|(room, _)| split_room(room).0)).collect();
    for id in configured {
        if accounts.iter().any(|a| a.id == id) {
            continue;
        }
        let Ok(parsed) = id.parse::<AccountId>() else { continue };
        let instance = holders.get(id).cloned();
        accounts.push(AccountView {
            id: id.to_owned(),
            platform: parsed.platform().as_str(),
            state: if instance.is_some() { "elsewhere" } else { "unheld" },
            since_ms: 0,
            error: None,
            advice: None,
            reconnects: 0,
            reconnects_last_hour: 0,
            instance,
        });
    }
    accounts.sort_by(|a, b| a.id.cmp(&b.id));
    accounts
}

/// `fishroom.tuna:general` as the counters label it: the account, and the room (a private one hashed).
fn split_room(room: &str) -> (&str, String) {
    match room.split_once(':') {
        Some((account, room)) => (account, crate::stats::public_room(room)),
        None => (room, String::new()),
    }
}
