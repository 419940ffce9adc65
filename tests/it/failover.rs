//! Rebalance and failover across every platform: two daemons on one PostgreSQL share accounts on all five
//! simulators; a third joins under traffic and gets its fair share; one is killed (SIGKILL) in the middle of 2,000
//! messages flowing every way, the others take its accounts over once their leases expire, and every message
//! arrives — including what was said meanwhile on the platforms that keep history (the shared gap-fill cursors) —
//! with duplicates counted and bounded; an edit and a recall made after the takeover reach the copies of a message
//! the killed instance received.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chatbridge::sim::fishroom::FishroomSim;
use chatbridge::sim::heihei::HeiheiSim;
use chatbridge::sim::iirose::IiroseSim;
use chatbridge::sim::missevan::MissevanSim;
use chatbridge::sim::yunhu::{Request, YunhuSim};
use chatbridge::store::pg::testing::TestPostgres;

use crate::binary::{sigterm, temp_dir, wait_exit, write_config};
use crate::harness::{
    HEIHEI_HOST, ROSE_ROOM, YUNHU_TOKEN, YUNHU_TOKEN_2, account, fishroom, heihei, heihei_account, iirose,
    iirose_account, missevan, missevan_account, yunhu, yunhu_account,
};
use crate::postgres::{daemon, owners, until};

const FM_ROOM: u64 = 868858631;

/// The sources, by the first letter of what is said there.
const SOURCES: [char; 5] = ['m', 'r', 'h', 'y', 'f'];

/// The lease of each source: its account's, or (Missevan, leased room by room) its room's.
fn account_of(source: char) -> &'static str {
    match source {
        'm' => "missevan.fm:868858631",
        'r' => "iirose.rose",
        'h' => "heihei.hh",
        'y' => "yunhu.me",
        _ => "fishroom.tuna",
    }
}

/// Sources whose platform keeps history the bridge reads after an outage (Missevan's and Yunhu's): what is said
/// there while nobody runs the account arrives once the account runs again. IIROSE's login dump holds only its
/// last 20 messages, and Heihei and Fishroom keep none.
const WITH_HISTORY: [char; 2] = ['m', 'y'];

struct Five {
    fm: MissevanSim,
    rose: IiroseSim,
    hh: HeiheiSim,
    yh: YunhuSim,
    fish: FishroomSim,
}

impl Five {
    async fn start() -> Self {
        let hh = heihei().await;
        hh.start_live(HEIHEI_HOST);
        Self {
            fm: missevan(&[FM_ROOM], None).await,
            rose: iirose().await,
            hh,
            yh: yunhu().await,
            fish: fishroom(&["general"], &[("11", "key", "bridge")]).await,
        }
    }

    /// One bridge over a room on each platform, both ways, plus a second Yunhu group that only receives (its
    /// copies are what the edit and the recall must find); no send limits, texts relayed as they are.
    fn config(&self, general: &str) -> String {
        let unlimited = "send_rate = 0\n";
        format!(
            "{general}{}{}{}{}{}{}{unlimited}\n[[bridge]]\nname = \"all\"\nformat = \"{{text}}\"\n\
             nick_format = \"{{nick}}\"\n\
             [[bridge.room]]\nroom = \"missevan.fm:{FM_ROOM}\"\n\
             [[bridge.room]]\nroom = \"iirose.rose:{ROSE_ROOM}\"\n\
             [[bridge.room]]\nroom = \"heihei.hh:host/{HEIHEI_HOST}\"\n\
             [[bridge.room]]\nroom = \"yunhu.me:group/big\"\n\
             [[bridge.room]]\nroom = \"yunhu.other:group/small\"\ndirection = \"out\"\n\
             [[bridge.room]]\nroom = \"fishroom.tuna:general\"\n",
            missevan_account("fm", &self.fm, unlimited),
            iirose_account("rose", &self.rose, unlimited),
            heihei_account("hh", &self.hh, unlimited),
            yunhu_account("me", &self.yh, YUNHU_TOKEN, unlimited),
            yunhu_account("other", &self.yh, YUNHU_TOKEN_2, unlimited),
            account("tuna", &self.fish, "11", "key"),
        )
    }

    /// Someone says `text` on `source`; the platform's id of it.
    fn say(&self, source: char, text: &str) -> String {
        match source {
            'm' => self.fm.say(FM_ROOM, 42, "小明", text),
            'r' => self.rose.say(ROSE_ROOM, "5b0fe8a3b1aa1", "上学", text),
            'h' => {
                self.hh.say(HEIHEI_HOST, 5, "观众", text);
                String::new()
            }
            'y' => self.yh.say("big", ("u1", "阿花"), text),
            _ => {
                self.fish.say("general", "irc", "alice", text);
                String::new()
            }
        }
    }

