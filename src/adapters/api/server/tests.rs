//! The API server's hub: what is kept, what is handed out at once, what waits.

use tokio::sync::broadcast;

use super::super::Kept;
use super::super::wire::CONNECTED;
use super::*;
use crate::adapters::{AdapterContext, Backoff, Cursors};
use crate::model::{AccountId, Platform, RoomId};

#[test]
fn readers_of_api_messages_are_bounded() {
    let hub = hub(10);
    for n in 0..5_000 {
        let _ = hub.unread(&format!("token|client-{n}"));
    }
    assert_eq!(hub.log.lock().unwrap().cursors.len(), super::super::MAX_READERS);
    // The most recent readers are the ones kept.
    assert!(hub.log.lock().unwrap().cursors.contains_key("token|client-4999"));
    assert!(!hub.log.lock().unwrap().cursors.contains_key("token|client-0"));
}

fn hub(history: usize) -> Arc<Hub> {
    hub_waiting(history, super::super::SLOW_READER_WAIT)
}

fn hub_waiting(history: usize, slow_reader_wait: std::time::Duration) -> Arc<Hub> {
    let ctx = AdapterContext {
        account: AccountId::new(Platform::Api, "t"),
        rooms: Default::default(),
        router: tokio::sync::mpsc::channel(1).0,
        stop_receiving: Default::default(),
        closed: Default::default(),
        stats: Default::default(),
        backoff: Backoff::new(std::time::Duration::from_secs(1), std::time::Duration::from_secs(2)),
        cursors: Cursors::default(),
        http: Default::default(),
        send_now: Default::default(),
    };
    let config = crate::config::ApiAccount {
        listen: "127.0.0.1:0".parse().unwrap(),
        token: None,
        history,
        history_bytes: super::super::config::HISTORY_BYTES,
        post_limit: crate::bucket::SendLimit { per_second: 0.0, burst: 1 },
    };
    Arc::new(Hub {
        config,
        account: ctx.account.to_string(),
        gateways: vec![ctx.room_addr(&RoomId::new("g"))],
        ctx,
        log: Default::default(),
        live: broadcast::channel(super::super::LIVE_BUFFER).0,
        readers: Default::default(),
        advanced: Default::default(),
        waiting: Default::default(),
        websockets: Default::default(),
        sessions: Default::default(),
        known: Default::default(),
        slow_reader_wait,
        posts: std::sync::Mutex::new(crate::bucket::Bucket::new(
            crate::bucket::SendLimit { per_second: 0.0, burst: 1 },
            std::time::Instant::now(),
        )),
    })
}

fn request(action: crate::adapters::SendAction) -> crate::adapters::SendRequest {
    crate::adapters::SendRequest {
        room: RoomId::new("g"),
        action,
        client_ids: Vec::new(),
        attempt: 1,
        maybe_sent: false,
        event_time: crate::model::Time::now(),
    }
}

/// A send is answered on the router's task while every streaming client has room for what it hands out, and
/// declined (to wait on the adapter's task) when one would be `history` behind.
#[test]
fn sends_are_answered_at_once_only_while_every_reader_has_room() {
    use crate::adapters::{OutMessage, SendAction, SendNow};
    let hub = hub(4);
    let _reader = hub.reader(0);
    let at_once = super::super::send::SendsAtOnce(Arc::downgrade(&hub));
    let say = || request(SendAction::Message(OutMessage { parts: vec![Content::text("x")], ..OutMessage::default() }));
    let recall =
        |n: usize| request(SendAction::Recall { targets: (0..n).map(|i| RemoteId::new(i.to_string())).collect() });
    for _ in 0..2 {
        assert!(matches!(at_once.send_now(&say()), Some(Ok(ids)) if ids.len() == 1));
    }
    // Two behind: three deletions would make the third wait (the reader four behind), two would not.
    assert!(at_once.send_now(&recall(3)).is_none());
    assert_eq!(hub.log.lock().unwrap().next, 2, "a declined send hands nothing out");
    assert!(matches!(at_once.send_now(&recall(2)), Some(Ok(ids)) if ids.is_empty()));
    assert_eq!(hub.log.lock().unwrap().next, 4);
    // Four behind: nothing more at once.
    assert!(at_once.send_now(&say()).is_none());
    drop(hub);
    assert!(at_once.send_now(&say()).is_none(), "a session that ended answers nothing");
}

/// What a feed handed out, read back.
async fn next(feed: &mut Feed) -> ApiMessage {
    serde_json::from_slice(&feed.next().await.expect("a message").json()).expect("JSON")
}

fn message(text: &str) -> ApiMessage {
    ApiMessage { text: text.into(), gateway: "g".into(), ..ApiMessage::default() }
}

