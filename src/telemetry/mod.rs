//! Logging: `tracing` to standard error, pretty or JSON, filtered by `RUST_LOG`.

pub mod ring;

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

mod json;

/// Libraries whose DEBUG and TRACE output can carry credentials: tungstenite traces every frame it sends
/// (the Yunhu login frame holds the token, the IIROSE one the password's MD5) and the handshake request
/// (cookies, URL queries with tokens), reqwest can trace the bytes of every connection, hyper and rustls
/// print headers and session details. Whatever `RUST_LOG` says — even a directive naming one of their
/// modules — nothing more verbose than INFO is printed from them.
const CAPPED: [&str; 9] =
    ["tungstenite", "tokio_tungstenite", "hyper", "hyper_util", "reqwest", "rustls", "h2", "axum", "tower"];

/// Whether `meta` is an event or span of a capped library more verbose than INFO.
pub fn capped(meta: &Metadata<'_>) -> bool {
    let target = meta.target();
    *meta.level() > Level::INFO
        && CAPPED
            .iter()
            .any(|lib| target.strip_prefix(lib).is_some_and(|rest| rest.is_empty() || rest.starts_with("::")))
}

/// Log lines that could not be written (standard error closed or full): counted, never waited for.
pub static LOG_LINES_DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Standard error for the logs: a line that cannot be written is dropped and counted. A reader that went away
/// (a closed pipe) must not stop or hang anything — the shutdown that a signal begins least of all.
pub struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::io::Write::write_all(&mut std::io::stderr().lock(), buf).is_err() {
            LOG_LINES_DROPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// The filter a reload may replace (`general.log_level`), when `RUST_LOG` did not set it.
static LEVEL: std::sync::OnceLock<tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>> =
    std::sync::OnceLock::new();

/// Installs the global subscriber. `default_filter` (`general.log_level`) applies when `RUST_LOG` is not set.
pub fn init(format: LogFormat, default_filter: &str) {
    // An unusable RUST_LOG is said, not silently replaced.
    let mut invalid = None;
    let mut from_env = false;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            match crate::settings::check_filter(&spec).and_then(|()| parse_filter(&spec)) {
                Ok(filter) => {
                    from_env = true;
                    filter
                }
                Err(e) => {
                    invalid = Some((spec, e));
                    EnvFilter::new(default_filter)
                }
            }
        }
        _ => EnvFilter::new(default_filter),
    };
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let (subscriber, handle) = subscriber(filter, json);
    if subscriber.try_init().is_ok() && !from_env {
        let _ = LEVEL.set(handle);
    }
    if let Some((spec, error)) = invalid {
        tracing::warn!(rust_log = %spec, error = %error, default = default_filter, "RUST_LOG is not valid; using the default levels.");
    }
}

/// The logging stack: standard error through the levels, and the warnings kept for the status page (a filter of
/// their own, so that the stack's most verbose level is the levels' — `log` records, tungstenite's per-frame
/// traces among them, are gated by it before they are made).
fn subscriber(
    filter: EnvFilter,
    json: bool,
) -> (impl tracing::Subscriber + Send + Sync, tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>)
{
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let filter = layer_filter(filter);
    let layer = tracing_subscriber::fmt::layer().with_writer(|| Stderr);
    let layer = if json {
        // The spans' fields (an adapter's `account`) beside the event's own, not nested under `span`.
        layer
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json::JsonLines)
            .with_filter(filter)
            .boxed()
    } else {
        // Colours only on a terminal, and not when NO_COLOR is set (no-color.org).
        let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        layer.with_ansi(colour).with_filter(filter).boxed()
    };
    let subscriber = tracing_subscriber::registry().with(layer).with(ring::Ring.with_filter(LevelFilter::WARN));
    (subscriber, handle)
}

fn parse_filter(spec: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(spec).map_err(|e| e.to_string())
}

/// The levels and the cap on libraries that print payloads, with the most verbose level the levels allow as its
/// hint. Without the hint (a `filter_fn` has none), every `debug!` and `trace!` on the hot paths — the router's
/// per-message lines, the `log` records of the websocket library forwarded to `tracing` — passed the macros' static
/// check and was matched against the directives at each call (1.3 % of the daemon's samples at 8 senders went to
/// forwarding `log` records alone); with it, anything above the configured level is skipped at the call site.
fn layer_filter<F: tracing_subscriber::layer::Filter<S>, S: tracing::Subscriber>(
    levels: F,
) -> impl tracing_subscriber::layer::Filter<S> {
    levels.and(filter_fn(|meta| !capped(meta)).with_max_level_hint(LevelFilter::TRACE))
}

