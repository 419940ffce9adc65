//! Gap filling: what a platform that keeps history said while the bridge was disconnected or stopped is
//! relayed after it returns, once, in order, before anything live.

use crate::harness::{
    FAST, ROSE_ROOM, YUNHU_TOKEN, account, eventually, fishroom, fresh_dir, iirose, iirose_account, missevan,
    missevan_account, next_post, start, yunhu, yunhu_account,
};

const ROOM: u64 = 868858631;

fn general(state: &std::path::Path) -> String {
    format!("{FAST}state_dir = {:?}\n", state.display().to_string())
}

/// A platform that keeps history, as the outage scenario drives it.
trait Source {
    /// Someone (one of a few people, by `who`) says `text` in the bridged room.
    fn say(&self, who: usize, text: &str);
    fn set_down(&self, down: bool);
}

impl Source for chatbridge::sim::missevan::MissevanSim {
    fn say(&self, who: usize, text: &str) {
        let names = ["小明", "阿花", "小红"];
        self.say(ROOM, 42 + who as u64, names[who], text);
    }

    fn set_down(&self, down: bool) {
        self.set_down(down);
    }
}

impl Source for chatbridge::sim::yunhu::YunhuSim {
    fn say(&self, who: usize, text: &str) {
        let people = [("u1", "小明"), ("u2", "阿花"), ("u3", "小红")];
        self.say("big", people[who], text);
    }

    fn set_down(&self, down: bool) {
        self.set_down(down);
    }
}

