//! Media through the bridge (issue #31): an item fetched once into the media store and sent on as the store's
//! signed link (natively where the destination shows it), its bytes the source's; hostile media hosts, each
//! leaving the message its original link and a note; the order of a room kept while its media are fetched.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;
use sha2::Digest;
use tokio::io::AsyncWriteExt;

use crate::harness::*;

/// A PNG of `len` bytes: the signature, then bytes that differ from one picture to the next.
pub fn png(len: usize, seed: u8) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..len.saturating_sub(8)).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    bytes
}

/// A media host on loopback: `/cat.png`, `/report.pdf`, `/slow.png` (after 700 ms), `/page.png` (HTML said to be a PNG),
/// `/bomb.png` (a gzip body), `/endless.png`, redirects to private addresses and a redirect loop. Counts what it
/// serves.
pub struct MediaHost {
    pub addr: std::net::SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub cat: Vec<u8>,
    pub pdf: Vec<u8>,
}

impl MediaHost {
    pub async fn start(capture: std::net::SocketAddr) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let cat = png(5000, 7);
        let served = cat.clone();
        let mut pdf = b"%PDF-1.4\n".to_vec();
        pdf.extend((0..1200u32).map(|i| b'a' + (i % 26) as u8));
        let served_pdf = pdf.clone();
        let counter = Arc::clone(&hits);
        // 16 MB of zeros in a few kilobytes: inflated, it would pass any cap the test sets.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &vec![0u8; 16 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        let app = axum::Router::new()
            .route(
                "/cat.png",
                axum::routing::get(move || async move { ([(header::CONTENT_TYPE, "image/png")], served) }),
            )
            .route(
                "/slow.png",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_millis(700)).await;
                    ([(header::CONTENT_TYPE, "image/png")], png(3000, 9))
                }),
            )
            .route(
                "/page.png",
                axum::routing::get(|| async {
                    ([(header::CONTENT_TYPE, "image/png")], "<!doctype html><script>x</script>")
                }),
            )
            .route(
                "/bomb.png",
                axum::routing::get(move || async move {
                    ([(header::CONTENT_TYPE, "image/png"), (header::CONTENT_ENCODING, "gzip")], bomb)
                }),
            )
            .route(
                "/endless.png",
                axum::routing::get(|| async {
                    let chunks = futures_util::stream::iter(
                        std::iter::once(png(64, 1)).chain(std::iter::repeat(vec![0u8; 64 << 10])),
                    )
                    .map(Ok::<_, std::io::Error>);
                    ([(header::CONTENT_TYPE, "image/png")], axum::body::Body::from_stream(chunks))
                }),
            )
            .route(
                "/report.pdf",
                axum::routing::get(move || async move { ([(header::CONTENT_TYPE, "application/pdf")], served_pdf) }),
            )
            .route("/loop.png", axum::routing::get(|| async { redirect("/loop.png") }))
            .route(
                "/to/{target}",
                axum::routing::get(move |axum::extract::Path(target): axum::extract::Path<String>| async move {
                    let port = capture.port();
                    redirect(&match target.as_str() {
                        "loopback2" => format!("http://127.0.0.2:{port}/x.png"),
                        "mapped" => format!("http://[::ffff:127.0.0.1]:{port}/x.png"),
                        "private" => "http://10.0.0.1/x.png".to_owned(),
                        _ => "http://169.254.169.254/latest/meta-data".to_owned(),
                    })
                }),
            )
            .layer(axum::middleware::from_fn(move |request: axum::extract::Request, next: axum::middleware::Next| {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    next.run(request).await
                }
            }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, hits, cat, pdf }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

use futures_util::StreamExt;

fn redirect(to: &str) -> axum::response::Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response()
}

/// A server that counts the connections it is offered (a refused address must see none).
async fn capture(ip: &str, port: u16) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind((ip, port)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad").await;
        }
    });
    (addr, count)
}

/// A server that answers every request with `head`, then drips a byte every 100 ms for as long as it is read.
async fn raw(head: &'static [u8]) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
                if socket.write_all(head).await.is_err() {
                    return;
                }
                while socket.write_all(b"\0").await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
    });
    addr
}

/// A photo said in Fishroom room `room`.
fn photo(room: &str, url: &str, mtype: &str) -> serde_json::Value {
    json!({
        "channel": "telegram", "sender": "alice", "receiver": "", "room": room, "mtype": mtype,
        "content": "look", "media_url": url, "rich_text": null, "date": "2026-01-01", "time": "12:00:00",
        "botmsg": false, "opt": {}, "route": null,
    })
}

