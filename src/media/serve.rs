//! `/media/<id>?e=<expiry>&s=<signature>` on `general.http_listen`: an item of the store, only through a link the
//! store signed and before it expires (403 otherwise, with nothing of the file). Ranges and conditional requests
//! are tower-http's `ServeFile`; the type is the one sniffed from the bytes, never guessed again by the browser
//! (`nosniff`), and anything a browser would run (HTML, SVG, XML, scripts: whatever is not a plain image, video,
//! audio or PDF) is served as an attachment.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_service::Service;

use super::store::MediaStore;
use crate::stats::Stats;

#[derive(Clone)]
struct Served {
    store: Arc<MediaStore>,
    stats: Arc<Stats>,
}

#[derive(serde::Deserialize)]
struct Signed {
    e: Option<u64>,
    s: Option<String>,
}

/// The route, for the status server.
pub fn routes(store: Arc<MediaStore>, stats: Arc<Stats>) -> axum::Router {
    axum::Router::new().route("/media/{id}", axum::routing::get(item)).with_state(Served { store, stats })
}

/// Types shown in the browser; every other is downloaded.
const INLINE: [&str; 11] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/bmp",
    "video/mp4",
    "video/webm",
    "audio/ogg",
    "audio/mpeg",
    "audio/wav",
    "audio/amr",
];

async fn item(
    State(served): State<Served>,
    Path(id): Path<String>,
    Query(signed): Query<Signed>,
    request: Request,
) -> Response {
    let valid = match (signed.e, signed.s.as_deref()) {
        (Some(expires), Some(signature)) => served.store.verify(&id, expires, signature, SystemTime::now()),
        _ => false,
    };
    if !valid {
        served.stats.media.refused.inc();
        return (StatusCode::FORBIDDEN, "forbidden: the link is not signed by this bridge, or has expired\n")
            .into_response();
    }
    let store = Arc::clone(&served.store);
    let lookup = id.clone();
    let Ok(Some((path, mime))) = tokio::task::spawn_blocking(move || store.get(&lookup)).await else {
        served.stats.media.refused.inc();
        return (StatusCode::NOT_FOUND, "gone: the item is no longer kept\n").into_response();
    };
    let mut file = tower_http::services::ServeFile::new(path);
    let Ok(response) = file.call(request).await;
    let mut response = response.into_response();
    if response.status().is_success() {
        served.stats.media.served.inc();
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&mime) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=86400"));
    let disposition = if INLINE.contains(&mime.as_str()) { "inline" } else { "attachment" };
    if let Ok(value) = HeaderValue::from_str(&format!("{disposition}; filename=\"{}\"", &id[..16])) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
