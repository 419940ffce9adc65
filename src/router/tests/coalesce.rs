//! Coalescing and summaries: what waited for a send token goes merged, or summarised when it is too late.

use super::*;

/// `b` may send 20 messages a second, one at a time: a burst waits for tokens.
fn limited(bridges: &str, caps: [Capabilities; 3]) -> Harness {
    let mut h = harness(bridges, caps, "");
    let limit = crate::config::SendLimit { per_second: 20.0, burst: 1 };
    h.router.buckets.insert(room("b").account, Bucket::new(limit, std::time::Instant::now()));
    h
}

impl Harness {
    /// Fires the next retry (a token coming) and pumps its room, as the router's loop does.
    async fn token(&mut self) {
        let expired = std::future::poll_fn(|cx| self.router.retries.poll_expired(cx)).await.unwrap();
        let room = expired.into_inner();
        self.router.rooms.get_mut(&room).unwrap().retry_at = None;
        self.router.pump(&room);
    }
}

fn recall(account: &str, id: &str) -> Event {
    event(account, None, "alice", EventKind::Recalled { target: RemoteId::new(id) })
}

#[tokio::test]
async fn plain_messages_that_waited_for_a_token_go_as_one() {
    let mut h = limited(AB, [rich(), text_only(), text_only()]);
    for (n, who) in ["alice", "bob", "alice", "carol", "bob"].into_iter().enumerate() {
        h.input(message("a", Some(&format!("m{n}")), who, &format!("line {n}")));
    }
    // The first has a token; the others wait for the next, and go with it, one line each in order.
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] alice: line 0");
    h.delivered("b", &["c0"]);
    assert!(h.next("b").is_none(), "no token yet");
    h.token().await;
    let merged = sent_message(h.next("b").unwrap());
    assert_eq!(
        text_of(&merged),
        "[fishroom] bob: line 1\n[fishroom] alice: line 2\n[fishroom] carol: line 3\n[fishroom] bob: line 4"
    );
    assert_eq!(merged.parts.len(), 1);
    h.delivered("b", &["c1"]);
    assert_eq!(h.router.outbox.len(&room("b")), 0, "the four went with it");
    assert_eq!((h.stats.coalesced.get(), h.stats.relayed.get()), (4, 5));
    // A recall of one of them is not sent to b: the merged copy holds the others' lines too.
    h.input(recall("a", "m2"));
    assert!(h.next("b").is_none(), "the merged copy is not recalled");
    // A message of its own after that goes alone.
    h.input(message("a", None, "dave", "later"));
    h.token().await;
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] dave: later");
}

#[tokio::test]
async fn a_merge_stops_at_the_length_limit_and_at_what_cannot_be_merged() {
    let short = Capabilities { max_text_len: Some(40), ..text_only() };
    let mut h = limited(AB, [rich(), short, text_only()]);
    h.input(message("a", None, "al", "first"));
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] al: first");
    for n in 1..=3 {
        h.input(message("a", None, "al", &format!("n{n}")));
    }
    let mut with_reply = Message { content: Content::text("a reply"), ..Message::default() };
    with_reply.reply = Some(crate::model::Reply { target: None, ..Default::default() });
    h.input(event("a", None, "al", EventKind::Message(with_reply)));
    h.input(message("a", None, "al", "after"));
    h.delivered("b", &["1"]);
    h.token().await;
    // "[fishroom] al: n1" is 17 characters: two lines and a line break fit 40, three do not.
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] al: n1\n[fishroom] al: n2");
    h.delivered("b", &["2"]);
    h.token().await;
    // n3 is alone before the reply, which is never merged; then what follows it.
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] al: n3");
    h.delivered("b", &["3"]);
    h.token().await;
    assert!(text_of(&sent_message(h.next("b").unwrap())).ends_with("a reply"));
    h.delivered("b", &["4"]);
    h.token().await;
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] al: after");
    assert_eq!(h.stats.coalesced.get(), 2);
}

#[tokio::test]
async fn coalesce_false_sends_each_message_and_a_transient_failure_resends_the_same_merge() {
    let bridges = "[[bridge]]\nname = \"x\"\n[[bridge.room]]\nroom = \"fishroom.a:r\"\n\
                   [[bridge.room]]\nroom = \"fishroom.b:r\"\ncoalesce = false\n";
    let mut h = limited(bridges, [rich(), text_only(), text_only()]);
    for n in 0..3 {
        h.input(message("a", None, "al", &format!("n{n}")));
    }
    for n in 0..3 {
        if n > 0 {
            h.token().await;
        }
        assert_eq!(text_of(&sent_message(h.next("b").unwrap())), format!("[fishroom] al: n{n}"));
        h.delivered("b", &[&n.to_string()]);
    }
    assert_eq!(h.stats.coalesced.get(), 0);

    let mut h = limited(AB, [rich(), text_only(), text_only()]);
    for n in 0..3 {
        h.input(message("a", None, "al", &format!("n{n}")));
    }
    h.next("b").unwrap();
    h.delivered("b", &["0"]);
    h.token().await;
    let first = h.next("b").unwrap();
    h.ack("b", Err(SendFailure::Transient { after: Some(Duration::from_millis(1)), reason: "timeout".into() }));
    // The retry's delay, then (the failed send took the token) the next token.
    let again = loop {
        h.token().await;
        if let Some(again) = h.next("b") {
            break again;
        }
    };
    assert_eq!(text_of(&sent_message(again.clone())), "[fishroom] al: n1\n[fishroom] al: n2");
    assert_eq!((again.client_ids, again.attempt), (first.client_ids, 2), "the same send, recognisable");
    h.delivered("b", &["1"]);
    assert_eq!((h.stats.coalesced.get(), h.router.outbox.len(&room("b"))), (2, 0));
}

