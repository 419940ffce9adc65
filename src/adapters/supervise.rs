//! The one receive loop every platform runs its connections under: connect, listen, learn how it ended,
//! and reconnect with the shared backoff — or stop the room, or the account. A platform supplies only the
//! session (connect, read, classify each frame) and says how it ended with [`Ended`].

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{error, info};

use super::{AccountState, AccountStop, AdapterContext, Backoff};
use crate::model::RoomId;
use crate::stats::Metric;

/// How one connection (or one poll session) ended.
#[derive(Debug)]
pub enum Ended {
    /// Receiving stopped, the account stopped, or the daemon is closing: nothing to retry.
    Stopped,
    /// The connection was lost: try again after the backoff.
    Lost(String),
    /// Lost, and the platform said when to come back (IIROSE's daily login limit): the account shows as
    /// stopped until then.
    LostUntil { reason: String, wait: Duration },
    /// This room refused us (it does not exist, the join was refused): the account's other rooms go on.
    RoomRefused(String),
    /// The account cannot go on (its login or token is refused for good): it stops.
    Fatal(String),
}

/// Until when a supervised session is reconnected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Until receiving stops or the account stops (a connection that only receives).
    StopReceiving,
    /// Until the daemon closes (a session that also carries the account's sends, as IIROSE's does).
    Closed,
}

/// One attempt of a session, as the supervisor hands it over.
pub struct Attempt {
    /// 0 for the first connection, then 1, 2, … for each reconnection.
    pub number: u32,
    backoff: Arc<Mutex<Backoff>>,
}

impl Attempt {
    pub fn is_reconnect(&self) -> bool {
        self.number > 0
    }

    /// The connection is up (logged in, joined, first poll answered): if it stays up, the next failure starts
    /// the backoff from its minimum again.
    pub fn connected(&self) {
        self.backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner).connected();
    }

    /// The backoff's next delay, for a pause inside a session (after a malformed answer, say).
    pub fn next_delay(&self) -> Duration {
        self.backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner).next_delay()
    }
}

