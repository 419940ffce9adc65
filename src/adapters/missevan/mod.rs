//! Missevan (猫耳FM) live-room chat (`docs/platforms/missevan.md`): one websocket per room for receiving,
//! `POST /api/chatroom/message/send` for sending, with message ids we choose (uuid `msg_id`).

mod client;
pub mod config;
mod gateway;
mod history;
mod session;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::{AccountStop, Adapter, AdapterContext, SendRequest};

/// The largest answer of the Missevan API read (a history page of a few hundred messages is well under it).
const MAX_ANSWER: usize = 4 << 20;
use crate::model::{Capabilities, ClientIdForm};
use config::MissevanAccount;
use session::Session;

/// The site's origin, sent on the socket handshake as a browser would.
const ORIGIN: &str = "https://fm.missevan.com";
/// Message ids remembered as delivered, so a retried multi-part message does not send a part twice.
const DELIVERED_MEMORY: usize = 1024;

pub struct MissevanAdapter {
    config: MissevanAccount,
}

impl MissevanAdapter {
    pub fn new(config: MissevanAccount) -> Self {
        Self { config }
    }
}

/// What the room sockets and the senders of one account share.
struct Shared {
    config: MissevanAccount,
    http: reqwest::Client,
    session: Session,
    delivered: Mutex<VecDeque<String>>,
    /// Stops the account when the login is refused.
    stop: AccountStop,
}

impl Shared {
    fn was_delivered(&self, msg_id: &str) -> bool {
        self.delivered.lock().expect("never poisoned").iter().any(|id| id == msg_id)
    }

    fn mark_delivered(&self, msg_id: &str) {
        let mut delivered = self.delivered.lock().expect("never poisoned");
        if delivered.len() == DELIVERED_MEMORY {
            delivered.pop_front();
        }
        delivered.push_back(msg_id.to_owned());
    }
}

impl Adapter for MissevanAdapter {
    fn live_rooms(&self) -> bool {
        true
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            mention: true,
            max_text_len: Some(self.config.max_text_len),
            client_ids: ClientIdForm::Uuid,
            ..Capabilities::default()
        }
    }

    fn run(self: Box<Self>, ctx: AdapterContext, sends: mpsc::UnboundedReceiver<SendRequest>) -> super::Running {
        let http = super::http_client(self.config.request_timeout);
        let session = Session::new(&self.config, http.clone());
        let stop = AccountStop::default();
        let shared =
            Arc::new(Shared { config: self.config, http, session, delivered: Mutex::default(), stop: stop.clone() });
        // A connection per receiving room, following the rooms a reload gives the account.
        let follow = {
            let shared = Arc::clone(&shared);
            move |ctx, room| gateway::follow_room(Arc::clone(&shared), ctx, room)
        };
        let receivers = vec![super::per_room(ctx.clone(), |r| r.receive, true, follow)];
        let send_ctx = ctx.clone();
        let send = move |request| client::send(Arc::clone(&shared), send_ctx.clone(), request);
        Box::pin(super::drive(ctx, sends, stop, receivers, send))
    }
}
