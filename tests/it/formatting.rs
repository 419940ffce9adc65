//! Formatting between every pair of platforms (`docs/platforms/*.md`, "Formatting"): what carries formatting
//! (Yunhu markdown and HTML, IIROSE markdown messages, Fishroom's IRC rich text) arrives on Yunhu as markdown and
//! everywhere else as the same readable plain text; plain text that looks like markup arrives as it was typed,
//! everywhere; a room with `markdown = false` gets plain text.

use std::collections::BTreeMap;
use std::time::Duration;

use chatbridge::model::rich::markdown;
use chatbridge::model::{Content, Segment, Style};
use chatbridge::sim::fishroom::FishroomSim;
use chatbridge::sim::heihei::HeiheiSim;
use chatbridge::sim::iirose::IiroseSim;
use chatbridge::sim::missevan::MissevanSim;
use chatbridge::sim::yunhu::{Request, YunhuSim};
use serde_json::Value;

use crate::harness::{
    FAST, HEIHEI_HOST, ROSE_ROOM, Running, YUNHU_TOKEN, YUNHU_TOKEN_2, account, fishroom, free_port, heihei,
    heihei_account, iirose, iirose_account, missevan, missevan_account, start, yunhu, yunhu_account,
};

const FM_ROOM: u64 = 868858631;
const TOKEN: &str = "api-token";

/// Markdown with every element of the model (Yunhu `content_type` 3, and the body of an IIROSE markdown message).
const MARKDOWN: &str = "**b** *i* ~~s~~ `c` [site](https://e.com/x)\n```\nx = 1\n```\n> q";
/// The same as HTML (Yunhu `content_type` 8).
const HTML: &str = "<p><b>b</b> <i>i</i> <del>s</del> <code>c</code> <a href=\"https://e.com/x\">site</a></p>\
                    <pre>x = 1</pre><blockquote>q</blockquote>";
/// What it reads as where formatting is not shown.
const PLAIN: &str = "b i ~~s~~ c site (https://e.com/x)\nx = 1\n> q";
/// Text that looks like markup, said where there is none: it arrives as typed.
const LOOKALIKE: &str = "**not bold** <b>nor</b> [this](x) `x` &amp;";

/// Every platform, and the API: one bridge, both ways; Yunhu `other` also receives in `small` (which shows
/// markdown) and in `plain` (`markdown = false`).
struct Six {
    fm: MissevanSim,
    rose: IiroseSim,
    hh: HeiheiSim,
    yh: YunhuSim,
    fish: FishroomSim,
    api: String,
    http: reqwest::Client,
    /// What the API's reader has read so far (a read moves its cursor on).
    api_read: std::sync::Mutex<Vec<(u64, String)>>,
    _running: Running,
}

impl Six {
    async fn start() -> Self {
        let hh = heihei().await;
        hh.start_live(HEIHEI_HOST);
        let (fm, rose, yh) = (missevan(&[FM_ROOM], None).await, iirose().await, yunhu().await);
        let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
        let port = free_port();
        let unlimited = "send_rate = 0\n";
        let source = format!(
            "{FAST}{}{}{}{}{}{}{unlimited}\n[accounts.api.bots]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n\
             history = 100\n\n[[bridge]]\nname = \"all\"\nformat = \"{{text}}\"\nnick_format = \"{{nick}}\"\n\
             [[bridge.room]]\nroom = \"missevan.fm:{FM_ROOM}\"\n\
             [[bridge.room]]\nroom = \"iirose.rose:{ROSE_ROOM}\"\n\
             [[bridge.room]]\nroom = \"heihei.hh:host/{HEIHEI_HOST}\"\n\
             [[bridge.room]]\nroom = \"yunhu.me:group/big\"\n\
             [[bridge.room]]\nroom = \"yunhu.other:group/small\"\ndirection = \"out\"\n\
             [[bridge.room]]\nroom = \"yunhu.other:group/plain\"\ndirection = \"out\"\nmarkdown = false\n\
             [[bridge.room]]\nroom = \"fishroom.tuna:general\"\n\
             [[bridge.room]]\nroom = \"api.bots:all\"\n",
            missevan_account("fm", &fm, unlimited),
            iirose_account("rose", &rose, unlimited),
            heihei_account("hh", &hh, unlimited),
            yunhu_account("me", &yh, YUNHU_TOKEN, unlimited),
            yunhu_account("other", &yh, YUNHU_TOKEN_2, unlimited),
            account("tuna", &fish, "11", "key"),
        );
        let accounts =
            ["missevan.fm", "iirose.rose", "heihei.hh", "yunhu.me", "yunhu.other", "fishroom.tuna", "api.bots"];
        let running = start(&source, &accounts).await;
        let http = chatbridge::adapters::http_client(Duration::from_secs(5));
        let api = format!("http://127.0.0.1:{port}");
        Self { fm, rose, hh, yh, fish, api, http, api_read: Default::default(), _running: running }
    }

