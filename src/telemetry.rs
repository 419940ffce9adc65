//! Logging: `tracing` to standard error, pretty or JSON, filtered by `RUST_LOG`.

use std::io::IsTerminal;

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

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

/// Installs the global subscriber. `default_filter` applies when `RUST_LOG` is not set.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let filter = filter.and(filter_fn(|meta| !capped(meta)));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = if json {
        layer.json().with_current_span(true).with_span_list(false).with_filter(filter).boxed()
    } else {
        layer.with_ansi(std::io::stderr().is_terminal()).with_filter(filter).boxed()
    };
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
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
