//! The media port: a room waits for its next message's media and keeps its order; each destination gets the item
//! in its form (natively with the file for upload, the store's link with kind and size, the original link with a
//! note); a quoted image goes with the quote.

use std::sync::Mutex;

use super::*;
use crate::router::media::{MediaKind, MediaPort, Resolution, StoredMedia};

/// What the test has made known, and the URLs asked for that were not.
type Items = (HashMap<String, Resolution>, Vec<String>);

/// A media store whose items are known once the test says so.
#[derive(Clone, Default)]
struct Known(Arc<Mutex<Items>>);

impl MediaPort for Known {
    fn resolve(&mut self, url: &str, _kind: MediaKind) -> Option<Resolution> {
        let mut known = self.0.lock().unwrap();
        let found = known.0.get(url).cloned();
        if found.is_none() && !known.1.iter().any(|u| u == url) {
            known.1.push(url.to_owned());
        }
        found
    }
}

fn stored(url: &str) -> Resolution {
    Resolution::Stored(Arc::new(StoredMedia {
        url: url.to_owned(),
        size: 5000,
        mime: "image/png".into(),
        sha256: "ab".repeat(32),
        path: "/nonexistent".into(),
    }))
}

fn with_media(caps: [Capabilities; 3]) -> (Harness, Known) {
    let mut h = harness(ABC, caps, "");
    let known = Known::default();
    let (_tx, rx) = mpsc::unbounded_channel();
    h.router.with_media(Box::new(known.clone()), rx);
    (h, known)
}

fn picture(account: &str, id: &str, url: &str) -> Event {
    let content = Content(vec![Segment::Text("look ".into()), Segment::Image { url: url.into() }]);
    event(account, Some(id), "alice", EventKind::Message(Message { content, ..Message::default() }))
}

#[tokio::test]
async fn a_room_waits_for_its_media_and_keeps_its_order() {
    let (mut h, known) = with_media([text_only(), rich(), text_only()]);
    h.input(picture("a", "m1", "https://src/cat.png"));
    h.input(message("a", Some("m2"), "bob", "after it"));
    assert!(h.next("b").is_none() && h.next("c").is_none(), "both rooms wait for the picture");
    assert_eq!(known.0.lock().unwrap().1, ["https://src/cat.png"], "asked for once, for both rooms");
    known.0.lock().unwrap().0.insert("https://src/cat.png".into(), stored("https://m/media/x"));
    h.router.media_known("https://src/cat.png");
    // b shows images: the image itself, on the store's link, with the file for a platform that uploads.
    let to_b = sent_message(h.next("b").unwrap());
    assert_eq!(to_b.parts[0].0.last(), Some(&Segment::Image { url: "https://m/media/x".into() }));
    assert_eq!(to_b.files.len(), 1);
    // c does not: the link with kind and size.
    assert_eq!(text_of(&sent_message(h.next("c").unwrap())), "[fishroom] alice: look [image 5.0 KB] https://m/media/x");
    assert!(h.next("c").is_none(), "one in flight");
    h.delivered("c", &["c1"]);
    assert_eq!(text_of(&sent_message(h.next("c").unwrap())), "[fishroom] bob: after it");
}

#[tokio::test]
async fn an_item_that_could_not_be_fetched_goes_as_its_link_with_a_note() {
    let (mut h, known) = with_media([text_only(), rich(), text_only()]);
    let failed = Resolution::Failed { note: "38 MB: too large".into() };
    known.0.lock().unwrap().0.insert("https://src/big.png".into(), failed);
    h.input(picture("a", "m1", "https://src/big.png"));
    for room in ["b", "c"] {
        let out = sent_message(h.next(room).unwrap());
        assert_eq!(text_of(&out), "[fishroom] alice: look [image, 38 MB: too large] https://src/big.png", "{room}");
        assert!(out.files.is_empty());
    }
}

#[tokio::test]
async fn a_quoted_image_goes_with_the_quote() {
    let (mut h, known) = with_media([text_only(), rich(), text_only()]);
    known.0.lock().unwrap().0.insert("https://src/quoted.png".into(), stored("https://m/media/q"));
    let reply = Reply {
        quoted_sender: Some("bob".into()),
        quoted_image: Some("https://src/quoted.png".into()),
        ..Reply::default()
    };
    let message = Message { content: Content::text("nice"), reply: Some(reply), ..Message::default() };
    h.input(event("a", Some("m1"), "alice", EventKind::Message(message)));
    let quote = sent_message(h.next("b").unwrap()).quote.expect("b shows quotes");
    assert_eq!(quote.image.as_deref(), Some("https://m/media/q"));
    assert_eq!(
        text_of(&sent_message(h.next("c").unwrap())),
        "[fishroom] alice: > bob: [image 5.0 KB] https://m/media/q\nnice"
    );
}
