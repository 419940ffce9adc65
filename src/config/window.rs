//! `[general]`'s keys of the operator's window (issue #32): `admin_token`, which the status page and the admin API
//! need (and an `http_listen` beyond loopback needs), and `state_webhook` with the secret that signs its POSTs.

use super::General;
use crate::settings::{Fields, Report};

pub(super) fn parse(fields: &mut Fields<'_, '_>, general: &mut General, report: &mut Report<'_>) {
    if let Some((spec, span)) = fields.str("admin_token", report) {
        report.note_literal(&span, "admin_token", spec);
        match crate::settings::Secret::resolve(spec) {
            Ok(token) if token.expose().len() < 16 && token.expose() != "unresolved" => {
                report.error(&span, "`admin_token` is shorter than 16 characters: anyone could guess it")
            }
            Ok(token) => general.admin_token = Some(token),
            Err(e) => report.error(&span, format!("secret `admin_token` cannot be read: {e}")),
        }
    }
    let webhook = fields.str("state_webhook", report).map(|(s, span)| (s.to_owned(), span));
    let webhook_secret = fields.str("state_webhook_secret", report).map(|(s, span)| (s.to_owned(), span));
    match (webhook, webhook_secret) {
        (Some((url, span)), secret) => {
            let parsed = reqwest::Url::parse(&url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            let secret = match secret {
                Some((spec, span)) => {
                    report.note_literal(&span, "state_webhook_secret", &spec);
                    crate::settings::Secret::resolve(&spec)
                        .map_err(|e| report.error(&span, format!("secret `state_webhook_secret` cannot be read: {e}")))
                        .ok()
                }
                None => {
                    report.error(
                        &span,
                        "`state_webhook` needs `state_webhook_secret`: every POST is signed with it (HMAC-SHA256)",
                    );
                    None
                }
            };
            match (parsed, secret) {
                (Some(url), Some(secret)) => general.state_webhook = Some((url, secret)),
                (None, _) => report.error(&span, format!("`state_webhook` `{url}` is not an http(s) address")),
                _ => {}
            }
        }
        (None, Some((_, span))) => report.warn(&span, "`state_webhook_secret` without `state_webhook` has no effect"),
        (None, None) => {}
    }
    if let Some(addr) = general.http_listen
        && !addr.ip().is_loopback()
        && general.admin_token.is_none()
        && fields.span_of("admin_token").is_none()
    {
        let span = fields.span_of("http_listen").unwrap_or(fields.span.clone());
        report.error(
            &span,
            format!("`http_listen` is {addr}, beyond loopback, without an `admin_token`: anyone who reaches it could see the status page and use the admin API; set `admin_token` (docs/operations.md#the-status-page), or listen on 127.0.0.1 behind a reverse proxy"),
        );
    }
}