/// Runs `session` until it ends for good: a lost connection is tried again after the backoff (logged at INFO,
/// counted, shown as `backing_off`), a refused room ends this loop only, a fatal failure stops the account.
/// `room` names the room in the logs when the loop is per room.
pub async fn supervise<F, Fut>(
    ctx: &AdapterContext,
    stop: &AccountStop,
    room: Option<&RoomId>,
    until: Until,
    mut session: F,
) where
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Ended>,
{
    let backoff = Arc::new(Mutex::new(ctx.backoff.clone()));
    let room_name = room.map_or("", RoomId::as_str);
    for number in 0u32.. {
        let ended = session(Attempt { number, backoff: Arc::clone(&backoff) }).await;
        let delay = match ended {
            Ended::Stopped => return,
            Ended::RoomRefused(reason) => {
                if let Some(room) = room {
                    ctx.stats.count(Metric::RoomUnusable, &ctx.room_addr(room));
                }
                error!(account = %ctx.account, room = room_name, reason = %reason, "Cannot receive from this room; fix the configuration. The other rooms go on.");
                return;
            }
            Ended::Fatal(reason) => {
                stop.stop(ctx, reason).await;
                return;
            }
            Ended::LostUntil { reason, wait } => {
                error!(account = %ctx.account, room = room_name, reason = %reason, "Not connecting again for {wait:.0?}.");
                ctx.set_state(AccountState::Stopped { reason: format!("{reason}; trying again in {wait:.0?}") }).await;
                wait
            }
            Ended::Lost(reason) => {
                let delay = backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner).next_delay();
                ctx.stats.count_account(Metric::Reconnect, &ctx.account);
                info!(account = %ctx.account, room = room_name, reason = %reason, "Reconnecting in {delay:.1?}.");
                ctx.set_state(AccountState::backing_off(delay, reason.as_str())).await;
                delay
            }
        };
        let go_on = match until {
            Until::StopReceiving => tokio::select! {
                _ = ctx.stop_receiving.cancelled() => false,
                _ = stop.stopped() => false,
                _ = tokio::time::sleep(delay) => true,
            },
            Until::Closed => tokio::select! {
                _ = ctx.closed.cancelled() => false,
                _ = tokio::time::sleep(delay) => true,
            },
        };
        if !go_on {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::sync::mpsc;

    use super::*;
    use crate::adapters::{Cursors, RouterInput};
    use crate::model::{AccountId, Platform};

    fn context() -> (AdapterContext, mpsc::Receiver<RouterInput>) {
        let (router, inbox) = mpsc::channel(64);
        let ms = Duration::from_millis(1);
        let ctx = AdapterContext {
            account: AccountId::new(Platform::Fishroom, "t"),
            rooms: Default::default(),
            router,
            stop_receiving: Default::default(),
            closed: Default::default(),
            stats: Default::default(),
            backoff: Backoff::new(ms, 2 * ms),
            cursors: Cursors::default(),
            http: Default::default(),
            send_now: Default::default(),
        };
        (ctx, inbox)
    }

    fn states(inbox: &mut mpsc::Receiver<RouterInput>) -> Vec<AccountState> {
        std::iter::from_fn(|| inbox.try_recv().ok())
            .filter_map(|input| match input {
                RouterInput::State { state, .. } => Some(state),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_lost_connection_is_tried_again_until_the_session_says_how_it_ended() {
        let (ctx, mut inbox) = context();
        let stop = AccountStop::default();
        let room = RoomId::new("r");
        let attempts = AtomicU32::new(0);
        supervise(&ctx, &stop, Some(&room), Until::StopReceiving, |attempt| {
            let n = attempts.fetch_add(1, Ordering::Relaxed);
            async move {
                assert_eq!(attempt.number, n);
                assert_eq!(attempt.is_reconnect(), n > 0);
                if n < 2 { Ended::Lost(format!("lost {n}")) } else { Ended::RoomRefused("no such room".into()) }
            }
        })
        .await;
        assert_eq!(attempts.load(Ordering::Relaxed), 3);
        assert_eq!(ctx.stats.reconnects.get(), 2);
        assert_eq!(ctx.stats.rooms_unusable.get(), 1);
        let seen = states(&mut inbox);
        assert_eq!(seen.len(), 2, "backing off twice: {seen:?}");
        assert!(seen.iter().all(|s| matches!(s, AccountState::BackingOff { .. })));
        assert!(!stop.is_stopped(), "a refused room leaves the account running");
    }

    #[tokio::test]
    async fn a_fatal_end_stops_the_account() {
        let (ctx, mut inbox) = context();
        let stop = AccountStop::default();
        supervise(&ctx, &stop, None, Until::StopReceiving, |_| async { Ended::Fatal("token refused".into()) }).await;
        assert!(stop.is_stopped());
        assert_eq!(states(&mut inbox), [AccountState::Stopped { reason: "token refused".into() }]);
    }

    #[tokio::test]
    async fn a_receiving_loop_ends_when_receiving_stops_and_a_sending_session_only_at_the_close() {
        let (ctx, _inbox) = context();
        let stop = AccountStop::default();
        ctx.stop_receiving.cancel();
        let attempts = AtomicU32::new(0);
        supervise(&ctx, &stop, None, Until::StopReceiving, |_| {
            attempts.fetch_add(1, Ordering::Relaxed);
            async { Ended::Lost("lost".into()) }
        })
        .await;
        assert_eq!(attempts.load(Ordering::Relaxed), 1, "not tried again once receiving stopped");
        // A session that carries sends goes on after receiving stopped, until the daemon closes.
        let attempts = AtomicU32::new(0);
        supervise(&ctx, &stop, None, Until::Closed, |_| {
            if attempts.fetch_add(1, Ordering::Relaxed) == 3 {
                ctx.closed.cancel();
            }
            async { Ended::Lost("lost".into()) }
        })
        .await;
        assert_eq!(attempts.load(Ordering::Relaxed), 4);
    }
}