/// Fishroom rooms `a` (account `ta`), `b` (`out`, receiving only) and IIROSE in one bridge, `c` (`tc`) and `d`
/// (`out`) in another; the media store on `https://media.example.org` (an address only written into links: the
/// test fetches the same paths from the daemon's listener).
fn config(
    fish: &chatbridge::sim::fishroom::FishroomSim,
    rose: &chatbridge::sim::iirose::IiroseSim,
    state: &str,
) -> String {
    let room =
        |room: &str, direction: &str| format!("[[bridge.room]]\nroom = \"{room}\"\ndirection = \"{direction}\"\n");
    // Room `d` writes media its own way.
    let d = format!("{}media_format = \"📎 {{name}} ({{size}}): {{url}}\"\n", room("fishroom.out:d", "out"));
    format!(
        "{FAST}http_listen = \"127.0.0.1:0\"\nstate_dir = \"{state}\"\n\n[media]\npublic_url = \"https://media.example.org\"\nmax_size = \"1 MB\"\nfetch_timeout = \"1s\"\n{}{}{}{}\n\
         [[bridge]]\nname = \"pics\"\n{}{}{}[[bridge]]\nname = \"talk\"\n{}{}",
        account("ta", fish, "11", "key-a"),
        account("tc", fish, "33", "key-c"),
        account("out", fish, "22", "key-out"),
        iirose_account("rose", rose, ""),
        room("fishroom.ta:a", "inout"),
        room("fishroom.out:b", "out"),
        room(&format!("iirose.rose:{ROSE_ROOM}"), "inout"),
        room("fishroom.tc:c", "inout"),
        d,
    )
}

/// The simulated Fishroom server: rooms `a` to `d`, a token for each account.
async fn fish() -> chatbridge::sim::fishroom::FishroomSim {
    fishroom(
        &["a", "b", "c", "d"],
        &[("11", "key-a", "bridge"), ("33", "key-c", "bridge"), ("22", "key-out", "bridge")],
    )
    .await
}

const ACCOUNTS: [&str; 4] = ["fishroom.ta", "fishroom.tc", "fishroom.out", "iirose.rose"];

async fn next_in(
    posted: &mut tokio::sync::broadcast::Receiver<chatbridge::sim::fishroom::Posted>,
    room: &str,
) -> String {
    loop {
        let post = next_post(posted).await;
        if post.room == room {
            return post.content;
        }
    }
}

/// The path and query of the store's link in `text`.
fn signed_path(text: &str) -> String {
    let at =
        text.find("https://media.example.org/media/").expect("the store's link") + "https://media.example.org".len();
    text[at..].split([' ', ']', '#']).next().unwrap().to_owned()
}

