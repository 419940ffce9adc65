//! The contract between the router and the adapters: what an adapter tells the router ([`RouterInput`]), what
//! the router asks of an adapter ([`SendRequest`]), and how a send fails ([`SendFailure`]). Both sides import this
//! module and neither imports the other; it imports only the event model.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::model::{AccountId, Capabilities, Content, Event, RemoteId, RoomAddr, RoomId};

/// What the router hears from the adapters.
#[derive(Debug)]
// Events are nearly every input: boxing them would add an allocation per message for nothing.
#[allow(clippy::large_enum_variant)]
pub enum RouterInput {
    /// Something happened in a room.
    Event(Event),
    /// The outcome of the send the router handed out for `room` (one in flight per room).
    Ack { room: RoomAddr, result: Result<Vec<RemoteId>, SendFailure> },
    /// An account's connection state changed.
    State { account: AccountId, state: AccountState },
    /// An account's adapter started after the daemon did (a reload added the account, or replaced its
    /// session): its sends go to `sends` from now on.
    Attached { account: AccountId, caps: Capabilities, sends: Outlet },
}

/// An account's connection state, as `/health` will show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountState {
    Connecting,
    Connected,
    /// Waiting `delay` before trying again, until `until`.
    BackingOff {
        delay: Duration,
        until: crate::model::Time,
        /// What failed (`/health` shows it).
        reason: String,
    },
    Stopped {
        reason: String,
    },
}

impl AccountState {
    pub fn backing_off(delay: Duration, reason: impl Into<String>) -> Self {
        let until = crate::model::Time(crate::model::Time::now().0 + i64::try_from(delay.as_millis()).unwrap_or(0));
        AccountState::BackingOff { delay, until, reason: reason.into() }
    }
}

/// One message for one room, rendered for its platform.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OutMessage {
    /// The rendered `nick_format`, for platforms with a separate sender field.
    pub sender: Option<String>,
    /// The parts to send in order (more than one when the text is longer than the platform allows).
    pub parts: Vec<Content>,
    /// The copy being replied to, when the platform shows replies natively and the copy is known.
    pub reply_to: Option<RemoteId>,
    /// What is being replied to, for platforms that show quotes natively (IIROSE's quote syntax,
    /// Yunhu's quoted text); elsewhere the quote is already in the text as `> sender: text`.
    pub quote: Option<Quote>,
    /// The message replies to one that has no copy here (the API says so: `msg-parent-not-found`).
    pub parent_missing: bool,
    /// Where the message comes from and who sent it, for platforms that show these apart from the text
    /// (`Capabilities::sender_details`: the API).
    pub origin: Option<Box<Origin>>,
    /// The media store's items among the parts' media segments (named by their `url`), for platforms that upload
    /// them rather than link them (Yunhu).
    pub files: Vec<std::sync::Arc<MediaFile>>,
}

/// An item of the media store, as a media segment's `url` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaFile {
    /// The signed address on `public_url` (valid for `url_ttl` from when it was asked for).
    pub url: String,
    pub size: u64,
    /// Sniffed from its bytes.
    pub mime: String,
    /// SHA-256 of its bytes, in hex.
    pub sha256: String,
    /// The file itself.
    pub path: std::path::PathBuf,
}

/// The origin of a relayed message, as the API passes it on (matterbridge's `account`, `channel`, `protocol`,
/// `userid`, `avatar`, `event`, `Extra`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Origin {
    pub account: String,
    pub room: String,
    pub platform: &'static str,
    pub user_id: String,
    pub avatar: Option<String>,
    pub action: bool,
    /// What kind of event a line stands for, for the API's `event` (`join_leave`, `gift`, `notice`); `None`: a
    /// message.
    pub event: Option<&'static str>,
    pub extra: Option<serde_json::Value>,
}

/// A quoted message, as a reply carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    pub sender: Option<String>,
    pub text: String,
    pub time: Option<crate::model::Time>,
    /// The quoted message's image (the store's link where it was fetched), for platforms that show it (Yunhu).
    pub image: Option<String>,
}

