//! The media store with a shared PostgreSQL store (issue #31 §2): each instance keeps the items it fetched in its
//! own `state_dir`, signs their links with its own key on its own `public_url`, and serves them; another instance
//! refuses those links (docs/operations.md#media). Skipped, with one line saying so, where PostgreSQL is not
//! installed.

use chatbridge::store::pg::testing::TestPostgres;
use serde_json::json;

use crate::harness::{Pair, eventually, two_instances};
use crate::media::MediaHost;

/// `[general]` and `[media]` of instance `name`: its own listener and its own `public_url`.
fn instance(url: &str, name: &str) -> String {
    format!(
        "[general]\nstore = \"{url}\"\ninstance = \"{name}\"\nlease_ttl = \"3s\"\nshutdown_timeout = \"2s\"\n\
         retry_delay = \"20ms\"\nbackoff_min = \"50ms\"\nbackoff_max = \"200ms\"\nhttp_listen = \"127.0.0.1:0\"\n\n\
         [media]\npublic_url = \"https://media-{name}.example.org\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_shared_store_each_instance_serves_the_items_it_fetched() {
    let Some(server) = TestPostgres::shared() else { return };
    let host = MediaHost::start("127.0.0.1:9".parse().unwrap()).await;
    let pair = Pair::start().await;
    let url = server.database().expose().to_owned();
    let (a, b) = two_instances(&pair.config(&instance(&url, "a")), &pair.config(&instance(&url, "b"))).await;
    pair.tuna.publish(json!({
        "channel": "telegram", "sender": "alice", "receiver": "", "room": "general", "mtype": "photo",
        "content": "look", "media_url": host.url("/cat.png"), "rich_text": null, "date": "2026-01-01",
        "time": "12:00:00", "botmsg": false, "opt": {}, "route": null,
    }));
    let mut text = String::new();
    eventually("the photo reaches lug", || {
        text = pair.lug.posted().into_iter().map(|p| p.content).find(|c| c.contains("/media/")).unwrap_or_default();
        !text.is_empty()
    })
    .await;
    // The instance that runs lug's account fetched the item; its link is on its own address.
    let (maker, other, name) =
        if text.contains("https://media-a.example.org/media/") { (&a, &b, "a") } else { (&b, &a, "b") };
    let prefix = format!("https://media-{name}.example.org");
    let at = text.find(&prefix).expect("a link of one instance") + prefix.len();
    let path = text[at..].split(' ').next().unwrap().to_owned();
    let get = |running: &crate::harness::Running| {
        let addr = running.daemon().status_addr().unwrap();
        let path = path.clone();
        async move { reqwest::get(format!("http://{addr}{path}")).await.unwrap() }
    };
    let served = get(maker).await;
    assert_eq!(served.status(), 200, "the instance that made the link serves it");
    assert_eq!(served.bytes().await.unwrap().as_ref(), host.cat.as_slice());
    let refused = get(other).await;
    assert_eq!(refused.status(), 403, "another instance's key did not sign it");
    a.shutdown().await;
    b.shutdown().await;
}
