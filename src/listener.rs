//! Serving HTTP on the daemon's listeners (`general.http_listen` and each API account's `listen`) with the
//! limits a public socket needs: a deadline for a request's headers (which also closes connections left
//! idle between requests), a deadline for a request's body, and a cap on open connections.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The limits of one listener (`[general]` `http_header_timeout`, `http_body_timeout`, `http_max_connections`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A request's headers must arrive within this; a connection idle this long between requests is closed.
    pub header_timeout: Duration,
    /// A request with a body must be read and answered within this (408 otherwise).
    pub body_timeout: Duration,
    /// Connections open at once; more are closed as they come, with a WARN.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { header_timeout: Duration::from_secs(10), body_timeout: Duration::from_secs(30), max_connections: 256 }
    }
}

/// How often a listener at its cap says so.
const CAP_WARN_EVERY: Duration = Duration::from_secs(10);

/// A check of every request before it is routed: `Some(answer)` refuses the request with that answer (the API's
/// token). Made here rather than as a router layer: each layer wraps every route in boxed services that are
/// cloned per request, about as many allocations as the rest of a request's handling (heaptrack).
pub type Gate = Arc<dyn Fn(&HeaderMap) -> Option<Response> + Send + Sync>;

/// Serves `app` on `listener` until `stop`, then lets open requests finish (websockets and streams are closed
/// by their own handlers on the same signal).
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, name: &'static str, stop: CancellationToken) {
    serve_gated(listener, app, limits, name, stop, None).await;
}

/// [`serve`], with every request checked by `gate` first.
pub async fn serve_gated(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    name: &'static str,
    stop: CancellationToken,
    gate: Option<Gate>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut refused = 0u64;
    let mut last_warn: Option<Instant> = None;
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: wait a moment rather than spin.
                    warn!(listener = name, error = %e, "Accepting a connection failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refused += 1;
            if last_warn.is_none_or(|t| t.elapsed() >= CAP_WARN_EVERY) {
                warn!(
                    listener = name,
                    max = limits.max_connections,
                    refused,
                    "Connection limit reached: new connections are closed (http_max_connections)."
                );
                last_warn = Some(Instant::now());
            }
            drop(stream);
            continue;
        };
        debug!(listener = name, %peer, "Connection.");
        // Small writes (one websocket frame or stream line per message) go out at once, not after the peer's
        // delayed acknowledgement of the previous one (Nagle's algorithm).
        let _ = stream.set_nodelay(true);
        let service = {
            let (app, gate) = (app.clone(), gate.clone());
            service_fn(move |request| answer(app.clone(), gate.clone(), request, limits))
        };
        let stop = stop.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), connection).await;
                }
            }
        });
    }
    connections.shutdown().await;
}

/// One request: the gate, then the routes. Requests that carry a body (anything but GET and HEAD) are read and
/// answered within `body_timeout`: a client that claims a large body and sends a few bytes is answered 408, not
/// waited for.
async fn answer(
    mut app: Router,
    gate: Option<Gate>,
    request: Request<Incoming>,
    limits: Limits,
) -> Result<Response, Infallible> {
    if let Some(refusal) = gate.as_deref().and_then(|gate| gate(request.headers())) {
        return Ok(refusal);
    }
    let bodyless = matches!(*request.method(), Method::GET | Method::HEAD);
    let mut answer = std::pin::pin!(tower_service::Service::call(&mut app, request));
    if bodyless {
        return answer.await;
    }
    // A small body that is already here is answered at once: only a request that has to wait gets a timer.
    if let std::task::Poll::Ready(response) =
        std::future::poll_fn(|cx| std::task::Poll::Ready(answer.as_mut().poll(cx))).await
    {
        return response;
    }
    Ok(match tokio::time::timeout(limits.body_timeout, answer).await {
        Ok(Ok(response)) => response,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            axum::Json(serde_json::json!({"message": "the request's body did not arrive in time"})),
        )
            .into_response(),
    })
}
