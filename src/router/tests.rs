//! The router driven directly: rules, the loop guard, send-time resolution of edits, recalls and
//! replies, split messages, queues that fail or overflow. Destinations are given capabilities of
//! richer platforms than Fishroom so every rendering path is exercised.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::adapters::{OutMessage, SendAction};
use crate::config::Config;
use crate::model::{
    AccountId, ClientIdForm, Content, EventKind, MediaKinds, Message, Platform, Reply, RoomId, Segment, User,
};

const ACCOUNTS: &str = r#"
[accounts.fishroom.a]
token_id = "1"
token_key = "k"
[accounts.fishroom.b]
token_id = "2"
token_key = "k"
[accounts.fishroom.c]
token_id = "3"
token_key = "k"
"#;

struct Harness {
    router: Router,
    sends: HashMap<&'static str, mpsc::UnboundedReceiver<SendRequest>>,
    stats: Arc<Stats>,
}

fn rich() -> Capabilities {
    Capabilities {
        edit: true,
        recall: true,
        reply: true,
        mention: true,
        media: MediaKinds { image: true, ..MediaKinds::default() },
        client_ids: ClientIdForm::Uuid,
        ..Capabilities::default()
    }
}

fn text_only() -> Capabilities {
    Capabilities::default()
}

/// The test accounts with `general` and `bridges`. The rooms here are Fishroom's, whose names get a zero-width
/// space by default (`anti_ping`): these tests are about routing, and read names as they are unless they say
/// `anti_ping`.
fn parse(general: &str, bridges: &str) -> Config {
    let mut config = Config::parse(&format!("{general}{ACCOUNTS}{bridges}"), "t.toml").unwrap();
    if !bridges.contains("anti_ping") {
        for bridge in &mut config.bridges {
            let mut rooms = bridge.rooms.to_vec();
            rooms.iter_mut().for_each(|r| r.anti_ping = false);
            bridge.rooms = rooms.into();
        }
    }
    config
}

fn harness(bridges: &str, caps: [Capabilities; 3], general: &str) -> Harness {
    let config = parse(general, bridges);
    let stats = Arc::new(Stats::default());
    let mut links = HashMap::new();
    let mut sends = HashMap::new();
    for (name, caps) in ["a", "b", "c"].into_iter().zip(caps) {
        let (tx, rx) = mpsc::unbounded_channel();
        links.insert(
            AccountId::new(Platform::Fishroom, name),
            AccountLink { caps, sends: tx.into(), limit: crate::config::SendLimit::default_for(Platform::Api) },
        );
        sends.insert(name, rx);
    }
    let settings = RouterSettings {
        max_attempts: config.general.max_attempts,
        // Attempts alone decide here unless the test names an age.
        max_age: if general.contains("max_age") { config.general.max_age } else { Duration::ZERO },
        queue_capacity: config.general.queue_capacity,
        gap_fill_window: Duration::from_secs(3600),
        retry_delay: Duration::from_millis(1),
        retry_max: Duration::from_millis(5),
        shutdown_timeout: Duration::from_secs(1),
    };
    let router = Router::new(
        rules::Rules::new(config.bridges),
        links,
        Box::new(queue::MemoryOutbox::new()),
        Box::new(idmap::MemoryIdMap::new(100)),
        settings,
        Arc::clone(&stats),
    );
    Harness { router, sends, stats }
}

const ABC: &str = "[[bridge]]\nname = \"x\"\nrooms = [\"fishroom.a:r\", \"fishroom.b:r\", \"fishroom.c:r\"]\n";
const AB: &str = "[[bridge]]\nname = \"x\"\nrooms = [\"fishroom.a:r\", \"fishroom.b:r\"]\n";

fn room(account: &str) -> RoomAddr {
    RoomAddr::new(AccountId::new(Platform::Fishroom, account), RoomId::new("r"))
}

fn event(account: &str, id: Option<&str>, sender: &str, kind: EventKind) -> Event {
    let user = User::new(format!("id-{sender}"), sender);
    Event::new(room(account), id.map(RemoteId::new), Some(user), kind)
}

fn message(account: &str, id: Option<&str>, sender: &str, text: &str) -> Event {
    event(account, id, sender, EventKind::Message(Message { content: Content::text(text), ..Message::default() }))
}

impl Harness {
    fn input(&mut self, event: Event) {
        self.router.handle(RouterInput::Event(event));
    }

    fn next(&mut self, account: &str) -> Option<SendRequest> {
        self.sends.get_mut(account).unwrap().try_recv().ok()
    }

