//! `general.state_webhook` (issue #32 §4): each account state change POSTed as JSON — `account`, `platform`,
//! `state`, `since`, `error`, `instance`, as mautrix's bridge states do — signed with HMAC-SHA256 over the body
//! (`X-Chatbridge-Signature: sha256=<hex>`, key `state_webhook_secret`), in order, each tried again with a doubling
//! delay (1 s … 60 s, 6 attempts) while the receiver fails, at most [`QUEUE`] waiting (the oldest go first). Sent
//! through the media fetcher's guard: no redirect to a private address, answers read up to 64 KB.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::link::AccountState;
use crate::media::guard::{Guard, Trusted};
use crate::model::{AccountId, Time};
use crate::stats::Stats;

/// State changes kept while the receiver is away.
pub const QUEUE: usize = 100;
const ATTEMPTS: u32 = 6;

/// The state as the webhook names it (mautrix's words where they fit).
fn named(state: &AccountState) -> (&'static str, Option<&str>) {
    match state {
        AccountState::Connecting => ("CONNECTING", None),
        AccountState::Connected => ("CONNECTED", None),
        AccountState::BackingOff { reason, .. } => ("TRANSIENT_DISCONNECT", Some(reason)),
        AccountState::Stopped { reason } => ("BAD_CREDENTIALS_OR_STOPPED", Some(reason)),
    }
}

/// The body of one change.
pub fn body(account: &AccountId, state: &AccountState, instance: Option<&str>) -> Vec<u8> {
    let (name, error) = named(state);
    json!({
        "account": account.to_string(),
        "platform": account.platform().as_str(),
        "state": name,
        "since": Time::now().0,
        "error": error,
        "instance": instance,
    })
    .to_string()
    .into_bytes()
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let digest: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={digest}")
}

/// Follows the states and posts each change, until the states are no longer told.
pub async fn run(
    url: reqwest::Url,
    secret: String,
    mut states: watch::Receiver<BTreeMap<AccountId, AccountState>>,
    stats: Arc<Stats>,
) {
    // The receiver's own host is the operator's choice (it may be on a private network); redirects are not.
    let trusted = Trusted::new(url.host_str().map(str::to_owned));
    let guard = Guard::new(trusted, Duration::from_secs(5), Duration::from_secs(10));
    let mut last: BTreeMap<AccountId, std::mem::Discriminant<AccountState>> = BTreeMap::new();
    let mut queue: VecDeque<Vec<u8>> = VecDeque::new();
    let mut attempt = 0u32;
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        {
            let now = states.borrow_and_update().clone();
            for (account, state) in &now {
                let kind = std::mem::discriminant(state);
                if last.get(account) != Some(&kind) {
                    last.insert(account.clone(), kind);
                    if queue.len() >= QUEUE {
                        queue.pop_front();
                        stats.webhook_dropped.inc();
                    }
                    queue.push_back(body(account, state, stats.instance.get().map(String::as_str)));
                }
            }
        }
        // Post what waits, in order, until one fails.
        while retry_at.is_none_or(|t| tokio::time::Instant::now() >= t) {
            let Some(next) = queue.front().cloned() else { break };
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::CONTENT_TYPE, "application/json".parse().expect("a header"));
            if let Ok(value) = signature(&secret, &next).parse() {
                headers.insert("x-chatbridge-signature", value);
            }
            let answer = guard.post(&url, next, headers).await;
            let ok = match answer {
                Ok(response) => {
                    let status = response.status();
                    let _ = crate::adapters::retry::read_body(response, 64 << 10).await;
                    status.is_success()
                }
                Err(e) => {
                    debug!(error = %e, "The state webhook could not be reached.");
                    false
                }
            };
            if ok {
                queue.pop_front();
                stats.webhook_sent.inc();
                attempt = 0;
                retry_at = None;
            } else {
                attempt += 1;
                if attempt >= ATTEMPTS {
                    warn!(attempts = attempt, "The state webhook kept failing: a state change was given up.");
                    queue.pop_front();
                    stats.webhook_dropped.inc();
                    attempt = 0;
                    retry_at = None;
                } else {
                    let delay = crate::link::doubled(Duration::from_secs(1), Duration::from_secs(60), attempt - 1);
                    retry_at = Some(tokio::time::Instant::now() + delay);
                }
                break;
            }
        }
        tokio::select! {
            changed = states.changed() => if changed.is_err() { return },
            _ = async { tokio::time::sleep_until(retry_at.expect("only when set")).await }, if retry_at.is_some() => {}
        }
    }
}