/// Applies a reloaded `general.log_level`; `RUST_LOG`, when it is set, stays in force.
pub fn set_level(filter: &str) {
    let Some(handle) = LEVEL.get() else { return };
    match EnvFilter::try_new(filter) {
        Ok(filter) => {
            if handle.reload(filter).is_ok() {
                // `tracing` recomputes its most verbose level on a reload; the `log` records' gate is set here.
                log::set_max_level(match LevelFilter::current().into_level() {
                    None => log::LevelFilter::Off,
                    Some(Level::ERROR) => log::LevelFilter::Error,
                    Some(Level::WARN) => log::LevelFilter::Warn,
                    Some(Level::INFO) => log::LevelFilter::Info,
                    Some(Level::DEBUG) => log::LevelFilter::Debug,
                    Some(Level::TRACE) => log::LevelFilter::Trace,
                });
            }
        }
        Err(e) => {
            tracing::warn!(log_level = filter, error = %e, "log_level is not valid; the levels stay as they were.")
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing::level_filters::LevelFilter;
    use tracing::{Level, Metadata, callsite::Identifier, field::FieldSet, metadata::Kind};

    struct Site;
    impl tracing::callsite::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unimplemented!("never asked")
        }
    }
    static SITE: Site = Site;

    fn meta(target: &'static str, level: Level) -> Metadata<'static> {
        Metadata::new("e", target, level, None, None, None, FieldSet::new(&[], Identifier(&SITE)), Kind::EVENT)
    }

    /// The filter says how verbose it can be, so that call sites above it are skipped before any matching.
    #[test]
    fn the_filter_hints_its_most_verbose_level() {
        use tracing_subscriber::layer::Filter;
        for (levels, most) in [
            ("info", LevelFilter::INFO),
            ("warn,chatbridge::router=debug", LevelFilter::DEBUG),
            ("trace", LevelFilter::TRACE),
            ("off", LevelFilter::OFF),
        ] {
            let filter =
                super::layer_filter::<_, tracing_subscriber::Registry>(tracing_subscriber::EnvFilter::new(levels));
            assert_eq!(filter.max_level_hint(), Some(most), "{levels}");
        }
    }

    /// The whole stack is as verbose as its levels, no more: the status page's warnings do not open it to every
    /// `debug!` and `trace!` (nor the `log` gate, which is set from it, to tungstenite's trace of every frame).
    #[test]
    fn the_stack_is_as_verbose_as_its_levels() {
        use tracing::Subscriber;
        for (levels, most) in [("warn", LevelFilter::WARN), ("info", LevelFilter::INFO), ("error", LevelFilter::WARN)] {
            let (subscriber, _) = super::subscriber(tracing_subscriber::EnvFilter::new(levels), false);
            assert_eq!(subscriber.max_level_hint(), Some(most), "{levels}");
        }
    }

    #[test]
    fn payload_printing_libraries_are_capped_at_info_whatever_the_module() {
        for target in
            ["tungstenite::protocol", "tungstenite", "reqwest::connect::verbose", "hyper_util::client", "rustls"]
        {
            assert!(super::capped(&meta(target, Level::TRACE)), "{target}");
            assert!(super::capped(&meta(target, Level::DEBUG)), "{target}");
            assert!(!super::capped(&meta(target, Level::INFO)), "{target}");
        }
        for target in ["chatbridge::adapters", "hyperion", "tungstenite_extra"] {
            assert!(!super::capped(&meta(target, Level::TRACE)), "{target}");
        }
    }
}

/// Repeated warnings are printed at most [`THROTTLE_BURST`] times per [`THROTTLE_WINDOW`] for each key (a
/// call site and an account); the rest are counted, and the next one printed says how many were not.
pub const THROTTLE_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);
pub const THROTTLE_BURST: u32 = 5;

struct Window {
    started: std::time::Instant,
    printed: u32,
    suppressed: u64,
}

static THROTTLED: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, Window>>> =
    std::sync::LazyLock::new(Default::default);

/// Whether a warning under `key` may be printed now: `Some(n)` with the number suppressed since the last
/// one printed, `None` when it is to be suppressed (and counted).
pub fn throttle(key: &str) -> Option<u64> {
    let mut windows = THROTTLED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = std::time::Instant::now();
    let window = windows.entry(key.to_owned()).or_insert_with(|| Window { started: now, printed: 0, suppressed: 0 });
    if now.duration_since(window.started) >= THROTTLE_WINDOW {
        window.started = now;
        window.printed = 0;
    }
    if window.printed < THROTTLE_BURST {
        window.printed += 1;
        Some(std::mem::take(&mut window.suppressed))
    } else {
        window.suppressed += 1;
        None
    }
}

/// `warn!` through [`throttle`]: `warn_throttled!(key; fields…, "message")`, with `suppressed` added.
#[macro_export]
macro_rules! warn_throttled {
    ($key:expr; $($rest:tt)+) => {
        if let Some(suppressed) = $crate::telemetry::throttle(&$key) {
            tracing::warn!(suppressed, $($rest)+);
        }
    };
}

#[cfg(test)]
mod throttle_tests {
    #[test]
    fn a_flood_prints_a_few_lines_and_counts_the_rest() {
        let key = "test-flood";
        let printed: Vec<u64> = (0..2_000_000).filter_map(|_| super::throttle(key)).collect();
        assert_eq!(printed, vec![0; super::THROTTLE_BURST as usize]);
        assert!(super::throttle("another key").is_some(), "keys are apart");
    }
}
