//! The `api` platform: an HTTP API with matterbridge's paths and JSON field names, so bots and tools
//! written for matterbridge plug in unchanged. Each gateway (a bridge name) is a room. Unlike
//! matterbridge's, every client gets every message (no shared buffer that one reader empties), messages
//! carry ids for replies, edits and deletes, and a client can resume from the last id it saw.

pub mod config;
mod feed;
mod send;
mod server;
mod websocket;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Notify, broadcast, mpsc};
use tracing::{error, info};

use super::{AccountStop, Adapter, AdapterContext, SendRequest};
use crate::model::{Capabilities, ClientIdForm, RoomAddr};
use config::ApiAccount;
use wire::ApiMessage;

pub struct ApiAdapter {
    config: ApiAccount,
}

impl ApiAdapter {
    pub fn new(config: ApiAccount) -> Self {
        Self { config }
    }
}

/// Messages buffered for the live feed of streaming clients (a slow one catches up from `history`).
const LIVE_BUFFER: usize = 256;
/// Messages larger than this go through the live feed by number only (the buffer stays within 16 MiB).
const LIVE_INLINE: usize = 64 << 10;

/// How long the bridge holds a message back for a streaming client that is `history` messages behind (so it
/// loses nothing) before it disconnects that client (which can come back with its last id).
const SLOW_READER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where one streaming client is.
#[derive(Default)]
struct Reader {
    /// The number of the next message it needs.
    next: AtomicU64,
    /// Dropped for being too slow: its feed ends.
    cut: AtomicBool,
}

/// A message as clients get it: serialised once (with the newline that ends a stream line), whatever the
/// number of clients, and kept that way — one allocation instead of one per field.
#[derive(Clone, Debug)]
struct Kept {
    id: Arc<str>,
    line: axum::body::Bytes,
    /// The websocket session that posted it (not sent back there), or 0.
    from: u64,
}

impl Kept {
    fn new(message: &ApiMessage) -> Self {
        Self::from_session(message, 0)
    }

    fn from_session(message: &ApiMessage, from: u64) -> Self {
        Self::written(&wire::ApiMessageOut::from(message), from)
    }

    /// A message as the bridge writes it (the same JSON as an [`ApiMessage`]'s), made without a `String` per field.
    fn written(message: &wire::ApiMessageOut<'_>, from: u64) -> Self {
        // Room for the field names and the usual values at once: growing from empty took six reallocations a message.
        let guess = 320 + message.text.len() + message.username.len() + message.channel.len() + message.id.len();
        let mut line = Vec::with_capacity(guess);
        serde_json::to_writer(&mut line, message).expect("a message serialises");
        line.push(b'\n');
        // Kept for as long as the history holds it: no more room than the line needs (the guess is ~100 bytes over).
        line.shrink_to_fit();
        Self { id: Arc::from(message.id), line: line.into(), from }
    }

    /// The JSON without the newline.
    fn json(&self) -> axum::body::Bytes {
        self.line.slice(..self.line.len() - 1)
    }
}

/// Messages for clients, numbered, the last `history` of them kept.
#[derive(Default)]
struct Log {
    next: u64,
    messages: VecDeque<(u64, Kept)>,
    /// The bytes of `messages`' lines.
    bytes: usize,
    /// Each reader's position for `GET /api/messages`, and when it last read: at most [`MAX_READERS`],
    /// forgotten after [`READER_IDLE`] without a read (a forgotten reader starts again from the kept messages).
    cursors: HashMap<String, (u64, std::time::Instant)>,
}

/// The most `GET /api/messages` readers (token and `client` name) remembered at once; past it, the one
/// that read least recently is forgotten.
const MAX_READERS: usize = 1024;
/// A reader that has not read for this long is forgotten.
const READER_IDLE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The ids of messages this account relayed to clients or took from them, the most recent [`KNOWN_IDS`]: a
/// client's `id` makes its post an edit only when it names one of them (matterbridge ignores client ids; an
/// unknown one is a new message). The ids are uuids (the bridge gives every message one), kept as numbers: 16
/// bytes each, twice.
#[derive(Default)]
struct KnownIds {
    set: std::collections::HashSet<u128, foldhash::fast::RandomState>,
    order: VecDeque<u128>,
}

const KNOWN_IDS: usize = 4_096;

impl KnownIds {
    fn add(&mut self, id: &str) {
        let Ok(id) = uuid::Uuid::parse_str(id).map(|u| u.as_u128()) else { return };
        if self.set.contains(&id) {
            return;
        }
        // The oldest goes before the newest comes, so the queue never holds more than KNOWN_IDS (one more
        // would double its allocation).
        if self.order.len() >= KNOWN_IDS
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        self.set.insert(id);
        self.order.push_back(id);
    }

