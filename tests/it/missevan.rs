//! Missevan live rooms bridged with Fishroom, through both simulators.

use std::time::Duration;

use chatbridge::adapters::AccountState;
use chatbridge::sim::missevan::RawFrame;
use serde_json::json;

use crate::harness::{
    FAST, MISSEVAN_BOT_ID, Running, account, eventually, fishroom, missevan, missevan_account, next_post, next_sent,
    settle, start, wait_state,
};

const ROOM: u64 = 868858631;

/// Missevan room 868858631 and Fishroom `general` in bridge `live`.
async fn bridged(
    forbidden: Option<&str>,
    extra: &str,
    bridge_extra: &str,
) -> (chatbridge::sim::missevan::MissevanSim, chatbridge::sim::fishroom::FishroomSim, Running) {
    let fm = missevan(&[ROOM], forbidden).await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"live\"\nrooms = [\"missevan.fm:{ROOM}\", \"fishroom.tuna:general\"]\n{bridge_extra}",
        missevan_account("fm", &fm, extra),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["missevan.fm", "fishroom.tuna"]).await;
    (fm, fish, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_both_ways_with_formats_and_no_echo_loop() {
    let (fm, fish, running) = bridged(None, "", "format = \"{nick}@{platform}: {text}\"\n").await;
    let (mut at_fish, mut at_fm) = (fish.subscribe(), fm.subscribe());

    // Text frame, then a Brotli binary frame: the simulator alternates.
    fm.say(ROOM, 42, "小明", "@主播 晚上好\u{200B}");
    let post = next_post(&mut at_fish).await;
    assert_eq!((post.sender.as_str(), post.content.as_str()), ("[missevan] 小\u{200B}明", "@主播 晚上好"));
    fm.say(ROOM, 43, "阿花", "second, in a binary frame");
    assert_eq!(next_post(&mut at_fish).await.content, "second, in a binary frame");

    fish.say("general", "irc", "alice", "hi from irc");
    let sent = next_sent(&mut at_fm).await;
    assert_eq!(sent.message, "alice@fishroom: hi from irc");
    assert_eq!(sent.user_id, MISSEVAN_BOT_ID);
    assert_eq!(uuid::Uuid::parse_str(&sent.msg_id).map(|u| u.get_version_num()), Ok(4));

    // The site echoes our message on the socket with its msg_id: it must not come back to Fishroom.
    settle().await;
    assert_eq!(fish.posted().len(), 2, "{:?}", fish.posted());
    assert_eq!(fm.sent().len(), 1);
    assert!(running.daemon().stats().echoes.get() >= 2);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_foreign_horns_and_malformed_frames() {
    let (fm, fish, running) =
        bridged(None, "", "events = [\"message\", \"notice\", \"gift\", \"join\"]\ngift_combo = \"0s\"\n").await;
    let mut at_fish = fish.subscribe();
    fm.horn(115351164, "<font color=\"#842D11\">elsewhere</font>");
    fm.push_raw(ROOM, RawFrame::Binary(vec![1, 200, 0, 0, 0xde, 0xad]));
    fm.push_raw(ROOM, RawFrame::Text("{\"type\":".into()));
    fm.push(
        ROOM,
        vec![
            json!({"type": "gift", "event": "send", "room_id": ROOM, "user": {"user_id": 7, "username": "giver"},
                "gift": {"name": "小鱼干", "price": 10, "num": 3}}),
            json!({"type": "member", "event": "join_queue", "room_id": ROOM,
                "queue": [{"user_id": 8, "username": "newcomer"}]}),
            json!({"type": "notify", "event": "horn", "room_id": ROOM,
                "message": "<font color=\"#FFF\">本房间</font>&amp;公告"}),
            json!({"type": "room", "event": "statistics", "room_id": ROOM, "statistics": {"online": 3}}),
        ],
    );
    let mut got = Vec::new();
    for _ in 0..3 {
        let post = next_post(&mut at_fish).await;
        got.push(format!("{} | {}", post.sender, post.content));
    }
    assert_eq!(
        got,
        [
            "[missevan] g\u{200B}iver | g\u{200B}iver sent 3 × 小鱼干",
            "[missevan] n\u{200B}ewcomer | n\u{200B}ewcomer joined",
            "[missevan]  | 本房间&公告"
        ]
    );
    settle().await;
    assert_eq!(fish.posted().len(), 3, "the foreign horn and the statistics stay out");
    assert_eq!(running.daemon().stats().malformed.get(), 2);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_join_is_reported_and_other_rooms_go_on() {
    let fm = missevan(&[ROOM], None).await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"live\"\nrooms = [\"missevan.fm:{ROOM}\", \"missevan.fm:404404\", \"fishroom.tuna:general\"]\n",
        missevan_account("fm", &fm, ""),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["missevan.fm", "fishroom.tuna"]).await;
    let stats = running.daemon().stats();
    eventually("the unknown room is reported", || stats.rooms_unusable.get() == 1).await;
    let mut at_fish = fish.subscribe();
    fm.say(ROOM, 42, "小明", "still here");
    assert_eq!(next_post(&mut at_fish).await.content, "still here");
    assert_eq!(fm.joins(), [(ROOM, false)]);
    // Sending to it is refused as well: the room is marked unusable, not retried.
    let mut at_fm = fm.subscribe();
    fish.say("general", "irc", "alice", "to both rooms");
    assert_eq!(next_sent(&mut at_fm).await.room_id, ROOM);
    eventually("the copy for the unknown room is refused", || stats.rejected.get() == 1).await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_reconnects_and_rejoins() {
    let (fm, fish, running) = bridged(None, "", "").await;
    let mut at_fish = fish.subscribe();
    fm.drop_connections();
    wait_state(&running, &["missevan.fm"], |s| matches!(s, AccountState::BackingOff { .. })).await;
    wait_state(&running, &["missevan.fm"], |s| *s == AccountState::Connected).await;
    assert_eq!(fm.joins(), [(ROOM, false), (ROOM, true)], "the second join says it is a reconnect");
    fm.say(ROOM, 42, "小明", "after the drop");
    assert_eq!(next_post(&mut at_fish).await.content, "after the drop");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_is_replaced() {
    let (fm, fish, running) = bridged(None, "", "").await;
    // No frame at all (not even the heartbeat's echo) for idle_timeout: the socket is dead.
    fm.mute_connections();
    wait_state(&running, &["missevan.fm"], |s| matches!(s, AccountState::BackingOff { .. })).await;
    wait_state(&running, &["missevan.fm"], |s| *s == AccountState::Connected).await;
    let mut at_fish = fish.subscribe();
    fm.say(ROOM, 42, "小明", "on the new socket");
    assert_eq!(next_post(&mut at_fish).await.content, "on the new socket");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_refreshed_without_stopping() {
    let (fm, fish, running) = bridged(None, "", "").await;
    let mut at_fm = fm.subscribe();
    fm.expire_sessions();
    fish.say("general", "irc", "alice", "after expiry");
    assert_eq!(next_sent(&mut at_fm).await.message, "[fishroom] alice: after expiry");
    // The socket's next handshake uses the fresh session too.
    fm.drop_connections();
    wait_state(&running, &["missevan.fm"], |s| matches!(s, AccountState::BackingOff { .. })).await;
    wait_state(&running, &["missevan.fm"], |s| *s == AccountState::Connected).await;
    assert_eq!(running.daemon().stats().dropped.get() + running.daemon().stats().dead_lettered.get(), 0);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_login_stops_only_this_account() {
    let (fm, fish, running) = bridged(None, "", "").await;
    fm.revoke(crate::harness::MISSEVAN_TOKEN);
    fm.expire_sessions();
    fish.say("general", "irc", "alice", "nobody will see this");
    wait_state(
        &running,
        &["missevan.fm"],
        |s| matches!(s, AccountState::Stopped { reason } if reason.contains("no longer accepted")),
    )
    .await;
    assert!(fm.sent().is_empty());
    wait_state(&running, &["fishroom.tuna"], |s| *s == AccountState::Connected).await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_word_is_rejected_and_the_room_goes_on() {
    let (fm, fish, running) = bridged(Some("违禁"), "", "").await;
    let mut at_fm = fm.subscribe();
    fish.say("general", "irc", "alice", "这是违禁词");
    fish.say("general", "irc", "alice", "this one is fine");
    assert_eq!(next_sent(&mut at_fm).await.message, "[fishroom] alice: this one is fine");
    assert_eq!(running.daemon().stats().rejected.get(), 1);
    assert_eq!(fm.sent().len(), 1);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_texts_go_out_in_ordered_parts() {
    let (fm, fish, running) = bridged(None, "max_text_len = 20\n", "format = \"{nick}: {text}\"\n").await;
    let mut at_fm = fm.subscribe();
    fish.say("general", "irc", "alice", "one two three four five six seven eight");
    let mut parts = Vec::new();
    for _ in 0..3 {
        parts.push(next_sent(&mut at_fm).await);
    }
    let texts: Vec<&str> = parts.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(texts, ["alice: one two three", "four five six seven", "eight"]);
    let ids: std::collections::HashSet<&str> = parts.iter().map(|p| p.msg_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "each part has its own msg_id");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fm.sent().len(), 3);
    // A link that fits a part is not cut, though the only space is early in the part.
    fish.say("general", "irc", "alice", "https://ex.am/abcd x");
    let texts = [next_sent(&mut at_fm).await.message, next_sent(&mut at_fm).await.message];
    assert_eq!(texts, ["alice:", "https://ex.am/abcd x"]);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_quiet_room_connected() {
    // idle_timeout is 2 s in these tests: without the heartbeat's echo a quiet socket would be replaced.
    let (fm, _fish, running) = bridged(None, "", "").await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(fm.joins(), [(ROOM, false)], "one join, no reconnect");
    running.shutdown().await;
}

/// A burst from a busy live room into a Fishroom room behind a send limit: what waits for a token goes merged, one
/// line each, every message once and in order, the merged ones under the bridge's name; with `coalesce = false`,
/// one post each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_behind_a_send_limit_goes_merged_in_order() {
    for coalesce in [true, false] {
        let fm = missevan(&[ROOM], None).await;
        let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
        let source = format!(
            "{FAST}{}{}send_rate = 50\nsend_burst = 1\n\n[[bridge]]\nname = \"live\"\nformat = \"{{nick}}: {{text}}\"\n\
             [[bridge.room]]\nroom = \"missevan.fm:{ROOM}\"\n[[bridge.room]]\nroom = \"fishroom.tuna:general\"\n\
             coalesce = {coalesce}\nanti_ping = false\n",
            missevan_account("fm", &fm, ""),
            account("tuna", &fish, "11", "key"),
        );
        let running = start(&source, &["missevan.fm", "fishroom.tuna"]).await;
        for n in 0..200 {
            fm.say(ROOM, 42 + n % 3, ["小明", "阿花", "小红"][n as usize % 3], &format!("burst {n}"));
        }
        let lines = || -> Vec<String> {
            fish.posted().iter().flat_map(|p| p.content.lines().map(str::to_owned).collect::<Vec<_>>()).collect()
        };
        // (A loaded machine may take a while: 200 sends at 50 a second are 4 s alone without coalescing.)
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while lines().len() < 200 {
            assert!(std::time::Instant::now() < deadline, "coalesce {coalesce}: {} of 200 lines", lines().len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let expected: Vec<String> =
            (0..200).map(|n| format!("{}: burst {n}", ["小明", "阿花", "小红"][n % 3])).collect();
        let posted = fish.posted();
        if coalesce {
            // A message with a token there for it goes alone (its sender field names its sender, the text is
            // bare); what waited for a token goes merged, each line formatted, under the bridge's name.
            let as_lines: Vec<String> = posted
                .iter()
                .flat_map(|p| match p.sender.strip_prefix("[missevan] ") {
                    Some(nick) => vec![format!("{nick}: {}", p.content)],
                    None => {
                        assert_eq!(p.sender, "live");
                        p.content.lines().map(str::to_owned).collect()
                    }
                })
                .collect();
            assert_eq!(as_lines, expected, "every message once, in order");
            let merged = posted.iter().filter(|p| p.sender == "live").count();
            assert!(merged > 0 && posted.len() < 100, "{} posts for 200 messages, {merged} merged", posted.len());
            let alone = posted.len() - merged;
            // Counted when the platform's answer reaches the router, which can be after the post is seen there.
            let coalesced = || running.daemon().stats().coalesced.get() as usize;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while coalesced() < 200 - alone && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(coalesced(), 200 - alone);
        } else {
            let texts: Vec<&str> = posted.iter().map(|p| p.content.as_str()).collect();
            assert_eq!(texts, (0..200).map(|n| format!("burst {n}")).collect::<Vec<_>>());
            assert_eq!(running.daemon().stats().coalesced.get(), 0);
        }
        running.shutdown().await;
    }
}
