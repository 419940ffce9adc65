//! IIROSE rooms bridged with Fishroom and with each other, through the simulators.

use std::time::Duration;

use chatbridge::adapters::AccountState;

use crate::harness::{
    FAST, LILY_ROOM, ROSE_ROOM, Running, account, eventually, fishroom, iirose, iirose_account, next_post, next_said,
    settle, start, wait_state,
};

use chatbridge::sim::fishroom::FishroomSim;
use chatbridge::sim::iirose::IiroseSim;

/// IIROSE room `ROSE_ROOM` (account rose) and Fishroom `general` in bridge `b`.
async fn with_fishroom(bridge_extra: &str) -> (IiroseSim, FishroomSim, Running) {
    let sim = iirose().await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    // Said before the bridge arrives: in the login dump's history, never relayed.
    sim.say(ROSE_ROOM, "u0", "oldtimer", "from before the bridge");
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"iirose.rose:{ROSE_ROOM}\", \"fishroom.tuna:general\"]\n{bridge_extra}",
        iirose_account("rose", &sim, ""),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["iirose.rose", "fishroom.tuna"]).await;
    (sim, fish, running)
}

/// Two IIROSE rooms bridged by two accounts (rose in ROSE_ROOM, lily in LILY_ROOM).
async fn two_rooms() -> (IiroseSim, Running) {
    let sim = iirose().await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"roses\"\nrooms = [\"iirose.rose:{ROSE_ROOM}\", \"iirose.lily:{LILY_ROOM}\"]\n",
        iirose_account("rose", &sim, ""),
        iirose_account("lily", &sim, ""),
    );
    let running = start(&source, &["iirose.rose", "iirose.lily"]).await;
    (sim, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_with_fishroom_both_ways_without_echoes_or_history() {
    let (sim, fish, running) = with_fishroom("").await;
    let (mut at_fish, mut at_rose) = (fish.subscribe(), sim.subscribe());
    sim.say(ROSE_ROOM, "u1", "小明", "你好 <b>&amp;</b> \"quoted\"");
    let post = next_post(&mut at_fish).await;
    assert_eq!(
        (post.sender.as_str(), post.content.as_str()),
        ("[iirose] 小\u{200B}明", "你好 <b>&amp;</b> \"quoted\"")
    );

    fish.say("general", "irc", "alice", "hi there");
    let said = next_said(&mut at_rose).await;
    assert_eq!(said.text, "[fishroom] alice: hi there");
    assert!(said.id.len() == 12 && said.id.bytes().all(|b| b.is_ascii_digit()), "{}", said.id);
    assert_eq!((said.room.as_str(), said.name.as_str(), said.to), (ROSE_ROOM, "rosebot", None));

    settle().await;
    assert_eq!(fish.posted().len(), 1, "no history, no echo: {:?}", fish.posted());
    assert_eq!(sim.said().len(), 1);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_relayed_in_time_order() {
    let (sim, fish, running) = with_fishroom("").await;
    let mut at_fish = fish.subscribe();
    // Long enough to travel gzipped.
    let long = "长".repeat(120);
    sim.say_batch(ROSE_ROOM, &[("u1", "a", "first"), ("u2", "b", &long), ("u3", "c", "third")]);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next_post(&mut at_fish).await.content);
    }
    assert_eq!(got, ["first".to_owned(), long, "third".to_owned()]);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotes_and_mentions_in_both_directions() {
    let (sim, running) = two_rooms().await;
    let mut said = sim.subscribe();
    // bob has spoken in lily's room: the bridge knows him there.
    sim.say(LILY_ROOM, "ub", "bob", "hello");
    assert_eq!(next_said(&mut said).await.room, ROSE_ROOM);
    let question = "is the stream on?";
    sim.say(ROSE_ROOM, "ua", "alice", question);
    let copy = next_said(&mut said).await;
    assert_eq!((copy.room.as_str(), copy.text.as_str()), (LILY_ROOM, "[iirose] alice: is the stream on?"));

    // carol quotes alice in rose's room and mentions bob.
    let time = chatbridge::model::Time::now().0 / 1000;
    sim.say(ROSE_ROOM, "uc", "carol", &format!("{question} (_hr) alice_{time} (hr_) yes!  [*bob*]  see?"));
    let reply = next_said(&mut said).await;
    assert_eq!(reply.room, LILY_ROOM);
    // The quote points at lily's copy (its sender and text), and bob is a native mention there.
    let (quoted, new) = reply.text.split_once(" (hr_) ").expect("quote syntax");
    assert!(quoted.starts_with("[iirose] alice: is the stream on? (_hr) lilybot_"), "{}", reply.text);
    assert_eq!(new, "[iirose] carol: yes!  [*bob*]  see?");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recall_in_one_room_recalls_the_copy_in_the_other() {
    let (sim, running) = two_rooms().await;
    let mut said = sim.subscribe();
    let original = sim.say(ROSE_ROOM, "ua", "alice", "oops, wrong room");
    let copy = next_said(&mut said).await;
    assert_eq!(copy.room, LILY_ROOM);
    sim.recall(ROSE_ROOM, "ua", &original);
    eventually("lily recalls its copy", || !sim.recalls().is_empty()).await;
    settle().await;
    assert_eq!(sim.recalls(), [(LILY_ROOM.to_owned(), "lilybot".to_owned(), copy.id)]);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_anonymous_messages_never_reach_a_room_bridge() {
    let sim = iirose().await;
    let fish = fishroom(&["general", "dm"], &[("11", "key", "bridge"), ("12", "key2", "dm")]).await;
    let source = format!(
        "{FAST}{}{}{}\n[[bridge]]\nname = \"room\"\nrooms = [\"iirose.rose:{ROSE_ROOM}\", \"fishroom.tuna:general\"]\n\
         [[bridge]]\nname = \"dm\"\nrooms = [\"iirose.rose:user/u9\", \"fishroom.dm:dm\"]\n",
        iirose_account("rose", &sim, ""),
        account("tuna", &fish, "11", "key"),
        account("dm", &fish, "12", "key2"),
    );
    let running = start(&source, &["iirose.rose", "fishroom.tuna", "fishroom.dm"]).await;
    let mut at_fish = fish.subscribe();
    sim.say_private("rosebot", "u9", "dora", "just between us", false);
    let post = next_post(&mut at_fish).await;
    assert_eq!(
        (post.room.as_str(), post.sender.as_str(), post.content.as_str()),
        ("dm", "[iirose] d\u{200B}ora", "just between us")
    );
    sim.say_private("rosebot", "u9", "dora", "guess who", true);
    sim.say_private("rosebot", "u7", "eve", "to nobody's bridge", false);
    settle().await;
    let posted = fish.posted();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert!(posted.iter().all(|p| p.room != "general"));

    // Answering in the DM bridge goes back privately.
    let mut said = sim.subscribe();
    fish.say("dm", "irc", "frank", "hello dora");
    let reply = next_said(&mut said).await;
    assert_eq!((reply.to.as_deref(), reply.text.as_str()), (Some("u9"), "[fishroom] frank: hello dora"));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_leaves_and_broadcasts_follow_the_events_filter() {
    let (sim, fish, running) = with_fishroom("events = [\"message\", \"join\", \"leave\"]\n").await;
    let mut at_fish = fish.subscribe();
    sim.presence(ROSE_ROOM, "uc", "carol", true);
    assert_eq!(next_post(&mut at_fish).await.content, "c\u{200B}arol joined");
    sim.broadcast("上学", "site-wide news");
    sim.raw(ROSE_ROOM, "&1some media>now");
    sim.presence(ROSE_ROOM, "uc", "carol", false);
    assert_eq!(next_post(&mut at_fish).await.content, "c\u{200B}arol left", "the broadcast is a notice: not asked for");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_a_drop_and_a_kick() {
    let (sim, fish, running) = with_fishroom("").await;
    let mut at_fish = fish.subscribe();
    sim.drop_connections();
    wait_state(&running, &["iirose.rose"], |s| matches!(s, AccountState::BackingOff { .. })).await;
    wait_state(&running, &["iirose.rose"], |s| *s == AccountState::Connected).await;
    sim.kick("rosebot");
    eventually("logged in again after the kick", || sim.logins().len() == 3).await;
    wait_state(&running, &["iirose.rose"], |s| *s == AccountState::Connected).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    sim.say(ROSE_ROOM, "u1", "小明", "still bridged");
    assert_eq!(next_post(&mut at_fish).await.content, "still bridged");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_errors_stop_the_account_with_their_cause() {
    for (code, cause) in [
        ("1", "no such user"),
        ("2", "wrong password"),
        ("5", "room password"),
        ("n0", "cannot be entered"),
        ("x7", "banned"),
        ("4", "daily login attempts"),
    ] {
        let sim = iirose().await;
        sim.refuse_logins(Some(code));
        let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
        let source = format!(
            "{FAST}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"iirose.rose:{ROSE_ROOM}\", \"fishroom.tuna:general\"]\n",
            iirose_account("rose", &sim, ""),
            account("tuna", &fish, "11", "key"),
        );
        let running = start(&source, &["fishroom.tuna"]).await;
        wait_state(
            &running,
            &["iirose.rose"],
            |s| matches!(s, AccountState::Stopped { reason } if reason.contains(cause)),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(sim.logins().is_empty());
        let states = running.daemon().states();
        let state = states.borrow().iter().find(|(a, _)| a.to_string() == "iirose.rose").map(|(_, s)| s.clone());
        if code == "4" {
            assert!(
                matches!(&state, Some(AccountState::Stopped { reason }) if reason.contains("trying again in")),
                "{state:?}"
            );
        }
        running.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_goes_silent_is_left_and_logged_into_again() {
    let (sim, fish, running) = with_fishroom("").await;
    assert_eq!(sim.logins().len(), 1);
    // Logged in, then nothing: no packet, no pong. The idle timeout (three heartbeats here) ends the session.
    sim.mute_connections();
    wait_state(&running, &["iirose.rose"], |s| matches!(s, AccountState::BackingOff { .. })).await;
    // The server still holds the silent session, so the name is taken ("0"): not a reason to stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let states = running.daemon().states();
    let state = states.borrow().iter().find(|(a, _)| a.to_string() == "iirose.rose").map(|(_, s)| s.clone());
    assert!(!matches!(state, Some(AccountState::Stopped { .. })), "{state:?}");
    // The server drops the dead session at last: the next login goes through.
    sim.drop_connections();
    wait_state(&running, &["iirose.rose"], |s| *s == AccountState::Connected).await;
    assert_eq!(sim.logins().len(), 2);
    let mut at_fish = fish.subscribe();
    sim.say(ROSE_ROOM, "5b0fe8a3b1aaa", "上学", "after the silence");
    assert!(next_post(&mut at_fish).await.content.contains("after the silence"));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecognised_login_answer_never_stops_the_account() {
    let sim = iirose().await;
    // `%*"3` is no documented code: the adapter warns, waits out the login timeout and tries again.
    sim.refuse_logins(Some("3"));
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"iirose.rose:{ROSE_ROOM}\", \"fishroom.tuna:general\"]\n",
        iirose_account("rose", &sim, "").replace("request_timeout = \"3s\"", "request_timeout = \"1s\""),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["fishroom.tuna"]).await;
    wait_state(&running, &["iirose.rose"], |s| matches!(s, AccountState::BackingOff { .. })).await;
    let states = running.daemon().states();
    let state = states.borrow().iter().find(|(a, _)| a.to_string() == "iirose.rose").map(|(_, s)| s.clone());
    assert!(!matches!(state, Some(AccountState::Stopped { .. })), "{state:?}");
    assert!(running.daemon().stats().malformed.get() > 0, "the odd answer is counted");
    sim.refuse_logins(None);
    wait_state(&running, &["iirose.rose"], |s| *s == AccountState::Connected).await;
    let mut at_fish = fish.subscribe();
    sim.say(ROSE_ROOM, "5b0fe8a3b1aaa", "上学", "after the odd answer");
    assert!(next_post(&mut at_fish).await.content.contains("after the odd answer"));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_without_its_echo_is_retried_then_given_up() {
    let (sim, fish, running) = with_fishroom("").await;
    let stats = running.daemon().stats();
    sim.swallow_messages(true);
    fish.say("general", "irc", "alice", "into the void");
    // echo_timeout is 2 s here and max_attempts 3: given up after three silent attempts.
    eventually("the message is given up", || stats.dead_lettered.get() == 1).await;
    sim.swallow_messages(false);
    let mut said = sim.subscribe();
    fish.say("general", "irc", "alice", "heard this time");
    assert_eq!(next_said(&mut said).await.text, "[fishroom] alice: heard this time");
    eventually("its echo confirms it", || stats.relayed.get() == 1).await;
    running.shutdown().await;
}

/// With `max_text_len`, a long text goes out as ordered parts, each said with an id of its own, and a link that fits
/// a part is not cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_text_len_splits_without_cutting_a_link() {
    let sim = iirose().await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"b\"\nformat = \"{{nick}}: {{text}}\"\n\
         rooms = [\"iirose.rose:{ROSE_ROOM}\", \"fishroom.tuna:general\"]\n",
        iirose_account("rose", &sim, "max_text_len = 20\n"),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["iirose.rose", "fishroom.tuna"]).await;
    let mut at_rose = sim.subscribe();
    fish.say("general", "irc", "alice", "one two three four five https://ex.am/abcd x");
    let mut parts = Vec::new();
    for _ in 0..3 {
        parts.push(next_said(&mut at_rose).await);
    }
    let texts: Vec<&str> = parts.iter().map(|p| p.text.as_str()).collect();
    // The second part ends before the link (cutting at 20 would have left "four five https://ex").
    assert_eq!(texts, ["alice: one two three", "four five", "https://ex.am/abcd x"]);
    let ids: std::collections::HashSet<&str> = parts.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "each part has its own id");
    running.shutdown().await;
}