    fn ack(&mut self, account: &str, result: Result<Vec<RemoteId>, SendFailure>) {
        self.router.handle(RouterInput::Ack { room: room(account), result });
    }

    fn delivered(&mut self, account: &str, ids: &[&str]) {
        self.ack(account, Ok(ids.iter().map(|i| RemoteId::new(*i)).collect()));
    }
}

fn sent_message(request: SendRequest) -> OutMessage {
    match request.action {
        SendAction::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn text_of(out: &OutMessage) -> String {
    out.parts.iter().map(Content::to_plain_text).collect::<Vec<_>>().join("|")
}

/// A Fishroom room (IRC behind it highlights names anywhere) gets names with a zero-width space after the first
/// character by default; `anti_ping = false` turns that off; a real mention is left alone.
#[tokio::test]
async fn relayed_names_do_not_ping_where_anti_ping_is_on() {
    let bridges = "[[bridge]]\nname = \"x\"\n[[bridge.room]]\nroom = \"fishroom.a:r\"\n\
                   [[bridge.room]]\nroom = \"fishroom.b:r\"\n[[bridge.room]]\nroom = \"fishroom.c:r\"\nanti_ping = false\n";
    let mut h = harness(bridges, [text_only(), text_only(), text_only()], "");
    let mention = Segment::Mention { user: None, name: "bob".into() };
    let content = Content(vec![Segment::Text("hi ".into()), mention]);
    h.input(event("a", None, "alice", EventKind::Message(Message { content, ..Message::default() })));
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] a\u{200B}lice: hi @bob");
    assert_eq!(text_of(&sent_message(h.next("c").unwrap())), "[fishroom] alice: hi @bob");
    // A name of one character is kept.
    h.delivered("b", &["1"]);
    h.input(message("a", None, "z", "short"));
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] z: short");
}

/// Formatting stays segments for a destination that shows it (unless its room says `markdown = false`) and is
/// plain text elsewhere, a block on a line of its own; the origin's `replace_text` rewrites styled and quoted text,
/// never code.
#[tokio::test]
async fn formatting_is_kept_where_shown_and_written_as_text_elsewhere() {
    let bridges = "[[bridge]]\nname = \"x\"\nformat = \"{nick}: {text}\"\n\
                   [[bridge.room]]\nroom = \"fishroom.a:r\"\nreplace_text = [[\"colour\", \"color\"]]\n\
                   [[bridge.room]]\nroom = \"fishroom.b:r\"\n[[bridge.room]]\nroom = \"fishroom.c:r\"\nmarkdown = false\n";
    let shows = Capabilities { rich_text: true, ..text_only() };
    let mut h = harness(bridges, [text_only(), shows, shows], "");
    let styled = |text: &str, style| Segment::Styled { text: text.into(), style };
    let content = Content(vec![
        styled("colour", crate::model::Style::BOLD),
        Segment::CodeBlock { code: "colour = 1".into(), lang: None },
        Segment::Quote { text: "colour".into() },
    ]);
    h.input(event("a", None, "alice", EventKind::Message(Message { content, ..Message::default() })));
    let shown = sent_message(h.next("b").unwrap());
    assert_eq!(
        shown.parts[0].0,
        vec![
            Segment::Text("alice: ".into()),
            styled("color", crate::model::Style::BOLD),
            Segment::CodeBlock { code: "colour = 1".into(), lang: None },
            Segment::Quote { text: "color".into() },
        ]
    );
    assert_eq!(text_of(&sent_message(h.next("c").unwrap())), "alice: color\ncolour = 1\n> color");
}

#[tokio::test]
async fn formats_and_relays_to_every_other_room_once() {
    let mut h = harness(ABC, [text_only(), text_only(), rich()], "");
    h.input(message("a", None, "alice", "hello"));
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] alice: hello");
    assert_eq!(text_of(&sent_message(h.next("c").unwrap())), "[fishroom] alice: hello");
    assert!(h.next("a").is_none(), "never back to the origin");
}

#[tokio::test]
async fn a_room_in_two_bridges_receives_a_message_once() {
    let bridges = format!("{AB}[[bridge]]\nname = \"y\"\nrooms = [\"fishroom.a:r\", \"fishroom.b:r\"]\n");
    let mut h = harness(&bridges, [text_only(), text_only(), text_only()], "");
    h.input(message("a", None, "alice", "once"));
    assert!(h.next("b").is_some());
    h.delivered("b", &[]);
    assert!(h.next("b").is_none(), "the second bridge adds no second copy");
}

