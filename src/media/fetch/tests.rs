use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::*;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

/// Hostile media servers on 127.0.0.1 (trusted, as an account's own server would be), one path each.
async fn hostile() -> std::net::SocketAddr {
    let app = axum::Router::new()
        .route("/ok.png", get(|| async { ([(header::CONTENT_TYPE, "image/png")], PNG) }))
        .route(
            "/endless",
            get(|| async {
                let chunks =
                    futures_util::stream::repeat_with(|| Ok::<_, Infallible>(Bytes::from(vec![0u8; 64 << 10])));
                Body::from_stream(chunks).into_response()
            }),
        )
        .route(
            "/drip",
            get(|| async {
                let drip = futures_util::stream::unfold(0u8, |n| async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Some((Ok::<_, Infallible>(Bytes::from(vec![n])), n.wrapping_add(1)))
                });
                Body::from_stream(drip).into_response()
            }),
        )
        .route(
            "/page.png",
            get(|| async { ([(header::CONTENT_TYPE, "image/png")], "<!DOCTYPE html><html><script>alert(1)</script>") }),
        )
        .route(
            "/bomb.png",
            get(|| async {
                let gzip =
                    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xed\xc1\x01\x01\x00\x00\x00\x80\x90\xfe\xaf".to_vec();
                ([(header::CONTENT_TYPE, "image/png"), (header::CONTENT_ENCODING, "gzip")], gzip)
            }),
        )
        .route("/away", get(|| async { axum::response::Redirect::temporary("http://127.0.0.2:9/x.png") }))
        .route("/gone", get(|| async { Response::builder().status(404).body(Body::empty()).unwrap() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A server whose answer declares 100 MB and sends a few bytes (written raw: a framework keeps its lengths true).
async fn claims_huge() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 104857600\r\n\r\n")
                .await;
            let _ = stream.write_all(PNG).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    addr
}

fn dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("chatbridge-media-{name}-{}", uuid::Uuid::new_v4()))
}

#[tokio::test]
async fn an_image_is_streamed_to_disk_with_its_hash_and_sniffed_type() {
    let addr = hostile().await;
    let dir = dir("ok");
    let fetcher = Fetcher::new(Trusted::new(["127.0.0.1".to_owned()]), Limits::default(), &dir).unwrap();
    let fetched = fetcher.fetch(&Url::parse(&format!("http://{addr}/ok.png")).unwrap(), Kind::Image).await.unwrap();
    assert_eq!((fetched.size, fetched.mime), (PNG.len() as u64, "image/png"));
    assert_eq!(std::fs::read(&fetched.path).unwrap(), PNG);
    assert_eq!(fetched.sha256, <[u8; 32]>::from(sha2::Sha256::digest(PNG)));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn hostile_servers_are_refused_and_leave_nothing_behind() {
    let addr = hostile().await;
    let dir = dir("hostile");
    let limits = Limits { max_size: 1 << 20, total: Duration::from_secs(1), ..Limits::default() };
    let fetcher = Fetcher::new(Trusted::new(["127.0.0.1".to_owned()]), limits, &dir).unwrap();
    let fetch = |path: &str, kind: Kind| {
        let url = Url::parse(&format!("http://{addr}{path}")).unwrap();
        let fetcher = &fetcher;
        async move { fetcher.fetch(&url, kind).await.map(|f| f.size) }
    };
    assert_eq!(fetch("/endless", Kind::File).await, Err(Failure::TooLarge(None)), "the cap is counted on the bytes");
    let claims = Url::parse(&format!("http://{}/claims-huge", claims_huge().await)).unwrap();
    assert_eq!(
        fetcher.fetch(&claims, Kind::Image).await.map(|f| f.size),
        Err(Failure::TooLarge(Some(104_857_600))),
        "a length past the cap"
    );
    assert_eq!(fetch("/drip", Kind::File).await, Err(Failure::TimedOut), "the total deadline, whatever the pace");
    assert_eq!(fetch("/page.png", Kind::Image).await, Err(Failure::NotWhatItClaims("image")), "a page as an image");
    assert_eq!(fetch("/bomb.png", Kind::Image).await, Err(Failure::NotWhatItClaims("image")), "never inflated");
    assert_eq!(fetch("/away", Kind::Image).await, Err(Failure::Refused), "a redirect to another loopback address");
    assert_eq!(fetch("/gone", Kind::Image).await, Err(Failure::Status(404)));
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "partial files are removed: {left:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn types_are_told_from_the_first_bytes() {
    assert_eq!(sniff(PNG), "image/png");
    assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF"), "image/jpeg");
    assert_eq!(sniff(b"GIF89a\x01\0"), "image/gif");
    assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), "image/webp");
    assert_eq!(sniff(b"\0\0\0\x18ftypmp42"), "video/mp4");
    assert_eq!(sniff(b"OggS\0\x02"), "audio/ogg");
    assert_eq!(sniff(b"ID3\x04\0"), "audio/mpeg");
    assert_eq!(sniff(b"%PDF-1.7"), "application/pdf");
    assert_eq!(sniff(b"  <svg xmlns"), "text/html");
    assert_eq!(sniff(b"<?xml version"), "text/html");
    assert_eq!(sniff(b"hello"), "application/octet-stream");
}

/// A fetch dropped mid-stream (its total deadline, or a stop) leaves no partial file behind.
#[tokio::test]
async fn a_fetch_dropped_mid_stream_leaves_nothing_behind() {
    let addr = hostile().await;
    let dir = dir("dropped");
    let limits = Limits { max_size: 1 << 20, total: Duration::from_secs(30), ..Limits::default() };
    let fetcher = Fetcher::new(Trusted::new(["127.0.0.1".to_owned()]), limits, &dir).unwrap();
    let url = Url::parse(&format!("http://{addr}/drip")).unwrap();
    let dropped = tokio::time::timeout(Duration::from_millis(600), fetcher.fetch(&url, Kind::File)).await;
    assert!(dropped.is_err(), "still dripping when dropped");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "the partial file is removed: {left:?}");
    let _ = std::fs::remove_dir_all(dir);
}
