//! The routes (docs/admin-api.md): the page at `/`, the login, and the JSON API under `/admin/api/v1/`. An action
//! takes JSON (`{"keys": [..]}`) from a script or a form (`key`, `csrf`) from the page; the page's forms are answered
//! with a redirect back to it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::Admin;
use super::auth::{Caller, action_allowed, harden};

pub const PREFIX: &str = "/admin/api/v1";

pub fn routes(admin: Admin) -> axum::Router {
    axum::Router::new()
        .route("/", get(page))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route(&format!("{PREFIX}/status"), get(status))
        .route(&format!("{PREFIX}/accounts"), get(status))
        .route(&format!("{PREFIX}/bridges"), get(status))
        .route(&format!("{PREFIX}/dead-letters"), get(status))
        .route(&format!("{PREFIX}/dead-letters/requeue"), post(requeue))
        .route(&format!("{PREFIX}/dead-letters/drop"), post(drop_letters))
        .route(&format!("{PREFIX}/reload"), post(reload))
        .route(&format!("{PREFIX}/pause"), post(pause))
        .route(&format!("{PREFIX}/resume"), post(resume))
        .route(&format!("{PREFIX}/provisioned"), get(super::provision::list))
        .route(
            &format!("{PREFIX}/bridges/{{name}}"),
            axum::routing::put(super::provision::put).delete(super::provision::remove),
        )
        .layer(axum::middleware::map_response(|mut response: Response| async move {
            harden(response.headers_mut());
            response
        }))
        .with_state(admin)
}

pub(super) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({"error": code, "message": message}))).into_response()
}

pub(super) fn unauthorised() -> Response {
    error(StatusCode::UNAUTHORIZED, "unauthorised", "log in, or send Authorization: Bearer <admin_token>")
}

/// The snapshot, off the runtime's threads (it reads the store).
async fn snapshot(admin: &Admin) -> super::model::Snapshot {
    let admin = admin.clone();
    tokio::task::spawn_blocking(move || admin.snapshot()).await.expect("the snapshot does not panic")
}

async fn page(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    let Some(caller) = admin.auth.caller(&headers) else {
        return (StatusCode::UNAUTHORIZED, axum::response::Html(super::page::login(None))).into_response();
    };
    let csrf = match &caller {
        Caller::Session { csrf } => Some(csrf.clone()),
        _ => None,
    };
    let snapshot = snapshot(&admin).await;
    let html = super::page::render(&snapshot, csrf.as_deref(), admin.auth.required());
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().split(';').next() == Some("gzip")));
    if gzip {
        let headers = [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_ENCODING, "gzip"),
            (header::VARY, "accept-encoding"),
        ];
        return (headers, super::page::gzip(&html)).into_response();
    }
    ([(header::VARY, "accept-encoding")], axum::response::Html(html)).into_response()
}

/// The form's fields (`a=1&b=2`), as the URL parser reads a query.
fn form(body: &[u8]) -> Vec<(String, String)> {
    let body = String::from_utf8_lossy(body);
    reqwest::Url::parse(&format!("http://form/?{body}"))
        .map(|url| url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default()
}

async fn login(
    State(admin): State<Admin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !action_allowed(&Caller::Open, &Method::POST, &headers, None) {
        return error(StatusCode::FORBIDDEN, "cross_origin", "a login from another site");
    }
    let token = form(&body).into_iter().find(|(k, _)| k == "token").map(|(_, v)| v).unwrap_or_default();
    match admin.auth.login(&token, peer.ip()) {
        Ok(cookie) => {
            (StatusCode::SEE_OTHER, [(header::LOCATION, "/".parse().expect("a path")), (header::SET_COOKIE, cookie)])
                .into_response()
        }
        Err(throttled) => {
            admin.stats.admin_login_failures.inc();
            let (status, message) = if throttled {
                (StatusCode::TOO_MANY_REQUESTS, "Too many failed logins from this address: wait a minute.")
            } else {
                (StatusCode::UNAUTHORIZED, "That is not the admin token.")
            };
            (status, axum::response::Html(super::page::login(Some(message)))).into_response()
        }
    }
}

async fn logout(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    admin.auth.logout(&headers);
    let expired = format!("{}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0", super::auth::COOKIE);
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/".to_owned()), (header::SET_COOKIE, expired)]).into_response()
}

async fn status(State(admin): State<Admin>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    if admin.auth.caller(&headers).is_none() {
        return unauthorised();
    }
    let snapshot = snapshot(&admin).await;
    let body = match uri.path().trim_start_matches(PREFIX) {
        "/accounts" => json!({"accounts": snapshot.accounts}),
        "/bridges" => json!({"bridges": snapshot.bridges}),
        "/dead-letters" => json!({"dead_letters": snapshot.dead_letters, "error": snapshot.dead_letters_error}),
        _ => serde_json::to_value(&snapshot).unwrap_or_default(),
    };
    axum::Json(body).into_response()
}

/// An action's caller and body, or the answer refusing it. A form's fields become the JSON a script sends: `key`
/// fields gather into `keys`, others are strings. `is_form`: it came from the page.
pub(super) fn action(
    admin: &Admin,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(serde_json::Value, bool), Box<Response>> {
    let Some(caller) = admin.auth.caller(headers) else { return Err(Box::new(unauthorised())) };
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let (value, csrf) = if is_form {
        let mut fields = serde_json::Map::new();
        let mut keys = Vec::new();
        let mut csrf = None;
        for (name, value) in form(body) {
            match name.as_str() {
                "key" => keys.extend(value.parse::<u64>().ok()),
                "csrf" => csrf = Some(value),
                _ => {
                    fields.insert(name, value.into());
                }
            }
        }
        fields.insert("keys".into(), keys.into());
        (serde_json::Value::Object(fields), csrf)
    } else if body.is_empty() {
        (json!({}), None)
    } else {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|_| Box::new(error(StatusCode::BAD_REQUEST, "bad_request", "the body is not JSON")))?;
        (value, None)
    };
    if !action_allowed(&caller, &Method::POST, headers, csrf.as_deref()) {
        admin.stats.admin_refused.inc();
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "csrf",
            "an action needs the page's CSRF token and its own origin",
        )));
    }
    Ok((value, is_form))
}