#[tokio::test]
async fn echoes_of_client_chosen_ids_are_caught_before_the_answer() {
    let mut h = harness(AB, [text_only(), rich(), text_only()], "");
    h.input(message("a", Some("m1"), "alice", "hello"));
    let request = h.next("b").unwrap();
    let client_id = request.client_ids.first().cloned().expect("b chooses its ids");
    // The platform's echo arrives before its HTTP answer: no acknowledgement yet.
    h.input(message("b", Some(client_id.as_str()), "bridgebot", "[fishroom] alice: hello"));
    assert!(h.next("a").is_none(), "the echo is not relayed back");
    assert_eq!(h.stats.echoes.get(), 1);
    // Our own account's messages are never relayed either.
    let mut own = message("b", Some("other"), "bridgebot", "x");
    own.sender.as_mut().unwrap().is_self = true;
    h.input(own);
    assert!(h.next("a").is_none());
    assert_eq!(h.stats.echoes.get(), 2);
}

#[tokio::test]
async fn retries_reuse_the_client_id_and_give_up_after_the_limit() {
    let mut h = harness(AB, [text_only(), rich(), text_only()], "[general]\nmax_attempts = 2\n");
    h.input(message("a", None, "alice", "first"));
    h.input(message("a", None, "alice", "second"));
    let first = h.next("b").unwrap();
    h.ack("b", Err(SendFailure::Transient { after: Some(Duration::from_millis(1)), reason: "timeout".into() }));
    assert!(h.next("b").is_none(), "the retry waits for its delay");
    // The router's loop fires the retry; here the timer is driven by hand.
    let expired = std::future::poll_fn(|cx| h.router.retries.poll_expired(cx)).await.unwrap();
    h.router.rooms.get_mut(expired.get_ref()).unwrap().retry_at = None;
    h.router.pump(&room("b"));
    let retry = h.next("b").unwrap();
    assert_eq!(retry.attempt, 2);
    assert_eq!(retry.client_ids.len(), 1);
    assert_eq!(retry.client_ids, first.client_ids, "a retry is recognisable by its id");
    h.ack("b", Err(SendFailure::Transient { after: None, reason: "timeout".into() }));
    assert_eq!(h.stats.dropped.get(), 1, "given up after max_attempts");
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] alice: second", "the room moves on");
}

#[tokio::test]
async fn rejected_and_broken_rooms_drop_without_stalling() {
    let mut h = harness(AB, [text_only(), text_only(), text_only()], "");
    for text in ["one", "two", "three"] {
        h.input(message("a", None, "alice", text));
    }
    h.next("b").unwrap();
    h.ack("b", Err(SendFailure::Rejected { reason: "content filter".into() }));
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] alice: two");
    h.ack("b", Err(SendFailure::RoomBroken { reason: "404".into() }));
    assert!(h.next("b").is_none(), "nothing more is sent to a room that does not exist");
    assert_eq!(h.stats.rejected.get(), 2);
    assert_eq!(h.stats.dropped.get(), 1);
}

#[tokio::test]
async fn a_stuck_room_does_not_hold_up_another() {
    let mut h = harness(ABC, [text_only(), text_only(), text_only()], "");
    for text in ["one", "two"] {
        h.input(message("a", None, "alice", text));
    }
    // b never answers; c goes on.
    assert!(h.next("b").is_some());
    assert!(h.next("c").is_some());
    h.delivered("c", &[]);
    assert_eq!(text_of(&sent_message(h.next("c").unwrap())), "[fishroom] alice: two");
    assert!(h.next("b").is_none(), "b keeps its order: one at a time");
}

#[tokio::test]
async fn a_full_queue_drops_its_oldest_waiting_message() {
    let mut h = harness(AB, [text_only(), text_only(), text_only()], "[general]\nqueue_capacity = 2\n");
    for text in ["one", "two", "three", "four"] {
        h.input(message("a", None, "alice", text));
    }
    assert_eq!(h.stats.dropped.get(), 2);
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] alice: one", "in flight: kept");
    h.delivered("b", &[]);
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] alice: four");
}

fn edited(account: &str, target: &str, text: &str) -> Event {
    event(account, None, "alice", EventKind::Edited { target: RemoteId::new(target), content: Content::text(text) })
}

