//! The last warnings and errors, kept in memory for the status page (issue #32 §1): a layer beside the log's, for
//! WARN and ERROR whatever the log's level, holding the newest [`KEPT`]. They are formatted from the same fields as
//! the log lines, so what the log masks (a secret's value is never a field) is masked here too.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

/// Warnings and errors kept.
pub const KEPT: usize = 100;

/// One warning or error.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    pub at_ms: i64,
    pub level: &'static str,
    pub target: String,
    /// The message, then its fields as `key=value`.
    pub text: String,
}

static RING: Mutex<VecDeque<Entry>> = Mutex::new(VecDeque::new());

/// The kept warnings and errors, newest first.
pub fn recent() -> Vec<Entry> {
    RING.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().rev().cloned().collect()
}

#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

/// The layer that keeps them.
pub struct Ring;

impl<S: Subscriber> tracing_subscriber::Layer<S> for Ring {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let entry = Entry {
            at_ms: crate::model::Time::now().0,
            level: if level == Level::ERROR { "error" } else { "warn" },
            target: event.metadata().target().to_owned(),
            text: format!("{}{}", text.message, text.fields),
        };
        let mut ring = RING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if ring.len() >= KEPT {
            ring.pop_front();
        }
        ring.push_back(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn warnings_and_errors_are_kept_newest_first_and_bounded() {
        let subscriber = tracing_subscriber::registry().with(Ring);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            for n in 0..KEPT + 5 {
                tracing::warn!(n, "warned");
            }
            tracing::error!(account = "fishroom.tuna", "the last one");
        });
        let kept = recent();
        assert_eq!(kept.len(), KEPT);
        assert_eq!((kept[0].level, kept[0].text.as_str()), ("error", "the last one account=fishroom.tuna"));
        assert!(kept.iter().all(|e| !e.text.contains("not kept")));
        let secret = crate::settings::Secret::resolve("s3cret-value").unwrap();
        let subscriber = tracing_subscriber::registry().with(Ring);
        tracing::subscriber::with_default(subscriber, || tracing::warn!(token = ?secret, "a secret in a field"));
        assert!(!recent()[0].text.contains("s3cret-value"), "{:?}", recent()[0]);
        // In the daemon's stack the page keeps warnings when the printed level is above them, and nothing below.
        let (subscriber, _) = super::super::subscriber(tracing_subscriber::EnvFilter::new("error"), false);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!("kept whatever the level");
            tracing::info!("never kept");
        });
        assert_eq!(recent()[0].text, "kept whatever the level");
    }
}
