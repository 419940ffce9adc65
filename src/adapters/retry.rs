//! Answers of platform servers: their `Retry-After`, bodies read within a limit, transport errors described
//! without leaking credentials. (How a failed send is classified, [`SendFailure`], is part of the contract.)

pub use crate::link::SendFailure;

use std::time::Duration;

/// The `Retry-After` of an answer (seconds; the HTTP-date form is not used by these platforms), capped at
/// ten minutes so a confused server cannot park a queue for days.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(600)))
}

/// A transport error as text, without the request URL (which may carry credentials).
pub fn describe(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_decode() {
        "bad response body"
    } else {
        "request failed"
    };
    let error = error.without_url();
    let mut text = format!("{kind}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads an answer's body, refusing one larger than `limit` bytes (a declared length over it is refused
/// before anything is read): a platform server may send anything, of any size.
pub async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let too_large = || format!("the answer is larger than {} KiB; refused", limit / 1024);
    if response.content_length().is_some_and(|declared| declared > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// [`read_body`], then JSON.
pub async fn read_json<T: serde::de::DeserializeOwned>(response: reqwest::Response, limit: usize) -> Result<T, String> {
    let body = read_body(response, limit).await?;
    serde_json::from_slice(&body).map_err(|e| format!("unreadable answer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_larger_than_the_limit_are_refused_without_being_read_whole() {
        use futures_util::stream;
        // An endless body (1 GiB would do the same, slower) and one that declares its size.
        let app = axum::Router::new()
            .route(
                "/endless",
                axum::routing::get(|| async {
                    let chunk = axum::body::Bytes::from(vec![b'x'; 64 * 1024]);
                    axum::body::Body::from_stream(stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone())))
                }),
            )
            .route("/declared", axum::routing::get(|| async { vec![b'{'; 3 << 20] }))
            .route("/small", axum::routing::get(|| async { r#"{"ok": 1}"# }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = crate::adapters::http_client(Duration::from_secs(5));
        let get = |path: &str| client.get(format!("http://{addr}{path}")).send();
        let error = read_body(get("/endless").await.unwrap(), 1 << 20).await.unwrap_err();
        assert!(error.contains("larger than 1024 KiB"), "{error}");
        let error = read_body(get("/declared").await.unwrap(), 1 << 20).await.unwrap_err();
        assert!(error.contains("larger than"), "{error}");
        let value: serde_json::Value = read_json(get("/small").await.unwrap(), 1 << 20).await.unwrap();
        assert_eq!(value["ok"], 1);
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(reqwest::header::RETRY_AFTER, "99999".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(600)));
        headers.insert(reqwest::header::RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[tokio::test]
    async fn descriptions_leave_out_the_url() {
        let client = crate::adapters::http_client(Duration::from_secs(2));
        // A loopback port that was just free: the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/api?key=supersecret");
        let err = client.get(url).send().await.unwrap_err();
        let text = describe(err);
        assert!(!text.contains("supersecret"), "{text}");
        assert!(text.starts_with("connection failed"), "{text}");
    }
}