#[tokio::test]
async fn edits_are_resolved_at_send_time() {
    let mut h = harness(ABC, [text_only(), rich(), text_only()], "");
    h.input(message("a", Some("m1"), "alice", "helo"));
    // The edit arrives while the copy is still in flight.
    h.input(edited("a", "m1", "hello"));
    h.next("b").unwrap();
    h.next("c").unwrap();
    h.delivered("b", &["b-1"]);
    h.delivered("c", &[]);
    match h.next("b").unwrap().action {
        SendAction::Edit { target, message } => {
            assert_eq!(target.as_str(), "b-1");
            assert_eq!(text_of(&message), "[fishroom] alice: hello");
        }
        other => panic!("expected an edit, got {other:?}"),
    }
    let at_c = sent_message(h.next("c").unwrap());
    assert_eq!(text_of(&at_c), "[fishroom] alice: hello (edited)", "no native edits: a new message");
}

#[tokio::test]
async fn recalls_reach_every_part_or_are_skipped() {
    let caps_b = Capabilities { max_text_len: Some(12), ..rich() };
    let mut h = harness(
        ABC,
        [text_only(), caps_b, text_only()],
        "[[bridge]]\nname = \"y\"\nevents = [\"message\", \"edit\", \"recall\"]\nrooms = [\"fishroom.b:r\", \"fishroom.c:r\"]\n",
    );
    h.input(message("a", Some("m1"), "al", "a long message"));
    let out = sent_message(h.next("b").unwrap());
    assert_eq!(out.parts.len(), 3, "split: {:?}", out.parts);
    let request_ids = h.router.ids.group_of(&room("a"), &RemoteId::new("m1")).unwrap();
    assert!(h.router.ids.ids_in(request_ids, &room("b")).unwrap().is_empty(), "not confirmed yet");
    assert_eq!(text_of(&out), "[fishroom]|al: a long|message");
    h.delivered("b", &["p1", "p2", "p3"]);
    h.next("c").unwrap();
    h.delivered("c", &[]);
    h.input(event("a", None, "al", EventKind::Recalled { target: RemoteId::new("m1") }));
    match h.next("b").unwrap().action {
        SendAction::Recall { targets } => {
            let ids: Vec<&str> = targets.iter().map(RemoteId::as_str).collect();
            assert_eq!(ids, ["p1", "p2", "p3"]);
        }
        other => panic!("expected a recall, got {other:?}"),
    }
    assert!(h.next("c").is_none(), "c cannot recall: nothing is sent");

    // The platform's echo of that recall, in b, goes nowhere: a copy is never the way back.
    h.input(event("b", None, "bridgebot", EventKind::Recalled { target: RemoteId::new("p1") }));
    assert!(h.next("a").is_none() && h.next("c").is_none());
    assert_eq!(h.stats.echoes.get(), 1);
}

/// A quote carries the first 200 characters of its message (characters, not bytes: cut on a boundary).
#[tokio::test]
async fn a_quoted_snippet_is_the_first_200_characters() {
    let mut h = harness(ABC, [text_only(), rich(), text_only()], "");
    let long: String = "云朵".repeat(150);
    h.input(message("a", Some("m1"), "bob", &long));
    h.next("b").unwrap();
    h.delivered("b", &["b-1"]);
    h.next("c").unwrap();
    h.delivered("c", &[]);
    let reply = Reply { target: Some(RemoteId::new("m1")), ..Reply::default() };
    h.input(event(
        "a",
        Some("m2"),
        "alice",
        EventKind::Message(Message { content: Content::text("yes"), reply: Some(reply), ..Message::default() }),
    ));
    let at_b = sent_message(h.next("b").unwrap());
    let quote = at_b.quote.as_ref().expect("the quoted message's snippet comes along");
    assert_eq!(quote.text, "云朵".repeat(100));
}

