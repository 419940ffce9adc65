//! Walking the spanned TOML tree: every problem is collected with its file, line and column, so
//! `chatbridge check` reports them all at once instead of stopping at the first. The configuration and each
//! platform's account table (`adapters/<platform>/config.rs`) read their keys with these.

mod forms;
mod path;
mod report;
mod secret;

pub use forms::{check_filter, libpq_options};
pub(crate) use path::field_at;
pub(crate) use report::Report;
pub use report::{Problem, Problems};
pub use secret::{Secret, without_secrets};

use std::ops::Range;
use std::time::Duration;

use reqwest::Url;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub(crate) type Span = Range<usize>;
pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

/// The value as a table, or a reported type error.
pub(crate) fn table<'t, 'i>(value: &'t Value<'i>, what: &str, report: &mut Report<'_>) -> Option<&'t DeTable<'i>> {
    match value.get_ref() {
        DeValue::Table(table) => Some(table),
        other => {
            report.error(&value.span(), format!("{what} must be a table, not {}", other.type_str()));
            None
        }
    }
}

/// The keys of one table, taken one by one; what is left over is reported as unknown.
pub(crate) struct Fields<'t, 'i> {
    table: &'t DeTable<'i>,
    taken: Vec<&'static str>,
    pub span: Span,
}

impl<'t, 'i> Fields<'t, 'i> {
    pub fn new(table: &'t DeTable<'i>, span: Span) -> Self {
        Self { table, taken: Vec::new(), span }
    }

    /// Takes a value as a table, reporting a type error.
    pub fn of(value: &'t Value<'i>, what: &str, report: &mut Report<'_>) -> Option<Self> {
        table(value, what, report).map(|t| Self::new(t, value.span()))
    }

    /// Where a key's value is, if the table has it.
    pub fn span_of(&self, key: &str) -> Option<Span> {
        self.table.get(key).map(|v| v.span())
    }

    /// Looks at a value without taking its key.
    pub fn peek(&self, key: &str) -> Option<&'t DeValue<'i>> {
        self.table.get(key).map(|v| v.get_ref())
    }

    pub fn get(&mut self, key: &'static str) -> Option<&'t Value<'i>> {
        self.taken.push(key);
        self.table.get(key)
    }

    /// Reports every key that was not taken; `known` lists what the table accepts.
    pub fn deny_unknown(self, what: &str, report: &mut Report<'_>) {
        for (key, _) in self.table.iter() {
            if !self.taken.contains(&key.get_ref().as_ref()) {
                let known = self.taken.join(", ");
                report.error(&key.span(), format!("unknown key `{}` in {what}; known keys: {known}", key.get_ref()));
            }
        }
    }

    pub fn str(&mut self, key: &'static str, report: &mut Report<'_>) -> Option<(&'t str, Span)> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some((s.as_ref(), value.span())),
            other => {
                report.error(&value.span(), format!("`{key}` must be a string, not {}", other.type_str()));
                None
            }
        }
    }

    pub fn required_str(&mut self, key: &'static str, what: &str, report: &mut Report<'_>) -> Option<(&'t str, Span)> {
        if self.table.get(key).is_none() {
            self.taken.push(key);
            report.error(&self.span, format!("{what} needs `{key}`"));
            return None;
        }
        self.str(key, report)
    }

    pub fn duration(&mut self, key: &'static str, report: &mut Report<'_>) -> Option<Duration> {
        let (text, span) = self.str(key, report)?;
        match humantime::parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                report.error(&span, format!("`{key}` is not a duration like \"10s\" or \"500ms\": {e}"));
                None
            }
        }
    }

    /// `heartbeat` and `idle_timeout`, each or its default (`idle` from the heartbeat in effect): a session that
    /// hears nothing for `idle_timeout` is taken for lost, so a heartbeat as long would end every quiet session.
    pub fn heartbeat_and_idle(
        &mut self,
        report: &mut Report<'_>,
        heartbeat: Duration,
        idle: impl FnOnce(Duration) -> Duration,
    ) -> (Duration, Duration) {
        let heartbeat = self.duration("heartbeat", report).unwrap_or(heartbeat);
        let idle_timeout = self.duration("idle_timeout", report).unwrap_or_else(|| idle(heartbeat));
        if heartbeat >= idle_timeout {
            let span = self.span_of("heartbeat").or_else(|| self.span_of("idle_timeout")).unwrap_or(self.span.clone());
            report.error(
                &span,
                format!(
                    "`heartbeat` ({}) is not shorter than `idle_timeout` ({}): a quiet session would be taken for \
                     lost before its next heartbeat; make `idle_timeout` two or three heartbeats",
                    humantime::format_duration(heartbeat),
                    humantime::format_duration(idle_timeout)
                ),
            );
        }
        (heartbeat, idle_timeout)
    }

    pub fn bool(&mut self, key: &'static str, report: &mut Report<'_>) -> Option<bool> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                report.error(&value.span(), format!("`{key}` must be true or false, not {}", other.type_str()));
                None
            }
        }
    }

    pub fn positive_int(&mut self, key: &'static str, report: &mut Report<'_>) -> Option<u64> {
        let value = self.get(key)?;
        let parsed = match value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        };
        match parsed {
            Some(n) if n > 0 => Some(n as u64),
            _ => {
                report.error(&value.span(), format!("`{key}` must be a positive integer"));
                None
            }
        }
    }

    /// A number that is zero or more (an integer or a float).
    pub fn non_negative(&mut self, key: &'static str, report: &mut Report<'_>) -> Option<f64> {
        let value = self.get(key)?;
        let parsed = match value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok().map(|n| n as f64),
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            _ => None,
        };
        match parsed {
            Some(n) if n >= 0.0 && n.is_finite() => Some(n),
            _ => {
                report.error(&value.span(), format!("`{key}` must be a number, zero or more"));
                None
            }
        }
    }

    /// A list of pairs of strings, `[["a", "b"], ...]`; a lone pair is taken as a list of one.
    #[allow(clippy::type_complexity)]
    pub fn str_pairs(
        &mut self,
        key: &'static str,
        report: &mut Report<'_>,
    ) -> Option<Vec<((&'t str, Span), (&'t str, Span))>> {
        let value = self.get(key)?;
        let pair = |item: &'t Value<'i>| -> Option<((&'t str, Span), (&'t str, Span))> {
            let DeValue::Array(two) = item.get_ref() else { return None };
            match two.iter().map(|v| (v.get_ref(), v.span())).collect::<Vec<_>>().as_slice() {
                [(DeValue::String(a), sa), (DeValue::String(b), sb)] => {
                    Some(((a.as_ref(), sa.clone()), (b.as_ref(), sb.clone())))
                }
                _ => None,
            }
        };
        let shape = format!("`{key}` must be a list of [\"expression\", \"replacement\"] pairs");
        let DeValue::Array(items) = value.get_ref() else {
            report.error(&value.span(), shape);
            return None;
        };
        if let Some(one) = pair(value) {
            return Some(vec![one]);
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            match pair(item) {
                Some(p) => out.push(p),
                None => report.error(&item.span(), shape.clone()),
            }
        }
        Some(out)
    }

    /// A list of strings; a lone string is taken as a list of one.
    pub fn str_list(&mut self, key: &'static str, report: &mut Report<'_>) -> Option<Vec<(&'t str, Span)>> {
        let value = self.get(key)?;
        let type_error = |report: &mut Report<'_>, span: &Span| {
            report.error(span, format!("`{key}` must be a list of strings"));
        };
        match value.get_ref() {
            DeValue::String(s) => Some(vec![(s.as_ref(), value.span())]),
            DeValue::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => out.push((s.as_ref(), item.span())),
                        _ => type_error(report, &item.span()),
                    }
                }
                Some(out)
            }
            _ => {
                type_error(report, &value.span());
                None
            }
        }
    }
}

