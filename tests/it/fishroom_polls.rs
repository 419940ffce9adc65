//! A Fishroom poll in flight when its session ends: the server takes messages off its queue when it answers,
//! whether or not the client still waits (the simulator does as the real server's BLPOP does), so a poll given
//! up on would lose what it takes. It is let finish: what it brings is relayed while anything takes it in, and
//! counted (`chatbridge_events_lost_after_close_total`) when nothing does any more (issue #30 §3).

use std::time::Duration;

use chatbridge::Reloaded;
use chatbridge::sim::fishroom::{FishroomSim, FishroomSimConfig};

use crate::harness::*;

/// Polls held for `held`: one is in flight whenever the bridge is idle.
async fn slow_fishroom(rooms: &[&str], id: &str, key: &str, held: Duration) -> FishroomSim {
    let config = FishroomSimConfig {
        rooms: rooms.iter().map(|r| r.to_string()).collect(),
        tokens: vec![(id.to_owned(), key.to_owned(), "bridge".to_owned())],
        poll_timeout: held,
        ..FishroomSimConfig::default()
    };
    FishroomSim::start(config).await.expect("the simulator starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_in_flight_when_its_session_is_replaced_still_delivers() {
    let tuna = slow_fishroom(&["general"], "11", "key-tuna", Duration::from_secs(4)).await;
    let lug = fishroom(&["chat"], &[("22", "key-lug", "bridge")]).await;
    let source = |timeout: &str| {
        format!(
            "{FAST}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"fishroom.tuna:general\", \"fishroom.lug:chat\"]\n",
            account("tuna", &tuna, "11", "key-tuna").replace("request_timeout = \"3s\"", timeout),
            account("lug", &lug, "22", "key-lug"),
        )
    };
    let running = start(&source("request_timeout = \"6s\""), &["fishroom.tuna", "fishroom.lug"]).await;
    let stats = running.daemon().stats();
    let mut at_lug = lug.subscribe();
    for (n, timeout) in
        ["request_timeout = \"7s\"", "request_timeout = \"6s\"", "request_timeout = \"8s\""].iter().enumerate()
    {
        // The poll of the session about to be replaced is in flight.
        eventually("a poll is in flight", || tuna.polls() > n).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut config = parse(&source(timeout));
        config.general.state_dir = running.state_dir.clone().expect("durable");
        let applied = running.daemon().reloader().reload(config).await;
        assert!(matches!(&applied, Reloaded::Applied(c) if c.restarted.len() == 1), "{applied:?}");
        // Said once the old session has long closed (it used to give its poll 1 s) while its poll still waits
        // on the server beside the new session's: either may take it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let text = format!("said during hand-over {n}");
        tuna.say("general", "irc", "alice", &text);
        assert_eq!(next_post(&mut at_lug).await.content, text, "not lost to the old session's poll");
    }
    assert_eq!(stats.lost_after_close.get(), 0);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_poll_brings_after_the_daemon_stopped_is_counted() {
    // Held long enough to outlast the shutdown, whatever the machine's load.
    let tuna = slow_fishroom(&["general"], "11", "key-tuna", Duration::from_secs(20)).await;
    let lug = fishroom(&["chat"], &[("22", "key-lug", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"fishroom.tuna:general\", \"fishroom.lug:chat\"]\n",
        account("tuna", &tuna, "11", "key-tuna").replace("request_timeout = \"3s\"", "request_timeout = \"30s\""),
        account("lug", &lug, "22", "key-lug"),
    );
    let running = start(&source, &["fishroom.tuna", "fishroom.lug"]).await;
    let stats = running.daemon().stats();
    eventually("a poll is in flight", || tuna.polls() > 0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.shutdown().await;
    // The daemon has stopped; the poll it had out is answered now: nothing takes the message in, and it is said.
    tuna.say("general", "irc", "alice", "too late");
    eventually("the message the late poll took is counted", || stats.lost_after_close.get() == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_waits_for_the_poll_in_flight_and_delivers_what_it_brings() {
    let tuna = slow_fishroom(&["general"], "11", "key-tuna", Duration::from_secs(4)).await;
    let lug = fishroom(&["chat"], &[("22", "key-lug", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"fishroom.tuna:general\", \"fishroom.lug:chat\"]\n",
        account("tuna", &tuna, "11", "key-tuna").replace("request_timeout = \"3s\"", "request_timeout = \"6s\""),
        account("lug", &lug, "22", "key-lug"),
    );
    let mut running = start(&source, &["fishroom.tuna", "fishroom.lug"]).await;
    eventually("a poll is in flight", || tuna.polls() > 0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut at_lug = lug.subscribe();
    // The stop begins; what is said now goes to the poll the bridge has out, which the stop waits for.
    running.stop.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tuna.say("general", "irc", "alice", "said as the bridge stops");
    let daemon = running.daemon.take().expect("running");
    let summary = tokio::time::timeout(DEADLINE, daemon.wait()).await.expect("the daemon stops");
    assert_eq!(next_post(&mut at_lug).await.content, "said as the bridge stops");
    assert_eq!(summary.undelivered, 0);
}