#[tokio::test]
async fn replies_are_native_where_possible_and_quoted_elsewhere() {
    let mut h = harness(ABC, [text_only(), rich(), text_only()], "");
    h.input(message("a", Some("m1"), "bob", "is the stream on tonight?"));
    h.next("b").unwrap();
    h.delivered("b", &["b-1"]);
    h.next("c").unwrap();
    h.delivered("c", &[]);
    let reply = Reply { target: Some(RemoteId::new("m1")), ..Reply::default() };
    let content = Content::text("yes, at 8");
    h.input(event(
        "a",
        Some("m2"),
        "alice",
        EventKind::Message(Message { content, reply: Some(reply), ..Message::default() }),
    ));
    let at_b = sent_message(h.next("b").unwrap());
    assert_eq!(at_b.reply_to.as_ref().map(RemoteId::as_str), Some("b-1"));
    assert_eq!(text_of(&at_b), "[fishroom] alice: yes, at 8");
    let quote = at_b.quote.as_ref().expect("the quoted message's snippet comes along");
    assert_eq!((quote.sender.as_deref(), quote.text.as_str()), (Some("bob"), "is the stream on tonight?"));
    let at_c = sent_message(h.next("c").unwrap());
    assert_eq!(at_c.reply_to, None);
    assert_eq!(text_of(&at_c), "[fishroom] alice: > bob: is the stream on tonight?\nyes, at 8");

    // A quote of a message that was never bridged carries its own sender and text.
    h.delivered("b", &["b-2"]);
    let quote = Reply { quoted_sender: Some("eve".into()), quoted_text: Some("old news".into()), ..Reply::default() };
    let content = Content::text("indeed");
    h.input(event(
        "a",
        None,
        "alice",
        EventKind::Message(Message { content, reply: Some(quote), ..Message::default() }),
    ));
    let at_b = sent_message(h.next("b").unwrap());
    assert_eq!(text_of(&at_b), "[fishroom] alice: indeed", "b shows quotes itself");
    let quote = at_b.quote.expect("the quote travels with the message");
    assert_eq!((quote.sender.as_deref(), quote.text.as_str()), (Some("eve"), "old news"));
    assert_eq!(at_b.reply_to, None, "never bridged: no copy to point at");
    h.delivered("c", &[]);
    assert_eq!(text_of(&sent_message(h.next("c").unwrap())), "[fishroom] alice: > eve: old news\nindeed");
}

#[tokio::test]
async fn media_mentions_and_events_render_per_capabilities() {
    let bridges = format!(
        "{ABC}[[bridge]]\nname = \"events\"\nevents = [\"gift\", \"join\"]\ngift_combo = \"0s\"\nrooms = [\"fishroom.a:r\", \"fishroom.b:r\"]\n"
    );
    let mut h = harness(&bridges, [text_only(), rich(), Capabilities { separate_sender: true, ..text_only() }], "");
    // b has seen bob: a mention of bob becomes native there.
    h.input(message("b", Some("x"), "bob", "hi"));
    h.next("a").unwrap();
    h.delivered("a", &[]);
    h.next("c").unwrap();
    h.delivered("c", &[]);
    let content = Content(vec![
        Segment::Mention { user: None, name: "bob".into() },
        Segment::Text(" look ".into()),
        Segment::Image { url: "https://img/1.png".into() },
    ]);
    h.input(event("a", None, "alice", EventKind::Message(Message { content, ..Message::default() })));
    let at_b = sent_message(h.next("b").unwrap());
    assert_eq!(
        at_b.parts[0].0,
        vec![
            Segment::Text("[fishroom] alice: ".into()),
            Segment::Mention { user: Some(crate::model::UserId::new("id-bob")), name: "bob".into() },
            Segment::Text(" look ".into()),
            Segment::Image { url: "https://img/1.png".into() },
        ]
    );
    let at_c = sent_message(h.next("c").unwrap());
    assert_eq!(at_c.sender.as_deref(), Some("[fishroom] alice"));
    assert_eq!(text_of(&at_c), "@bob look [image] https://img/1.png");

    h.delivered("b", &["b-1"]);
    let gift = EventKind::Gift { name: "rose".into(), count: 2, value: None };
    h.input(event("a", None, "alice", gift));
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] alice sent 2 × rose");
    h.delivered("b", &[]);
    h.input(event("a", None, "carol", EventKind::Joined));
    assert_eq!(text_of(&sent_message(h.next("b").unwrap())), "[fishroom] carol joined");
    h.delivered("c", &[]);
    assert!(h.next("c").is_none(), "c is only in the first bridge, which takes no gifts or joins");
}

#[tokio::test]
async fn private_messages_never_enter_a_room_bridge() {
    let mut h = harness(AB, [text_only(), text_only(), text_only()], "");
    let private = Message { content: Content::text("psst"), private: true, ..Message::default() };
    h.input(event("a", None, "alice", EventKind::Message(private)));
    assert!(h.next("b").is_none());
    h.input(event("a", None, "x", EventKind::Unsupported { kind: "pk/start".into(), raw: "{}".into() }));
    assert!(h.next("b").is_none());
    assert_eq!(h.stats.filtered.get(), 2);
}

mod at_once;
mod coalesce;
mod durable;
mod media;
mod reload;
