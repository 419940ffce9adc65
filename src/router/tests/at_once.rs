//! Sends an adapter answers at once (`SendNow`, the API's): handed out and acknowledged on the router's task, one
//! after another, and the usual way through the adapter's queue when the adapter declines.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::link::SendNow;

/// Answers each send at once with `b-<n>`, or declines while `busy`.
#[derive(Default)]
struct AtOnce {
    seen: Mutex<Vec<String>>,
    busy: AtomicBool,
}

impl SendNow for AtOnce {
    fn send_now(&self, request: &SendRequest) -> Option<Result<Vec<RemoteId>, SendFailure>> {
        let mut seen = self.seen.lock().unwrap();
        let text = match &request.action {
            SendAction::Message(out) => text_of(out),
            other => format!("{other:?}"),
        };
        seen.push(text);
        if self.busy.load(Ordering::SeqCst) {
            return None;
        }
        Some(Ok(vec![RemoteId::new(format!("b-{}", seen.len()))]))
    }
}

fn at_once(h: &mut Harness, account: &str) -> Arc<AtOnce> {
    let sender = Arc::new(AtOnce::default());
    let link = h.router.accounts.get(&AccountId::new(Platform::Fishroom, account)).unwrap();
    link.sends.now.offer(Arc::clone(&sender) as Arc<dyn SendNow>);
    sender
}

fn seen(sender: &AtOnce) -> Vec<String> {
    sender.seen.lock().unwrap().clone()
}

#[tokio::test]
async fn sends_answered_at_once_go_out_in_order_without_the_queue() {
    let mut h = harness(AB, [text_only(), rich(), text_only()], "");
    let b = at_once(&mut h, "b");
    for n in 1..=3 {
        h.input(message("a", Some(&format!("m{n}")), "bob", &format!("hello {n}")));
    }
    assert_eq!(seen(&b), ["[fishroom] bob: hello 1", "[fishroom] bob: hello 2", "[fishroom] bob: hello 3"]);
    assert!(h.next("b").is_none(), "nothing went through the adapter's queue");
    assert_eq!(h.stats.relayed.get(), 3);
    // The answers were taken as acknowledgements: the ids they carried are the copies' (an edit finds its copy).
    h.input(event("a", None, "bob", EventKind::Edited { target: RemoteId::new("m2"), content: Content::text("hi 2") }));
    assert_eq!(seen(&b).len(), 4);
    assert!(seen(&b)[3].contains("target: RemoteId(\"b-2\")"), "{:?}", seen(&b)[3]);
}

#[tokio::test]
async fn a_declined_send_goes_through_the_queue_and_holds_the_room_until_answered() {
    let mut h = harness(AB, [text_only(), text_only(), text_only()], "");
    let b = at_once(&mut h, "b");
    b.busy.store(true, Ordering::SeqCst);
    h.input(message("a", Some("m1"), "bob", "first"));
    h.input(message("a", Some("m2"), "bob", "second"));
    // Declined once, then in flight through the queue: the second waits for its answer.
    assert_eq!(seen(&b), ["[fishroom] bob: first"]);
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] bob: first");
    assert!(h.next("b").is_none());
    b.busy.store(false, Ordering::SeqCst);
    h.delivered("b", &["q-1"]);
    assert_eq!(seen(&b), ["[fishroom] bob: first", "[fishroom] bob: second"]);
    assert!(h.next("b").is_none());
    assert_eq!(h.stats.relayed.get(), 2);
}

#[tokio::test]
async fn an_account_whose_queue_closed_is_not_asked() {
    let mut h = harness(AB, [text_only(), text_only(), text_only()], "");
    let b = at_once(&mut h, "b");
    drop(h.sends.remove("b"));
    h.input(message("a", Some("m1"), "bob", "into the void"));
    assert!(seen(&b).is_empty());
    assert_eq!(h.stats.relayed.get(), 0);
}

/// A long queue answered at once goes out a bounded number per turn of the router, so its other inputs are not
/// held back; the next turns take the rest, in order.
#[tokio::test]
async fn a_long_queue_answered_at_once_goes_out_a_turn_at_a_time() {
    let mut h = harness(AB, [text_only(), text_only(), text_only()], "[general]\nqueue_capacity = 1000\n");
    let b = at_once(&mut h, "b");
    b.busy.store(true, Ordering::SeqCst);
    let count = crate::router::deliver::ANSWERS_PER_TURN * 2 + 10;
    for n in 0..count {
        h.input(message("a", Some(&format!("m{n}")), "bob", &format!("line {n}")));
    }
    // The first went through the queue (declined); the rest wait behind it.
    assert_eq!(seen(&b).len(), 1);
    h.next("b").unwrap();
    b.busy.store(false, Ordering::SeqCst);
    h.delivered("b", &["q-0"]);
    // One turn: the answers it took, and the one send they handed out last (answered, waiting for the next turn).
    let first_turn = seen(&b).len();
    assert_eq!(first_turn, 1 + crate::router::deliver::ANSWERS_PER_TURN + 1);
    assert!(!h.router.answered.is_empty(), "the rest waits for the next turn");
    while !h.router.answered.is_empty() {
        h.router.take_answers();
    }
    let expected: Vec<String> = (0..count).map(|n| format!("[fishroom] bob: line {n}")).collect();
    assert_eq!(seen(&b), expected);
    assert_eq!(h.stats.relayed.get(), count as u64);
}
