//! Heihei (黑黑) live rooms and IM (`docs/platforms/heihei.md`): endpoint discovery through `init`, one
//! channel websocket per account, and a follower per room that keeps track of the host's current broadcast
//! (each broadcast has its own `liveId`, which sending needs).

mod client;
pub mod config;
mod gateway;
pub mod gifts;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use reqwest::Url;
use tokio::sync::{mpsc, watch};
use tracing::info;

use super::retry::describe;

/// The largest answer of the Heihei API read (init's endpoint map and the live calls are a few KiB).
const MAX_ANSWER: usize = 1 << 20;
use super::{AccountStop, Adapter, AdapterContext, SendRequest};
use crate::model::{Capabilities, RoomId};
use config::HeiheiAccount;

/// Texts remembered as sent, for recognising their echoes (the platform documents none).
const SENT_MEMORY: usize = 256;

pub struct HeiheiAdapter {
    config: HeiheiAccount,
}

impl HeiheiAdapter {
    pub fn new(config: HeiheiAccount) -> Self {
        Self { config }
    }
}

/// A broadcast being followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Live {
    pub live_id: u64,
    pub room_id: u64,
}

/// The endpoints the bridge uses, from `init` (or the overrides).
#[derive(Clone, Debug)]
struct Endpoints {
    channel: Url,
    send_msg: String,
    list_live_by_user: String,
    join_live: String,
    get_live: String,
    quit_live: String,
    /// The gift list (`gift-info`), where init names it (or `api_url` is set).
    gift_info: Option<String>,
}

struct Shared {
    config: HeiheiAccount,
    http: reqwest::Client,
    endpoints: Endpoints,
    stop: AccountStop,
    /// Each followed room's current broadcast (`None`: off air); a reload adds and takes away rooms.
    lives: std::sync::RwLock<HashMap<RoomId, watch::Sender<Option<Live>>>>,
    /// Texts we sent, per live room id, for their echoes.
    sent: Mutex<VecDeque<(u64, String)>>,
    own_id: Mutex<Option<u64>>,
    /// Gift names, learned from live gifts and the gift list.
    gifts: gifts::GiftNames,
}

impl Shared {
    fn remember_sent(&self, room_id: u64, text: &str) {
        let mut sent = self.sent.lock().expect("never poisoned");
        if sent.len() == SENT_MEMORY {
            sent.pop_front();
        }
        sent.push_back((room_id, text.to_owned()));
    }

    /// Whether a message is our own: our user id, or a text we just sent to that room (whose sender then
    /// tells us our id).
    fn is_own(&self, room_id: u64, from: Option<u64>, text: &str) -> bool {
        let mut own = self.own_id.lock().expect("never poisoned");
        if own.is_some() && *own == from {
            return true;
        }
        let mut sent = self.sent.lock().expect("never poisoned");
        let Some(i) = sent.iter().position(|(r, t)| *r == room_id && t == text) else { return false };
        sent.remove(i);
        if own.is_none() {
            *own = from;
        }
        true
    }

    fn lives(&self) -> std::sync::RwLockReadGuard<'_, HashMap<RoomId, watch::Sender<Option<Live>>>> {
        self.lives.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lives_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<RoomId, watch::Sender<Option<Live>>>> {
        self.lives.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The configured room following broadcast `live`, by its live room id or live id.
    fn room_of(&self, room_id: Option<u64>, live_id: Option<u64>) -> Option<(RoomId, Live)> {
        self.lives().iter().find_map(|(room, current)| {
            let live = (*current.borrow())?;
            (Some(live.room_id) == room_id || Some(live.live_id) == live_id).then(|| (room.clone(), live))
        })
    }
}

impl Adapter for HeiheiAdapter {
    fn live_rooms(&self) -> bool {
        true
    }

    fn capabilities(&self) -> Capabilities {
        // Text only: no ids come back from sending, so nothing can be edited, recalled or replied to.
        Capabilities::default()
    }