#[tokio::test]
async fn messages_older_than_max_lag_are_summarised_where_the_room_says_so() {
    let bridges = "[[bridge]]\nname = \"x\"\n[[bridge.room]]\nroom = \"fishroom.a:r\"\n\
                   [[bridge.room]]\nroom = \"fishroom.b:r\"\non_lag = \"summarise\"\nmax_lag = \"20ms\"\n";
    let mut h = limited(bridges, [rich(), text_only(), text_only()]);
    for n in 0..4 {
        h.input(message("a", None, "al", &format!("n{n}")));
    }
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] al: n0");
    tokio::time::sleep(Duration::from_millis(30)).await;
    h.delivered("b", &["0"]);
    h.token().await;
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "… 3 messages from Fishroom skipped …");
    h.delivered("b", &["1"]);
    assert_eq!((h.stats.summarised.get(), h.router.outbox.len(&room("b"))), (3, 0));
    // A fresh message, with a token there for it, goes as it is.
    tokio::time::sleep(Duration::from_millis(60)).await;
    h.input(message("a", None, "al", "fresh"));
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] al: fresh");
}

#[tokio::test]
async fn a_reply_to_a_merged_message_points_at_the_merged_copy() {
    let mut h = limited(AB, [rich(), rich(), text_only()]);
    for n in 0..3 {
        h.input(message("a", Some(&format!("m{n}")), "al", &format!("n{n}")));
    }
    h.next("b").unwrap();
    h.delivered("b", &["c0"]);
    h.token().await;
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] al: n1\n[fishroom] al: n2");
    h.delivered("b", &["merged"]);
    let mut reply = Message { content: Content::text("indeed"), ..Message::default() };
    reply.reply = Some(crate::model::Reply { target: Some(RemoteId::new("m2")), ..Default::default() });
    h.input(event("a", Some("r1"), "bo", EventKind::Message(reply)));
    h.token().await;
    let out = sent_message(h.next("b").unwrap());
    assert_eq!(out.reply_to, Some(RemoteId::new("merged")));
}

/// Where the platform edits, a recall of one merged message edits the merged copy without its line, an edit
/// rewrites its line, and the recall of the last line standing recalls the copy; where it cannot, a recall is not
/// sent (the test above).
#[tokio::test]
async fn a_merged_copy_is_edited_to_match_its_messages_where_the_platform_edits() {
    let mut h = limited(AB, [rich(), rich(), text_only()]);
    for n in 0..4 {
        h.input(message("a", Some(&format!("m{n}")), "al", &format!("n{n}")));
    }
    h.next("b").unwrap();
    h.delivered("b", &["c0"]);
    h.token().await;
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] al: n1\n[fishroom] al: n2\n[fishroom] al: n3");
    h.delivered("b", &["merged"]);
    let edit_of = |request: SendRequest| match request.action {
        SendAction::Edit { target, message } => (target.to_string(), text_of(&message)),
        other => panic!("expected an edit, got {other:?}"),
    };
    h.input(recall("a", "m2"));
    h.token().await;
    assert_eq!(edit_of(h.next("b").unwrap()), ("merged".into(), "[fishroom] al: n1\n[fishroom] al: n3".into()));
    h.delivered("b", &["merged"]);
    let edited = EventKind::Edited { target: RemoteId::new("m3"), content: Content::text("n3, better") };
    h.input(event("a", None, "al", edited));
    h.token().await;
    assert_eq!(edit_of(h.next("b").unwrap()), ("merged".into(), "[fishroom] al: n1\n[fishroom] al: n3, better".into()));
    h.delivered("b", &["merged"]);
    h.input(recall("a", "m1"));
    h.token().await;
    assert_eq!(edit_of(h.next("b").unwrap()).1, "[fishroom] al: n3, better");
    h.delivered("b", &["merged"]);
    h.input(recall("a", "m3"));
    h.token().await;
    match h.next("b").unwrap().action {
        SendAction::Recall { targets } => assert_eq!(targets, [RemoteId::new("merged")]),
        other => panic!("expected a recall, got {other:?}"),
    }
    // The message sent alone is recalled as any other.
    h.delivered("b", &[]);
    h.input(recall("a", "m0"));
    h.token().await;
    assert!(matches!(h.next("b").unwrap().action, SendAction::Recall { targets } if targets == [RemoteId::new("c0")]));
}