    fn contains(&self, id: &str) -> bool {
        uuid::Uuid::parse_str(id).is_ok_and(|u| self.set.contains(&u.as_u128()))
    }
}

struct Hub {
    config: ApiAccount,
    ctx: AdapterContext,
    /// The account's id as text (each message's `account`).
    account: String,
    /// The rooms it serves, by gateway name.
    gateways: Vec<RoomAddr>,
    log: Mutex<Log>,
    live: broadcast::Sender<(u64, Kept)>,
    /// The connected streaming clients.
    readers: Mutex<Vec<Weak<Reader>>>,
    /// Signalled when a reader moves on while a send waits for one.
    advanced: Notify,
    /// Sends waiting for a slow reader.
    waiting: AtomicUsize,
    /// Websocket clients connected now (capped at `http_max_connections`, as the listener's connections).
    websockets: AtomicUsize,
    /// Numbers websocket sessions (from 1), so that what one posts is not sent back to it.
    sessions: AtomicU64,
    known: Mutex<KnownIds>,
    slow_reader_wait: std::time::Duration,
    /// What its clients may post (`post_rate`, `post_burst`).
    posts: Mutex<crate::bucket::Bucket>,
}

impl Hub {
    /// Keeps a message for clients and hands it to the connected ones (but the websocket session `from`).
    fn publish(&self, message: Kept) {
        self.know(&message.id);
        let mut log = self.log.lock().expect("never poisoned");
        let seq = log.next;
        log.next += 1;
        log.bytes += message.line.len();
        log.messages.push_back((seq, message.clone()));
        // The last `history` messages, within `history_bytes` (the newest is kept whatever its size).
        while log.messages.len() > self.config.history
            || (log.bytes > self.config.history_bytes && log.messages.len() > 1)
        {
            if let Some((_, oldest)) = log.messages.pop_front() {
                log.bytes -= oldest.line.len();
            }
        }
        drop(log);
        // The live feed's buffer holds the last LIVE_BUFFER messages whoever has read them: a large one goes as its
        // number only (clients take it from the kept ones), so the buffer stays small whatever clients post.
        let live = if message.line.len() > LIVE_INLINE {
            Kept { id: message.id, line: axum::body::Bytes::new(), from: message.from }
        } else {
            message
        };
        let _ = self.live.send((seq, live));
    }

    /// Publishes once every streaming client has room for the message: a client `history` messages behind
    /// would otherwise lose the oldest one it still needs. One that stays that far behind for
    /// [`SLOW_READER_WAIT`] is disconnected instead of holding everyone back.
    async fn deliver(&self, message: Kept) {
        if self.slowest_behind().is_some() {
            self.wait_for_readers().await;
        }
        self.publish(message);
    }

    fn know(&self, id: &str) {
        self.known.lock().expect("never poisoned").add(id);
    }

    fn knows(&self, id: &str) -> bool {
        self.known.lock().expect("never poisoned").contains(id)
    }

    async fn wait_for_readers(&self) {
        /// Counts this send among the waiting ones for as long as it waits, however the wait ends.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        let deadline = tokio::time::Instant::now() + self.slow_reader_wait;
        loop {
            // Registered before looking, so a reader that moves on in between is not missed.
            let notified = self.advanced.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let Some(slowest) = self.slowest_behind() else { return };
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                slowest.cut.store(true, Ordering::SeqCst);
                self.live_wake();
            }
        }
    }

    /// The slowest connected streaming client, when it is `history` messages behind.
    fn slowest_behind(&self) -> Option<Arc<Reader>> {
        self.behind_by(0)
    }

    /// The slowest connected streaming client, when `extra` more messages would leave it `history` behind.
    fn behind_by(&self, extra: u64) -> Option<Arc<Reader>> {
        let limit = self.config.history.max(1) as u64;
        let next = self.log.lock().expect("never poisoned").next;
        let mut readers = self.readers.lock().expect("never poisoned");
        readers.retain(|r| r.strong_count() > 0);
        readers
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|r| !r.cut.load(Ordering::SeqCst))
            .min_by_key(|r| r.next.load(Ordering::SeqCst))
            .filter(|r| next.saturating_sub(r.next.load(Ordering::SeqCst)) + extra >= limit)
    }

    /// Lets waiting sends look again (a reader moved on or was cut).
    fn live_wake(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.advanced.notify_waiters();
        }
    }

    /// Registers a streaming client whose next message is number `next`.
    fn reader(&self, next: u64) -> Arc<Reader> {
        let reader = Arc::new(Reader { next: AtomicU64::new(next), cut: AtomicBool::new(false) });
        self.readers.lock().expect("never poisoned").push(Arc::downgrade(&reader));
        reader
    }

    /// The kept messages after the one with id `last_id` (all kept ones when it is unknown or absent).
    fn since(&self, last_id: Option<&str>) -> Vec<(u64, Kept)> {
        let log = self.log.lock().expect("never poisoned");
        let start = last_id.and_then(|id| log.messages.iter().position(|(_, m)| &*m.id == id)).map_or(0, |i| i + 1);
        log.messages.iter().skip(start).cloned().collect()
    }

    /// The kept messages numbered `seq` or later.
    fn numbered_from(&self, seq: u64) -> Vec<(u64, Kept)> {
        let log = self.log.lock().expect("never poisoned");
        log.messages.iter().filter(|(s, _)| *s >= seq).cloned().collect()
    }

    /// What a reader has not read yet, as a JSON array; moves its cursor.
    fn unread(&self, reader: &str) -> Vec<u8> {
        let mut log = self.log.lock().expect("never poisoned");
        let from = log.cursors.get(reader).map_or(0, |(next, _)| *next);
        let mut array = b"[".to_vec();
        for (_, message) in log.messages.iter().filter(|(seq, _)| *seq >= from) {
            if array.len() > 1 {
                array.push(b',');
            }
            array.extend_from_slice(&message.json());
        }
        array.push(b']');
        let next = log.next;
        let now = std::time::Instant::now();
        if !log.cursors.contains_key(reader) && log.cursors.len() >= MAX_READERS {
            log.cursors.retain(|_, (_, seen)| now.duration_since(*seen) < READER_IDLE);
            if log.cursors.len() >= MAX_READERS
                && let Some(oldest) = log.cursors.iter().min_by_key(|(_, (_, seen))| *seen).map(|(k, _)| k.clone())
            {
                log.cursors.remove(&oldest);
            }
        }
        log.cursors.insert(reader.to_owned(), (next, now));
        array
    }
}

