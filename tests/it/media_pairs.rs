//! Media between every pair of platforms (issue #31 §4): an image, and a file where the platform has files, from
//! every platform that carries media into every other, each arriving in that platform's richest form — Yunhu an
//! image or file message naming an upload of the same bytes, IIROSE the image itself, the others (and the API, with
//! `Extra.file`) the store's signed link — and the bytes behind each the source's.

use std::collections::BTreeMap;
use std::time::Duration;

use chatbridge::sim::fishroom::FishroomSim;
use chatbridge::sim::heihei::HeiheiSim;
use chatbridge::sim::iirose::IiroseSim;
use chatbridge::sim::missevan::MissevanSim;
use chatbridge::sim::yunhu::{Request, Sent, YunhuSim};
use serde_json::{Value, json};
use sha2::Digest;

use crate::harness::*;
use crate::media::MediaHost;

const FM_ROOM: u64 = 868858631;
const TOKEN: &str = "api-token";
const PUBLIC: &str = "https://media.example.org";

struct All {
    fm: MissevanSim,
    rose: IiroseSim,
    hh: HeiheiSim,
    yh: YunhuSim,
    fish: FishroomSim,
    api: String,
    status: std::net::SocketAddr,
    http: reqwest::Client,
    host: MediaHost,
    /// What the API's reader has read so far (a read moves its cursor on).
    api_read: std::sync::Mutex<Vec<Value>>,
    running: Running,
}

/// What a room received: Yunhu's sends whole, the others' texts (the API's with its `Extra`).
#[derive(Debug)]
enum Got {
    Yunhu(Sent),
    Text(String),
    Api(Value),
}

impl All {
    async fn start() -> Self {
        let host = MediaHost::start("127.0.0.1:9".parse().unwrap()).await;
        let hh = heihei().await;
        hh.start_live(HEIHEI_HOST);
        let (fm, rose, yh) = (missevan(&[FM_ROOM], None).await, iirose().await, yunhu().await);
        let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
        let port = free_port();
        let unlimited = "send_rate = 0\n";
        let source = format!(
            "{FAST}http_listen = \"127.0.0.1:0\"\n\n[media]\npublic_url = \"{PUBLIC}\"\n{}{}{}{}upload_url = \"{}\"\n{}{unlimited}\n\
             [accounts.api.bots]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\nhistory = 100\n\n\
             [[bridge]]\nname = \"all\"\nformat = \"{{text}}\"\nnick_format = \"{{nick}}\"\n\
             rooms = [\"missevan.fm:{FM_ROOM}\", \"iirose.rose:{ROSE_ROOM}\", \"heihei.hh:host/{HEIHEI_HOST}\", \
             \"yunhu.me:group/big\", \"fishroom.tuna:general\", \"api.bots:all\"]\n\
             [[bridge]]\nname = \"dm\"\nformat = \"{{text}}\"\n[[bridge.room]]\nroom = \"heihei.hh:im/10045\"\ndirection = \"in\"\n\
             [[bridge.room]]\nroom = \"yunhu.me:user/77\"\ndirection = \"out\"\n",
            missevan_account("fm", &fm, unlimited),
            iirose_account("rose", &rose, unlimited),
            heihei_account("hh", &hh, unlimited),
            yunhu_account("me", &yh, YUNHU_TOKEN, unlimited),
            yh.upload_url(),
            account("tuna", &fish, "11", "key"),
        );
        let accounts = ["missevan.fm", "iirose.rose", "heihei.hh", "yunhu.me", "fishroom.tuna", "api.bots"];
        let running = start(&source, &accounts).await;
        let status = running.daemon().status_addr().unwrap();
        let http = chatbridge::adapters::http_client(Duration::from_secs(5));
        Self {
            fm,
            rose,
            hh,
            yh,
            fish,
            api: format!("http://127.0.0.1:{port}"),
            status,
            http,
            host,
            api_read: Default::default(),
            running,
        }
    }

