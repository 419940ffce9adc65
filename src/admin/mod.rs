//! The operator's window (issue #32): the status page at `/` and the admin API under `/admin/api/v1/` on
//! `general.http_listen`, behind `general.admin_token`. Beside `router/` and `adapters/`: it reads the accounts'
//! states and the counters, and acts through [`Operator`], which the daemon implements (the dead letters in the
//! store, the reload). The page is drawn from the same snapshot the API serves, and its buttons post to the API.
//!
//! - model.rs: the snapshot; auth.rs: the token, sessions, CSRF, the hardened headers;
//! - api.rs: the routes; page.rs: the page; webhook.rs: `state_webhook`.

pub mod api;
pub mod auth;
pub mod model;
pub mod page;
pub mod provision;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::config::{LeftOut, Provisioned};
use crate::link::AccountState;
use crate::model::{AccountId, Time};
use crate::provision::{Outcome, ProvisionError};
use crate::stats::Stats;
use crate::store::provisioned::Listed;
use model::{DeadLetterView, Layout};

/// What the admin side asks of the daemon.
pub trait Operator: Send + Sync + 'static {
    /// Every dead letter (blocking: called off the runtime's threads).
    fn dead_letters(&self) -> Result<Vec<DeadLetterView>, String>;
    /// Puts dead letters back at the end of their rooms' queues, to be delivered now; how many went.
    fn requeue(&self, keys: &[u64]) -> Result<usize, String>;
    /// Removes dead letters for good; how many went.
    fn drop_letters(&self, keys: &[u64]) -> Result<usize, String>;
    /// Pauses or resumes a bridge, or one room of it (already checked against [`Operator::layout`]).
    fn pause(&self, pause: PauseRequest) -> Result<(), String>;
    /// Each bridge's rooms, as the running configuration has them.
    fn layout(&self) -> Layout;
    /// With a store instances share: which instance holds each account (blocking, as `dead_letters`).
    fn holders(&self) -> Option<BTreeMap<String, String>> {
        None
    }
    /// The bridges provisioned in the store, and those of them left out with their problems (blocking).
    fn provisioned(&self) -> Result<(Listed, Vec<LeftOut>), ProvisionError>;
    /// Adds or replaces a provisioned bridge, applied by this daemon before it returns where it can (blocking).
    fn provision(&self, bridge: Provisioned) -> Result<Outcome, ProvisionError>;
    /// Removes a provisioned bridge (blocking).
    fn unprovision(&self, name: &str) -> Result<Outcome, ProvisionError>;
}

/// A pause or a resume, as the API takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PauseRequest {
    /// The bridge paused (its rooms, for it); empty where a room is named alone.
    pub bridge: String,
    /// One room (`platform.account:room`), for every bridge; none: the whole bridge.
    pub room: Option<String>,
    pub paused: bool,
}

/// The configuration file the daemon runs from, for the page (set once by `chatbridge run`).
pub static CONFIG_FILE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Everything the routes share.
#[derive(Clone)]
pub struct Admin {
    pub(crate) states: watch::Receiver<BTreeMap<AccountId, AccountState>>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) operator: Arc<dyn Operator>,
    pub(crate) auth: Arc<auth::Auth>,
    pub(crate) started: std::time::Instant,
    /// When each account came to its state.
    pub(crate) since: Arc<Mutex<BTreeMap<AccountId, Time>>>,
}

impl Admin {
    pub fn new(
        states: watch::Receiver<BTreeMap<AccountId, AccountState>>,
        stats: Arc<Stats>,
        operator: Arc<dyn Operator>,
        token: Option<String>,
    ) -> Self {
        let since = Arc::new(Mutex::new(BTreeMap::new()));
        tokio::spawn(follow(states.clone(), Arc::clone(&since)));
        Self {
            states,
            stats,
            operator,
            auth: Arc::new(auth::Auth::new(token)),
            started: std::time::Instant::now(),
            since,
        }
    }

    /// The snapshot of now (reads the dead letters: call it off the runtime's threads).
    pub fn snapshot(&self) -> model::Snapshot {
        let states = self.states.borrow().clone();
        let since = self.since.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let layout = self.operator.layout();
        let inputs = model::Inputs {
            states: &states,
            since: &since,
            layout: &layout,
            started: self.started,
            letters: self.operator.dead_letters(),
            holders: self.operator.holders(),
            config_file: CONFIG_FILE.get().cloned(),
        };
        model::snapshot(&self.stats, inputs)
    }

    /// The page's and the API's routes.
    pub fn routes(self) -> axum::Router {
        api::routes(self)
    }
}

/// Notes when each account's state changed, for as long as the states are told.
async fn follow(
    mut states: watch::Receiver<BTreeMap<AccountId, AccountState>>,
    since: Arc<Mutex<BTreeMap<AccountId, Time>>>,
) {
    let mut last: BTreeMap<AccountId, AccountState> = BTreeMap::new();
    loop {
        {
            let now = states.borrow_and_update().clone();
            let mut since = since.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (id, state) in &now {
                let same =
                    last.get(id).is_some_and(|before| std::mem::discriminant(before) == std::mem::discriminant(state));
                if !same {
                    since.insert(id.clone(), Time::now());
                }
            }
            last = now;
        }
        if states.changed().await.is_err() {
            return;
        }
    }
}
