//! Heihei live rooms and IM bridged with Fishroom, through the simulators.

use std::time::Duration;

use chatbridge::adapters::AccountState;
use chatbridge::sim::fishroom::FishroomSim;
use chatbridge::sim::heihei::HeiheiSim;
use serde_json::json;

use crate::harness::{
    FAST, HEIHEI_HOST, Running, account, eventually, fishroom, heihei, heihei_account, heihei_following, next_heihei,
    next_post, settle, start, wait_state,
};

/// The host's room and Fishroom `general` in bridge `live`; the host is on air.
async fn bridged(extra: &str) -> (HeiheiSim, FishroomSim, Running) {
    let hh = heihei().await;
    hh.start_live(HEIHEI_HOST);
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"live\"\nrooms = [\"heihei.hh:host/{HEIHEI_HOST}\", \"fishroom.tuna:general\"]\n",
        heihei_account("hh", &hh, extra),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["heihei.hh", "fishroom.tuna"]).await;
    heihei_following(&hh).await;
    (hh, fish, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_both_ways_without_echoes() {
    let (hh, fish, running) = bridged("").await;
    let (mut at_fish, mut at_hh) = (fish.subscribe(), hh.subscribe());
    // Two messages: the simulator alternates the two frame forms.
    hh.say(HEIHEI_HOST, 5, "观众", "你好");
    hh.say(HEIHEI_HOST, 6, "viewer", "second form");
    let first = next_post(&mut at_fish).await;
    assert_eq!((first.sender.as_str(), first.content.as_str()), ("[heihei] 观\u{200B}众", "你好"));
    assert_eq!(next_post(&mut at_fish).await.content, "second form");

    fish.say("general", "irc", "alice", "hi from irc");
    let sent = next_heihei(&mut at_hh).await;
    let live = hh.live_of(HEIHEI_HOST).unwrap();
    assert_eq!(
        (sent.room_id, sent.live_id, sent.text.as_str()),
        (live.room_id, live.live_id, "[fishroom] alice: hi from irc")
    );
    settle().await;
    assert_eq!(fish.posted().len(), 2, "the echo of our message stays: {:?}", fish.posted());
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_codes_reject_stop_or_mark_the_room() {
    let (hh, fish, running) = bridged("").await;
    let stats = running.daemon().stats();
    let mut at_hh = hh.subscribe();
    hh.fail_next_send(700);
    fish.say("general", "irc", "alice", "refused");
    fish.say("general", "irc", "alice", "accepted");
    assert_eq!(next_heihei(&mut at_hh).await.text, "[fishroom] alice: accepted");
    assert_eq!(stats.rejected.get(), 1);

    hh.fail_next_send(733);
    fish.say("general", "irc", "alice", "room gone");
    eventually("733 marks the room unusable", || stats.rejected.get() == 2).await;
    fish.say("general", "irc", "alice", "not sent to a broken room");
    eventually("later messages are dead-lettered", || stats.dead_lettered.get() == 1).await;
    running.shutdown().await;

    let (hh, fish, running) = bridged("").await;
    hh.fail_next_send(720);
    fish.say("general", "irc", "alice", "token gone");
    wait_state(&running, &["heihei.hh"], |s| matches!(s, AccountState::Stopped { reason } if reason.contains("720")))
        .await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_going_off_and_on_air_is_followed_into_the_new_broadcast() {
    let (hh, fish, running) = bridged("").await;
    let mut at_hh = hh.subscribe();
    let first = hh.live_of(HEIHEI_HOST).unwrap();
    hh.stop_live(HEIHEI_HOST);
    tokio::time::sleep(Duration::from_millis(300)).await;
    fish.say("general", "irc", "alice", "said while off air");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(hh.sent().is_empty(), "nothing can be sent while the host is off air");

    let second = hh.start_live(HEIHEI_HOST);
    assert_ne!(first, second);
    let sent = next_heihei(&mut at_hh).await;
    assert_eq!((sent.live_id, sent.text.as_str()), (second.live_id, "[fishroom] alice: said while off air"));
    let mut at_fish = fish.subscribe();
    hh.say(HEIHEI_HOST, 5, "观众", "back on air");
    assert_eq!(next_post(&mut at_fish).await.content, "back on air");
    settle().await;
    assert_eq!(hh.sent().len(), 1, "delivered once");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_for_an_absent_host_expire() {
    let (hh, fish, running) = bridged("offair_max_age = \"500ms\"\n").await;
    let stats = running.daemon().stats();
    hh.stop_live(HEIHEI_HOST);
    tokio::time::sleep(Duration::from_millis(300)).await;
    fish.say("general", "irc", "alice", "too late");
    eventually("the message is given up with a WARN", || stats.rejected.get() == 1).await;
    hh.start_live(HEIHEI_HOST);
    settle().await;
    assert!(hh.sent().is_empty());
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn im_reaches_only_an_im_bridge() {
    let hh = heihei().await;
    hh.start_live(HEIHEI_HOST);
    let fish = fishroom(&["general", "dm"], &[("11", "key", "bridge"), ("12", "key2", "dm")]).await;
    let source = format!(
        "{FAST}{}{}{}\n[[bridge]]\nname = \"live\"\nrooms = [\"heihei.hh:host/{HEIHEI_HOST}\", \"fishroom.tuna:general\"]\n\
         [[bridge]]\nname = \"dm\"\n[[bridge.room]]\nroom = \"heihei.hh:im/10045\"\ndirection = \"in\"\n[[bridge.room]]\nroom = \"fishroom.dm:dm\"\n",
        heihei_account("hh", &hh, ""),
        account("tuna", &fish, "11", "key"),
        account("dm", &fish, "12", "key2"),
    );
    let running = start(&source, &["heihei.hh", "fishroom.tuna", "fishroom.dm"]).await;
    heihei_following(&hh).await;
    let mut at_fish = fish.subscribe();
    let im = |from: u64, text: &str| {
        json!({"msgType": "IM", "msg": {"toUserId": 777, "fromUserId": from, "msgType": "text", "content": {"text": text},
            "msgId": 1234567890123456u64, "createTime": 1348831860}, "users": {from.to_string(): {"displayName": "小红"}}})
    };
    hh.push(None, im(10045, "psst"));
    hh.push(None, im(20000, "no bridge for me"));
    let post = next_post(&mut at_fish).await;
    assert_eq!(
        (post.room.as_str(), post.sender.as_str(), post.content.as_str()),
        ("dm", "[heihei] 小\u{200B}红", "psst")
    );
    settle().await;
    assert_eq!(fish.posted().len(), 1, "IM never enters the room bridge: {:?}", fish.posted());
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_items_are_counted_and_the_socket_goes_on() {
    let (hh, fish, running) = bridged("").await;
    let mut at_fish = fish.subscribe();
    let room = hh.live_of(HEIHEI_HOST).unwrap().room_id;
    let good =
        json!({"msgType": "text", "fromUserId": 5, "fromUserName": "v", "text": "kept", "roomId": room}).to_string();
    hh.push_raw(&json!([{"msg": "{broken"}, {"msg": good}]).to_string());
    hh.push_raw("not json at all");
    assert_eq!(next_post(&mut at_fish).await.content, "kept");
    eventually("both are counted", || running.daemon().stats().malformed.get() == 2).await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_pings_mean_a_dead_socket() {
    let (hh, fish, running) = bridged("").await;
    hh.mute_connections();
    // ping_interval is 1 s here: after three unanswered pings the socket is replaced.
    wait_state(&running, &["heihei.hh"], |s| matches!(s, AccountState::BackingOff { .. })).await;
    wait_state(&running, &["heihei.hh"], |s| *s == AccountState::Connected).await;
    let mut at_fish = fish.subscribe();
    hh.say(HEIHEI_HOST, 5, "观众", "on the new socket");
    assert_eq!(next_post(&mut at_fish).await.content, "on the new socket");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_init_is_tried_again_until_it_answers() {
    let mut hh = heihei().await;
    hh.start_live(HEIHEI_HOST);
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"live\"\nrooms = [\"heihei.hh:host/{HEIHEI_HOST}\", \"fishroom.tuna:general\"]\n",
        heihei_account("hh", &hh, ""),
        account("tuna", &fish, "11", "key"),
    );
    // The init URL refuses connections for the first three seconds of the daemon's life.
    let (restarted, running) = tokio::join!(hh.restart(Duration::from_secs(3)), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        start(&source, &["fishroom.tuna"]).await
    });
    restarted.unwrap();
    wait_state(&running, &["heihei.hh"], |s| *s == AccountState::Connected).await;
    heihei_following(&hh).await;
    let mut at_fish = fish.subscribe();
    hh.say(HEIHEI_HOST, 5, "观众", "after the outage");
    assert_eq!(next_post(&mut at_fish).await.content, "after the outage");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_init_stops_the_account_at_start() {
    let hh = heihei().await;
    hh.revoke_token();
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"live\"\nrooms = [\"heihei.hh:host/{HEIHEI_HOST}\", \"fishroom.tuna:general\"]\n",
        heihei_account("hh", &hh, ""),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["fishroom.tuna"]).await;
    wait_state(
        &running,
        &["heihei.hh"],
        |s| matches!(s, AccountState::Stopped { reason } if reason.contains("init refused") && reason.contains("720")),
    )
    .await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_broadcast_room_ends_with_its_broadcast() {
    let hh = heihei().await;
    let live = hh.start_live(HEIHEI_HOST);
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"once\"\nrooms = [\"heihei.hh:live/{}\", \"fishroom.tuna:general\"]\n",
        heihei_account("hh", &hh, "offair_max_age = \"300ms\"\n"),
        account("tuna", &fish, "11", "key"),
        live.live_id,
    );
    let running = start(&source, &["heihei.hh", "fishroom.tuna"]).await;
    heihei_following(&hh).await;
    assert_eq!(hh.joins(), [live.live_id]);
    let mut at_fish = fish.subscribe();
    hh.say(HEIHEI_HOST, 5, "观众", "during");
    assert_eq!(next_post(&mut at_fish).await.content, "during");
    hh.stop_live(HEIHEI_HOST);
    hh.start_live(HEIHEI_HOST);
    settle().await;
    hh.say(HEIHEI_HOST, 5, "观众", "another broadcast: not this room");
    settle().await;
    assert_eq!(hh.joins(), [live.live_id], "a live/ room does not move on to the next broadcast");
    assert_eq!(fish.posted().len(), 1);
    running.shutdown().await;
}