impl Adapter for ApiAdapter {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            edit: true,
            recall: true,
            reply: true,
            separate_sender: true,
            sender_details: true,
            client_ids: ClientIdForm::Uuid,
            ..Capabilities::default()
        }
    }

    fn run(self: Box<Self>, ctx: AdapterContext, sends: mpsc::UnboundedReceiver<SendRequest>) -> super::Running {
        Box::pin(async move {
            let stop = AccountStop::default();
            let gateways = ctx.rooms.now().iter().map(|r| ctx.room_addr(&r.room)).collect();
            let posts = crate::bucket::Bucket::new(self.config.post_limit, std::time::Instant::now());
            let hub = Arc::new(Hub {
                config: self.config,
                account: ctx.account.to_string(),
                ctx: ctx.clone(),
                gateways,
                log: Mutex::default(),
                // Small: a client that falls behind it is served from the kept messages (`history`).
                live: broadcast::channel(LIVE_BUFFER).0,
                readers: Mutex::default(),
                advanced: Notify::new(),
                waiting: AtomicUsize::new(0),
                websockets: AtomicUsize::new(0),
                sessions: AtomicU64::new(1),
                known: Mutex::default(),
                slow_reader_wait: SLOW_READER_WAIT,
                posts: Mutex::new(posts),
            });
            let listener = match tokio::net::TcpListener::bind(hub.config.listen).await {
                Ok(listener) => listener,
                Err(e) => {
                    error!(account = %ctx.account, listen = %hub.config.listen, error = %e, "Cannot listen.");
                    stop.stop(&ctx, format!("cannot listen on {}: {e}", hub.config.listen)).await;
                    let none: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();
                    return super::drive(ctx, sends, stop, none, |_| async {}).await;
                }
            };
            info!(account = %ctx.account, listen = %hub.config.listen, "API listening.");
            ctx.send_now.offer(Arc::new(send::SendsAtOnce(Arc::downgrade(&hub))));
            let server: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> =
                vec![Box::pin(server::serve(Arc::clone(&hub), listener))];
            let send = move |request| send::send(Arc::clone(&hub), request);
            super::drive(ctx, sends, stop, server, send).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{KNOWN_IDS, KnownIds};

    #[test]
    fn known_ids_keep_the_most_recent_and_no_more() {
        let id = |n: u128| uuid::Uuid::from_u128(n).to_string();
        let mut known = KnownIds::default();
        for n in 0..KNOWN_IDS as u128 + 10 {
            known.add(&id(n));
            // Known twice is known once.
            known.add(&id(n));
        }
        assert_eq!((known.order.len(), known.set.len()), (KNOWN_IDS, KNOWN_IDS));
        assert!((0..10).all(|n| !known.contains(&id(n))), "the oldest are forgotten");
        assert!((10..KNOWN_IDS as u128 + 10).all(|n| known.contains(&id(n))));
        assert!(known.order.capacity() < 2 * KNOWN_IDS, "the queue never grew past its bound");
        assert!(!known.contains("not a uuid"));
    }
}
