//! `chatbridge bench --media N` (issue #31 §4): a Yunhu group says N photos of 200 KB at once, each a different
//! picture on a media host on loopback; the bridge fetches each into its media store and relays it to a Fishroom
//! room (the store's link) and to another Yunhu group (uploaded, an image message), both without a send limit.
//! (Yunhu is the source because its pushes come one by one; a real Fishroom server queues 15 messages.) Reports the
//! time until the last arrived in both, the items a second, and how far the process's resident memory rose above
//! where it stood before the burst (sampled every 20 ms; the simulators and the media host run in the same process
//! and are counted too; the Yunhu simulator's upload host keeps only sizes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::Daemon;
use crate::config::Config;
use crate::sim::fishroom::{FishroomSim, FishroomSimConfig};
use crate::sim::yunhu::{Request, YunhuSim, YunhuSimConfig};

/// Bytes of each picture.
const SIZE: usize = 200_000;
const YUNHU_TOKEN: &str = "bench-yunhu-token";

/// What one run took.
#[derive(Debug)]
pub struct MediaRun {
    pub elapsed: Duration,
    /// Resident memory before the burst, and its highest rise during it.
    pub rss_before: u64,
    pub rss_growth: u64,
    /// Items that arrived as links in Fishroom and as images in Yunhu.
    pub linked: usize,
    pub uploaded: usize,
    pub failed: u64,
}

/// The process's resident memory, in bytes (Linux).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Picture `n`: a PNG signature, then bytes of its own.
fn picture(n: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..SIZE - 8).map(|i| (i as u32).wrapping_mul(2654435761).wrapping_add(n as u32).to_le_bytes()[1]));
    bytes
}

async fn media_host() -> anyhow::Result<std::net::SocketAddr> {
    let app = axum::Router::new().route(
        "/img/{n}",
        axum::routing::get(|axum::extract::Path(n): axum::extract::Path<String>| async move {
            let n: usize = n.trim_end_matches(".png").parse().unwrap_or(0);
            ([(axum::http::header::CONTENT_TYPE, "image/png")], picture(n))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

pub async fn run(items: usize) -> anyhow::Result<MediaRun> {
    let host = media_host().await.context("starting the media host")?;
    let fishroom = FishroomSim::start(FishroomSimConfig {
        rooms: vec!["links".into()],
        tokens: vec![("12".into(), "bench-out".into(), "out".into())],
        ..FishroomSimConfig::default()
    })
    .await
    .context("starting a simulated Fishroom server")?;
    let yunhu = YunhuSim::start(YunhuSimConfig {
        users: vec![(YUNHU_TOKEN.into(), "9001".into(), "bridgebot".into())],
        discard_uploads: true,
    })
    .await
    .context("starting a simulated Yunhu server")?;
    let state = std::env::temp_dir().join(format!("chatbridge-media-bench-{}", uuid::Uuid::new_v4()));
    let source = format!(
        "[general]\nstate_dir = {:?}\nlog_level = \"warn\"\nhttp_listen = \"127.0.0.1:0\"\n\n\
         [media]\npublic_url = \"https://media.example.org\"\n\n\
         [accounts.fishroom.out]\napi_url = \"{fish}\"\ntoken_id = \"12\"\ntoken_key = \"bench-out\"\nsend_rate = 0\n\n\
         [accounts.yunhu.me]\ntoken = \"{YUNHU_TOKEN}\"\napi_url = \"{api}\"\nws_url = \"{ws}\"\nupload_url = \"{upload}\"\nsend_rate = 0\n\n\
         [[bridge]]\nname = \"photos\"\ncoalesce = false\n\
         [[bridge.room]]\nroom = \"yunhu.me:group/photos\"\ndirection = \"in\"\n\
         [[bridge.room]]\nroom = \"fishroom.out:links\"\ndirection = \"out\"\n\
         [[bridge.room]]\nroom = \"yunhu.me:group/copies\"\ndirection = \"out\"\n",
        state.display().to_string(),
        fish = fishroom.api_url(),
        api = yunhu.api_url(),
        ws = yunhu.ws_url(),
        upload = yunhu.upload_url(),
    );
    let config = Config::parse(&source, "media.toml").map_err(|p| anyhow::anyhow!("the bench configuration: {p}"))?;
    let stop = CancellationToken::new();
    let daemon = Daemon::start(config, stop.clone())?;
    let stats = daemon.stats();
    let mut states = daemon.states();
    let connected = states.wait_for(|s| s.values().all(|s| *s == crate::link::AccountState::Connected));
    if tokio::time::timeout(Duration::from_secs(10), connected).await.is_err() {
        bail!("the accounts did not connect");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(rss_before));
    let sampling = CancellationToken::new();
    {
        let (peak, sampling) = (Arc::clone(&peak), sampling.clone());
        tokio::spawn(async move {
            while !sampling.is_cancelled() {
                peak.fetch_max(rss(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    let started = Instant::now();
    for n in 0..items {
        yunhu.say_media("photos", ("4242", "photographer"), 2, &format!("http://{host}/img/{n}.png"), "");
    }
    let linked = || fishroom.posted().iter().filter(|p| p.room == "links").count();
    let uploaded = || {
        let sent = yunhu.requests();
        sent.iter()
            .filter(|r| matches!(r, Request::Send(sent) if sent.content_type == 2 && sent.chat_id == "copies"))
            .count()
    };
    let deadline = Duration::from_secs(1800);
    while linked() < items || uploaded() < items {
        if started.elapsed() > deadline {
            bail!("{} of {items} links and {} images arrived within {deadline:?}", linked(), uploaded());
        }
        if stats.media.failures("too_large") + stats.media.failures("unreachable") + stats.media.failures("timed_out")
            > 0
        {
            bail!("media items failed to be fetched: see /metrics");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    sampling.cancel();
    let rss_growth = peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(rss_before);
    let failed = ["refused", "not_what_it_claims", "status", "disk"].iter().map(|r| stats.media.failures(r)).sum();
    let run = MediaRun { elapsed, rss_before, rss_growth, linked: linked(), uploaded: uploaded(), failed };
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), daemon.wait()).await;
    let _ = std::fs::remove_dir_all(&state);
    Ok(run)
}