    /// What each destination received, in order.
    fn received(&self) -> BTreeMap<&'static str, Vec<String>> {
        let yunhu = |chat: &str| -> Vec<String> {
            self.yh
                .requests()
                .into_iter()
                .filter_map(|r| match r {
                    Request::Send(sent) if sent.chat_id == chat => Some(sent.text),
                    _ => None,
                })
                .collect()
        };
        BTreeMap::from([
            ("m", self.fm.sent().into_iter().map(|s| s.message).collect()),
            ("r", self.rose.said().into_iter().filter(|s| s.name == "rosebot").map(|s| s.text).collect()),
            ("h", self.hh.sent().into_iter().map(|s| s.text).collect()),
            ("y", yunhu("big")),
            ("small", yunhu("small")),
            ("f", self.fish.posted().into_iter().map(|p| p.content).collect()),
        ])
    }
}

/// Per destination: (lost, duplicated, first arrivals in the order said), of the texts starting with a source's
/// letter (probes start with `p` and are not counted).
fn tally(
    said: &[String],
    received: &BTreeMap<&'static str, Vec<String>>,
) -> BTreeMap<&'static str, (usize, usize, bool)> {
    received
        .iter()
        .map(|(destination, got)| {
            let want: Vec<&String> = said.iter().filter(|t| !t.starts_with(*destination)).collect();
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for text in got.iter().filter(|t| t.starts_with(SOURCES)) {
                *counts.entry(text.as_str()).or_default() += 1;
            }
            let lost = want.iter().filter(|t| !counts.contains_key(t.as_str())).count();
            let duplicated = counts.values().map(|n| n - 1).sum();
            (*destination, (lost, duplicated, in_order(got)))
        })
        .collect()
}

/// Within each source's messages, the first arrivals come in the order they were said.
fn in_order(received: &[String]) -> bool {
    let mut seen = HashSet::new();
    let mut last: HashMap<char, u64> = HashMap::new();
    for text in received.iter().filter(|t| t.starts_with(SOURCES) && seen.insert(t.as_str())) {
        let source = text.chars().next().unwrap_or_default();
        let Ok(n) = text[1..].parse::<u64>() else { continue };
        if last.insert(source, n).is_some_and(|before| before > n) {
            return false;
        }
    }
    true
}

