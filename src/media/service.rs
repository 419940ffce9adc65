//! The media store as the router's media port (`router::media::MediaPort`): an item asked for is fetched once
//! (however many rooms ask), kept, and known by its URL for a while; the router is told on a channel when it is.
//! The store's bounds are kept by a task that cleans it while the daemon runs.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::fetch::{Failure, Fetcher, Kind, Limits};
use super::guard::Trusted;
use super::store::{MediaStore, Stored};
use crate::config::MediaSettings;
use crate::router::media::{MediaKind, MediaPort, Resolution, StoredMedia, human_size};
use crate::stats::Stats;

/// Items known by their URL (a message to many rooms, the same sticker again and again).
const KNOWN: usize = 4096;

/// How often the store's bounds are applied.
const CLEAN_EVERY: Duration = Duration::from_secs(600);

/// What became of a URL.
#[derive(Clone)]
enum Outcome {
    Stored(Stored),
    Failed(String),
}

struct Known {
    outcomes: lru::LruCache<String, Outcome>,
    fetching: HashSet<String>,
}

struct Shared {
    fetcher: Fetcher,
    store: Arc<MediaStore>,
    public_url: String,
    url_ttl: Duration,
    max_size: u64,
    stats: Arc<Stats>,
    known: Mutex<Known>,
    /// Told each URL once it is known.
    told: mpsc::UnboundedSender<String>,
}

/// The media port.
pub struct MediaService {
    shared: Arc<Shared>,
}

impl MediaService {
    /// Opens the store in `dir` and starts its cleaning; `trusted` are the hosts fetched from even on a private
    /// address (the accounts' own servers, `allow_hosts`). The receiver hears each URL once it is known.
    pub fn start(
        settings: &MediaSettings,
        trusted: Vec<String>,
        dir: &Path,
        stats: Arc<Stats>,
    ) -> std::io::Result<(Self, mpsc::UnboundedReceiver<String>, Arc<MediaStore>)> {
        let public_url = settings.public_url.clone().unwrap_or_default();
        let store = Arc::new(MediaStore::open(dir)?);
        // What a fetch left when the daemon stopped during it.
        for entry in std::fs::read_dir(dir)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".fetching-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let limits = Limits {
            max_size: settings.max_size,
            connect: settings.connect_timeout,
            total: settings.fetch_timeout,
            concurrency: settings.concurrency,
        };
        let fetcher = Fetcher::new(Trusted::new(trusted), limits, dir)?;
        let (told, known) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            fetcher,
            store: Arc::clone(&store),
            public_url,
            url_ttl: settings.url_ttl,
            max_size: settings.max_size,
            stats: Arc::clone(&stats),
            known: Mutex::new(Known {
                outcomes: lru::LruCache::new(NonZeroUsize::new(KNOWN).expect("not zero")),
                fetching: HashSet::new(),
            }),
            told,
        });
        tokio::spawn(clean(Arc::clone(&store), settings.keep, settings.max_bytes, stats));
        info!(dir = %dir.display(), public_url = %shared.public_url, "Media store open.");
        Ok((Self { shared }, known, store))
    }
}

impl MediaPort for MediaService {
    fn resolve(&mut self, url: &str, kind: MediaKind) -> Option<Resolution> {
        let shared = &self.shared;
        let mut known = shared.known.lock().unwrap_or_else(|e| e.into_inner());
        match known.outcomes.get(url).cloned() {
            Some(Outcome::Failed(note)) => return Some(Resolution::Failed { note }),
            Some(Outcome::Stored(stored)) => match shared.store.get(&stored.id) {
                Some((path, mime)) => {
                    let signed = shared.store.signed_path(&stored.id, SystemTime::now(), shared.url_ttl);
                    return Some(Resolution::Stored(Arc::new(StoredMedia {
                        url: format!("{}{signed}", shared.public_url),
                        size: stored.size,
                        mime,
                        sha256: stored.id,
                        path,
                    })));
                }
                // Cleaned away since: fetched again.
                None => {
                    known.outcomes.pop(url);
                }
            },
            None => {}
        }
        if known.fetching.insert(url.to_owned()) {
            tokio::spawn(fetch(Arc::clone(shared), url.to_owned(), kind));
        }
        None
    }
}

/// Fetches and keeps one item, notes what became of it, and tells the router.
async fn fetch(shared: Arc<Shared>, url: String, kind: MediaKind) {
    let kind = match kind {
        MediaKind::Image => Kind::Image,
        MediaKind::Video => Kind::Video,
        MediaKind::Audio => Kind::Audio,
        MediaKind::File => Kind::File,
    };
    let outcome = match reqwest::Url::parse(&url) {
        Err(_) => {
            shared.stats.media.failed("not_a_link");
            Outcome::Failed("not a link".to_owned())
        }
        Ok(parsed) => match shared.fetcher.fetch(&parsed, kind).await {
            Ok(fetched) => {
                let store = Arc::clone(&shared.store);
                match tokio::task::spawn_blocking(move || store.put(fetched)).await {
                    Ok(Ok(stored)) => {
                        shared.stats.media.stored.inc();
                        shared.stats.media.stored_bytes.add(stored.size);
                        debug!(host = parsed.host_str().unwrap_or(""), size = stored.size, mime = %stored.mime, "Media item kept.");
                        Outcome::Stored(stored)
                    }
                    Ok(Err(e)) => {
                        warn!(error = %e, "A media item could not be kept in the store.");
                        failed(&shared, Failure::Disk, kind, parsed.host_str())
                    }
                    Err(_) => failed(&shared, Failure::Disk, kind, parsed.host_str()),
                }
            }
            Err(failure) => failed(&shared, failure, kind, parsed.host_str()),
        },
    };
    let mut known = shared.known.lock().unwrap_or_else(|e| e.into_inner());
    known.fetching.remove(&url);
    known.outcomes.put(url.clone(), outcome);
    drop(known);
    let _ = shared.told.send(url);
}

/// A failure counted, logged (the host only: a query may carry a token), and said as the note beside the link.
fn failed(shared: &Shared, failure: Failure, kind: Kind, host: Option<&str>) -> Outcome {
    shared.stats.media.failed(failure.reason());
    info!(
        host = host.unwrap_or(""),
        kind = kind.as_str(),
        reason = failure.reason(),
        "Media item not fetched: it goes on as its link."
    );
    let note = match &failure {
        Failure::TooLarge(Some(declared)) => format!("{}: too large", human_size(*declared)),
        Failure::TooLarge(None) => format!("over {}: too large", human_size(shared.max_size)),
        other => other.to_string(),
    };
    Outcome::Failed(note)
}

/// Applies the store's bounds now and every [`CLEAN_EVERY`].
async fn clean(store: Arc<MediaStore>, keep: Duration, max_bytes: u64, stats: Arc<Stats>) {
    let mut every = tokio::time::interval(CLEAN_EVERY);
    loop {
        every.tick().await;
        let store = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || store.evict(SystemTime::now(), keep, max_bytes)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(removed)) => {
                stats.media.evicted.add(removed as u64);
                info!(removed, "Media store cleaned (keep, max_bytes).");
            }
            Ok(Err(e)) => warn!(error = %e, "The media store could not be cleaned."),
            Err(_) => {}
        }
    }
}
