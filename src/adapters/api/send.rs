//! The sending side: what a send from the router hands the clients of a gateway — on the adapter's task, or at
//! once on the router's ([`SendsAtOnce`]) while no streaming client would have to be waited for.

use std::sync::{Arc, Weak};

use super::Hub;
use super::wire::{self, ACTION, ApiMessage, DELETE, PARENT_NOT_FOUND};
use crate::adapters::{OutMessage, SendAction, SendFailure, SendNow, SendRequest};
use crate::model::{ClientIdForm, RemoteId};

/// A message for the clients of a gateway: a new one, an edit (same id) or a deletion. As matterbridge passes a
/// relayed message to its API clients: `account`, `channel` and `protocol` are the origin's, with the sender's
/// `userid` and `avatar`, `event: "user_action"` for an action and the `Extra` an API client attached.
pub(super) async fn send(hub: Arc<Hub>, request: SendRequest) {
    let (messages, ids) = messages(&hub, &request);
    for message in messages {
        hub.deliver(message, 0).await;
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
            hub.publish(message, 0);
        }
        Some(Ok(ids))
    }
}

/// What a send hands the clients of the request's gateway, and the ids it answers with.
fn messages(hub: &Hub, request: &SendRequest) -> (Vec<ApiMessage>, Vec<RemoteId>) {
    let gateway = request.room.to_string();
    let timestamp = wire::now();
    let ours = || ApiMessage {
        channel: "api".into(),
        account: hub.ctx.account.to_string(),
        protocol: "api".into(),
        gateway: gateway.clone(),
        timestamp: timestamp.clone(),
        ..ApiMessage::default()
    };
    let relayed = |out: &OutMessage, id: String| {
        let text = match out.parts.as_slice() {
            [one] => one.to_plain_text(),
            parts => parts.iter().map(|p| p.to_plain_text()).collect::<Vec<_>>().join("\n"),
        };
        let parent_id = match &out.reply_to {
            Some(parent) => parent.to_string(),
            None if out.parent_missing => PARENT_NOT_FOUND.into(),
            None => String::new(),
        };
        let username = out.sender.clone().unwrap_or_default();
        match &out.origin {
            Some(origin) => ApiMessage {
                text,
                channel: origin.room.clone(),
                username,
                userid: origin.user_id.clone(),
                avatar: origin.avatar.clone().unwrap_or_default(),
                account: origin.account.clone(),
                event: match (origin.event, origin.action) {
                    (Some(kind), _) => kind.into(),
                    (None, true) => ACTION.into(),
                    (None, false) => String::new(),
                },
                protocol: origin.platform.into(),
                gateway: gateway.clone(),
                parent_id,
                timestamp: timestamp.clone(),
                id,
                extra: origin.extra.clone(),
            },
            None => ApiMessage { text, username, parent_id, id, ..ours() },
        }
    };
    match &request.action {
        SendAction::Message(out) => {
            let id = request.client_ids.first().cloned().or_else(|| ClientIdForm::Uuid.generate()).expect("a uuid");
            (vec![relayed(out, id.to_string())], vec![id])
        }
        SendAction::Edit { target, message } => (vec![relayed(message, target.to_string())], vec![target.clone()]),
        SendAction::Recall { targets } => {
            let deletions =
                targets.iter().map(|target| ApiMessage { event: DELETE.into(), id: target.to_string(), ..ours() });
            (deletions.collect(), Vec::new())
        }
    }
}
