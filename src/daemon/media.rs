//! The media store started with the daemon, where `[media] public_url` turns it on: the router's media port, and
//! the `/media/` route for the status server.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::config::Config;
use crate::media::{serve, service::MediaService};
use crate::stats::Stats;

/// Starts the store under `state_dir/media`: the router's port, what it hears from it, and the route to serve.
pub(super) fn start(
    config: &Config,
    stats: &Arc<Stats>,
) -> std::io::Result<Option<(MediaService, mpsc::UnboundedReceiver<String>, axum::Router)>> {
    if !config.media.enabled() {
        return Ok(None);
    }
    // The accounts' own servers are fetched from even on a private network (a self-hosted Fishroom).
    let mut trusted: Vec<String> = config.accounts.values().flat_map(|account| account.hosts()).collect();
    trusted.extend(config.media.allow_hosts.iter().cloned());
    trusted.sort();
    trusted.dedup();
    let dir = config.general.state_dir.join("media");
    let (service, known, store) = MediaService::start(&config.media, trusted, &dir, Arc::clone(stats))?;
    Ok(Some((service, known, serve::routes(store, Arc::clone(stats)))))
}
