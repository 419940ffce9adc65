//! The systemd notification protocol (`Type=notify-reload`, through the `sd-notify` crate): `READY=1` once every
//! account has made its first connection attempt, `STATUS=` with a summary whenever it changes, `WATCHDOG=1` from
//! the router's own loop, `RELOADING=1` and `STOPPING=1`. Nothing is sent without `NOTIFY_SOCKET`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;

use crate::link::AccountState;
use crate::model::AccountId;
use crate::stats::Stats;

/// How long start-up may wait for every account's first attempt before `READY=1` is sent anyway.
const READY_AT_THE_LATEST: Duration = Duration::from_secs(30);

fn send(states: &[NotifyState<'_>]) {
    let _ = sd_notify::notify(false, states);
}

/// How often the router should say it is alive: half the service manager's watchdog interval, when it set one.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2)).filter(|d| !d.is_zero())
}

/// `WATCHDOG=1`.
pub fn alive() {
    send(&[NotifyState::Watchdog]);
}

/// `RELOADING=1` with the time, before a reload.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// `READY=1` after a reload that changed nothing (the file was not valid).
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// What `STATUS=` adds while the last reload stands refused.
pub fn refused(errors: &[String]) -> String {
    let first = errors.first().map_or("", String::as_str);
    let more = if errors.len() > 1 { format!(" (and {} more)", errors.len() - 1) } else { String::new() };
    format!("; reload refused, the configuration before it runs: {first}{more}")
}

/// `READY=1` after a refused reload, with a `STATUS=` that says so at once.
pub fn ready_refused(errors: &[String]) {
    let status = format!("reload refused{}", refused(errors).trim_start_matches("; reload refused"));
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// `STOPPING=1`, as the shutdown begins.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// A one-line summary: "5 accounts: 4 connected, 1 reconnecting; 0 queued".
pub fn summary(states: &BTreeMap<AccountId, AccountState>, queued: usize) -> String {
    let count = |f: fn(&AccountState) -> bool| states.values().filter(|s| f(s)).count();
    let mut parts = vec![format!("{} connected", count(|s| *s == AccountState::Connected))];
    for (n, what) in [
        (count(|s| *s == AccountState::Connecting), "connecting"),
        (count(|s| matches!(s, AccountState::BackingOff { .. })), "reconnecting"),
        (count(|s| matches!(s, AccountState::Stopped { .. })), "stopped"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let accounts = states.len();
    format!("{accounts} account{}: {}; {queued} queued", if accounts == 1 { "" } else { "s" }, parts.join(", "))
}

/// Sends `READY=1` once no account is still making its first attempt (or after `READY_AT_THE_LATEST`),
/// then a `STATUS=` line whenever the summary changes, until `states` closes.
pub async fn follow(mut states: watch::Receiver<BTreeMap<AccountId, AccountState>>, stats: Arc<Stats>) {
    let first_attempts = states.wait_for(|s| s.values().all(|s| *s != AccountState::Connecting));
    let _ = tokio::time::timeout(READY_AT_THE_LATEST, first_attempts).await;
    let mut last = String::new();
    let mut first = true;
    loop {
        let queued = stats.queued().iter().map(|(_, n)| n).sum();
        let mut line = summary(&states.borrow(), queued);
        if let Some(reload) = stats.last_reload().filter(|r| !r.applied) {
            line.push_str(&refused(&reload.errors));
        }
        if line != last {
            if first {
                send(&[NotifyState::Ready, NotifyState::Status(&line)]);
            } else {
                send(&[NotifyState::Status(&line)]);
            }
            last = line;
        }
        first = false;
        // Queue depths change without a state change: looked at again every few seconds.
        if let Ok(Err(_)) = tokio::time::timeout(Duration::from_secs(5), states.changed()).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Platform;

    #[test]
    fn the_summary_says_how_many_are_in_each_state() {
        let mut states = BTreeMap::new();
        for (name, state) in [
            ("a", AccountState::Connected),
            ("b", AccountState::Connected),
            ("c", AccountState::backing_off(Duration::from_secs(1), "connection refused")),
        ] {
            states.insert(AccountId::new(Platform::Fishroom, name), state);
        }
        assert_eq!(summary(&states, 7), "3 accounts: 2 connected, 1 reconnecting; 7 queued");
    }
}