/// What the adapter is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendAction {
    Message(OutMessage),
    Edit { target: RemoteId, message: OutMessage },
    Recall { targets: Vec<RemoteId> },
}

/// A send handed to an adapter; answered with [`RouterInput::Ack`] for the same room.
#[derive(Clone, Debug)]
pub struct SendRequest {
    pub room: RoomId,
    pub action: SendAction,
    /// The ids to send the message's parts under, one per part, already registered as ours; empty
    /// where the platform assigns ids itself. A retry carries the same ids.
    pub client_ids: Vec<RemoteId>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The message may have reached the platform already (a retry, or a message restored from the store
    /// after a restart): where the platform's history shows its client-chosen id, it is not sent again.
    pub maybe_sent: bool,
    /// When the event happened (messages that cannot be delivered for too long are given up).
    pub event_time: crate::model::Time,
}

/// A send an adapter completes at once, on the router's task, where handing a message over is a write to memory
/// (the API's: its clients read from the account's buffer). It spares each message two task hops — the request to
/// the adapter's task and the acknowledgement back — and lets the router hand a room's queued messages out one
/// after the other without waiting for either.
pub trait SendNow: Send + Sync {
    /// The answer to `request`, or `None` when it would have to wait (the request then goes to the adapter's
    /// queue, as any other send).
    fn send_now(&self, request: &SendRequest) -> Option<Result<Vec<RemoteId>, SendFailure>>;
}

/// Filled by an adapter that can answer sends at once, when it is ready to; empty for the others.
#[derive(Clone, Default)]
pub struct SendNowSlot(std::sync::Arc<std::sync::OnceLock<std::sync::Arc<dyn SendNow>>>);

impl SendNowSlot {
    /// Offers `sender` for this session's sends (the first offer stands).
    pub fn offer(&self, sender: std::sync::Arc<dyn SendNow>) {
        let _ = self.0.set(sender);
    }

    pub fn get(&self) -> Option<&dyn SendNow> {
        self.0.get().map(|sender| &**sender)
    }
}

impl std::fmt::Debug for SendNowSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "SendNowSlot(offered)" } else { "SendNowSlot(empty)" })
    }
}

/// Where the router hands an account's sends: its adapter's queue, and what the adapter offers for sends it can
/// answer at once.
#[derive(Clone, Debug)]
pub struct Outlet {
    pub queue: mpsc::UnboundedSender<SendRequest>,
    pub now: SendNowSlot,
}

impl From<mpsc::UnboundedSender<SendRequest>> for Outlet {
    fn from(queue: mpsc::UnboundedSender<SendRequest>) -> Self {
        Self { queue, now: SendNowSlot::default() }
    }
}

/// A room of an account, with the directions it is used in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterRoom {
    pub room: RoomId,
    /// Feeds at least one bridge: the adapter listens to it.
    pub receive: bool,
    /// Receives from at least one bridge.
    pub send: bool,
}

/// Why a send did not succeed, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendFailure {
    /// Try again later (after `after`, when the platform said so).
    #[error("transient failure: {reason}")]
    Transient { after: Option<Duration>, reason: String },
    /// The platform refused this message (content filter, bad request): drop it.
    #[error("rejected: {reason}")]
    Rejected { reason: String },
    /// The destination room is misconfigured (it does not exist): nothing can be sent to it.
    #[error("room unusable: {reason}")]
    RoomBroken { reason: String },
    /// The account cannot go on (bad token, banned): it stops.
    #[error("fatal: {reason}")]
    Fatal { reason: String },
}

/// `base` doubled `times` times, capped at `cap`: the reconnect backoff's ceiling and the delay between a
/// message's attempts.
pub fn doubled(base: Duration, cap: Duration, times: u32) -> Duration {
    let factor = 1u32.checked_shl(times.min(31)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_cap() {
        let s = Duration::from_secs(1);
        let delays: Vec<_> = (0..8).map(|n| doubled(s, 60 * s, n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(doubled(s, 60 * s, u32::MAX), 60 * s);
    }
}