/// Bridged with Fishroom `general` by `config` (whose state lives in `state`): the source goes down while its room
/// talks on, comes back, then the bridge is stopped while the room talks on and started again. Fishroom must get
/// every message once, in order.
async fn outage_and_restart(
    source: &dyn Source,
    fish: &chatbridge::sim::fishroom::FishroomSim,
    config: &str,
    accounts: &[&str],
) {
    let mut at_fish = fish.subscribe();
    let running = start(config, accounts).await;
    source.say(0, "before the outage");
    assert_eq!(next_post(&mut at_fish).await.content, "before the outage");

    // The platform goes down; the room goes on talking (into its history).
    source.set_down(true);
    source.say(0, "during the outage 1");
    source.say(1, "during the outage 2");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    source.set_down(false);
    assert_eq!(next_post(&mut at_fish).await.content, "during the outage 1");
    assert_eq!(next_post(&mut at_fish).await.content, "during the outage 2");
    source.say(0, "live again");
    assert_eq!(next_post(&mut at_fish).await.content, "live again");
    let stats = running.daemon().stats();
    eventually("the message read before the outage is known, not relayed twice", || stats.duplicates.get() >= 1).await;
    running.shutdown().await;

    // Stopped: the room talks on; the next start relays it from the stored cursor.
    source.say(2, "while the bridge was stopped");
    let running = start(config, accounts).await;
    assert_eq!(next_post(&mut at_fish).await.content, "while the bridge was stopped");
    crate::harness::settle().await;
    let texts: Vec<String> = fish.posted().into_iter().map(|p| p.content).collect();
    assert_eq!(
        texts,
        [
            "before the outage",
            "during the outage 1",
            "during the outage 2",
            "live again",
            "while the bridge was stopped"
        ],
        "each once, in order"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missevan_fills_the_gap_of_an_outage_and_of_a_restart() {
    let fm = missevan(&[ROOM], None).await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let state = fresh_dir("gaps-missevan");
    let config = format!(
        "{}{}{}\n[[bridge]]\nname = \"live\"\nrooms = [\"missevan.fm:{ROOM}\", \"fishroom.tuna:general\"]\n",
        general(&state),
        missevan_account("fm", &fm, ""),
        account("tuna", &fish, "11", "key"),
    );
    outage_and_restart(&fm, &fish, &config, &["missevan.fm", "fishroom.tuna"]).await;
    let _ = std::fs::remove_dir_all(state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_message_the_history_shows_is_not_sent_twice() {
    let fm = missevan(&[ROOM], None).await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"live\"\nrooms = [\"missevan.fm:{ROOM}\", \"fishroom.tuna:general\"]\n",
        missevan_account("fm", &fm, ""),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["missevan.fm", "fishroom.tuna"]).await;
    // The site takes the message but its answer is lost: the router retries.
    fm.lose_answers(1);
    fish.say("general", "irc", "alice", "only once please");
    let stats = running.daemon().stats();
    eventually("the retry is acknowledged", || stats.relayed.get() == 1).await;
    crate::harness::settle().await;
    let sent: Vec<String> = fm.sent().into_iter().map(|s| s.message).collect();
    assert_eq!(sent, ["[fishroom] alice: only once please"], "the history showed its msg_id: not sent again");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yunhu_fills_the_gap_of_an_outage_and_of_a_restart() {
    let sim = yunhu().await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let state = fresh_dir("gaps-yunhu");
    let config = format!(
        "{}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"yunhu.me:group/big\", \"fishroom.tuna:general\"]\n",
        general(&state),
        yunhu_account("me", &sim, YUNHU_TOKEN, ""),
        account("tuna", &fish, "11", "key"),
    );
    outage_and_restart(&sim, &fish, &config, &["yunhu.me", "fishroom.tuna"]).await;
    let _ = std::fs::remove_dir_all(state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_yunhu_message_the_history_shows_is_not_sent_twice() {
    let sim = yunhu().await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"yunhu.me:group/big\", \"fishroom.tuna:general\"]\n",
        yunhu_account("me", &sim, YUNHU_TOKEN, ""),
        account("tuna", &fish, "11", "key"),
    );
    let mut at_fish = fish.subscribe();
    let running = start(&source, &["yunhu.me", "fishroom.tuna"]).await;
    // A message read first gives the chat its cursor.
    sim.say("big", ("u1", "小明"), "hello");
    assert_eq!(next_post(&mut at_fish).await.content, "hello");
    sim.lose_answers(1);
    fish.say("general", "irc", "alice", "only once please");
    let stats = running.daemon().stats();
    eventually("the retry is acknowledged", || stats.relayed.get() == 2).await;
    crate::harness::settle().await;
    let sends = sim.requests().into_iter().filter(|r| matches!(r, chatbridge::sim::yunhu::Request::Send(_))).count();
    assert_eq!(sends, 1, "the history showed its msg_id: not sent again");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iirose_fills_the_gap_from_the_login_dump() {
    let sim = iirose().await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let state = fresh_dir("gaps-iirose");
    let source = format!(
        "{}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"iirose.rose:{ROSE_ROOM}\", \"fishroom.tuna:general\"]\n",
        general(&state),
        iirose_account("rose", &sim, ""),
        account("tuna", &fish, "11", "key"),
    );
    let mut at_fish = fish.subscribe();
    let running = start(&source, &["iirose.rose", "fishroom.tuna"]).await;
    sim.say(ROSE_ROOM, "u1", "上学", "before the outage");
    assert_eq!(next_post(&mut at_fish).await.content, "before the outage");
    // Our own copy in the room's history must not come back either.
    fish.say("general", "irc", "alice", "from irc");
    crate::harness::eventually("the copy is said", || sim.said().len() == 1).await;

    sim.set_down(true);
    sim.say(ROSE_ROOM, "u1", "上学", "during the outage 1");
    sim.say(ROSE_ROOM, "u2", "放学", "during the outage 2");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sim.set_down(false);
    assert_eq!(next_post(&mut at_fish).await.content, "during the outage 1");
    assert_eq!(next_post(&mut at_fish).await.content, "during the outage 2");
    running.shutdown().await;

    sim.say(ROSE_ROOM, "u3", "下课", "while the bridge was stopped");
    let running = start(&source, &["iirose.rose", "fishroom.tuna"]).await;
    assert_eq!(next_post(&mut at_fish).await.content, "while the bridge was stopped");
    crate::harness::settle().await;
    let texts: Vec<String> = fish.posted().into_iter().filter(|p| p.sender != "alice").map(|p| p.content).collect();
    assert_eq!(
        texts,
        ["before the outage", "during the outage 1", "during the outage 2", "while the bridge was stopped"],
        "each once, in order, and our own copy never"
    );
    assert!(running.daemon().stats().duplicates.get() >= 1);
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(state);
}
