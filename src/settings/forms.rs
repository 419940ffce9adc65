//! Values with a grammar of their own, read the same way by the configuration's check and by what uses them: log
//! filters (`general.log_level`, `RUST_LOG`) and PostgreSQL connection strings (`general.store`).

use std::path::PathBuf;

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Whether a filter (`general.log_level`, `RUST_LOG`) says what its writer meant. The filter's own syntax takes a
/// bare word that is not a level for a target's name: `verbose` would show only a module called `verbose` — no
/// line of chatbridge's, errors included. A bare word is therefore a level, or a target of chatbridge's own.
pub fn check_filter(spec: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::try_new(spec).map_err(|e| e.to_string())?;
    for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if directive.contains('=') || directive.contains('[') {
            continue;
        }
        let ours = directive == "chatbridge" || directive.starts_with("chatbridge::");
        if !ours && !LEVELS.iter().any(|level| directive.eq_ignore_ascii_case(level)) {
            return Err(format!(
                "`{directive}` is not a level ({}) nor `target=level`; taken as the name of a module it would \
                 turn off every log line of chatbridge's, errors included",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

/// `source` without the libpq options `tokio-postgres` does not read: `sslrootcert` taken out (and returned),
/// `sslmode=verify-ca` and `verify-full` made `require`.
pub fn libpq_options(source: &str) -> (String, Option<PathBuf>) {
    let mut root = None;
    // Each `key=value` pair kept as it is, rewritten, or (`sslrootcert`) taken out.
    let mut keep = |pair: &str, key: &str, value: String| -> Option<String> {
        match (key, value.as_str()) {
            ("sslrootcert", _) => {
                root = Some(PathBuf::from(value));
                None
            }
            ("sslmode", "verify-ca" | "verify-full") => Some("sslmode=require".to_owned()),
            _ => Some(pair.to_owned()),
        }
    };
    let is_url = source.starts_with("postgres://") || source.starts_with("postgresql://");
    let out = if is_url {
        match source.split_once('?') {
            Some((base, query)) => {
                let kept: Vec<String> = query
                    .split('&')
                    .filter_map(|pair| {
                        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                        keep(pair, key, percent_decode(value))
                    })
                    .collect();
                if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
            }
            None => source.to_owned(),
        }
    } else {
        source
            .split_whitespace()
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                keep(pair, key, value.trim_matches('\'').to_owned())
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    (out, root)
}

/// `%XX` escapes of a URL's query value decoded (a path with spaces or non-ASCII names).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