/// A URL key with a default: websocket keys (`ws_…`, `channel_url`) take ws or wss, the others http or https.
pub(crate) fn url(
    fields: &mut Fields<'_, '_>,
    key: &'static str,
    default: &str,
    report: &mut Report<'_>,
) -> Option<Url> {
    match optional_url(fields, key, report)? {
        Some(url) => Some(url),
        None => Some(Url::parse(default).expect("default URLs are valid")),
    }
}

/// `Some(None)` when the key is absent, `None` when it is wrong (reported).
pub(crate) fn optional_url(
    fields: &mut Fields<'_, '_>,
    key: &'static str,
    report: &mut Report<'_>,
) -> Option<Option<Url>> {
    let Some((text, span)) = fields.str(key, report) else {
        return Some(None);
    };
    // A websocket key takes ws or wss, every other URL http or https.
    let expected: &[&str] =
        if key.starts_with("ws_") || key == "channel_url" { &["ws", "wss"] } else { &["http", "https"] };
    match Url::parse(text) {
        Ok(url) if expected.contains(&url.scheme()) => Some(Some(url)),
        Ok(url) => {
            report.error(&span, format!("`{key}` has scheme `{}`; expected {}", url.scheme(), expected.join(" or ")));
            None
        }
        Err(e) => {
            report.error(&span, format!("`{key}` is not a URL: {e}"));
            None
        }
    }
}

/// A URL or a list of them, tried in order.
pub(crate) fn url_list(
    fields: &mut Fields<'_, '_>,
    key: &'static str,
    default: &str,
    report: &mut Report<'_>,
) -> Option<Vec<Url>> {
    let Some(list) = fields.str_list(key, report) else {
        return Some(vec![Url::parse(default).expect("default URLs are valid")]);
    };
    if list.is_empty() {
        report.error(&fields.span, format!("`{key}` is an empty list"));
        return None;
    }
    let mut urls = Vec::with_capacity(list.len());
    for (text, span) in list {
        match Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "ws" | "wss") => urls.push(url),
            Ok(url) => report.error(&span, format!("`{key}` has scheme `{}`; expected ws or wss", url.scheme())),
            Err(e) => report.error(&span, format!("`{key}` is not a URL: {e}")),
        }
    }
    Some(urls)
}

pub(crate) fn secret(
    fields: &mut Fields<'_, '_>,
    key: &'static str,
    what: &str,
    report: &mut Report<'_>,
) -> Option<Secret> {
    let (spec, span) = fields.required_str(key, what, report)?;
    report.note_literal(&span, key, spec);
    match Secret::resolve(spec) {
        Ok(secret) => {
            report.secrets.push((span, spec.to_owned(), secret.clone()));
            Some(secret)
        }
        Err(e) => {
            report.error(&span, format!("secret `{key}` cannot be read: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_character_columns() {
        let source = "a = 1\n名前 = 2\n";
        let mut report = Report::new(source, "x.toml");
        let offset = source.find('2').unwrap();
        report.error(&(offset..offset + 1), "two");
        report.error(&(0..1), "one");
        let problems = report.finish().unwrap_err();
        assert_eq!(problems.to_string(), "x.toml:1:1: one\nx.toml:2:6: two\n");
    }
}
