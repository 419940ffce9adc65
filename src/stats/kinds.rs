//! Kinds of platform events the bridge does not carry (issue #33 §1): nothing is dropped silently. Each
//! `(platform, kind)` is counted for `/metrics`, and the first of each is said in the log once. A hostile server may
//! invent kinds without end: past [`KINDS_KEPT`] distinct kinds the rest count as `other`, and a kind's name is cut
//! to [`KIND_CHARS`] printable characters.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Distinct kinds counted by name; past them, `other`.
pub const KINDS_KEPT: usize = 200;
/// The longest kind name kept.
pub const KIND_CHARS: usize = 48;

#[derive(Debug, Default)]
pub struct UnknownKinds(Mutex<BTreeMap<(&'static str, String), u64>>);

impl UnknownKinds {
    /// Counts one event of `kind` from `platform`; the first time a kind is seen, its name as counted (to say in the
    /// log: cut and without control characters).
    pub fn count(&self, platform: &'static str, kind: &str) -> Option<String> {
        let mut kinds = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut name: String =
            kind.chars().filter(|c| !c.is_control()).take(KIND_CHARS).collect::<String>().trim().to_owned();
        if name.is_empty() {
            name = "unnamed".to_owned();
        }
        if !kinds.contains_key(&(platform, name.clone())) && kinds.len() >= KINDS_KEPT {
            name = "other".to_owned();
        }
        let count = kinds.entry((platform, name.clone())).or_default();
        *count += 1;
        (*count == 1).then_some(name)
    }

    /// `(platform, kind, count)`, sorted.
    pub fn counts(&self) -> Vec<(&'static str, String, u64)> {
        let kinds = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        kinds.iter().map(|((platform, kind), n)| (*platform, kind.clone(), *n)).collect()
    }

    /// The Prometheus text of the counts.
    pub fn render(&self, out: &mut String) {
        let name = "chatbridge_events_unknown_kind_total";
        let _ = writeln!(
            out,
            "# HELP {name} Events of a kind the bridge does not carry (not relayed; the first of each kind is logged), by platform and kind.\n# TYPE {name} counter"
        );
        for (platform, kind, n) in self.counts() {
            let kind = kind.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(out, "{name}{{platform=\"{platform}\",kind=\"{kind}\"}} {n}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_counted_said_once_bounded_and_escaped() {
        let kinds = UnknownKinds::default();
        assert_eq!(kinds.count("heihei", "pk/start").as_deref(), Some("pk/start"));
        assert_eq!(kinds.count("heihei", "pk/start"), None, "said once");
        assert!(kinds.count("missevan", "pk/start").is_some(), "per platform");
        let odd = kinds.count("yunhu", &format!("a\"b\\c\n{}", "x".repeat(100))).unwrap();
        assert!(!odd.contains('\n') && odd.chars().count() == KIND_CHARS, "{odd}");
        for n in 0..500 {
            kinds.count("iirose", &format!("invented-{n}"));
        }
        let counts = kinds.counts();
        assert_eq!(counts.len(), KINDS_KEPT + 1, "bounded, the rest as other");
        assert!(counts.iter().any(|(p, k, n)| *p == "iirose" && k == "other" && *n == 500 - (KINDS_KEPT as u64 - 3)));
        let mut out = String::new();
        kinds.render(&mut out);
        assert!(out.contains("{platform=\"heihei\",kind=\"pk/start\"} 2"), "{out}");
        let long = out.lines().find(|l| l.contains("platform=\"yunhu\"")).expect("the odd kind");
        assert!(long.contains("kind=\"a\\\"b\\\\c") && long.len() < 120, "{long}");
    }
}