async fn get(addr: std::net::SocketAddr, path: &str, range: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if let Some(range) = range {
        request = request.header(header::RANGE, range);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn an_image_arrives_as_the_stores_link_natively_where_shown_and_its_bytes_are_the_sources() {
    let (capture_addr, _) = capture("127.0.0.1", 0).await;
    let host = MediaHost::start(capture_addr).await;
    let fish = fish().await;
    let rose = iirose().await;
    let state = fresh_dir("media");
    let source = config(&fish, &rose, &state.display().to_string());
    let running = start(&source, &ACCOUNTS).await;
    let addr = running.daemon().status_addr().unwrap();
    let mut posted = fish.subscribe();
    let mut said = rose.subscribe();
    fish.publish(photo("a", &host.url("/cat.png"), "photo"));
    let text = next_in(&mut posted, "b").await;
    assert!(text.contains("look [image 5.0 KB] https://media.example.org/media/"), "{text}");
    let path = signed_path(&text);
    let on_rose = next_said(&mut said).await.text;
    assert!(
        on_rose.contains(&format!("[https://media.example.org{path}#e]")),
        "IIROSE gets the image itself: {on_rose}"
    );
    assert_eq!(host.hits.load(Ordering::SeqCst), 1, "fetched once for both rooms");
    let response = get(addr, &path, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "image/png");
    assert_eq!(response.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(sha2::Sha256::digest(&bytes), sha2::Sha256::digest(&host.cat), "the bytes are the source's");
    // A range of it.
    let part = get(addr, &path, Some("bytes=8-15")).await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &host.cat[8..16]);
    // A signature changed, or none: nothing of the file.
    let tampered = path.replace("&s=", "&s=0");
    for bad in [tampered.as_str(), path.split('?').next().unwrap()] {
        let refused = get(addr, bad, None).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{bad}");
        assert!(!refused.bytes().await.unwrap().windows(8).any(|w| w == &host.cat[..8]));
    }
    // The same picture again is not fetched again, and has the same item.
    fish.publish(photo("a", &host.url("/cat.png"), "photo"));
    let again = next_in(&mut posted, "b").await;
    assert_eq!(signed_path(&again).split('?').next(), path.split('?').next());
    assert_eq!(host.hits.load(Ordering::SeqCst), 1);
    // A room's own media_format.
    fish.publish(photo("c", &host.url("/cat.png"), "photo"));
    let custom = next_in(&mut posted, "d").await;
    assert!(custom.contains("look 📎 image (5.0 KB): https://media.example.org/media/"), "{custom}");
    // A file that a browser would run is kept, and served as an attachment under a policy that allows nothing.
    fish.publish(photo("a", &host.url("/page.png"), "file"));
    let page = signed_path(&next_in(&mut posted, "b").await);
    let served = get(addr, &page, None).await;
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()[header::CONTENT_TYPE], "text/html");
    assert!(served.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().starts_with("attachment"));
    assert_eq!(served.headers()[header::CONTENT_SECURITY_POLICY], "default-src 'none'; sandbox");
    assert_eq!(served.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let metrics = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("chatbridge_media_stored_total 2"), "{metrics}");
    assert!(metrics.contains("chatbridge_media_refused_total 2"), "{metrics}");
    running.shutdown().await;
    // A restart keeps the store, its key, and so its links.
    let running = start(&source, &ACCOUNTS).await;
    let addr = running.daemon().status_addr().unwrap();
    let response = get(addr, &path, None).await;
    assert_eq!(response.status(), 200, "a link given before the restart still works");
    assert_eq!(response.bytes().await.unwrap().as_ref(), host.cat.as_slice());
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(state);
}

#[tokio::test]
async fn hostile_media_hosts_leave_the_message_its_link_and_a_note() {
    let (capture_addr, captured) = capture("127.0.0.2", 0).await;
    let (mapped_addr, mapped) = capture("127.0.0.1", 0).await;
    let host = MediaHost::start(capture_addr).await;
    let mapped_host = MediaHost::start(mapped_addr).await;
    let fish = fish().await;
    let rose = iirose().await;
    let state = fresh_dir("media");
    let running = start(&config(&fish, &rose, &state.display().to_string()), &ACCOUNTS).await;
    let mut posted = fish.subscribe();
    let liar =
        raw(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 104857600\r\n\r\n\x89PNG\r\n\x1a\n").await;
    let drip =
        raw(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n\x89PNG\r\n\x1a\n").await;
    let cases = [
        (host.url("/endless.png"), "[image, over 1.0 MB: too large]"),
        (format!("http://{liar}/claims.png"), "[image, 105 MB: too large]"),
        (format!("http://{drip}/drip.png"), "[image, timed out]"),
        (host.url("/page.png"), "[image, not an image]"),
        (host.url("/bomb.png"), "[image, not an image]"),
        (host.url("/loop.png"), "[image, refused]"),
        (host.url("/to/loopback2"), "[image, refused]"),
        (mapped_host.url("/to/mapped"), "[image, refused]"),
        (host.url("/to/private"), "[image, refused]"),
        (host.url("/to/metadata"), "[image, refused]"),
        (format!("http://127.0.0.1:{}/x.png", free_port()), "[image, unreachable]"),
    ];
    for (url, note) in &cases {
        fish.publish(photo("a", url, "photo"));
        let text = next_in(&mut posted, "b").await;
        assert!(text.contains(&format!("look {note} {url}")), "{url}: {text}");
    }
    assert_eq!(captured.load(Ordering::SeqCst), 0, "nothing was fetched from 127.0.0.2");
    assert_eq!(mapped.load(Ordering::SeqCst), 0, "nothing was fetched through an IPv4-mapped address");
    let metrics = running.daemon().stats();
    assert_eq!(metrics.media.failures("refused"), 5);
    assert_eq!(metrics.media.failures("not_what_it_claims"), 2);
    assert_eq!(metrics.media.failures("too_large"), 2);
    assert_eq!(metrics.media.failures("timed_out"), 1);
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(state);
}

#[tokio::test]
async fn a_room_keeps_its_order_while_its_media_are_fetched_and_other_rooms_go_on() {
    let host = MediaHost::start(capture("127.0.0.1", 0).await.0).await;
    let fish = fish().await;
    let rose = iirose().await;
    let state = fresh_dir("media");
    let running = start(&config(&fish, &rose, &state.display().to_string()), &ACCOUNTS).await;
    let mut posted = fish.subscribe();
    fish.publish(photo("a", &host.url("/slow.png"), "photo"));
    fish.say("a", "telegram", "alice", "after the picture");
    fish.say("c", "telegram", "bob", "meanwhile");
    let mut order = Vec::new();
    while order.len() < 3 {
        let post = next_post(&mut posted).await;
        order.push((post.room, post.content));
    }
    assert_eq!(order[0].0, "d", "the other bridge's room does not wait for the slow host: {order:?}");
    assert!(order[1].1.contains("[image 3.0 KB]"), "{order:?}");
    assert!(order[2].1.contains("after the picture"), "the room's order is kept: {order:?}");
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(state);
}

/// The media benchmark's run, small: every photo arrives as a link and as an uploaded image (its figures are
/// docs/performance.md's, never asserted here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_media_benchmark_relays_every_photo_both_ways() {
    let run = chatbridge::cli::media_bench::run(20).await.expect("the benchmark runs");
    assert_eq!((run.linked, run.uploaded, run.failed), (20, 20, 0), "{run:?}");
}