fn done(is_form: bool, body: serde_json::Value) -> Response {
    if is_form {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    }
    axum::Json(body).into_response()
}

async fn letters(admin: Admin, headers: HeaderMap, body: Bytes, requeue: bool) -> Response {
    let (value, is_form) = match action(&admin, &headers, &body) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let keys: Vec<u64> = value
        .get("keys")
        .and_then(|k| k.as_array())
        .map_or_else(Vec::new, |keys| keys.iter().filter_map(serde_json::Value::as_u64).collect());
    if keys.is_empty() {
        return error(StatusCode::BAD_REQUEST, "no_keys", "name the dead letters: {\"keys\": [1, 2]}");
    }
    let operator = std::sync::Arc::clone(&admin.operator);
    let wanted = keys.len();
    let result =
        tokio::task::spawn_blocking(
            move || {
                if requeue { operator.requeue(&keys) } else { operator.drop_letters(&keys) }
            },
        )
        .await
        .unwrap_or_else(|_| Err("the store could not be reached".to_owned()));
    match result {
        Ok(n) if n < wanted => {
            error(StatusCode::NOT_FOUND, "not_found", &format!("{} of the keys are not dead letters", wanted - n))
        }
        Ok(n) if requeue => done(is_form, json!({"requeued": n})),
        Ok(n) => done(is_form, json!({"dropped": n})),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "store", &e),
    }
}

async fn requeue(State(admin): State<Admin>, headers: HeaderMap, body: Bytes) -> Response {
    letters(admin, headers, body, true).await
}

async fn drop_letters(State(admin): State<Admin>, headers: HeaderMap, body: Bytes) -> Response {
    letters(admin, headers, body, false).await
}

/// The same path as SIGHUP: the file read and checked again; answered with its problems when it is refused.
async fn reload(State(admin): State<Admin>, headers: HeaderMap, body: Bytes) -> Response {
    let is_form = match action(&admin, &headers, &body) {
        Ok((_, is_form)) => is_form,
        Err(refused) => return *refused,
    };
    let before = admin.stats.last_reload().map(|r| r.at);
    if !crate::shutdown::request_reload() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no_reload", "reloads are taken by `chatbridge run` only");
    }
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(last) = admin.stats.last_reload().filter(|r| Some(r.at) != before) {
            if last.applied {
                return done(is_form, json!({"applied": true}));
            }
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({"error": "refused", "problems": last.errors})),
            )
                .into_response();
        }
    }
    done(is_form, json!({"applied": null, "message": "asked; a reload that restarts the daemon ends this connection"}))
}

async fn pause(State(admin): State<Admin>, headers: HeaderMap, body: Bytes) -> Response {
    paused(admin, headers, body, true).await
}

async fn resume(State(admin): State<Admin>, headers: HeaderMap, body: Bytes) -> Response {
    paused(admin, headers, body, false).await
}

/// Pauses or resumes `{"bridge": name}` (its rooms, for it), or `{"room": address}` (the room, for every bridge; with
/// `bridge`, it must be one of that bridge's rooms).
async fn paused(admin: Admin, headers: HeaderMap, body: Bytes, paused: bool) -> Response {
    let (value, is_form) = match action(&admin, &headers, &body) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let text = |field: &str| value.get(field).and_then(|v| v.as_str()).filter(|v| !v.is_empty()).map(str::to_owned);
    let (bridge, room) = (text("bridge"), text("room"));
    if bridge.is_none() && room.is_none() {
        let message = "name a bridge or a room: {\"bridge\": \"name\"} or {\"room\": \"platform.account:room\"}";
        return error(StatusCode::BAD_REQUEST, "no_target", message);
    }
    let operator = std::sync::Arc::clone(&admin.operator);
    let answer = tokio::task::spawn_blocking(move || {
        let layout = operator.layout();
        let bridges: Vec<_> = layout.iter().filter(|(name, _)| bridge.as_ref().is_none_or(|b| b == name)).collect();
        if bridges.is_empty() {
            return Err((StatusCode::NOT_FOUND, "not_found", "no such bridge"));
        }
        if let Some(room) = &room
            && !bridges.iter().any(|(_, rooms)| rooms.iter().any(|(r, _)| r == room))
        {
            return Err((StatusCode::NOT_FOUND, "not_found", "no bridge has such a room"));
        }
        let request = super::PauseRequest { bridge: bridge.unwrap_or_default(), room, paused };
        operator
            .pause(request.clone())
            .map_err(|_| (StatusCode::SERVICE_UNAVAILABLE, "stopping", "the daemon is stopping"))?;
        Ok(request)
    })
    .await
    .unwrap_or(Err((StatusCode::SERVICE_UNAVAILABLE, "stopping", "the daemon is stopping")));
    match answer {
        Ok(request) => {
            let bridge = Some(request.bridge).filter(|b| !b.is_empty());
            done(is_form, json!({"bridge": bridge, "room": request.room, "paused": paused}))
        }
        Err((status, code, message)) => error(status, code, message),
    }
}
