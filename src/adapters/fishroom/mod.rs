//! Fishroom over its HTTP API (`docs/platforms/fishroom.md`): one long-poll loop per receiving room, one
//! POST per message. Fishroom has no message ids, no edits and a separate sender field.

mod client;
pub mod config;
mod gateway;
pub mod wire;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use reqwest::header::{HeaderMap, HeaderValue};
use tokio::sync::mpsc;

use super::{AccountStop, Adapter, AdapterContext, SendRequest};
use crate::model::{Capabilities, RoomId};
use config::FishroomAccount;

/// Posts remembered for recognising their echoes in the feed.
const ECHO_MEMORY: usize = 256;

/// The largest answer of the Fishroom API read: a poll returns at most 15 messages (4 MiB holds 15 of more
/// than 250 KiB each).
const MAX_ANSWER: usize = 4 << 20;

pub struct FishroomAdapter {
    config: FishroomAccount,
}

impl FishroomAdapter {
    pub fn new(config: FishroomAccount) -> Self {
        Self { config }
    }
}

/// What the poll loops and the senders of one account share.
struct Shared {
    config: FishroomAccount,
    http: reqwest::Client,
    auth: HeaderMap,
    /// What we posted (sender, content): the feed sends it back to us with channel `api-<token name>`.
    posted: Mutex<VecDeque<(Option<String>, String)>>,
    /// Rooms whose 500 answers have been explained once in the log.
    warned_500: Mutex<HashSet<RoomId>>,
    /// Stops the account when the token is refused.
    stop: AccountStop,
}

impl Shared {
    fn new(config: FishroomAccount) -> Self {
        let mut auth = HeaderMap::new();
        let mut id = HeaderValue::from_str(&config.token_id).unwrap_or_else(|_| HeaderValue::from_static(""));
        let mut key = HeaderValue::from_str(config.token_key.expose()).unwrap_or_else(|_| HeaderValue::from_static(""));
        id.set_sensitive(true);
        key.set_sensitive(true);
        auth.insert("X-TOKEN-ID", id);
        auth.insert("X-TOKEN-KEY", key);
        auth.insert(reqwest::header::ACCEPT, HeaderValue::from_static("application/json"));
        let http = super::http_client(config.request_timeout);
        Self {
            config,
            http,
            auth,
            posted: Mutex::new(VecDeque::new()),
            warned_500: Mutex::new(HashSet::new()),
            stop: AccountStop::default(),
        }
    }

    fn api(&self, path: &str) -> String {
        format!("{}/{path}", self.config.api_url.as_str().trim_end_matches('/'))
    }

    fn remember_post(&self, sender: Option<&str>, content: &str) {
        let mut posted = self.posted.lock().expect("echo memory lock is never poisoned");
        if posted.len() == ECHO_MEMORY {
            posted.pop_front();
        }
        posted.push_back((sender.map(str::to_owned), content.to_owned()));
    }

    /// Whether a feed message is the echo of one of our posts (and forgets that post).
    fn is_own_echo(&self, channel: Option<&str>, sender: Option<&str>, content: &str) -> bool {
        let Some(channel) = channel else { return false };
        if let Some(name) = &self.config.token_name
            && channel.strip_prefix("api-") == Some(name.as_str())
        {
            return true;
        }
        if !channel.starts_with("api-") {
            return false;
        }
        let mut posted = self.posted.lock().expect("echo memory lock is never poisoned");
        // The server fills in the token name when we post without a sender.
        let found = posted.iter().position(|(s, c)| c == content && (s.as_deref() == sender || s.is_none()));
        found.map(|i| posted.remove(i)).is_some()
    }
}

impl Adapter for FishroomAdapter {
    fn live_rooms(&self) -> bool {
        true
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { separate_sender: true, ..Capabilities::default() }
    }

    fn run(self: Box<Self>, ctx: AdapterContext, sends: mpsc::UnboundedReceiver<SendRequest>) -> super::Running {
        let shared = Arc::new(Shared::new(self.config));
        let stop = shared.stop.clone();
        // A poll per receiving room, following the rooms a reload gives the account.
        let poll = {
            let shared = Arc::clone(&shared);
            move |ctx, room| gateway::poll_room(Arc::clone(&shared), ctx, room)
        };
        let receivers = vec![super::per_room(ctx.clone(), |r| r.receive, true, poll)];
        let send_ctx = ctx.clone();
        let send = move |request| client::send(Arc::clone(&shared), send_ctx.clone(), request);
        Box::pin(super::drive(ctx, sends, stop, receivers, send))
    }
}