/// The kept messages are bounded by their bytes as well as their number: large posts push the oldest out.
#[test]
fn kept_messages_stay_within_history_bytes() {
    let mut hub = Arc::into_inner(hub(1000)).expect("the only reference");
    hub.config.history_bytes = 100_000;
    let big = "x".repeat(10_000);
    for _ in 0..1000 {
        hub.publish(Kept::from_session(&message(&big), 0));
    }
    let log = hub.log.lock().unwrap();
    let bytes: usize = log.messages.iter().map(|(_, kept)| kept.line.len()).sum();
    assert_eq!(log.bytes, bytes);
    assert!(bytes <= 100_000 && log.messages.len() >= 9, "{} messages, {bytes} bytes", log.messages.len());
    assert_eq!(log.messages.back().map(|(seq, _)| *seq), Some(999), "the newest is kept");
    // One message larger than the whole budget is still kept (alone), so a client can read it.
    drop(log);
    hub.publish(Kept::from_session(&message(&"y".repeat(200_000)), 0));
    assert_eq!(hub.log.lock().unwrap().messages.len(), 1);
}

/// What is ready is taken without waiting, in order, past the live buffer too, and never what the session
/// itself posted (a websocket writes these together, flushed once).
#[tokio::test]
async fn ready_messages_are_taken_without_waiting() {
    let hub = hub(5000);
    let mut feed = Feed::new(&hub, None, 7);
    assert_eq!(next(&mut feed).await.event, CONNECTED);
    assert!(feed.try_next().is_none(), "nothing ready");
    let count = super::super::LIVE_BUFFER * 2;
    for i in 0..count {
        hub.publish(Kept::from_session(&message(&i.to_string()), if i == 5 { 7 } else { 0 }));
    }
    let mut got = Vec::new();
    while let Some(kept) = feed.try_next() {
        got.push(serde_json::from_slice::<ApiMessage>(&kept.json()).unwrap().text);
    }
    let want: Vec<String> = (0..count).filter(|i| *i != 5).map(|i| i.to_string()).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_client_that_falls_behind_the_live_feed_catches_up_from_the_kept_messages() {
    let hub = hub(5000);
    let mut feed = Feed::new(&hub, None, 0);
    assert_eq!(next(&mut feed).await.event, CONNECTED);
    // Far more than the live buffer holds, while the client reads nothing.
    let count = super::super::LIVE_BUFFER * 4;
    for i in 0..count {
        hub.publish(Kept::from_session(&message(&i.to_string()), 0));
    }
    for i in 0..count {
        assert_eq!(next(&mut feed).await.text, i.to_string(), "every message, in order");
    }
    hub.publish(Kept::from_session(&message("live again"), 0));
    assert_eq!(next(&mut feed).await.text, "live again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_holds_sends_back_instead_of_losing_messages() {
    // Far more messages than the live buffer and the kept ones hold, to a client slower than the sender.
    let hub = hub(8);
    let count = super::super::LIVE_BUFFER * 3;
    let mut feed = Feed::new(&hub, None, 0);
    assert_eq!(next(&mut feed).await.event, CONNECTED);
    let sender = Arc::clone(&hub);
    let sending = tokio::spawn(async move {
        for i in 0..count {
            sender.deliver(Kept::from_session(&message(&i.to_string()), 0)).await;
        }
    });
    for i in 0..count {
        if i % 10 == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        assert_eq!(next(&mut feed).await.text, i.to_string(), "every message, in order");
    }
    sending.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_and_the_others_go_on() {
    let hub = hub_waiting(4, std::time::Duration::from_millis(100));
    let mut stuck = Feed::new(&hub, None, 0);
    let mut reading = Feed::new(&hub, None, 0);
    assert_eq!(next(&mut stuck).await.event, CONNECTED);
    assert_eq!(next(&mut reading).await.event, CONNECTED);
    let sender = Arc::clone(&hub);
    let sending = tokio::spawn(async move {
        for i in 0..20 {
            sender.deliver(Kept::from_session(&message(&i.to_string()), 0)).await;
        }
    });
    for i in 0..20 {
        assert_eq!(next(&mut reading).await.text, i.to_string());
    }
    sending.await.unwrap();
    assert!(stuck.next().await.is_none(), "the stuck client's feed ends: it reconnects with its last id");
}

/// A large message goes through the live feed as its number only, and clients get it whole from the kept ones:
/// the live buffer holds a few bytes for it however large it is.
#[tokio::test]
async fn large_messages_reach_streaming_clients_without_filling_the_live_buffer() {
    let hub = hub(100);
    let mut live = hub.live.subscribe();
    let mut feed = Feed::new(&hub, None, 0);
    assert_eq!(next(&mut feed).await.event, CONNECTED);
    let big = "z".repeat(super::super::LIVE_INLINE * 2);
    hub.publish(Kept::from_session(&message("small before"), 0));
    hub.publish(Kept::from_session(&message(&big), 0));
    hub.publish(Kept::from_session(&message("small after"), 0));
    let buffered: Vec<usize> = (0..3).map(|_| live.try_recv().unwrap().1.line.len()).collect();
    assert_eq!(buffered[1], 0, "the large one is buffered as its number: {buffered:?}");
    let mut got = Vec::new();
    while let Some(kept) = feed.try_next() {
        got.push(serde_json::from_slice::<ApiMessage>(&kept.json()).unwrap().text);
    }
    assert_eq!(got, ["small before".to_owned(), big, "small after".to_owned()]);
}