    /// What each room received, in order; Yunhu's as (content type, text).
    async fn received(&self) -> BTreeMap<&'static str, Vec<(u64, String)>> {
        let yunhu = |chat: &str| -> Vec<(u64, String)> {
            self.yh
                .requests()
                .into_iter()
                .filter_map(|r| match r {
                    Request::Send(sent) if sent.chat_id == chat => Some((sent.content_type, sent.text)),
                    _ => None,
                })
                .collect()
        };
        let plain = |texts: Vec<String>| texts.into_iter().map(|t| (0, t)).collect::<Vec<_>>();
        let api: Vec<Value> = self
            .http
            .get(format!("{}/api/messages?client=formatting", self.api))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut api_read = self.api_read.lock().unwrap();
        api_read.extend(plain(api.iter().map(|m| m["text"].as_str().unwrap_or_default().to_owned()).collect()));
        BTreeMap::from([
            ("missevan", plain(self.fm.sent().into_iter().map(|s| s.message).collect())),
            ("iirose", plain(self.rose.said().into_iter().filter(|s| s.name == "rosebot").map(|s| s.text).collect())),
            ("heihei", plain(self.hh.sent().into_iter().map(|s| s.text).collect())),
            ("yunhu", yunhu("big")),
            ("yunhu small", yunhu("small")),
            ("yunhu plain", yunhu("plain")),
            ("fishroom", plain(self.fish.posted().into_iter().map(|p| p.content).collect())),
            ("api", api_read.clone()),
        ])
    }

    /// Waits until every room but `except` has received `count` messages in all; what each received last.
    async fn last(&self, count: usize, except: &[&str]) -> BTreeMap<&'static str, (u64, String)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let received = self.received().await;
            let short: Vec<_> =
                received.iter().filter(|(room, got)| !except.contains(room) && got.len() < count).collect();
            if short.is_empty() {
                return received
                    .into_iter()
                    .filter(|(room, _)| !except.contains(room))
                    .map(|(room, mut got)| (room, got.pop().unwrap()))
                    .collect();
            }
            assert!(tokio::time::Instant::now() < deadline, "waiting for message {count} in {short:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Every room got `plain` as text, but the rooms that show markdown, which got markdown reading as `rich`.
fn check(from: &str, got: &BTreeMap<&'static str, (u64, String)>, rich: &Content) {
    let plain = rich.to_plain_text();
    for (room, (kind, text)) in got {
        if *room == "yunhu" || *room == "yunhu small" {
            assert_eq!(*kind, 3, "{from} → {room}: markdown, as {text:?}");
            assert_eq!(markdown::parse(text), *rich, "{from} → {room}: {text:?} reads as what was said");
        } else {
            assert_eq!(*text, plain, "{from} → {room}");
            if room.starts_with("yunhu") {
                assert_eq!(*kind, 1, "{from} → {room}: plain text");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formatting_arrives_as_each_platform_shows_it() {
    let six = Six::start().await;
    let rich = markdown::parse(MARKDOWN);
    assert_eq!(rich.to_plain_text(), PLAIN);

    six.yh.say_as("big", ("u1", "阿花"), 3, MARKDOWN);
    check("yunhu markdown", &six.last(1, &["yunhu"]).await, &rich);

    six.yh.say_as("big", ("u1", "阿花"), 8, HTML);
    check("yunhu html", &six.last(2, &["yunhu"]).await, &rich);

    six.rose.say(ROSE_ROOM, "5b0fe8a3b1aa1", "上学", &format!("\\\\\\*\n{MARKDOWN}"));
    check("iirose markdown", &six.last(3, &["iirose", "yunhu"]).await, &rich);

    six.fish.say_rich(
        "general",
        "alice",
        &[(&["bold"], "b"), (&[], " "), (&["italic", "underline"], "i"), (&[], " plain")],
    );
    let irc = Content(vec![
        Segment::Styled { text: "b".into(), style: Style::BOLD },
        Segment::Text(" ".into()),
        Segment::Styled { text: "i".into(), style: Style::ITALIC },
        Segment::Text(" plain".into()),
    ]);
    let got = six.last(4, &["iirose", "fishroom", "yunhu"]).await;
    check("fishroom rich text", &got, &irc);
    assert_eq!(got["yunhu small"].1, "**b** *i* plain");
    let (_, yunhu_big) = six.received().await["yunhu"].last().cloned().unwrap();
    assert_eq!(yunhu_big, "**b** *i* plain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_looks_like_markup_arrives_as_typed() {
    let six = Six::start().await;
    let same = |got: &BTreeMap<&'static str, (u64, String)>, from: &str| {
        for (room, (kind, text)) in got {
            assert_eq!(text, LOOKALIKE, "{from} → {room}");
            if room.starts_with("yunhu") {
                assert_eq!(*kind, 1, "{from} → {room}: plain text, not markdown");
            }
        }
    };
    six.fm.say(FM_ROOM, 42, "小明", LOOKALIKE);
    same(&six.last(1, &["missevan"]).await, "missevan");
    six.hh.say(HEIHEI_HOST, 5, "观众", LOOKALIKE);
    same(&six.last(2, &["missevan", "heihei"]).await, "heihei");
    six.rose.say(ROSE_ROOM, "5b0fe8a3b1aa1", "上学", LOOKALIKE);
    same(&six.last(3, &["missevan", "heihei", "iirose"]).await, "iirose");
    six.fish.say("general", "irc", "alice", LOOKALIKE);
    same(&six.last(4, &["missevan", "heihei", "iirose", "fishroom"]).await, "fishroom");
    six.yh.say("big", ("u1", "阿花"), LOOKALIKE);
    same(&six.last(5, &["missevan", "heihei", "iirose", "fishroom", "yunhu"]).await, "yunhu");
    let body = serde_json::json!({"text": LOOKALIKE, "username": "bot", "gateway": "all"});
    let answer = six
        .http
        .post(format!("{}/api/message", six.api))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let got = six.last(6, &["missevan", "heihei", "iirose", "fishroom", "yunhu", "api"]).await;
    same(&got, "api");
}
