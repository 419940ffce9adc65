//! A bridge that says when a side is down (issue #32 §4): one line when an account has been down for
//! `notice_after`, one when it is back with what was kept for it, none for outages shorter than that, and never to
//! the room that is down.

use std::time::Duration;

use crate::harness::*;

/// The pair with `notices = true` and a short `notice_after`.
async fn running(pair: &Pair) -> Running {
    let source =
        pair.config(PATIENT).replace("name = \"b\"\n", "name = \"b\"\nnotices = true\nnotice_after = \"1s\"\n");
    start(&source, &["fishroom.tuna", "fishroom.lug"]).await
}

fn contents(sim: &chatbridge::sim::fishroom::FishroomSim) -> Vec<String> {
    sim.posted().into_iter().map(|p| p.content).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_told_once_and_its_end_with_what_was_kept() {
    let pair = Pair::start().await;
    let running = running(&pair).await;
    let Pair { tuna, mut lug } = pair;
    let outage = tokio::spawn(async move {
        lug.restart(Duration::from_secs(4)).await.unwrap();
        lug
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    tuna.say("general", "irc", "alice", "said while lug is away");
    eventually("tuna is told lug is down", || {
        contents(&tuna).iter().any(|c| c.contains("fishroom.lug is unreachable; messages to it are kept"))
    })
    .await;
    let lug = outage.await.unwrap();
    eventually("the kept message reaches lug", || contents(&lug).iter().any(|c| c == "said while lug is away")).await;
    eventually("tuna is told lug is back", || contents(&tuna).iter().any(|c| c.contains("fishroom.lug is back"))).await;
    let told = contents(&tuna);
    assert_eq!(told.iter().filter(|c| c.contains("unreachable")).count(), 1, "{told:?}");
    let back: Vec<_> = told.iter().filter(|c| c.contains("is back")).collect();
    assert_eq!(back.len(), 1, "{told:?}");
    assert!(back[0].contains("1 queued message delivered"), "{back:?}");
    assert!(
        contents(&lug).iter().all(|c| !c.contains("unreachable") && !c.contains("is back")),
        "never to the room that is down"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_account_does_not_spam_the_rooms() {
    let pair = Pair::start().await;
    let running = running(&pair).await;
    // Connections cut again and again, each outage shorter than notice_after.
    for _ in 0..5 {
        pair.lug.drop_connections();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let told = contents(&pair.tuna);
    assert!(told.iter().all(|c| !c.contains("unreachable") && !c.contains("is back")), "{told:?}");
    running.shutdown().await;
}
