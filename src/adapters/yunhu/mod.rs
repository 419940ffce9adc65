//! Yunhu (云湖) as a user (`docs/platforms/yunhu.md`): a websocket with JSON frames up and protobuf frames
//! down for receiving, protobuf over HTTP for sending, editing and recalling, with message ids we choose.

mod client;
pub mod config;
mod gateway;
mod history;
mod kinds;
mod upload;
pub mod wire;

#[cfg(test)]
mod tests;

/// The code generated from `proto/yunhu/*.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs, dead_code)]
pub(crate) mod proto {
    include!(concat!(env!("OUT_DIR"), "/yunhu.rs"));
}

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost::Message as _;
use reqwest::StatusCode;

use super::retry;

/// The largest answer of the Yunhu API read (a history page of protobuf messages).
const MAX_ANSWER: usize = 8 << 20;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::retry::describe;
use super::{AccountStop, Adapter, AdapterContext, SendFailure, SendRequest};
use crate::model::{Capabilities, ClientIdForm};
use config::{Chat, YunhuAccount};

pub struct YunhuAdapter {
    config: YunhuAccount,
}

impl YunhuAdapter {
    pub fn new(config: YunhuAccount) -> Self {
        Self { config }
    }
}

/// A streamed message being collected.
struct Streaming {
    push: proto::PushMessage,
    last: Instant,
}

struct Shared {
    config: YunhuAccount,
    http: reqwest::Client,
    user_id: String,
    /// The account's chats, as the last reload left them.
    chats: std::sync::RwLock<Arc<Vec<Chat>>>,
    stop: AccountStop,
    streams: Mutex<HashMap<String, Streaming>>,
}

impl Shared {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.api_url.as_str().trim_end_matches('/'))
    }

    /// POSTs a protobuf request; the answer's `Status` decides.
    async fn call<Q: prost::Message, A: prost::Message + Default>(
        &self,
        path: &str,
        request: &Q,
    ) -> Result<A, SendFailure> {
        let response = self
            .http
            .post(self.url(path))
            .header("token", self.token_header())
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .body(request.encode_to_vec())
            .send()
            .await
            .map_err(|e| SendFailure::Transient { after: None, reason: describe(e) })?;
        let status = response.status();
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(SendFailure::Fatal { reason: format!("the token was refused ({status})") });
        }
        if !status.is_success() {
            let after = crate::adapters::retry::retry_after(response.headers());
            return Err(SendFailure::Transient { after, reason: format!("{path} answered {status}") });
        }
        let body = retry::read_body(response, MAX_ANSWER)
            .await
            .map_err(|reason| SendFailure::Transient { after: None, reason: format!("{path}: {reason}") })?;
        A::decode(body.as_slice())
            .map_err(|e| SendFailure::Transient { after: None, reason: format!("{path}: unreadable answer: {e}") })
    }

    fn token_header(&self) -> reqwest::header::HeaderValue {
        let mut value = reqwest::header::HeaderValue::from_str(self.config.token.expose())
            .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }
}

/// Our user id: configured, or from `/v1/user/info` (an empty id there means the token is invalid).
async fn whoami(config: &YunhuAccount, http: &reqwest::Client) -> Result<String, SendFailure> {
    if let Some(id) = &config.user_id {
        return Ok(id.clone());
    }
    let url = format!("{}/v1/user/info", config.api_url.as_str().trim_end_matches('/'));
    let mut token = reqwest::header::HeaderValue::from_str(config.token.expose())
        .map_err(|_| SendFailure::Fatal { reason: "the token is not a valid header value".into() })?;
    token.set_sensitive(true);
    let response = http
        .get(url)
        .header("token", token)
        .send()
        .await
        .map_err(|e| SendFailure::Transient { after: None, reason: describe(e) })?;
    if matches!(response.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return Err(SendFailure::Fatal { reason: format!("the token was refused ({})", response.status()) });
    }
    let body = retry::read_body(response, MAX_ANSWER)
        .await
        .map_err(|reason| SendFailure::Transient { after: None, reason: format!("user info: {reason}") })?;
    let info = proto::UserInfo::decode(body.as_slice())
        .map_err(|e| SendFailure::Transient { after: None, reason: format!("unreadable user info: {e}") })?;
    match info.data.map(|d| d.id).filter(|id| !id.is_empty()) {
        Some(id) => Ok(id),
        None => Err(SendFailure::Fatal { reason: "the token is invalid (user info has no id)".into() }),
    }
}

fn chats_of(rooms: &[super::AdapterRoom]) -> Vec<Chat> {
    rooms.iter().filter_map(|r| Chat::parse(&r.room)).collect()
}

/// Takes the chats a reload gives the account, until it stops receiving.
async fn follow_chats(shared: Arc<Shared>, ctx: AdapterContext) {
    let mut rooms = ctx.rooms.clone();
    loop {
        tokio::select! {
            _ = ctx.stop_receiving.cancelled() => return,
            changed = rooms.changed() => match changed {
                Some(list) => *shared.chats.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(chats_of(&list)),
                None => return,
            },
        }
    }
}

impl Shared {
    /// The account's chats now.
    fn chats(&self) -> Arc<Vec<Chat>> {
        Arc::clone(&self.chats.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl Adapter for YunhuAdapter {
    fn live_rooms(&self) -> bool {
        true
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            edit: true,
            recall: true,
            reply: true,
            mention: true,
            rich_text: self.config.markdown,
            media: if self.config.media {
                crate::model::MediaKinds { image: true, file: true, video: true, audio: true, ..Default::default() }
            } else {
                crate::model::MediaKinds::default()
            },
            client_ids: ClientIdForm::UuidHex,
            ..Capabilities::default()
        }
    }

    fn run(self: Box<Self>, ctx: AdapterContext, sends: mpsc::UnboundedReceiver<SendRequest>) -> super::Running {
        Box::pin(async move {
            let http = super::http_client(self.config.request_timeout);
            let stop = AccountStop::default();
            let known = ctx
                .start_up(&stop, "Yunhu user info", || async {
                    whoami(&self.config, &http).await.map_err(|e| match e {
                        SendFailure::Fatal { reason } => super::StartUp::Refused(reason),
                        other => super::StartUp::Failed(other.to_string()),
                    })
                })
                .await;
            let Some(user_id) = known else {
                return super::stopped_at_start(ctx, sends, stop).await;
            };
            let chats = std::sync::RwLock::new(Arc::new(chats_of(&ctx.rooms.now())));
            let shared = Arc::new(Shared {
                config: self.config,
                http,
                user_id,
                chats,
                stop: stop.clone(),
                streams: Mutex::default(),
            });
            // One socket receives every chat: a reload that changes the chats changes which pushes are kept.
            let receivers: Vec<super::Running> = vec![
                Box::pin(gateway::socket(Arc::clone(&shared), ctx.clone())),
                Box::pin(follow_chats(Arc::clone(&shared), ctx.clone())),
            ];
            let send_ctx = ctx.clone();
            let send = move |request| client::send(Arc::clone(&shared), send_ctx.clone(), request);
            super::drive(ctx, sends, stop, receivers, send).await;
        })
    }
}
