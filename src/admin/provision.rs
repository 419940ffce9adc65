//! The provisioning routes (issue #34, docs/admin-api.md#provisioning): `PUT` and `DELETE
//! /admin/api/v1/bridges/{name}` add, change and remove a bridge kept in the store, `GET /admin/api/v1/provisioned`
//! lists them (`?format=toml`: as the file would write them). A bridge comes as JSON with the keys of a `[[bridge]]`
//! table, or as TOML (`Content-Type: application/toml`); it is checked with the file as `check` checks a file, and
//! refused with every problem and its key.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Admin;
use super::api::{action, error, unauthorised};
use crate::config::{Problems, Provisioned};
use crate::provision::{Outcome, ProvisionError};

/// A refusal as JSON: every problem with its key, line and column, and where (the bridge, or the file).
pub fn problems_json(problems: &Problems) -> serde_json::Value {
    let list: Vec<serde_json::Value> = problems
        .0
        .iter()
        .map(|p| json!({"field": p.field, "message": p.message, "line": p.line, "column": p.column, "in": p.file}))
        .collect();
    serde_json::Value::Array(list)
}

fn refused(e: ProvisionError) -> Response {
    match e {
        ProvisionError::Invalid(problems) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"error": "invalid", "message": "the bridge was not provisioned", "problems": problems_json(&problems)})),
        )
            .into_response(),
        ProvisionError::FromFile(_) => error(StatusCode::CONFLICT, "in_file", &e.to_string()),
        ProvisionError::NotFound(_) => error(StatusCode::NOT_FOUND, "not_found", &e.to_string()),
        ProvisionError::NoStore => error(StatusCode::SERVICE_UNAVAILABLE, "no_store", &e.to_string()),
        ProvisionError::Store(_) => error(StatusCode::SERVICE_UNAVAILABLE, "store", &e.to_string()),
    }
}

fn outcome(status: StatusCode, name: &str, done: Outcome, removed: bool) -> Response {
    let key = if removed { "removed" } else { "bridge" };
    (status, axum::Json(json!({key: name, "created": done.created, "version": done.version, "applied": done.applied})))
        .into_response()
}

/// The bridge of a request's body, named `name`.
fn bridge_of(name: &str, headers: &HeaderMap, body: &[u8]) -> Result<Provisioned, Box<Response>> {
    let toml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/toml") || t.starts_with("text/x-toml"));
    let invalid = |problems: Problems| Box::new(refused(ProvisionError::Invalid(problems)));
    let bad = |message: &str| Box::new(error(StatusCode::BAD_REQUEST, "bad_request", message));
    let bridge = if toml {
        let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
        Provisioned::from_toml(text).map_err(invalid)?
    } else {
        let mut value: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| bad("the body is not JSON (or send application/toml)"))?;
        if let Some(object) = value.as_object_mut() {
            object.entry("name").or_insert_with(|| name.into());
        }
        Provisioned::from_json(&value).map_err(invalid)?
    };
    if bridge.name != name {
        let message = format!("the body names the bridge `{}`, the address `{name}`", bridge.name);
        return Err(Box::new(error(StatusCode::BAD_REQUEST, "name_mismatch", &message)));
    }
    Ok(bridge)
}

pub(super) async fn put(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = action(&admin, &headers, b"") {
        return *refused;
    }
    let bridge = match bridge_of(&name, &headers, &body) {
        Ok(bridge) => bridge,
        Err(answer) => return *answer,
    };
    let operator = std::sync::Arc::clone(&admin.operator);
    match tokio::task::spawn_blocking(move || operator.provision(bridge)).await {
        Ok(Ok(done)) => {
            let status = if done.created { StatusCode::CREATED } else { StatusCode::OK };
            outcome(status, &name, done, false)
        }
        Ok(Err(e)) => refused(e),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "stopping", "the daemon is stopping"),
    }
}

pub(super) async fn remove(State(admin): State<Admin>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    if let Err(refused) = action(&admin, &headers, b"") {
        return *refused;
    }
    let operator = std::sync::Arc::clone(&admin.operator);
    let gone = name.clone();
    match tokio::task::spawn_blocking(move || operator.unprovision(&gone)).await {
        Ok(Ok(done)) => outcome(StatusCode::OK, &name, done, true),
        Ok(Err(e)) => refused(e),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "stopping", "the daemon is stopping"),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct Format {
    format: Option<String>,
}

pub(super) async fn list(State(admin): State<Admin>, headers: HeaderMap, Query(format): Query<Format>) -> Response {
    if admin.auth.caller(&headers).is_none() {
        return unauthorised();
    }
    let operator = std::sync::Arc::clone(&admin.operator);
    let (listed, left) = match tokio::task::spawn_blocking(move || operator.provisioned()).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return refused(e),
        Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "stopping", "the daemon is stopping"),
    };
    if format.format.as_deref() == Some("toml") {
        return ([(header::CONTENT_TYPE, "application/toml; charset=utf-8")], export(&listed.bridges)).into_response();
    }
    let bridges: Vec<serde_json::Value> = listed
        .bridges
        .iter()
        .map(|b| {
            let out = left.iter().find(|l| l.name == b.name).map(|l| problems_json(&l.problems));
            json!({"name": b.name, "toml": b.toml, "left_out": out})
        })
        .collect();
    axum::Json(json!({"version": listed.version, "bridges": bridges})).into_response()
}

/// The provisioned bridges as the configuration file would have them: one `[[bridge]]` table each.
pub fn export(bridges: &[Provisioned]) -> String {
    let mut text = String::from("# Bridges provisioned in the store (`chatbridge bridges export`).\n");
    for bridge in bridges {
        text.push('\n');
        text.push_str(&bridge.toml);
        text.push('\n');
    }
    text
}