    /// Everything each room has received so far.
    async fn received(&self) -> BTreeMap<&'static str, Vec<Got>> {
        let api: Vec<Value> = self
            .http
            .get(format!("{}/api/messages?client=media", self.api))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let text = |texts: Vec<String>| texts.into_iter().map(Got::Text).collect::<Vec<_>>();
        let yunhu = self.yh.requests().into_iter().filter_map(|r| match r {
            Request::Send(sent) if sent.chat_id == "big" => Some(Got::Yunhu(sent)),
            _ => None,
        });
        BTreeMap::from([
            ("missevan", text(self.fm.sent().into_iter().map(|s| s.message).collect())),
            ("iirose", text(self.rose.said().into_iter().filter(|s| s.name == "rosebot").map(|s| s.text).collect())),
            ("heihei", text(self.hh.sent().into_iter().map(|s| s.text).collect())),
            ("yunhu", yunhu.collect()),
            ("fishroom", text(self.fish.posted().into_iter().map(|p| p.content).collect())),
            ("api", {
                let mut read = self.api_read.lock().unwrap();
                read.extend(api);
                read.iter().cloned().map(Got::Api).collect()
            }),
        ])
    }

    /// Waits until every room but `from` has received what `done` says is all of one message.
    async fn arrived(&self, from: &str, done: impl Fn(&str, &[Got]) -> bool) -> BTreeMap<&'static str, Vec<Got>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let mut received = self.received().await;
            let short: Vec<&str> = received
                .iter()
                .filter(|(room, got)| **room != from && !done(room, got))
                .map(|(room, _)| *room)
                .collect();
            if short.is_empty() {
                received.remove(from);
                return received;
            }
            assert!(tokio::time::Instant::now() < deadline, "{from}: waiting for {short:?}: {received:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The bytes behind a link of the store, fetched from the daemon's listener.
    async fn bytes(&self, link: &str) -> Vec<u8> {
        let path = link.strip_prefix(PUBLIC).expect("a link of the store");
        let response = self.http.get(format!("http://{}{path}", self.status)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{link}");
        response.bytes().await.unwrap().to_vec()
    }
}

/// The store's link in a text.
fn link_in(text: &str) -> Option<String> {
    let at = text.find(&format!("{PUBLIC}/media/"))?;
    Some(text[at..].split([' ', ']', '#']).next().unwrap().to_owned())
}

fn hash(bytes: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(bytes).to_vec()
}

/// Every destination got the item, in its richest form, with the source's bytes behind it; `counts`: the items each
/// room has received so far.
async fn check(all: &All, counts: &mut BTreeMap<&'static str, usize>, from: &str, kind: &str, source: &[u8]) {
    for room in ["missevan", "iirose", "heihei", "yunhu", "fishroom", "api"] {
        if room != from {
            *counts.entry(room).or_default() += 1;
        }
    }
    let items = |got: &[Got]| -> usize {
        got.iter()
            .filter(|g| match g {
                Got::Yunhu(sent) => !sent.media_key.is_empty(),
                Got::Text(text) => link_in(text).is_some(),
                Got::Api(message) => !message["Extra"]["file"].is_null(),
            })
            .count()
    };
    let got = all.arrived(from, |room, got| items(got) >= counts[room]).await;
    for (room, got) in &got {
        let last = got
            .iter()
            .rev()
            .find(|g| match g {
                Got::Yunhu(sent) => !sent.media_key.is_empty(),
                Got::Text(text) => link_in(text).is_some(),
                Got::Api(message) => !message["Extra"]["file"].is_null(),
            })
            .unwrap();
        match last {
            Got::Yunhu(sent) => {
                let expected = if kind == "image" { 2 } else { 4 };
                assert_eq!(sent.content_type, expected, "{from} → {room}: a {kind} message: {sent:?}");
                let uploaded = all.yh.uploaded(&sent.media_key).expect("the key names an upload");
                assert_eq!(hash(&uploaded), hash(source), "{from} → {room}: the uploaded bytes are the source's");
                if kind == "file" {
                    assert!(sent.media_key.starts_with("disk/") && sent.file_size == source.len() as u64, "{sent:?}");
                }
            }
            Got::Text(text) if *room == "iirose" && kind == "image" => {
                assert!(text.contains(&format!("[{PUBLIC}/media/")) && text.contains("#e]"), "{from} → {room}: {text}");
                assert_eq!(hash(&all.bytes(&link_in(text).unwrap()).await), hash(source), "{from} → {room}");
            }
            Got::Text(text) => {
                let size = chatbridge::router::media::human_size(source.len() as u64);
                assert!(text.contains(&format!("[{kind} {size}] {PUBLIC}/media/")), "{from} → {room}: {text}");
                assert_eq!(hash(&all.bytes(&link_in(text).unwrap()).await), hash(source), "{from} → {room}");
            }
            Got::Api(message) => {
                let file = &message["Extra"]["file"][0];
                let sha: String = hash(source).iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(file["SHA"], json!(sha), "{from} → api: {message}");
                assert_eq!(file["Size"], json!(source.len()), "{from} → api");
                let url = file["URL"].as_str().unwrap();
                assert!(message["text"].as_str().unwrap().contains(url), "the text carries the link too: {message}");
                assert_eq!(hash(&all.bytes(url).await), hash(source), "{from} → api");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_and_a_file_from_every_platform_with_media_arrive_everywhere_in_the_richest_form() {
    let all = All::start().await;
    let mut counts = BTreeMap::new();
    let (cat, pdf) = (all.host.cat.clone(), all.host.pdf.clone());
    let (cat_url, pdf_url) = (all.host.url("/cat.png"), all.host.url("/report.pdf"));

    all.fish.publish(json!({
        "channel": "telegram", "sender": "alice", "receiver": "", "room": "general", "mtype": "photo",
        "content": "", "media_url": cat_url, "rich_text": null, "date": "2026-01-01", "time": "12:00:00",
        "botmsg": false, "opt": {}, "route": null,
    }));
    check(&all, &mut counts, "fishroom", "image", &cat).await;
    all.fish.publish(json!({
        "channel": "telegram", "sender": "alice", "receiver": "", "room": "general", "mtype": "file",
        "content": "", "media_url": pdf_url, "rich_text": null, "date": "2026-01-01", "time": "12:00:01",
        "botmsg": false, "opt": {}, "route": null,
    }));
    check(&all, &mut counts, "fishroom", "file", &pdf).await;

    all.yh.say_media("big", ("u1", "阿花"), 2, &cat_url, "");
    check(&all, &mut counts, "yunhu", "image", &cat).await;
    all.yh.say_media("big", ("u1", "阿花"), 4, &pdf_url, "report.pdf");
    check(&all, &mut counts, "yunhu", "file", &pdf).await;

    all.rose.say(ROSE_ROOM, "5b0fe8a3b1aa1", "上学", &format!("[{cat_url}#e]"));
    check(&all, &mut counts, "iirose", "image", &cat).await;

    // Heihei carries media in private messages (IM): one reaches a Yunhu private chat as an image of its own.
    heihei_following(&all.hh).await;
    let photo = all.host.url("/cat.png?from=heihei");
    all.hh.push(
        None,
        json!({"msgType": "IM", "msg": {"toUserId": 777, "fromUserId": 10045, "msgType": "image", "content": {"img": photo},
            "msgId": 1234567890123457u64, "createTime": 1348831860}, "users": {"10045": {"displayName": "小红"}}}),
    );
    let mut image = None;
    eventually("the IM image reaches Yunhu", || {
        image = all.yh.requests().into_iter().find_map(|r| match r {
            Request::Send(sent) if sent.chat_id == "77" && sent.content_type == 2 => Some(sent),
            _ => None,
        });
        image.is_some()
    })
    .await;
    let uploaded = all.yh.uploaded(&image.unwrap().media_key).expect("uploaded");
    assert_eq!(hash(&uploaded), hash(&cat), "heihei → yunhu: the source's bytes");

    assert_eq!(all.host.hits.load(std::sync::atomic::Ordering::SeqCst), 3, "each item fetched once, for every room");
    all.running.shutdown().await;
}
