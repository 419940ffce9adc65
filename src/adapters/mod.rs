//! The adapter runtime: one task per configured account, talking to the router only through channels.
//! An adapter receives from its platform (the gateway side) and sends what the router hands it (the
//! client side), acknowledging each send only after the platform confirmed it.

pub mod api;
pub mod backoff;
pub mod bounded;
pub mod config;
mod drive;
pub mod fishroom;
pub mod heihei;
pub mod iirose;
pub mod missevan;
pub mod net;
pub mod retry;
mod rooms;
pub mod supervise;
pub mod yunhu;

#[cfg(test)]
mod hostile;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::future::{BoxFuture, Either, Ready, ready};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use backoff::Backoff;
pub use drive::drive;
pub use net::{WS_READ_BUFFER, WS_ROOM_READ_BUFFER, connect_ws, http_client, install_crypto_provider};
pub use rooms::{RoomList, per_room};
// The contract with the router, for the adapters' code to name as its own.
pub use crate::link::{
    AccountState, AdapterRoom, OutMessage, Outlet, Quote, RouterInput, SendAction, SendFailure, SendNow, SendNowSlot,
    SendRequest,
};

use crate::model::{AccountId, Capabilities, Cursor, Event, RemoteId, RoomAddr, RoomId};
use crate::stats::{Metric, Stats};
use config::AccountConfig;

/// Everything an adapter task is given besides its send requests.
#[derive(Clone)]
pub struct AdapterContext {
    pub account: AccountId,
    /// The account's rooms; a reload changes them while the session runs where the adapter can follow
    /// ([`Adapter::live_rooms`]).
    pub rooms: RoomList,
    pub router: mpsc::Sender<RouterInput>,
    /// Cancelled on shutdown: stop receiving, keep sending.
    pub stop_receiving: CancellationToken,
    /// Cancelled when the queues have drained (or the drain deadline passed): close everything.
    pub closed: CancellationToken,
    pub stats: Arc<Stats>,
    pub backoff: Backoff,
    /// Gap filling: each room's cursor as the store kept it (shared by the account's tasks, which advance
    /// it as they emit events), and how far back a replay may reach.
    pub cursors: Cursors,
    /// The limits of the HTTP listeners an adapter serves (the API's).
    pub http: crate::listener::Limits,
    /// Where an adapter that can answer sends at once offers to (the API's); the router looks here first.
    pub send_now: SendNowSlot,
}

/// The read cursors of an account's rooms: where gap filling resumes after a reconnect or restart.
#[derive(Clone, Default)]
pub struct Cursors {
    rooms: Arc<std::sync::Mutex<std::collections::HashMap<RoomId, Cursor>>>,
    /// Replays reach no further back than this.
    pub window: std::time::Duration,
}

impl Cursors {
    pub fn new(rooms: impl IntoIterator<Item = (RoomId, Cursor)>, window: std::time::Duration) -> Self {
        Self { rooms: Arc::new(std::sync::Mutex::new(rooms.into_iter().collect())), window }
    }

    /// Where the room's reading stands, if it was ever read.
    pub fn get(&self, room: &RoomId) -> Option<Cursor> {
        self.rooms.lock().expect("never poisoned").get(room).cloned()
    }

    pub fn set(&self, room: &RoomId, cursor: Cursor) {
        self.rooms.lock().expect("never poisoned").insert(room.clone(), cursor);
    }

    /// The oldest time a replayed message may have (ms since the epoch).
    pub fn oldest(&self) -> crate::model::Time {
        crate::model::Time(crate::model::Time::now().0 - self.window.as_millis() as i64)
    }
}

