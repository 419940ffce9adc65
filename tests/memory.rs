//! What one hostile frame may cost (issue #30 §5): no single frame raises the memory its decoding holds by more
//! than 64 MB, on any platform. Measured with a counting allocator: the peak of the bytes live on the decoding
//! thread (so the tests running beside it do not count), from the frame as it arrives to its events.

#[path = "common/counting.rs"]
mod counting;
use counting::Counting;

use std::cell::Cell;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

#[global_allocator]
static ALLOCATOR: Counting = Counting(note);

const BUDGET: isize = 64 << 20;
/// Bytes the id map may hold for a relayed message (its origin and one copy): 519 measured, against 687 before
/// members named their room by its place among the map's rooms and kept a single id without an allocation of its own.
const BUDGET_A_GROUP: isize = 360;

/// The most bytes `work` held at once beyond what was live when it began.
fn peak_of<R>(work: impl FnOnce() -> R) -> isize {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let result = work();
    let peak = PEAK.with(Cell::get) - base;
    drop(result);
    peak
}

fn mb(bytes: isize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

#[test]
fn missevan_a_brotli_bomb_of_tiny_items() {
    use chatbridge::adapters::missevan::wire;
    // 117 bytes on the wire once compressed: eight million items.
    let bomb = wire::encode_binary(format!("[{}0]", "0,".repeat(8_000_000)).as_bytes());
    let peak = peak_of(|| wire::decode_binary(&bomb));
    assert!(peak < BUDGET, "{:.0} MB", mb(peak));
    assert!(wire::decode_binary(&bomb).is_err(), "refused");
    // Within the size a frame may have, but items past what a frame carries: refused as they are counted.
    let many = wire::encode_binary(format!("[{}0]", "0,".repeat(500_000)).as_bytes());
    let peak = peak_of(|| wire::decode_binary(&many));
    assert!(peak < BUDGET, "{:.0} MB", mb(peak));
    assert!(wire::decode_binary(&many).is_err());
}

#[test]
fn yunhu_sixteen_megabytes_of_markdown_and_html() {
    use chatbridge::model::rich::{html, markdown};
    let text = "**bold** _it_ `code` [link](https://example.org) ".repeat(16 << 20 >> 6);
    let peak = peak_of(|| markdown::parse(&text));
    assert!(peak < BUDGET, "markdown: {:.0} MB", mb(peak));
    let kept: usize = markdown::parse(&text).to_plain_text().len();
    assert!(kept > text.len() / 2, "what is past the formatted part is kept as text");
    let html_text = "<b>bold</b> <i>it</i> <a href=\"https://example.org\">link</a> ".repeat(16 << 20 >> 6);
    let peak = peak_of(|| html::parse(&html_text));
    assert!(peak < BUDGET, "html: {:.0} MB", mb(peak));
}

#[test]
fn heihei_a_frame_of_tiny_items() {
    use chatbridge::adapters::heihei::wire;
    // As large as a websocket message may be.
    let frame = format!("[{}0]", "0,".repeat((4 << 20) / 2 - 2));
    let peak = peak_of(|| wire::decode_frame(&frame));
    assert!(peak < BUDGET, "{:.0} MB", mb(peak));
}

#[test]
fn iirose_a_packet_of_tiny_forwards() {
    use chatbridge::adapters::iirose::wire;
    let text = format!("z{}", "a\"".repeat((4 << 20) / 2));
    let peak = peak_of(|| wire::parse_packet(&text));
    assert!(peak < BUDGET, "{:.0} MB", mb(peak));
}

#[test]
fn fishroom_a_poll_answer_of_tiny_items() {
    use chatbridge::adapters::fishroom::wire;
    // As large as an answer may be (4 MiB).
    let body = format!("{{\"messages\": [{}0]}}", "0,".repeat((4 << 20) / 2 - 16));
    let peak = peak_of(|| wire::parse_poll(body.as_bytes()));
    assert!(peak < BUDGET, "{:.0} MB", mb(peak));
    assert!(wire::parse_poll(body.as_bytes()).is_err(), "refused");
}

/// A media item is streamed to disk (issue #31 §1): fetching 64 MB holds a few hundred kilobytes at most, and an
/// endless body past the cap costs no more.
#[test]
fn media_a_large_item_and_an_endless_body_are_streamed_not_held() {
    use chatbridge::media::fetch::{Failure, Fetcher, Kind, Limits};
    use chatbridge::media::guard::Trusted;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("chatbridge-memory-media-{}", std::process::id()));
    let large = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut request = [0u8; 1024];
                    let n = socket.read(&mut request).await.unwrap_or(0);
                    let endless = String::from_utf8_lossy(&request[..n]).contains("endless");
                    let head = if endless {
                        "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n\r\n".to_owned()
                    } else {
                        format!("HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n", 64 << 20)
                    };
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(b"\x89PNG\r\n\x1a\n").await;
                    let chunk = vec![7u8; 64 << 10];
                    let mut sent = 8usize;
                    while endless || sent < 64 << 20 {
                        let take = if endless { chunk.len() } else { chunk.len().min((64 << 20) - sent) };
                        if socket.write_all(&chunk[..take]).await.is_err() {
                            return;
                        }
                        sent += take;
                    }
                });
            }
        });
        addr
    });
    let limits = Limits { max_size: 100 << 20, ..Limits::default() };
    let fetcher = Fetcher::new(Trusted::new(["127.0.0.1".to_owned()]), limits, &dir).unwrap();
    let url = |path: &str| reqwest::Url::parse(&format!("http://{large}{path}")).unwrap();
    let mut fetched = None;
    let peak = peak_of(|| fetched = Some(runtime.block_on(fetcher.fetch(&url("/large.png"), Kind::Image))));
    let item = fetched.unwrap().expect("fetched");
    assert_eq!(item.size, 64 << 20);
    assert!(peak < 4 << 20, "64 MB fetched holding {:.1} MB", mb(peak));
    let mut failed = None;
    let peak = peak_of(|| failed = Some(runtime.block_on(fetcher.fetch(&url("/endless.png"), Kind::Image))));
    assert_eq!(failed.unwrap().map(|f| f.size), Err(Failure::TooLarge(None)));
    assert!(peak < 4 << 20, "an endless body cut at 100 MB holding {:.1} MB", mb(peak));
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the id map holds for a relayed message (issue #35: the id map was the largest part of the memory left after a burst):
/// 2,000 groups — the store's default `id_map_capacity` — each with its origin, one copy and the copy's pending id,
/// ids as the API makes them (36-character uuids) and a short snippet. Counted in bytes live on this thread, as the
/// router would hold them between messages.
#[test]
fn the_id_map_holds_a_relayed_message_in_a_few_hundred_bytes() {
    use chatbridge::model::{AccountId, Platform, RemoteId, RoomAddr, RoomId, Time};
    use chatbridge::router::idmap::{IdStore, MemoryIdMap, Snippet};
    const GROUPS: usize = 2_000;
    let post = RoomAddr::new(AccountId::new(Platform::Api, "post"), RoomId::new("load"));
    let read = RoomAddr::new(AccountId::new(Platform::Api, "read"), RoomId::new("load"));
    let uuid = || RemoteId::new(uuid::Uuid::now_v7().to_string());
    let relay = |map: &mut MemoryIdMap, n: usize| {
        let origin = uuid();
        let snippet =
            Snippet { sender: Some("load-3".into()), text: format!("message {n} of the load"), time: Time(0) };
        let group = map.new_group(Some((&post, &origin)), &snippet);
        let chosen = uuid();
        map.add_pending(group, &read, std::slice::from_ref(&chosen));
        map.add_copy(group, &read, &[chosen]);
    };
    // Its tables included: the map is made within the count.
    let base = LIVE.with(Cell::get);
    let mut map = MemoryIdMap::new(GROUPS);
    for n in 0..GROUPS {
        relay(&mut map, n);
    }
    let per_group = (LIVE.with(Cell::get) - base) / GROUPS as isize;
    println!("{per_group} bytes a group");
    assert!(per_group <= BUDGET_A_GROUP, "{per_group} bytes a group");
    assert_eq!(map.len(), GROUPS);
}