    fn run(self: Box<Self>, ctx: AdapterContext, sends: mpsc::UnboundedReceiver<SendRequest>) -> super::Running {
        Box::pin(async move {
            let http = super::http_client(self.config.request_timeout);
            let stop = AccountStop::default();
            let discovered = ctx
                .start_up(&stop, "Heihei init", || async {
                    discover(&self.config, &http).await.map_err(|e| match e {
                        Discovery::Refused(reason) => super::StartUp::Refused(reason),
                        Discovery::Failed(reason) => super::StartUp::Failed(reason),
                    })
                })
                .await;
            let Some(endpoints) = discovered else {
                return super::stopped_at_start(ctx, sends, stop).await;
            };
            let shared = Arc::new(Shared {
                config: self.config,
                http,
                endpoints,
                stop: stop.clone(),
                lives: std::sync::RwLock::default(),
                sent: Mutex::default(),
                own_id: Mutex::default(),
                gifts: gifts::GiftNames::default(),
            });
            *shared.own_id.lock().expect("never poisoned") = shared.config.user_id;
            tokio::spawn(gateway::learn_gifts(Arc::clone(&shared), ctx.account.clone()));
            // Every room but IM follows its host's broadcasts (sending needs the broadcast joined too), as the
            // rooms a reload gives the account come and go; one channel socket receives them all.
            let account_stop = ctx.stop_receiving.clone();
            let follow = {
                let shared = Arc::clone(&shared);
                move |ctx, room: RoomId| {
                    shared.lives_mut().entry(room.clone()).or_insert_with(|| watch::channel(None).0);
                    let (shared, account_stop) = (Arc::clone(&shared), account_stop.clone());
                    async move {
                        gateway::follow(Arc::clone(&shared), ctx, room.clone()).await;
                        // Taken away by a reload (not a stop, whose drain may still send there).
                        if !account_stop.is_cancelled() {
                            shared.lives_mut().remove(&room);
                        }
                    }
                }
            };
            let followed = |r: &super::AdapterRoom| {
                !matches!(config::HeiheiRoom::parse(r.room.as_str()), Some(config::HeiheiRoom::Im(_)))
            };
            let receivers: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = vec![
                Box::pin(gateway::channel(Arc::clone(&shared), ctx.clone())),
                Box::pin(super::per_room(ctx.clone(), followed, false, follow)),
            ];
            let send_ctx = ctx.clone();
            let send = move |request| client::send(Arc::clone(&shared), send_ctx.clone(), request);
            super::drive(ctx, sends, stop, receivers, send).await;
        })
    }
}

/// Calls `init` with the parameters the seed marks required and takes the endpoints; overrides win.
async fn discover(config: &HeiheiAccount, http: &reqwest::Client) -> Result<Endpoints, Discovery> {
    let device = uuid::Uuid::new_v4().to_string();
    let query = [
        ("ap", "heihei"),
        ("version", "2.0.0"),
        ("local", "zh_CN"),
        ("uuid", device.as_str()),
        ("apiVersion", "1.0"),
        ("deveiceType", "android"),
        ("token", config.token.expose()),
    ];
    let answer = match http.get(config.init_url.clone()).query(&query).send().await {
        Ok(response) => super::retry::read_json::<wire::InitAnswer>(response, MAX_ANSWER).await,
        Err(e) => Err(describe(e)),
    };
    match answer {
        // 720: the token is not valid; 700: the request is malformed. Neither changes by asking again.
        Ok(answer) if matches!(answer.errorcode, 700 | 720) => Err(Discovery::Refused(format!(
            "Heihei init refused: {} (errorcode {})",
            answer.errormsg, answer.errorcode
        ))),
        Ok(answer) if answer.errorcode != 0 => {
            Err(Discovery::Failed(format!("init answered errorcode {} ({})", answer.errorcode, answer.errormsg)))
        }
        Ok(answer) => endpoints(config, &answer).map_err(Discovery::Failed),
        Err(e) => Err(Discovery::Failed(e)),
    }
}

/// Why discovery did not give the endpoints.
enum Discovery {
    /// The platform refused for good: the account stops.
    Refused(String),
    /// Anything else: tried again.
    Failed(String),
}

fn endpoints(config: &HeiheiAccount, answer: &wire::InitAnswer) -> Result<Endpoints, String> {
    let from = |map: &HashMap<String, serde_json::Value>, key: &str, path: &str| -> Result<String, String> {
        if let Some(api) = &config.api_url {
            return Ok(format!("{}/{path}", api.as_str().trim_end_matches('/')));
        }
        map.get(key).and_then(|v| v.as_str()).map(str::to_owned).ok_or_else(|| format!("init gave no `{key}` endpoint"))
    };
    let channel = match &config.channel_url {
        Some(url) => url.clone(),
        None => {
            let text =
                answer.message.get("channel").and_then(|v| v.as_str()).ok_or("init gave no `channel` endpoint")?;
            Url::parse(text).map_err(|e| format!("init gave a bad channel URL: {e}"))?
        }
    };
    let endpoints = Endpoints {
        channel,
        send_msg: from(&answer.message, "sendMsg", "msg/send-msg")?,
        list_live_by_user: from(&answer.live, "listLiveByUser", "live/list-live-by-user")?,
        join_live: from(&answer.live, "joinLive", "live/join-live")?,
        get_live: from(&answer.live, "getLive", "live/get-live")?,
        quit_live: from(&answer.live, "quitLive", "live/quit-live")?,
        gift_info: from(&answer.live, "giftInfo", "live/gift-info").ok(),
    };
    info!("Heihei endpoints discovered.");
    Ok(endpoints)
}
