//! `[media]` (issue #31): the media store — where it is reached from (`public_url`: without it the store is off and
//! media go on as the platform's links), the fetcher's bounds and the store's.

use std::time::Duration;

use toml::de::DeValue;

use crate::settings::{Fields, Report};

/// `[media]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaSettings {
    /// The operator's address in front of the daemon's `http_listen` (`https://media.example.org`, no query):
    /// the store's signed links are built on it. `None`: no store, media go on as the platform's links.
    pub public_url: Option<String>,
    /// Bytes one item may have.
    pub max_size: u64,
    /// Fetches at once.
    pub concurrency: usize,
    /// Hosts fetched from even on a private address (besides the accounts' own servers).
    pub allow_hosts: Vec<String>,
    /// An item not used for this long is removed.
    pub keep: Duration,
    /// The store's size: past it, the least recently used items go.
    pub max_bytes: u64,
    /// How long a signed link stays valid.
    pub url_ttl: Duration,
    pub connect_timeout: Duration,
    /// The whole fetch of one item, whatever its pace.
    pub fetch_timeout: Duration,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            public_url: None,
            max_size: 20_000_000,
            concurrency: 4,
            allow_hosts: Vec::new(),
            keep: Duration::from_secs(30 * 86_400),
            max_bytes: 2_000_000_000,
            url_ttl: Duration::from_secs(7 * 86_400),
            connect_timeout: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(60),
        }
    }
}

impl MediaSettings {
    /// Whether the store is on.
    pub fn enabled(&self) -> bool {
        self.public_url.is_some()
    }
}

pub(super) fn parse(mut fields: Fields<'_, '_>, report: &mut Report<'_>) -> MediaSettings {
    let mut media = MediaSettings::default();
    if let Some((text, span)) = fields.str("public_url", report) {
        match reqwest::Url::parse(text) {
            Ok(url) if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() => {
                report.error(&span, format!("`public_url` `{text}` is not an http(s) address"));
            }
            Ok(url) if url.query().is_some() || url.fragment().is_some() => {
                report.error(&span, format!("`public_url` `{text}` has a query or fragment: give the address alone"));
            }
            Ok(url) => {
                if url.scheme() != "https" {
                    report.warn(
                        &span,
                        format!(
                            "`public_url` `{text}` is not https: IIROSE shows only https images (they arrive there as links), and the links go over the network in the clear"
                        ),
                    );
                }
                media.public_url = Some(url.as_str().trim_end_matches('/').to_owned());
            }
            Err(e) => report.error(&span, format!("`public_url` `{text}` is not an address: {e}")),
        }
    }
    for (key, slot) in [("max_size", &mut media.max_size), ("max_bytes", &mut media.max_bytes)] {
        if let Some(n) = size(&mut fields, key, report) {
            *slot = n;
        }
    }
    if let Some(n) = fields.positive_int("concurrency", report) {
        media.concurrency = n.min(256) as usize;
    }
    if let Some(list) = fields.str_list("allow_hosts", report) {
        for (host, span) in list {
            if host.is_empty() || (host.contains(['/', ':', ' ']) && host.parse::<std::net::IpAddr>().is_err()) {
                report.error(&span, format!("`allow_hosts` entry `{host}` is not a host name or address"));
            } else {
                media.allow_hosts.push(host.to_ascii_lowercase());
            }
        }
    }
    let durations = [
        ("keep", &mut media.keep),
        ("url_ttl", &mut media.url_ttl),
        ("connect_timeout", &mut media.connect_timeout),
        ("fetch_timeout", &mut media.fetch_timeout),
    ];
    for (key, slot) in durations {
        if let Some(d) = fields.duration(key, report) {
            if d.is_zero() {
                let span = fields.span_of(key).unwrap_or(0..0);
                report.error(&span, format!("`{key}` is zero"));
            } else {
                *slot = d;
            }
        }
    }
    if media.max_bytes < media.max_size {
        let span = fields.span_of("max_bytes").or_else(|| fields.span_of("max_size")).unwrap_or(0..0);
        report.error(
            &span,
            "`max_bytes` is smaller than `max_size`: the store could not keep one item of the largest size",
        );
    }
    fields.deny_unknown("[media]", report);
    media
}

/// A size: bytes as an integer, or `"20 MB"`, `"500 KB"`, `"2 GiB"`.
fn size(fields: &mut Fields<'_, '_>, key: &'static str, report: &mut Report<'_>) -> Option<u64> {
    if matches!(fields.peek(key), Some(DeValue::Integer(_))) {
        return fields.positive_int(key, report);
    }
    let (text, span) = fields.str(key, report)?;
    match parse_size(text) {
        Some(n) if n > 0 => Some(n),
        _ => {
            report.error(&span, format!("`{key}` is `{text}`, not a size like \"20 MB\" or \"512 KiB\""));
            None
        }
    }
}

fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let number: f64 = text[..split].parse().ok()?;
    let unit: u64 = match text[split..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    let bytes = number * unit as f64;
    (bytes.is_finite() && bytes < 1e15).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_the_units_people_write() {
        assert_eq!(parse_size("20 MB"), Some(20_000_000));
        assert_eq!(parse_size("1.5GB"), Some(1_500_000_000));
        assert_eq!(parse_size("512 KiB"), Some(524_288));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("twenty"), None);
        assert_eq!(parse_size("5 parsecs"), None);
    }
}
