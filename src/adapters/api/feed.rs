//! What a streaming client (`/api/stream`, `/api/websocket`) is sent: the connected line, what it missed after its
//! `last_id`, then everything live, caught up from the kept messages when it falls behind the live feed.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::wire::{self, ApiMessage, CONNECTED};
use super::{Hub, Kept};

fn connected() -> Kept {
    Kept::new(&ApiMessage { event: CONNECTED.into(), timestamp: wire::now(), ..ApiMessage::default() })
}

/// What a streaming client gets: the connected line, what it missed after `last_id`, then everything live. A
/// client too slow for the live feed is served what it missed from the kept messages (`history`), so it
/// loses nothing unless it falls further behind than that.
pub(super) struct Feed {
    hub: Arc<Hub>,
    /// What goes before the live feed: the connected line (no number), then what was missed.
    first: VecDeque<(Option<u64>, Kept)>,
    live: broadcast::Receiver<(u64, Kept)>,
    /// The last message handed out: the live feed skips up to it.
    last: Option<u64>,
    /// The first message this feed owes from the live side.
    from: u64,
    /// Where this client is, for the sends that wait for slow clients.
    reader: Arc<super::Reader>,
    /// The websocket session this feed serves (what it posted is not sent back to it), or 0.
    session: u64,
}

impl Feed {
    pub(super) fn new(hub: &Arc<Hub>, last_id: Option<&str>, session: u64) -> Self {
        // Subscribed before the replay is read: nothing falls between the two.
        let live = hub.live.subscribe();
        let from = hub.log.lock().expect("never poisoned").next;
        let mut first = VecDeque::from([(None, connected())]);
        if last_id.is_some() {
            first.extend(hub.since(last_id).into_iter().map(|(seq, message)| (Some(seq), message)));
        }
        let needed = first.get(1).and_then(|(seq, _)| *seq).unwrap_or(from);
        Self { hub: Arc::clone(hub), first, live, last: None, from, reader: hub.reader(needed), session }
    }

    /// Notes that message `seq` was handed out.
    fn handed(&mut self, seq: u64) {
        self.last = Some(seq);
        self.reader.next.store(seq + 1, std::sync::atomic::Ordering::SeqCst);
        self.hub.live_wake();
    }

    /// A kept message (the connected line, a replayed or caught-up one): handed out unless this session posted it.
    fn kept_one(&mut self, seq: Option<u64>, message: Kept) -> Option<Kept> {
        if let Some(seq) = seq {
            self.handed(seq);
        }
        (self.session == 0 || message.from != self.session).then_some(message)
    }

    /// A message of the live feed: handed out unless it was already (from the kept ones) or this session posted it.
    fn live_one(&mut self, seq: u64, message: Kept) -> Option<Kept> {
        if self.last.is_some_and(|last| seq <= last) {
            return None;
        }
        if message.line.is_empty() {
            // A large message goes through the live feed as its number only: taken from the kept ones.
            self.catch_up();
            return None;
        }
        self.handed(seq);
        (self.session == 0 || message.from != self.session).then_some(message)
    }

    /// The next message when one is ready now, without waiting (what [`Feed::next`] would return at once).
    pub(super) fn try_next(&mut self) -> Option<Kept> {
        loop {
            if self.reader.cut.load(std::sync::atomic::Ordering::SeqCst) {
                return None;
            }
            if let Some((seq, message)) = self.first.pop_front() {
                match self.kept_one(seq, message) {
                    Some(message) => return Some(message),
                    None => continue,
                }
            }
            match self.live.try_recv() {
                Ok((seq, message)) => {
                    if let Some(message) = self.live_one(seq, message) {
                        return Some(message);
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.catch_up(),
                Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed) => return None,
            }
        }
    }

    /// After the live feed ran past this client: what it missed, from the kept messages.
    fn catch_up(&mut self) {
        let after = self.last.map_or(self.from, |last| last + 1);
        let missed = self.hub.numbered_from(after);
        if let Some((oldest, _)) = missed.first()
            && *oldest > after
        {
            tracing::warn!(account = %self.hub.ctx.account, lost = oldest - after, "A streaming client fell further behind than `history`: it missed messages (it can see them nowhere now).");
        }
        self.first.extend(missed.into_iter().map(|(seq, message)| (Some(seq), message)));
    }

    pub(super) async fn next(&mut self) -> Option<Kept> {
        loop {
            if self.reader.cut.load(std::sync::atomic::Ordering::SeqCst) {
                tracing::warn!(account = %self.hub.ctx.account, behind = self.hub.config.history, "A streaming client stayed `history` messages behind for too long: disconnected (it can reconnect with its last id).");
                return None;
            }
            if let Some(message) = self.try_next() {
                return Some(message);
            }
            if self.reader.cut.load(std::sync::atomic::Ordering::SeqCst) {
                continue;
            }
            match self.live.recv().await {
                Ok((seq, message)) => {
                    if let Some(message) = self.live_one(seq, message) {
                        return Some(message);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up(),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
