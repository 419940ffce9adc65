//! The sending side: what a send from the router hands the clients of a gateway — on the adapter's task, or at
//! once on the router's ([`SendsAtOnce`]) while no streaming client would have to be waited for.

use std::sync::{Arc, Weak};

use super::wire::{self, ACTION, ApiMessageOut, DELETE, PARENT_NOT_FOUND};
use super::{Hub, Kept};
use crate::adapters::{OutMessage, SendAction, SendFailure, SendNow, SendRequest};
use crate::model::{ClientIdForm, RemoteId};

/// A message for the clients of a gateway: a new one, an edit (same id) or a deletion. As matterbridge passes a
/// relayed message to its API clients: `account`, `channel` and `protocol` are the origin's, with the sender's
/// `userid` and `avatar`, `event: "user_action"` for an action and the `Extra` an API client attached.
pub(super) async fn send(hub: Arc<Hub>, request: SendRequest) {
    let (messages, ids) = messages(&hub, &request);
    for message in messages {
        hub.deliver(message).await;
    }
    hub.ctx.ack(&request.room, Ok(ids)).await;
}

/// The API's sends answered on the router's task: handing messages to the clients is a write to the account's
/// buffer, unless a streaming client is so far behind that it must be waited for (then [`send`] does, on the
/// adapter's task). Holds the hub weakly: the hub's context holds this.
pub(super) struct SendsAtOnce(pub(super) Weak<Hub>);

impl SendNow for SendsAtOnce {
    fn send_now(&self, request: &SendRequest) -> Option<Result<Vec<RemoteId>, SendFailure>> {
        let hub = self.0.upgrade()?;
        if hub.ctx.closed.is_cancelled() {
            return None;
        }
        let count = match &request.action {
            SendAction::Recall { targets } => targets.len(),
            _ => 1,
        };
        // Each of them would find every reader within `history`: none would wait.
        if hub.behind_by(count.saturating_sub(1) as u64).is_some() {
            return None;
        }
        let (messages, ids) = messages(&hub, request);
        for message in messages {
            hub.publish(message);
        }
        Some(Ok(ids))
    }
}

/// What a send hands the clients of the request's gateway, written (see [`Kept::written`]), and the ids it answers
/// with.
fn messages(hub: &Hub, request: &SendRequest) -> (Vec<Kept>, Vec<RemoteId>) {
    let timestamp = wire::now();
    let ours = ApiMessageOut {
        channel: "api",
        account: &hub.account,
        protocol: "api",
        gateway: request.room.as_str(),
        timestamp: &timestamp,
        ..ApiMessageOut::default()
    };
    let relayed = |out: &OutMessage, id: &str| {
        let text = match out.parts.as_slice() {
            [one] => one.to_plain_text(),
            parts => parts.iter().map(|p| p.to_plain_text()).collect::<Vec<_>>().join("\n"),
        };
        let parent_id = match &out.reply_to {
            Some(parent) => parent.as_str(),
            None if out.parent_missing => PARENT_NOT_FOUND,
            None => "",
        };
        let username = out.sender.as_deref().unwrap_or_default();
        let message = match &out.origin {
            Some(origin) => ApiMessageOut {
                text: &text,
                channel: &origin.room,
                username,
                userid: &origin.user_id,
                avatar: origin.avatar.as_deref().unwrap_or_default(),
                account: &origin.account,
                event: match (origin.event, origin.action) {
                    (Some(kind), _) => kind,
                    (None, true) => ACTION,
                    (None, false) => "",
                },
                protocol: origin.platform,
                parent_id,
                id,
                extra: origin.extra.as_ref(),
                ..ours
            },
            None => ApiMessageOut { text: &text, username, parent_id, id, ..ours },
        };
        Kept::written(&message, 0)
    };
    match &request.action {
        SendAction::Message(out) => {
            let id = request.client_ids.first().cloned().or_else(|| ClientIdForm::Uuid.generate()).expect("a uuid");
            (vec![relayed(out, id.as_str())], vec![id])
        }
        SendAction::Edit { target, message } => (vec![relayed(message, target.as_str())], vec![target.clone()]),
        SendAction::Recall { targets } => {
            let deletions = targets
                .iter()
                .map(|target| Kept::written(&ApiMessageOut { event: DELETE, id: target.as_str(), ..ours }, 0));
            (deletions.collect(), Vec::new())
        }
    }
}
