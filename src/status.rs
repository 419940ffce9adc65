//! The status server on `general.http_listen`: `GET /health` (each account's state; 503 when one has stopped)
//! and `GET /metrics` (Prometheus text format); with a media store, `GET /media/` (`media::serve`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::link::AccountState;
use crate::model::{AccountId, Time};
use crate::stats::{LATENCY_BUCKETS, Metric, Stats};

type States = watch::Receiver<BTreeMap<AccountId, AccountState>>;

#[derive(Clone)]
struct Status {
    states: States,
    stats: Arc<Stats>,
}

/// Serves until `stop` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    states: States,
    stats: Arc<Stats>,
    limits: crate::listener::Limits,
    media: Option<Router>,
    stop: CancellationToken,
) {
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(Status { states, stats });
    if let Some(media) = media {
        app = app.merge(media);
    }
    crate::listener::serve(listener, app, limits, "status", stop).await;
}

fn state_json(state: &AccountState) -> Value {
    match state {
        AccountState::Connecting => json!({"state": "connecting"}),
        AccountState::Connected => json!({"state": "connected"}),
        AccountState::BackingOff { delay, until, reason } => {
            json!({"state": "backing_off", "until_ms": until.0, "retry_in_ms": (until.0 - Time::now().0).max(0), "delay_ms": delay.as_millis() as u64, "reason": reason})
        }
        AccountState::Stopped { reason } => json!({"state": "stopped", "reason": reason}),
    }
}

