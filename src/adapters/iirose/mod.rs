//! IIROSE (蔷薇花园) over its websocket (`docs/platforms/iirose.md`): one session per account, in one room,
//! plus private chats with users. Messages carry a 12-digit `i` we choose; the server's echo of it is the
//! delivery confirmation.

mod cards;
mod client;
pub mod config;
mod gateway;
mod mailbox;
mod text;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{AccountStop, Adapter, AdapterContext, SendRequest};
use crate::model::{Capabilities, ClientIdForm, MediaKinds, RoomId, Time};
use config::IiroseAccount;

/// Messages remembered for resolving quotes (which carry a name and a time, not an id).
const RECENT: usize = 512;

/// The room address that takes anonymous private messages (their real sender is never relayed).
pub const ANONYMOUS: &str = "user/anonymous";

pub struct IiroseAdapter {
    config: IiroseAccount,
}

impl IiroseAdapter {
    pub fn new(config: IiroseAccount) -> Self {
        Self { config }
    }
}

/// A packet for the connection to write, unless its deadline passed while it waited for one.
struct Outgoing {
    packet: String,
    deadline: Instant,
}

/// A message seen in the room, for quotes.
#[derive(Clone, Debug)]
struct Seen {
    msg_id: String,
    name: String,
    time: Time,
    text: String,
}

struct Shared {
    config: IiroseAccount,
    /// The room the session logs into.
    room: RoomId,
    stop: AccountStop,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    /// Sent message ids waiting for their echo.
    pending: Mutex<HashMap<String, oneshot::Sender<()>>>,
    recent: Mutex<VecDeque<Seen>>,
    /// Our uid, learned from the echo of our own messages.
    own_uid: Mutex<Option<String>>,
}

impl Shared {
    fn remember(&self, seen: Seen) {
        let mut recent = self.recent.lock().expect("never poisoned");
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(seen);
    }

    /// The message a quote points at: same sender, same second.
    fn quoted(&self, name: &str, time: Time) -> Option<Seen> {
        let recent = self.recent.lock().expect("never poisoned");
        recent.iter().rev().find(|s| s.name == name && (s.time.0 / 1000 - time.0 / 1000).abs() <= 1).cloned()
    }

    fn by_id(&self, msg_id: &str) -> Option<Seen> {
        self.recent.lock().expect("never poisoned").iter().rev().find(|s| s.msg_id == msg_id).cloned()
    }

    /// Completes the wait of a sent message; true when the id was ours.
    fn confirm(&self, msg_id: &str) -> bool {
        match self.pending.lock().expect("never poisoned").remove(msg_id) {
            Some(waiter) => {
                let _ = waiter.send(());
                true
            }
            None => false,
        }
    }
}

impl Adapter for IiroseAdapter {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            recall: true,
            reply: true,
            mention: true,
            media: MediaKinds { image: true, https_only: true, ..MediaKinds::default() },
            max_text_len: self.config.max_text_len,
            client_ids: ClientIdForm::Digits(12),
            ..Capabilities::default()
        }
    }

    fn run(self: Box<Self>, ctx: AdapterContext, sends: mpsc::UnboundedReceiver<SendRequest>) -> super::Running {
        let room = ctx.rooms.now().iter().map(|r| &r.room).find(|r| !r.is_conversation()).cloned();
        let Some(room) = room else {
            // `check` requires a room address per IIROSE account; nothing to log into without one.
            return Box::pin(async move {
                let stop = AccountStop::default();
                stop.stop(&ctx, "an IIROSE account needs a room address to log into".to_owned()).await;
                super::drive(ctx, sends, stop, Vec::<Pin<Box<dyn Future<Output = ()> + Send>>>::new(), |_| async {})
                    .await
            });
        };
        let (outgoing, queue) = mpsc::unbounded_channel();
        let stop = AccountStop::default();
        let shared = Arc::new(Shared {
            config: self.config,
            room,
            stop: stop.clone(),
            outgoing,
            pending: Mutex::default(),
            recent: Mutex::default(),
            own_uid: Mutex::default(),
        });
        // One session carries both directions, so it runs even for a send-only account.
        let receivers = vec![gateway::session(Arc::clone(&shared), ctx.clone(), queue)];
        let send_ctx = ctx.clone();
        let send = move |request| client::send(Arc::clone(&shared), send_ctx.clone(), request);
        Box::pin(super::drive(ctx, sends, stop, receivers, send))
    }
}
