//! A reload as the router sees it: queued messages follow their rooms into the new rules, a removed room
//! keeps its old options for what was queued, a held account settles when nothing is out, a new session
//! takes over the queue.

use tokio::sync::oneshot;

use super::*;
use crate::router::reconfigure::{Control, Reconfigure, Settle};

fn update(bridges: &str, settle: Vec<(AccountId, Settle, oneshot::Sender<()>)>) -> Control {
    let config = parse("", bridges);
    Control::Reconfigure(Box::new(Reconfigure {
        rules: rules::Rules::new(config.bridges),
        settings: RouterSettings {
            max_attempts: 3,
            max_age: Duration::ZERO,
            queue_capacity: 10,
            gap_fill_window: Duration::from_secs(3600),
            retry_delay: Duration::from_millis(1),
            retry_max: Duration::from_millis(5),
            shutdown_timeout: Duration::from_secs(1),
        },
        limits: config.limits,
        settle,
    }))
}

fn account(name: &str) -> AccountId {
    AccountId::new(Platform::Fishroom, name)
}

#[tokio::test]
async fn a_room_a_reload_removes_gets_what_was_queued_for_it_in_its_old_format() {
    let mut h = harness(ABC, [text_only(), text_only(), text_only()], "");
    h.input(message("a", None, "alice", "one"));
    h.input(message("a", None, "alice", "two"));
    assert!(h.next("c").is_some(), "one is out to c");
    // c leaves the bridge; b gets another format.
    let ab = AB.replace("name = \"x\"\n", "name = \"x\"\nformat = \"<{nick}> {text}\"\n");
    h.router.control(update(&ab, Vec::new()));
    h.delivered("c", &[]);
    let second = h.next("c").expect("what was queued for c is still delivered");
    assert_eq!(text_of(&sent_message(second)), "[fishroom] alice: two", "with the room's old options");
    h.delivered("c", &[]);
    h.input(message("a", None, "alice", "three"));
    assert!(h.next("c").is_none(), "nothing new goes to the removed room");
    for expected in ["[fishroom] alice: one", "<alice> two", "<alice> three"] {
        let request = h.next("b").expect("b still receives");
        assert_eq!(text_of(&sent_message(request)), expected, "b's queue follows it into the new rules");
        h.delivered("b", &[]);
    }
}

#[tokio::test]
async fn a_held_account_settles_when_nothing_is_out_and_its_new_session_takes_the_queue() {
    let mut h = harness(AB, [text_only(), text_only(), text_only()], "");
    h.input(message("a", None, "alice", "one"));
    h.input(message("a", None, "alice", "two"));
    let first = h.next("b").unwrap();
    assert_eq!(first.attempt, 1);
    let (done, mut settled) = oneshot::channel();
    h.router.control(update(AB, vec![(account("b"), Settle::Hold, done)]));
    h.router.settle();
    assert!(settled.try_recv().is_err(), "a send is out: not settled");
    h.delivered("b", &[]);
    h.router.settle();
    assert!(settled.try_recv().is_ok(), "settled once the send in flight is answered");
    assert!(h.next("b").is_none(), "nothing more is handed to the held session");
    // The new session: the queue resumes through it.
    let (tx, mut rx) = mpsc::unbounded_channel();
    h.router.handle(RouterInput::Attached { account: account("b"), caps: text_only(), sends: tx.into() });
    let request = rx.try_recv().expect("the new session gets the queue");
    assert_eq!(text_of(&sent_message(request)), "[fishroom] alice: two");
}

#[tokio::test]
async fn a_send_the_old_session_left_unanswered_goes_again_marked_as_maybe_sent() {
    let mut h = harness(AB, [text_only(), text_only(), text_only()], "");
    h.input(message("a", None, "alice", "one"));
    assert!(h.next("b").is_some());
    let (done, _settled) = oneshot::channel();
    h.router.control(update(AB, vec![(account("b"), Settle::Hold, done)]));
    // The hold ran out; the old session closed without answering.
    let (tx, mut rx) = mpsc::unbounded_channel();
    h.router.handle(RouterInput::Attached { account: account("b"), caps: text_only(), sends: tx.into() });
    let again = rx.try_recv().expect("sent again through the new session");
    assert!(again.maybe_sent && again.attempt == 2, "{again:?}");
}

#[tokio::test]
async fn a_removed_account_settles_once_drained_and_is_forgotten_when_detached() {
    let mut h = harness(ABC, [text_only(), text_only(), text_only()], "");
    h.input(message("a", None, "alice", "one"));
    h.input(message("a", None, "alice", "two"));
    assert!(h.next("c").is_some());
    let (done, mut settled) = oneshot::channel();
    h.router.control(update(AB, vec![(account("c"), Settle::Drain, done)]));
    h.delivered("c", &[]);
    h.router.settle();
    assert!(settled.try_recv().is_err(), "one more is queued for c");
    assert!(h.next("c").is_some(), "the drain goes on");
    // Detached before it was answered (the drain ran out of time): forgotten, counted as lost without a store.
    h.router.control(Control::Detach(account("c")));
    assert!(!h.router.states().borrow().contains_key(&account("c")));
    assert_eq!(h.router.outbox.len(&room("c")), 0);
    assert_eq!(h.stats.dropped.get(), 1);
    h.input(message("a", None, "alice", "three"));
    assert!(h.next("c").is_none());
}

/// A pause the operator was answered for holds what arrives after it, even when the router takes the two in the
/// same turn: the control goes first.
#[tokio::test]
async fn a_pause_already_sent_holds_the_input_that_arrives_with_it() {
    let mut h = harness(AB, [text_only(), text_only(), text_only()], "");
    let (control, taken) = tokio::sync::mpsc::unbounded_channel();
    h.router.controlled_by(taken);
    let pause = crate::router::Pause { bridge: "x".into(), room: None, paused: true };
    control.send(Control::Pause(pause)).unwrap();
    h.router.handle_after_control(crate::link::RouterInput::Event(message("a", None, "alice", "after the pause")));
    assert!(h.next("b").is_none(), "nothing goes out while paused");
}
