//! Serving HTTP on the daemon's listeners (`general.http_listen` and each API account's `listen`) with the
//! limits a public socket needs: a deadline for a request's headers (which also closes connections left
//! idle between requests), a deadline for a request's body, a minimum rate for both (guard.rs), and caps on
//! open connections, in all and per address, that keep admitted clients served (admission.rs).

mod admission;
mod guard;

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
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The limits of one listener (`[general]` `http_header_timeout`, `http_body_timeout`, `http_max_connections`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A request's headers must arrive within this; a connection idle this long between requests is closed.
    pub header_timeout: Duration,
    /// A request with a body must be read and answered within this (408 otherwise).
    pub body_timeout: Duration,
    /// Connections open at once; past it, a newcomer takes the place of the oldest connection not yet admitted
    /// (no request passed the gate yet), and is closed when every one is admitted, with a WARN.
    pub max_connections: usize,
    /// Connections one address may hold at once.
    pub max_per_address: usize,
    /// Bytes a second a request's headers and body must arrive at once begun (0: not measured).
    pub min_rate: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 256,
            max_per_address: 64,
            min_rate: 256,
        }
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
    let admission = admission::Admission::new(limits.max_connections, limits.max_per_address);
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
        let ticket = match admission.enter(peer.ip()) {
            Ok((ticket, evicted)) => {
                if evicted {
                    crate::warn_throttled!(format!("evicted {name}"); listener = name, max = limits.max_connections, "Connection limit reached: the oldest connection that made no admitted request was closed for a new one (http_max_connections).");
                }
                ticket
            }
            Err(why) => {
                refused += 1;
                if last_warn.is_none_or(|t| t.elapsed() >= CAP_WARN_EVERY) {
                    match why {
                        admission::Refused::Full => warn!(
                            listener = name,
                            max = limits.max_connections,
                            refused,
                            "Connection limit reached: new connections are closed (http_max_connections)."
                        ),
                        admission::Refused::Address => warn!(
                            listener = name,
                            address = %peer.ip(),
                            max = limits.max_per_address,
                            refused,
                            "One address holds its share of connections: its new ones are closed (http_max_connections_per_address)."
                        ),
                    }
                    last_warn = Some(Instant::now());
                }
                drop(stream);
                continue;
            }
        };
        debug!(listener = name, %peer, "Connection.");
        // Small writes (one websocket frame or stream line per message) go out at once, not after the peer's
        // delayed acknowledgement of the previous one (Nagle's algorithm).
        let _ = stream.set_nodelay(true);
        let flow = Arc::new(guard::Flow::default());
        let ticket = Arc::new(ticket);
        let service = {
            let (app, gate, flow, ticket) = (app.clone(), gate.clone(), Arc::clone(&flow), Arc::clone(&ticket));
            service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                // The peer, for handlers that need it (the admin login's throttle).
                request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                let seen = Seen { flow: Arc::clone(&flow), ticket: Arc::clone(&ticket) };
                answer(app.clone(), gate.clone(), request, limits, seen)
            })
        };
        let stop = stop.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
            let io = guard::Counted { inner: stream, flow: Arc::clone(&flow) };
            let connection = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), connection).await;
                }
                // A newcomer took its place (it had no admitted request), or it sends too slowly: closed.
                _ = ticket.evicted.cancelled() => debug!(listener = name, %peer, "Closed for a newcomer."),
                _ = guard::too_slow(&flow, limits.min_rate) => {
                    crate::warn_throttled!(format!("slow {name}"); listener = name, %peer, min_rate = limits.min_rate, "A client sending its request too slowly was cut (http_min_rate).");
                }
            }
        });
    }
    connections.shutdown().await;
}

/// What a request tells its connection: how its bytes flow, and whether it may keep its place.
struct Seen {
    flow: Arc<guard::Flow>,
    ticket: Arc<admission::Ticket>,
}

/// One request: the gate, then the routes. Requests that carry a body (anything but GET and HEAD) are read and
/// answered within `body_timeout`: a client that claims a large body and sends a few bytes is answered 408, not
/// waited for.
async fn answer(
    app: Router,
    gate: Option<Gate>,
    request: Request<Incoming>,
    limits: Limits,
    seen: Seen,
) -> Result<Response, Infallible> {
    if let Some(refusal) = gate.as_deref().and_then(|gate| gate(request.headers())) {
        seen.flow.answered();
        return Ok(refusal);
    }
    seen.ticket.admit();
    let bodyless = matches!(*request.method(), Method::GET | Method::HEAD);
    if request.headers().contains_key(axum::http::header::UPGRADE) {
        seen.flow.exempt();
    } else {
        seen.flow.request(!bodyless);
    }
    let flow = Arc::clone(&seen.flow);
    let request = request.map(|inner| guard::Watched { inner, flow });
    let response = respond(app, request, bodyless, limits).await;
    seen.flow.answered();
    response
}

/// The routes' answer; a request with a body within `body_timeout`.
async fn respond(
    mut app: Router,
    request: Request<guard::Watched<Incoming>>,
    bodyless: bool,
    limits: Limits,
) -> Result<Response, Infallible> {
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
