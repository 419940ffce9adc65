//! The media store's counters (issue #31): items kept, items not fetched by reason, items served and refused.

use std::fmt::Write;

use super::Counter;

/// Why an item was not fetched, as `/metrics` labels it.
pub const FAILURE_REASONS: [&str; 8] =
    ["too_large", "refused", "timed_out", "not_what_it_claims", "status", "unreachable", "disk", "not_a_link"];

#[derive(Debug, Default)]
pub struct MediaCounts {
    /// Items fetched and kept (the same bytes again count again).
    pub stored: Counter,
    pub stored_bytes: Counter,
    /// Items not fetched, by reason (`FAILURE_REASONS`' order).
    failed: [Counter; FAILURE_REASONS.len()],
    /// Items the store's bounds removed.
    pub evicted: Counter,
    /// Requests for `/media/` answered with the item, and refused (a bad or expired signature, an unknown item).
    pub served: Counter,
    pub refused: Counter,
}

impl MediaCounts {
    pub fn failed(&self, reason: &str) {
        if let Some(i) = FAILURE_REASONS.iter().position(|r| *r == reason) {
            self.failed[i].inc();
        }
    }

    pub fn failures(&self, reason: &str) -> u64 {
        FAILURE_REASONS.iter().position(|r| *r == reason).map_or(0, |i| self.failed[i].get())
    }

    /// The Prometheus text of the counters.
    pub fn render(&self, out: &mut String) {
        let plain = [
            ("chatbridge_media_stored_total", "Media items fetched into the media store.", &self.stored),
            (
                "chatbridge_media_stored_bytes_total",
                "Bytes of the media items fetched into the store.",
                &self.stored_bytes,
            ),
            ("chatbridge_media_evicted_total", "Media items removed by `keep` or `max_bytes`.", &self.evicted),
            ("chatbridge_media_served_total", "Requests for /media/ answered with the item.", &self.served),
            (
                "chatbridge_media_refused_total",
                "Requests for /media/ refused: a bad or expired signature, or an item no longer kept.",
                &self.refused,
            ),
        ];
        for (name, help, counter) in plain {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", counter.get());
        }
        let name = "chatbridge_media_failed_total";
        let _ = writeln!(
            out,
            "# HELP {name} Media items not fetched (the message went on with the original link and a note), by reason.\n# TYPE {name} counter"
        );
        for (reason, counter) in FAILURE_REASONS.iter().zip(&self.failed) {
            let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {}", counter.get());
        }
    }
}
