//! Scenarios written once and run over all five platforms through the simulators' common contract
//! (`chatbridge::sim::contract`): relaying both ways, garbage followed by a valid message, dropped connections,
//! and a server that goes down and comes back — each platform bridged with a Fishroom room.

use std::time::Duration;

use chatbridge::adapters::AccountState;
use chatbridge::sim::contract::Simulator;

use crate::harness::*;

/// Says `prefix n` on `sim` until the Fishroom peer gets one of them (what is said while a connection is down may
/// or may not come back through the platform's history).
async fn until_relayed(sim: &dyn Simulator, peer: &chatbridge::sim::fishroom::FishroomSim, prefix: &str) {
    let mut posted = peer.subscribe();
    for n in 0..100 {
        sim.say(&format!("{prefix} {n}"));
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Ok(Ok(post)) = tokio::time::timeout_at(deadline, posted.recv()).await {
            if post.content.contains(prefix) {
                return;
            }
        }
    }
    panic!("{}: nothing said after `{prefix}` was relayed", sim.platform());
}

async fn until_sent(sim: &dyn Simulator, text: &str) {
    eventually(&format!("{}: the bridge sends `{text}`", sim.platform()), || {
        sim.sent_texts().iter().any(|t| t.contains(text))
    })
    .await;
}

async fn scenario(mut sim: Box<dyn Simulator>) {
    let platform = sim.platform();
    let peer = fishroom(&["chat"], &[("22", "key-lug", "bridge")]).await;
    let room = sim.room();
    let source = format!(
        "{PATIENT}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"{platform}.p:{room}\", \"fishroom.lug:chat\"]\n",
        sim.account("p"),
        account("lug", &peer, "22", "key-lug"),
    );
    let this = format!("{platform}.p");
    let running = start(&source, &[&this, "fishroom.lug"]).await;
    // Both ways.
    until_relayed(sim.as_ref(), &peer, "hello from the platform").await;
    peer.say("chat", "irc", "bob", "hello to the platform");
    until_sent(sim.as_ref(), "hello to the platform").await;
    // Garbage, then a valid message: skipped, and the next one goes through.
    sim.garbage();
    until_relayed(sim.as_ref(), &peer, "after garbage").await;
    let malformed = running.daemon().stats().malformed.get();
    assert!(malformed >= 1, "{platform}: the garbage is counted as malformed ({malformed})");
    // Every connection dropped: reconnected.
    sim.drop_connections();
    until_relayed(sim.as_ref(), &peer, "after a drop").await;
    // Down for a while, then back on the same port: reconnected, and what waited for it is delivered.
    sim.restart(Duration::from_millis(300)).await.expect("the simulator comes back");
    peer.say("chat", "irc", "bob", "waited for the platform");
    until_relayed(sim.as_ref(), &peer, "after a restart").await;
    until_sent(sim.as_ref(), "waited for the platform").await;
    wait_state(&running, &[&this], |s| *s == AccountState::Connected).await;
    let summary = running.shutdown().await;
    assert_eq!(summary.undelivered, 0, "{platform}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fishroom_keeps_the_contract() {
    scenario(Box::new(fishroom(&["general"], &[("11", "key-tuna", "bridge")]).await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missevan_keeps_the_contract() {
    scenario(Box::new(missevan(&[868858631], None).await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iirose_keeps_the_contract() {
    scenario(Box::new(iirose().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heihei_keeps_the_contract() {
    scenario(Box::new(heihei().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yunhu_keeps_the_contract() {
    scenario(Box::new(yunhu().await)).await;
}