async fn health(State(status): State<Status>) -> Response {
    let states = status.states.borrow().clone();
    let stopped = states.values().any(|s| matches!(s, AccountState::Stopped { .. }));
    let accounts: serde_json::Map<String, Value> =
        states.iter().map(|(id, s)| (id.to_string(), state_json(s))).collect();
    // While the store cannot write, no message is taken in: the daemon is not healthy.
    let store = match status.stats.store.failing() {
        None => json!("ok"),
        Some(reason) => json!({"failing": reason}),
    };
    let degraded = stopped || !store.is_string();
    let mut body = json!({"status": if degraded { "degraded" } else { "ok" }, "store": store, "accounts": accounts});
    // The configuration: the last reload's result, so a refused reload is seen (the old configuration runs on).
    body["config"] = match status.stats.last_reload() {
        None => json!({"last_reload": null}),
        Some(reload) => json!({"last_reload": {
            "result": if reload.applied { "applied" } else { "refused" },
            "at_ms": reload.at.0,
            "errors": reload.errors,
        }}),
    };
    if let Some(name) = status.stats.instance.get() {
        // With a store instances share: which instance this is, and how many accounts it holds.
        let held = status.stats.leases_held.load(std::sync::atomic::Ordering::Relaxed);
        body["instance"] = json!({"name": name, "leases_held": held});
    }
    let code = if degraded { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (code, axum::Json(body)).into_response()
}

/// A label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

async fn metrics(State(status): State<Status>) -> Response {
    let text = render(&status.stats, &status.states.borrow());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// The Prometheus text exposition of every counter.
pub fn render(stats: &Stats, states: &BTreeMap<AccountId, AccountState>) -> String {
    let mut out = String::new();
    let labeled = stats.labeled();
    for metric in Metric::ALL {
        let (name, help) = metric.describe();
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for ((_, account, room), value) in labeled.iter().filter(|((m, _, _), _)| *m == metric) {
            let _ = writeln!(out, "{name}{{account=\"{}\",room=\"{}\"}} {value}", label(account), label(room));
        }
    }
    let plain = [
        ("chatbridge_echoes_total", "Events not relayed because they were the bridge's own.", stats.echoes.get()),
        (
            "chatbridge_events_filtered_total",
            "Events no bridge takes (unsupported, filtered, private).",
            stats.filtered.get(),
        ),
        (
            "chatbridge_events_duplicate_total",
            "Events seen again through gap filling after they were relayed: not relayed twice.",
            stats.duplicates.get(),
        ),
        (
            "chatbridge_events_lost_after_close_total",
            "Events a platform handed to a connection after its session had closed (a Fishroom poll in flight at a restart), when nothing took them in any more.",
            stats.lost_after_close.get(),
        ),
        ("chatbridge_store_commits_total", "Transactions the state database committed.", stats.store_commits.get()),
        (
            "chatbridge_memory_given_back_total",
            "Times the allocator's free memory went back to the system, a few seconds after the rooms last changed.",
            stats.memory_given_back.get(),
        ),
        (
            "chatbridge_store_outbox_written_total",
            "Outbox rows written to the state database.",
            stats.store_rows_written.get(),
        ),
        (
            "chatbridge_store_outbox_skipped_total",
            "Outbox rows never written: the copy was delivered before its transaction committed.",
            stats.store_rows_skipped.get(),
        ),
        (
            "chatbridge_fencing_refusals_total",
            "Writes the shared store refused because this instance no longer held the account's lease.",
            stats.fencing_refusals.get(),
        ),
        ("chatbridge_lease_renewals_total", "Account leases renewed by this instance.", stats.lease_renewals.get()),
        (
            "chatbridge_admin_login_failures_total",
            "Failed logins to the status page.",
            stats.admin_login_failures.get(),
        ),
        (
            "chatbridge_state_webhook_sent_total",
            "Account state changes the state webhook delivered.",
            stats.webhook_sent.get(),
        ),
        (
            "chatbridge_state_webhook_dropped_total",
            "Account state changes the state webhook gave up (its receiver failing, or its queue of 100 full).",
            stats.webhook_dropped.get(),
        ),
        (
            "chatbridge_admin_refused_total",
            "Admin actions refused: no CSRF token, or another site's origin.",
            stats.admin_refused.get(),
        ),
        (
            "chatbridge_lease_takeovers_total",
            "Account leases this instance claimed (at start, after another instance stopped, or to even the load).",
            stats.lease_takeovers.get(),
        ),
    ];
    for (name, help, value) in plain {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
    }
    stats.media.render(&mut out);
    stats.unknown_kinds.render(&mut out);
    let clients = stats.websocket_clients.load(std::sync::atomic::Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP chatbridge_api_websocket_clients Websocket clients of the API accounts connected now.\n\
         # TYPE chatbridge_api_websocket_clients gauge\nchatbridge_api_websocket_clients {clients}"
    );
    for (name, help, value) in [
        ("chatbridge_store_outbox_rows", "Messages in the store's outbox (general.max_stored).", &stats.stored_outbox),
        (
            "chatbridge_leases_held",
            "Account leases this instance holds (a store shared by instances).",
            &stats.leases_held,
        ),
        (
            "chatbridge_store_dead_letters_rows",
            "Dead letters in the store (general.max_dead_letters).",
            &stats.stored_dead_letters,
        ),
    ] {
        let value = value.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    }
    let reload = stats.last_reload();
    let _ = writeln!(
        out,
        "# HELP chatbridge_config_last_reload_success Whether the last reload of the configuration was applied (1 \
         before any; 0: refused, the configuration before it runs on).\n\
         # TYPE chatbridge_config_last_reload_success gauge\nchatbridge_config_last_reload_success {}",
        u8::from(reload.as_ref().is_none_or(|r| r.applied))
    );
    let _ = writeln!(
        out,
        "# HELP chatbridge_build_info The running build: version and commit.\n# TYPE chatbridge_build_info gauge\n\
         chatbridge_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        crate::BUILD_COMMIT
    );
    let writable = u8::from(stats.store.failing().is_none());
    let _ = writeln!(
        out,
        "# HELP chatbridge_store_writable Whether the state database can be written (0: no message is taken in).\n\
         # TYPE chatbridge_store_writable gauge\nchatbridge_store_writable {writable}"
    );
    let _ = writeln!(
        out,
        "# HELP chatbridge_queue_depth Messages waiting per destination room.\n# TYPE chatbridge_queue_depth gauge"
    );
    for (room, depth) in stats.queued() {
        let _ = writeln!(out, "chatbridge_queue_depth{{room=\"{}\"}} {depth}", label(&room));
    }
    let _ = writeln!(
        out,
        "# HELP chatbridge_queue_lag_seconds Age of the oldest message waiting per destination room.\n\
         # TYPE chatbridge_queue_lag_seconds gauge"
    );
    for (room, lag) in stats.lags() {
        let _ = writeln!(out, "chatbridge_queue_lag_seconds{{room=\"{}\"}} {:.3}", label(&room), lag.as_secs_f64());
    }
    let _ = writeln!(
        out,
        "# HELP chatbridge_account_up Whether an account is connected.\n# TYPE chatbridge_account_up gauge"
    );
    for (account, state) in states {
        let up = u8::from(*state == AccountState::Connected);
        let _ = writeln!(out, "chatbridge_account_up{{account=\"{}\"}} {up}", label(&account.to_string()));
    }
    let (buckets, count, sum) = stats.latency.snapshot();
    let name = "chatbridge_send_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} From handing a send to an adapter to the platform's answer.\n# TYPE {name} histogram"
    );
    for (bound, value) in LATENCY_BUCKETS.iter().zip(buckets) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {value}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_backing_off_shows_why() {
        let state = state_json(&AccountState::backing_off(std::time::Duration::from_secs(2), "connection refused"));
        assert_eq!(
            (state["state"].as_str(), state["reason"].as_str()),
            (Some("backing_off"), Some("connection refused"))
        );
        assert_eq!(state["delay_ms"], 2000);
    }
    use crate::model::{Platform, RoomAddr, RoomId};

    #[test]
    fn metrics_are_prometheus_text_with_labels() {
        let stats = Stats::default();
        let room = RoomAddr::new(AccountId::new(Platform::Fishroom, "tuna"), RoomId::new("gen\"eral"));
        stats.count(Metric::Relayed, &room);
        stats.count(Metric::Relayed, &room);
        stats.set_queued(&room, 3);
        stats.latency.observe(std::time::Duration::from_millis(3));
        stats.store_rows_skipped.add(7);
        let mut states = BTreeMap::new();
        states.insert(room.account.clone(), AccountState::Connected);
        let text = render(&stats, &states);
        assert!(text.contains("# TYPE chatbridge_messages_relayed_total counter"), "{text}");
        assert!(
            text.contains("chatbridge_messages_relayed_total{account=\"fishroom.tuna\",room=\"gen\\\"eral\"} 2"),
            "{text}"
        );
        assert!(text.contains("chatbridge_queue_depth{room=\"fishroom.tuna:gen\\\"eral\"} 3"), "{text}");
        assert!(text.contains("chatbridge_account_up{account=\"fishroom.tuna\"} 1"), "{text}");
        assert!(text.contains("chatbridge_send_latency_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("chatbridge_send_latency_seconds_bucket{le=\"0.0025\"} 0"), "{text}");
        assert!(text.contains("chatbridge_send_latency_seconds_count 1"), "{text}");
        assert!(text.contains("\nchatbridge_store_outbox_skipped_total 7\n"), "{text}");
        assert!(text.contains("\nchatbridge_store_commits_total 0\n"), "{text}");
        assert_eq!(stats.relayed.get(), 2, "the total follows the labelled series");
    }
}
