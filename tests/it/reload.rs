//! A reload applied to the running daemon: what did not change stays connected, what changed takes effect
//! for the next message, accounts come and go without losing what was queued for them.

use std::time::Duration;

use chatbridge::{Changes, Reloaded};

use crate::harness::*;

fn ids(list: &[&str]) -> Vec<chatbridge::model::AccountId> {
    list.iter()
        .map(|a| {
            let (platform, name) = a.split_once('.').unwrap();
            chatbridge::model::AccountId::new(platform.parse().unwrap(), name)
        })
        .collect()
}

async fn reload(running: &Running, source: &str) -> Reloaded {
    let mut config = parse(source);
    // The store stays where the daemon opened it (a new state_dir would be a restart).
    config.general.state_dir = running.state_dir.clone().expect("a durable test daemon");
    tokio::time::timeout(DEADLINE, running.daemon().reloader().reload(config)).await.expect("the reload answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_accounts_stay_connected_while_formats_change_for_the_next_message() {
    let tuna = fishroom(&["general"], &[("11", "key-tuna", "bridge")]).await;
    let rose = iirose().await;
    let source = |format: &str| {
        format!(
            "{PATIENT}{}{}\n[[bridge]]\nname = \"b\"\nformat = \"{format}\"\nrooms = [\"iirose.rose:{ROSE_ROOM}\", \"fishroom.tuna:general\"]\n",
            account("tuna", &tuna, "11", "key-tuna"),
            iirose_account("rose", &rose, ""),
        )
    };
    let running = start(&source("[{platform}] {nick}: {text}"), &["iirose.rose", "fishroom.tuna"]).await;
    let mut said = rose.subscribe();
    tuna.say("general", "irc", "alice", "before");
    assert_eq!(next_said(&mut said).await.text, "[fishroom] alice: before");
    assert_eq!(rose.logins().len(), 1);
    let applied = reload(&running, &source("<{nick}> {text}")).await;
    assert!(matches!(&applied, Reloaded::Applied(c) if *c == Changes { kept: 2, ..Changes::default() }), "{applied:?}");
    tuna.say("general", "irc", "alice", "after");
    assert_eq!(next_said(&mut said).await.text, "<alice> after", "the new format, for the next message");
    settle().await;
    assert_eq!(rose.logins().len(), 1, "the IIROSE session was not touched");
    let polls = tuna.polls();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(tuna.polls() > polls, "Fishroom goes on polling");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_account_starts_and_a_removed_one_delivers_its_queue_then_closes() {
    let pair = Pair::start().await;
    let third = fishroom(&["room"], &[("33", "key-third", "bridge")]).await;
    let first = format!(
        "{PATIENT}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"fishroom.tuna:general\", \"fishroom.lug:chat\"]\n",
        account("tuna", &pair.tuna, "11", "key-tuna"),
        account("lug", &pair.lug, "22", "key-lug"),
    );
    let running = start(&first, &["fishroom.tuna", "fishroom.lug"]).await;
    // Two messages wait for lug, whose server fails every post.
    pair.lug.fail_posts(true);
    pair.tuna.say("general", "irc", "alice", "queued one");
    pair.tuna.say("general", "irc", "alice", "queued two");
    eventually("lug's posts fail", || pair.lug.fail_count() > 1).await;
    // lug leaves, third comes in.
    let second = format!(
        "{PATIENT}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"fishroom.tuna:general\", \"fishroom.third:room\"]\n",
        account("tuna", &pair.tuna, "11", "key-tuna"),
        account("third", &third, "33", "key-third"),
    );
    let applied = reload(&running, &second).await;
    let expected =
        Changes { added: ids(&["fishroom.third"]), removed: ids(&["fishroom.lug"]), kept: 1, ..Changes::default() };
    assert!(matches!(&applied, Reloaded::Applied(c) if *c == expected), "{applied:?}");
    wait_state(&running, &["fishroom.third"], |s| *s == chatbridge::adapters::AccountState::Connected).await;
    let mut at_third = third.subscribe();
    pair.tuna.say("general", "irc", "alice", "to the new room");
    assert_eq!(next_post(&mut at_third).await.content, "to the new room");
    // lug is draining: what was queued for it is delivered once its server takes posts again, then it closes.
    assert!(running.daemon().states().borrow().keys().any(|a| a.to_string() == "fishroom.lug"), "still draining");
    let mut at_lug = pair.lug.subscribe();
    pair.lug.fail_posts(false);
    assert_eq!(next_post(&mut at_lug).await.content, "queued one");
    assert_eq!(next_post(&mut at_lug).await.content, "queued two");
    eventually("lug is closed and forgotten", || {
        !running.daemon().states().borrow().keys().any(|a| a.to_string() == "fishroom.lug")
    })
    .await;
    settle().await;
    let polls = pair.lug.polls();
    settle().await;
    assert_eq!(pair.lug.polls(), polls, "nothing polls lug any more");
    assert_eq!(pair.lug.posted().len(), 2, "nothing new went to lug: {:?}", pair.lug.posted());
    let summary = running.shutdown().await;
    assert_eq!(summary.undelivered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_account_gets_a_new_session_and_keeps_its_queue() {
    let pair = Pair::start().await;
    let rose = iirose().await;
    let source = |lug_timeout: &str, colour: &str| {
        format!(
            "{PATIENT}{}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"fishroom.tuna:general\", \"fishroom.lug:chat\", \"iirose.rose:{ROSE_ROOM}\"]\n",
            account("tuna", &pair.tuna, "11", "key-tuna"),
            account("lug", &pair.lug, "22", "key-lug").replace("request_timeout = \"3s\"", lug_timeout),
            iirose_account("rose", &rose, colour),
        )
    };
    let running = start(
        &source("request_timeout = \"3s\"", "color = \"ffcc00\"\n"),
        &["fishroom.tuna", "fishroom.lug", "iirose.rose"],
    )
    .await;
    pair.lug.fail_posts(true);
    pair.tuna.say("general", "irc", "alice", "waits for lug");
    eventually("lug's posts fail", || pair.lug.fail_count() > 0).await;
    assert_eq!(rose.logins().len(), 1);
    let applied = reload(&running, &source("request_timeout = \"4s\"", "color = \"00ccff\"\n")).await;
    let expected = Changes { restarted: ids(&["iirose.rose", "fishroom.lug"]), kept: 1, ..Changes::default() };
    assert!(matches!(&applied, Reloaded::Applied(c) if *c == expected), "{applied:?}");
    eventually("rose logs in again", || rose.logins().len() == 2).await;
    wait_state(&running, &["fishroom.lug", "iirose.rose"], |s| *s == chatbridge::adapters::AccountState::Connected)
        .await;
    // The queued message went over to lug's new session and is delivered once, in order with the next.
    let mut at_lug = pair.lug.subscribe();
    pair.lug.fail_posts(false);
    assert_eq!(next_post(&mut at_lug).await.content, "waits for lug");
    pair.tuna.say("general", "irc", "alice", "next");
    assert_eq!(next_post(&mut at_lug).await.content, "next");
    settle().await;
    let contents: Vec<String> = pair.lug.posted().into_iter().map(|p| p.content).collect();
    assert_eq!(contents, ["waits for lug", "next"]);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_shape_the_store_or_listeners_ask_for_a_restart() {
    let pair = Pair::start().await;
    let running = start(&pair.config(PATIENT), &["fishroom.tuna", "fishroom.lug"]).await;
    let changed = pair.config(&PATIENT.replace("[general]\n", "[general]\nqueue_capacity = 10\n"));
    match reload(&running, &changed).await {
        Reloaded::NeedsRestart { keys, .. } => assert_eq!(keys, ["queue_capacity"]),
        other => panic!("{other:?}"),
    }
    // The media store is opened at start: turning it on waits for a restart too.
    let media = pair.config(&PATIENT.replace("[general]\n", "[general]\nhttp_listen = \"127.0.0.1:0\"\n"));
    let media = media.replacen("\n[accounts", "\n[media]\npublic_url = \"https://media.example.org\"\n\n[accounts", 1);
    match reload(&running, &media).await {
        Reloaded::NeedsRestart { keys, .. } => assert_eq!(keys, ["http_listen", "[media]"]),
        other => panic!("{other:?}"),
    }
    // The running daemon is untouched.
    let mut at_lug = pair.lug.subscribe();
    pair.tuna.say("general", "irc", "alice", "still here");
    assert_eq!(next_post(&mut at_lug).await.content, "still here");
    running.shutdown().await;
}