/// Says probes (`p<source><n>`, not counted) on every source until each destination has had one from every other
/// source: every account runs, wherever it runs.
async fn all_flowing(five: &Five, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 0.. {
        for source in SOURCES {
            five.say(source, &format!("p{source}{n}"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let received = five.received();
        let flowing = received.iter().all(|(destination, got)| {
            SOURCES
                .iter()
                .filter(|s| !destination.starts_with(**s))
                .all(|s| got.iter().any(|t| t.starts_with(&format!("p{s}"))))
        });
        if flowing {
            return;
        }
        if Instant::now() > deadline {
            let counts: BTreeMap<_, _> = received.iter().map(|(d, got)| (d, got.len())).collect();
            panic!("{what}: not every way flows; probes received per destination: {counts:?}");
        }
    }
}

/// Whether the six accounts are held `6 / n` each by `n` instances.
fn even_split(server: &TestPostgres, url: &chatbridge::settings::Secret, n: usize) -> bool {
    let owners = owners(server, url);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for owner in owners.values() {
        *counts.entry(owner.clone()).or_default() += 1;
    }
    owners.len() == 6 && counts.len() == n && counts.values().all(|c| *c == 6 / n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_instance_joins_a_killed_one_is_taken_over_on_every_platform_and_nothing_is_lost() {
    let Some(server) = TestPostgres::shared() else { return };
    let _one = crate::chaos::ONE_AT_A_TIME.lock().await;
    let five = Five::start().await;
    let url = server.database();
    let dir = temp_dir("pg-failover-five");
    let config = |name: &str| {
        let general = crate::postgres::patient_instance(&url, name);
        write_config(&dir.join(name), &five.config(&general))
    };
    let mut daemons = BTreeMap::new();
    daemons.insert("a", daemon(&config("a")));
    until("a runs every account", Duration::from_secs(20), || owners(server, &url).len() == 6).await;
    daemons.insert("b", daemon(&config("b")));
    until("three accounts each", Duration::from_secs(20), || even_split(server, &url, 2)).await;
    all_flowing(&five, "after the split").await;

    const MESSAGES: usize = 2000;
    let mut said = Vec::with_capacity(MESSAGES);
    let next = |said: &mut Vec<String>, sources: &[char]| {
        let source = sources[said.len() % sources.len()];
        let text = format!("{source}{}", said.len());
        five.say(source, &text);
        said.push(text);
    };
    // Every way, two instances.
    while said.len() < 300 {
        next(&mut said, &SOURCES);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // A third instance joins under traffic: each of the first two hands one account over (settled, closed,
    // released) and it claims them. Meanwhile the platforms an account may be between two instances on speak
    // only where what is said waits for the account (history, or Fishroom's queue per token); every destination
    // goes on receiving, whichever instance runs it.
    daemons.insert("c", daemon(&config("c")));
    let joined_at = Instant::now();
    while !even_split(server, &url, 3) {
        assert!(joined_at.elapsed() < Duration::from_secs(20), "no even split: {:?}", owners(server, &url));
        for _ in 0..20 {
            next(&mut said, &['m', 'y', 'f']);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    let rebalanced = said.len() - 300;
    all_flowing(&five, "after the third joined").await;
    let before_kill = said.len() + 400;
    while said.len() < before_kill {
        next(&mut said, &SOURCES);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    // A Yunhu message, received by the instance running `yunhu.me` (killed next): the survivor that takes
    // `yunhu.me` over must find its copy in `small` through the store (a group the killed instance wrote).
    let original = five.yh.say("big", ("u1", "阿花"), "to be edited");
    let copy_in_small = || {
        five.yh.requests().into_iter().find_map(|r| match r {
            Request::Send(sent) if sent.chat_id == "small" && sent.text == "to be edited" => Some(sent.msg_id),
            _ => None,
        })
    };
    until("the copy in small", Duration::from_secs(10), || copy_in_small().is_some()).await;
    let copy = copy_in_small().unwrap_or_default();

    // SIGKILL the instance running `yunhu.me`, whose history the next must read from the shared cursor.
    let victim_name = owners(server, &url)["yunhu.me"].clone();
    let victim_held: Vec<String> =
        owners(server, &url).into_iter().filter(|(_, o)| *o == victim_name).map(|(a, _)| a).collect();
    let mut victim = daemons.remove(victim_name.as_str()).expect("the victim runs");
    let survivors_held: Vec<char> = {
        let owners = owners(server, &url);
        SOURCES.into_iter().filter(|s| owners[account_of(*s)] != victim_name).collect()
    };
    victim.kill().expect("SIGKILL");
    victim.wait().expect("reaped");
    let killed_at = Instant::now();
    // While nobody runs the victim's accounts, only the survivors' sources and those with history speak.
    let speaking: Vec<char> =
        SOURCES.into_iter().filter(|s| survivors_held.contains(s) || WITH_HISTORY.contains(s)).collect();
    let before = said.len();
    while owners(server, &url).values().any(|o| *o == victim_name) || owners(server, &url).len() < 6 {
        assert!(killed_at.elapsed() < Duration::from_secs(10), "the survivors do not take the accounts over");
        for _ in 0..20 {
            next(&mut said, &speaking);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    let takeover = killed_at.elapsed();
    let during = said.len() - before;
    // Once the accounts taken over run again on the survivors, every way again.
    all_flowing(&five, "after the takeover").await;
    while said.len() < MESSAGES {
        next(&mut said, &SOURCES);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    let deadline = Instant::now() + Duration::from_secs(90);
    let counted = loop {
        let counted = tally(&said, &five.received());
        if counted.values().all(|(lost, _, _)| *lost == 0) || Instant::now() > deadline {
            break counted;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "{MESSAGES} messages; {rebalanced} said while a third instance joined; instance {victim_name} killed, \
         running {victim_held:?}; {during} said (by {speaking:?}) until the survivors took them over, {takeover:?} \
         after the SIGKILL; (lost, duplicated, in order) per destination: {counted:?}"
    );
    let log = || std::fs::read_to_string(dir.join(&victim_name).join("chatbridge.log")).unwrap_or_default();
    for (destination, (lost, duplicated, ordered)) in &counted {
        assert_eq!(*lost, 0, "{destination} lost messages: {counted:?}");
        // What the killed instance sent in its last moments, before the transaction with the acknowledgements
        // committed, goes again (as after a single instance's crash): a handful per destination.
        assert!(*duplicated <= 10, "{destination}: {duplicated} duplicates: {counted:?}");
        assert!(*ordered, "{destination}: out of order: {counted:?}\n{}", log());
    }

    // An edit and a recall of the Yunhu message the killed instance received reach its copy.
    five.yh.edit(&original, "edited after the takeover");
    until("the copy is edited", Duration::from_secs(10), || {
        five.yh
            .requests()
            .iter()
            .any(|r| matches!(r, Request::Edit { msg_id, text } if *msg_id == copy && text.contains("edited after")))
    })
    .await;
    five.yh.recall(&original);
    until("the copy is recalled", Duration::from_secs(10), || {
        five.yh.requests().iter().any(|r| matches!(r, Request::Recall { msg_id, .. } if *msg_id == copy))
    })
    .await;
    for survivor in daemons.values_mut() {
        sigterm(survivor);
        assert!(wait_exit(survivor, Duration::from_secs(10)).success());
    }
    let _ = std::fs::remove_dir_all(dir);
}
