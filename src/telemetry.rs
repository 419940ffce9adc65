//! Logging: `tracing` to standard error, pretty or JSON, filtered by `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Log targets that print credentials at their most verbose level, and the level they are capped at
/// whatever `RUST_LOG` says: tungstenite traces the whole handshake request, cookies and URL query included.
const CAPPED: [&str; 1] = ["tungstenite::handshake::client=info"];

/// Installs the global subscriber. `default_filter` applies when `RUST_LOG` is not set.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let filter =
        CAPPED.iter().fold(filter, |filter, cap| filter.add_directive(cap.parse().expect("a valid directive")));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json {
        builder.json().with_current_span(true).with_span_list(false).try_init()
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
}
