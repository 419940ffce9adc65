//! The sending side: packets handed to the session, confirmed by their echo.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::wire::{self, Say};
use super::{ANONYMOUS, Outgoing, Shared};
use crate::adapters::{AdapterContext, OutMessage, SendAction, SendFailure, SendRequest};
use crate::model::{ClientIdForm, RemoteId, RoomId, Time};

pub(super) async fn send(shared: Arc<Shared>, ctx: AdapterContext, request: SendRequest) {
    let result = match &request.action {
        SendAction::Message(message) => say(&shared, &request, message).await,
        SendAction::Recall { targets } => recall(&shared, &request.room, targets),
        SendAction::Edit { .. } => Err(SendFailure::Rejected { reason: "IIROSE has no edit".to_owned() }),
    };
    ctx.ack(&request.room, result).await;
}

/// The peer of a private conversation, or `None` for the room.
fn peer(room: &RoomId) -> Result<Option<&str>, SendFailure> {
    if room.as_str() == ANONYMOUS {
        return Err(SendFailure::Rejected { reason: "anonymous senders cannot be answered".to_owned() });
    }
    Ok(room.as_str().strip_prefix("user/"))
}

async fn say(shared: &Shared, request: &SendRequest, message: &OutMessage) -> Result<Vec<RemoteId>, SendFailure> {
    let peer = peer(&request.room)?;
    let mut ids = Vec::with_capacity(message.parts.len());
    for (i, part) in message.parts.iter().enumerate() {
        let id = request.client_ids.get(i).cloned().or_else(|| ClientIdForm::Digits(12).generate());
        let id = id.expect("twelve digits are always generated");
        let mut text = wire::render(part);
        if i == 0 {
            text = quoted(shared, message, text);
        }
        let packet = Say { g: peer.map(str::to_owned), m: text, mc: shared.config.color.clone(), i: id.to_string() };
        let packet = serde_json::to_string(&packet).expect("a message serialises");
        let (confirmed, echo) = oneshot::channel();
        shared.pending.lock().expect("never poisoned").insert(id.to_string(), confirmed);
        let deadline = Instant::now() + shared.config.echo_timeout;
        if shared.outgoing.send(Outgoing { packet, deadline }).is_err() {
            return Err(SendFailure::Fatal { reason: "the session has ended".to_owned() });
        }
        if tokio::time::timeout_at(deadline, echo).await.is_err() {
            shared.pending.lock().expect("never poisoned").remove(id.as_str());
            let reason =
                format!("no echo within {:?} (not connected, or the message was lost)", shared.config.echo_timeout);
            return Err(SendFailure::Transient { after: None, reason });
        }
        ids.push(id);
    }
    Ok(ids)
}

/// The quote syntax in front of a reply: the quoted message as the router knows it, or as this room saw it.
fn quoted(shared: &Shared, message: &OutMessage, text: String) -> String {
    let seen = message.reply_to.as_ref().and_then(|id| shared.by_id(id.as_str()));
    match (&message.quote, seen) {
        (_, Some(seen)) => wire::with_quote(&seen.text, &seen.name, seen.time, &text),
        (Some(quote), None) => {
            let name = quote.sender.as_deref().unwrap_or("?");
            wire::with_quote(&quote.text, name, quote.time.unwrap_or_else(Time::now), &text)
        }
        (None, None) => text,
    }
}

fn recall(shared: &Shared, room: &RoomId, targets: &[RemoteId]) -> Result<Vec<RemoteId>, SendFailure> {
    let peer = peer(room)?;
    for target in targets {
        let packet = match peer {
            Some(uid) => format!("v0*{uid}#{target}"),
            None => format!("v0#{target}"),
        };
        let deadline = Instant::now() + shared.config.echo_timeout;
        if shared.outgoing.send(Outgoing { packet, deadline }).is_err() {
            return Err(SendFailure::Fatal { reason: "the session has ended".to_owned() });
        }
    }
    Ok(Vec::new())
}