impl AdapterContext {
    /// Hands an event to the router; false when the router is gone. While the store cannot write, it waits:
    /// a message taken in then could not be kept, and a source that waits stops reading (what its platform
    /// says meanwhile comes back through its history, where it has one). If the account is told to stop
    /// receiving meanwhile (a stop, a reload, a lease lost), the event already read is handed over all the same:
    /// the store's writer keeps what it is given until it can write it, and a source without history could
    /// not give it again.
    ///
    /// Like [`Self::set_state`] and [`Self::ack`], it takes the event at once when the router's inbox has room,
    /// and only a wait is a future of its own: every task that receives keeps room for this call in its state,
    /// and an account may run thousands of such tasks (a Missevan room each).
    pub fn emit(&self, event: Event) -> impl Future<Output = bool> + Send + '_ {
        if self.stats.store.failing().is_none() {
            return self.hand(RouterInput::Event(event));
        }
        let input = RouterInput::Event(event);
        Either::Right(Box::pin(async move {
            tokio::select! {
                _ = self.stats.store.writable() => {}
                _ = self.closed.cancelled() => return false,
                _ = self.stop_receiving.cancelled() => {}
            }
            self.router.send(input).await.is_ok()
        }))
    }

    /// Hands `input` to the router: at once when its inbox has room, else through a boxed wait for room.
    /// False when the router is gone.
    fn hand(&self, input: RouterInput) -> Handing<'_> {
        match self.router.try_send(input) {
            Ok(()) => Either::Left(ready(true)),
            Err(mpsc::error::TrySendError::Closed(_)) => Either::Left(ready(false)),
            Err(mpsc::error::TrySendError::Full(input)) => {
                Either::Right(Box::pin(async move { self.router.send(input).await.is_ok() }))
            }
        }
    }

    /// Hands an event to the router unless the store cannot write at this moment: for a source that answers its
    /// client at once (the API), which must refuse rather than keep a request waiting. `Err(Some(why))` when the
    /// store cannot write, `Err(None)` when the router is gone.
    pub async fn offer(&self, event: Event) -> Result<(), Option<String>> {
        if let Some(reason) = self.stats.store.failing() {
            return Err(Some(reason));
        }
        self.router.send(RouterInput::Event(event)).await.map_err(|_| None)
    }

    pub fn set_state(&self, state: AccountState) -> impl Future<Output = ()> + Send + '_ {
        let account = self.account.clone();
        let handing = self.hand(RouterInput::State { account, state });
        async move {
            handing.await;
        }
    }

    pub fn ack(
        &self,
        room: &RoomId,
        result: Result<Vec<RemoteId>, SendFailure>,
    ) -> impl Future<Output = ()> + Send + '_ {
        let room = RoomAddr::new(self.account.clone(), room.clone());
        let handing = self.hand(RouterInput::Ack { room, result });
        async move {
            handing.await;
        }
    }

    /// Start-up that failed (an endpoint map, the account's own id): the one policy every platform follows
    /// is to try again with the reconnect backoff, showing `backing_off`, until it answers; only a refusal
    /// the platform states as permanent stops an account (the caller's decision). False when the daemon is
    /// shutting down meanwhile.
    async fn start_up_failed(&self, backoff: &mut Backoff, what: &str, reason: &str) -> bool {
        let delay = backoff.next_delay();
        tracing::warn!(account = %self.account, reason, "{what} failed; trying again in {delay:.1?}.");
        self.stats.count_account(Metric::Reconnect, &self.account);
        self.set_state(AccountState::backing_off(delay, format!("{what}: {reason}"))).await;
        tokio::select! {
            // Nothing can be sent before start-up succeeds: what is queued stays queued.
            _ = self.stop_receiving.cancelled() => false,
            _ = self.closed.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    /// The one start-up policy for a call an account needs before it can run (an endpoint map, its own id):
    /// tried again with the reconnect backoff until it answers; a refusal the platform states as permanent stops
    /// the account. `None` when the account stopped or the daemon is shutting down (see [`stopped_at_start`]).
    pub async fn start_up<T, F, Fut>(&self, stop: &AccountStop, what: &str, mut call: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StartUp>>,
    {
        let mut backoff = self.backoff.clone();
        loop {
            match call().await {
                Ok(found) => return Some(found),
                Err(StartUp::Refused(reason)) => {
                    stop.stop(self, reason).await;
                    return None;
                }
                Err(StartUp::Failed(reason)) => {
                    if !self.start_up_failed(&mut backoff, what, &reason).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Reads a room's history for gap filling with `read`, trying again a couple of times (a connection the
    /// pool kept from before an outage may fail once); `None`, after a WARN, when it cannot be read.
    pub async fn read_history<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
        &self,
        room: &RoomId,
        mut read: impl FnMut() -> F,
    ) -> Option<T> {
        const ATTEMPTS: u32 = 3;
        const PAUSE: std::time::Duration = std::time::Duration::from_millis(300);
        for attempt in 1..=ATTEMPTS {
            match read().await {
                Ok(found) => return Some(found),
                Err(reason) if attempt < ATTEMPTS => {
                    tracing::debug!(account = %self.account, room = %room, reason = %reason, "Gap filling: the history failed; trying again.");
                    tokio::time::sleep(PAUSE).await;
                }
                Err(reason) => {
                    tracing::warn!(account = %self.account, room = %room, reason = %reason, "Gap filling failed: what was said while disconnected is not relayed.");
                }
            }
        }
        None
    }
}

/// A client websocket, plain or TLS.
pub type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Cancelled when an account cannot go on (its login or token was refused); shared by its tasks.
#[derive(Clone, Default)]
pub struct AccountStop(CancellationToken);

impl AccountStop {
    /// Stops the account once, reporting why.
    pub async fn stop(&self, ctx: &AdapterContext, reason: String) {
        if !self.0.is_cancelled() {
            self.0.cancel();
            ctx.set_state(AccountState::Stopped { reason }).await;
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Answers a send: a fatal failure stops the account first (the one place that does), then the router hears
    /// the result.
    pub async fn answer(&self, ctx: &AdapterContext, room: &RoomId, result: Result<Vec<RemoteId>, SendFailure>) {
        if let Err(SendFailure::Fatal { reason }) = &result {
            self.stop(ctx, reason.clone()).await;
        }
        ctx.ack(room, result).await;
    }

    pub async fn stopped(&self) {
        self.0.cancelled().await
    }
}

/// How a start-up call failed.
pub enum StartUp {
    /// The platform refused for good (a bad token): the account stops.
    Refused(String),
    /// Anything else: tried again.
    Failed(String),
}

/// After a start-up that did not succeed: a stopped account still answers every send (`Fatal`) until the daemon
/// closes; a daemon shutting down meanwhile needs nothing more.
pub async fn stopped_at_start(ctx: AdapterContext, sends: mpsc::UnboundedReceiver<SendRequest>, stop: AccountStop) {
    if stop.is_stopped() {
        let none: Vec<Running> = Vec::new();
        drive(ctx, sends, stop, none, |_| async {}).await;
    }
}

/// An adapter's task, as [`Adapter::run`] returns it.
pub type Running = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A platform adapter.
pub trait Adapter: Send + 'static {
    fn capabilities(&self) -> Capabilities;
    /// Runs until `ctx.closed` is cancelled or the account stops; answers every request of `sends`
    /// with an acknowledgement.
    fn run(self: Box<Self>, ctx: AdapterContext, sends: mpsc::UnboundedReceiver<SendRequest>) -> Running;
    /// Whether the session follows a change of its rooms (`ctx.rooms`): a reload that only adds or takes away
    /// rooms then leaves it running. Otherwise the session is replaced.
    fn live_rooms(&self) -> bool {
        false
    }
}

/// The adapter for one configured account.
pub fn build(account: &AccountConfig) -> Box<dyn Adapter> {
    account.adapter()
}

/// [`AdapterContext::hand`]'s answer: done at once, or a wait for room in the router's inbox.
type Handing<'a> = Either<Ready<bool>, BoxFuture<'a, bool>>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn sources_wait_while_the_store_cannot_write() {
        let (router, mut inbox) = mpsc::channel(8);
        let ctx = AdapterContext {
            account: AccountId::new(crate::model::Platform::Fishroom, "t"),
            rooms: RoomList::default(),
            router,
            stop_receiving: Default::default(),
            closed: Default::default(),
            stats: Default::default(),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(2)),
            cursors: Cursors::default(),
            http: Default::default(),
            send_now: Default::default(),
        };
        let room = RoomAddr::new(ctx.account.clone(), crate::model::RoomId::new("r"));
        let event = || Event::new(room.clone(), None, None, crate::model::EventKind::Joined);
        ctx.stats.store.set(Some("database or disk is full".into()));
        let waiting = tokio::spawn({
            let ctx = ctx.clone();
            let event = event();
            async move { ctx.emit(event).await }
        });
        tokio::task::yield_now().await;
        assert!(inbox.try_recv().is_err(), "nothing is taken in while the store fails");
        assert!(!waiting.is_finished());
        ctx.stats.store.set(None);
        assert!(waiting.await.unwrap());
        assert!(matches!(inbox.recv().await, Some(RouterInput::Event(_))), "taken in once it can be kept");
        // A source that answers its client at once is refused instead of kept waiting (the API's 503).
        ctx.stats.store.set(Some("database or disk is full".into()));
        let offered = tokio::time::timeout(Duration::from_secs(1), ctx.offer(event())).await;
        assert_eq!(offered.expect("answered at once"), Err(Some("database or disk is full".to_owned())));
        assert!(inbox.try_recv().is_err());
        ctx.stats.store.set(None);
        assert_eq!(ctx.offer(event()).await, Ok(()));
        assert!(matches!(inbox.recv().await, Some(RouterInput::Event(_))));
        // Receiving stops meanwhile (a stop, a reload, a lease lost): the source is released, and what it had
        // read is handed over all the same — the store's writer keeps it until it can write it.
        ctx.stats.store.set(Some("full".into()));
        let waiting = tokio::spawn({
            let ctx = ctx.clone();
            let event = event();
            async move { ctx.emit(event).await }
        });
        tokio::task::yield_now().await;
        assert!(inbox.try_recv().is_err());
        ctx.stop_receiving.cancel();
        assert!(waiting.await.unwrap());
        assert!(matches!(inbox.recv().await, Some(RouterInput::Event(_))));
    }
}
