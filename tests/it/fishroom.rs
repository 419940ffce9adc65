//! Relaying between Fishroom rooms, as a user of the bridge sees it.

use chatbridge::adapters::AccountState;
use serde_json::json;

use crate::harness::{FAST, Pair, account, eventually, fishroom, next_post, settle, start, wait_state};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_both_ways_with_formats_and_never_echoes() {
    let tuna = fishroom(&["general"], &[("11", "key-tuna", "bridge")]).await;
    let lug = fishroom(&["chat"], &[("22", "key-lug", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}
[[bridge]]
name = \"fans\"
rooms = [\"fishroom.tuna:general\", \"fishroom.lug:chat\"]
nick_format = \"<{{nick}}@{{account}}/{{room}} via {{bridge}} on {{platform}}>\"
",
        account("tuna", &tuna, "11", "key-tuna"),
        account("lug", &lug, "22", "key-lug"),
    );
    let running = start(&source, &["fishroom.tuna", "fishroom.lug"]).await;
    let (mut at_tuna, mut at_lug) = (tuna.subscribe(), lug.subscribe());

    tuna.say("general", "irc", "alice", "hello from irc");
    let post = next_post(&mut at_lug).await;
    assert_eq!(post.room, "chat");
    // `{nick}` with a zero-width space after its first letter (`anti_ping`, on for Fishroom rooms).
    assert_eq!(post.sender, "<a\u{200B}lice@tuna/general via fans on fishroom>");
    assert_eq!(post.content, "hello from irc");

    lug.say("chat", "telegram", "bob", "hi alice");
    let post = next_post(&mut at_tuna).await;
    assert_eq!(
        (post.sender.as_str(), post.content.as_str()),
        ("<b\u{200B}ob@lug/chat via fans on fishroom>", "hi alice")
    );

    settle().await;
    assert_eq!(tuna.posted().len(), 1, "nothing came back to tuna: {:?}", tuna.posted());
    assert_eq!(lug.posted().len(), 1, "nothing came back to lug: {:?}", lug.posted());
    let stats = running.daemon().stats();
    assert_eq!(stats.relayed.get(), 2);
    assert!(stats.echoes.get() >= 2, "both echoes were recognised: {}", stats.echoes.get());
    running.shutdown().await;
}

/// Three rooms on one server, one token each (the server's queues are per token).
async fn three_rooms() -> chatbridge::sim::fishroom::FishroomSim {
    fishroom(&["a", "b", "c"], &[("1", "ka", "ta"), ("2", "kb", "tb"), ("3", "kc", "tc")]).await
}

fn three_accounts(sim: &chatbridge::sim::fishroom::FishroomSim) -> String {
    format!("{FAST}{}{}{}", account("a", sim, "1", "ka"), account("b", sim, "2", "kb"), account("c", sim, "3", "kc"))
}

fn posted_to(sim: &chatbridge::sim::fishroom::FishroomSim, room: &str) -> Vec<String> {
    sim.posted().into_iter().filter(|p| p.room == room).map(|p| p.content).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directions_decide_who_feeds_and_who_receives() {
    let sim = three_rooms().await;
    let source = format!(
        "{}
[[bridge]]
name = \"one-way\"
[[bridge.room]]
room = \"fishroom.a:a\"
direction = \"in\"
[[bridge.room]]
room = \"fishroom.b:b\"
direction = \"out\"
[[bridge.room]]
room = \"fishroom.c:c\"
",
        three_accounts(&sim)
    );
    let running = start(&source, &["fishroom.a", "fishroom.b", "fishroom.c"]).await;
    sim.say("a", "irc", "u1", "from a");
    sim.say("b", "irc", "u2", "from b (out only: goes nowhere)");
    sim.say("c", "irc", "u3", "from c");
    eventually("a's message reaches b and c, c's reaches b", || {
        posted_to(&sim, "b").len() == 2 && posted_to(&sim, "c").len() == 1
    })
    .await;
    settle().await;
    let mut at_b = posted_to(&sim, "b");
    at_b.sort();
    assert_eq!(at_b, ["from a", "from c"]);
    assert_eq!(posted_to(&sim, "c"), ["from a"]);
    assert!(posted_to(&sim, "a").is_empty(), "an `in` room receives nothing");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_ignore_senders_follow_the_rules_table() {
    let sim = three_rooms().await;
    // a: default events (no notices); b: receives notices too; c: its bot_ senders are not relayed.
    let source = format!(
        "{}
[[bridge]]
name = \"filters\"
[[bridge.room]]
room = \"fishroom.a:a\"
[[bridge.room]]
room = \"fishroom.b:b\"
events = [\"message\", \"notice\"]
[[bridge.room]]
room = \"fishroom.c:c\"
ignore_senders = [\"^bot_\"]
",
        three_accounts(&sim)
    );
    let running = start(&source, &["fishroom.a", "fishroom.b", "fishroom.c"]).await;
    let event = json!({"channel": "irc", "sender": "server", "room": "c", "mtype": "event",
        "content": "carol joined", "media_url": null});
    sim.publish(event);
    sim.say("c", "irc", "bot_weather", "sunny (from c: ignored)");
    sim.say("a", "irc", "bot_weather", "rainy (from a: relayed)");
    sim.say("c", "irc", "carol", "hi all");
    eventually("everything due has arrived", || posted_to(&sim, "a").len() == 1 && posted_to(&sim, "b").len() == 3)
        .await;
    settle().await;
    assert_eq!(posted_to(&sim, "a"), ["hi all"], "a gets neither the notice nor c's bot");
    let mut at_b = posted_to(&sim, "b");
    at_b.sort();
    assert_eq!(at_b, ["carol joined", "hi all", "rainy (from a: relayed)"]);
    assert_eq!(posted_to(&sim, "c"), ["rainy (from a: relayed)"]);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_stops_only_its_account() {
    let sim = three_rooms().await;
    let source = format!(
        "{FAST}{}{}{}
[[bridge]]
name = \"mixed\"
rooms = [\"fishroom.a:a\", \"fishroom.b:b\", \"fishroom.bad:c\"]
",
        account("a", &sim, "1", "ka"),
        account("b", &sim, "2", "kb"),
        account("bad", &sim, "3", "wrong-key"),
    );
    let running = start(&source, &["fishroom.a", "fishroom.b"]).await;
    wait_state(
        &running,
        &["fishroom.bad"],
        |s| matches!(s, AccountState::Stopped { reason } if reason.contains("403")),
    )
    .await;
    let mut posted = sim.subscribe();
    sim.say("a", "irc", "alice", "still bridged");
    let post = next_post(&mut posted).await;
    assert_eq!((post.room.as_str(), post.content.as_str()), ("b", "still bridged"));
    eventually("the copy for the stopped account is dead-lettered", || {
        running.daemon().stats().dead_lettered.get() == 1
    })
    .await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_are_counted_and_skipped() {
    let pair = Pair::start().await;
    let running = pair.run().await;
    let Pair { tuna, lug } = &pair;
    let mut at_lug = lug.subscribe();
    tuna.inject_raw("11", "{\"messages\": [tru");
    let good = json!({"channel": "irc", "sender": "alice", "room": "general", "mtype": "text", "content": "kept"});
    tuna.inject_raw("11", &json!({ "messages": [42, good] }).to_string());
    assert_eq!(next_post(&mut at_lug).await.content, "kept", "the good message beside a bad one is relayed");
    let stats = running.daemon().stats();
    assert_eq!(stats.malformed.get(), 2, "a broken body and a broken item");
    tuna.say("general", "irc", "alice", "and the feed goes on");
    assert_eq!(next_post(&mut at_lug).await.content, "and the feed goes on");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_on_post_does_not_stall_the_room() {
    let pair = Pair::start().await;
    let running = pair.run().await;
    let Pair { tuna, lug } = &pair;
    let stats = running.daemon().stats();
    lug.fail_posts(true);
    tuna.say("general", "irc", "alice", "lost to the upstream bug");
    eventually("the message is given up after max_attempts", || stats.dead_lettered.get() == 1).await;
    lug.fail_posts(false);
    let mut at_lug = lug.subscribe();
    tuna.say("general", "irc", "alice", "the room moves on");
    assert_eq!(next_post(&mut at_lug).await.content, "the room moves on");
    assert_eq!(lug.posted().len(), 1);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_cannot_fake_another_senders_line() {
    let pair = Pair::start().await;
    let running = pair.run().await;
    let mut at_lug = pair.lug.subscribe();
    // A nick with a line break and a right-to-left override, a text with a bell and an override.
    pair.tuna.say("general", "irc", "mal\nlory\u{202E}", "hi\u{7}\nthere\u{202E}!");
    let post = next_post(&mut at_lug).await;
    assert_eq!(post.sender, "[fishroom] m\u{200B}allory");
    assert_eq!(post.content, "hi\nthere!", "line breaks stay, control characters and overrides go");
    // A very long nick is capped.
    pair.tuna.say("general", "irc", &"n".repeat(500), "long");
    let post = next_post(&mut at_lug).await;
    // (and the zero-width space of `anti_ping`)
    assert_eq!(post.sender.chars().count(), "[fishroom] ".len() + chatbridge::router::sanitise::NICK_CHARS + 1);
    assert!(post.sender.ends_with('…'), "{}", post.sender);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_text_keeps_matching_messages_in_their_room() {
    let pair = Pair::start().await;
    let source = pair
        .config(FAST)
        .replace("[[bridge]]\nname = \"b\"\n", "[[bridge]]\nname = \"b\"\nignore_text = [\"^!\", \"(?i)password\"]\n");
    assert!(source.contains("ignore_text"), "{source}");
    let running = start(&source, &["fishroom.tuna", "fishroom.lug"]).await;
    let mut at_lug = pair.lug.subscribe();
    pair.tuna.say("general", "irc", "alice", "!help");
    pair.tuna.say("general", "irc", "alice", "my PassWord is hunter2");
    pair.tuna.say("general", "irc", "alice", "hello");
    assert_eq!(next_post(&mut at_lug).await.content, "hello", "the matching messages were not relayed");
    settle().await;
    assert_eq!(pair.lug.posted().len(), 1);
    assert_eq!(running.daemon().stats().filtered.get(), 2);
    running.shutdown().await;
}

/// `replace_text` and `replace_nick`, in order and with groups, on the messages of the rooms they are set for
/// (a room's own list replaces the bridge's); and an expression that a backtracking engine would take 2^n steps
/// for: the `regex` crate has no backtracking (linear in the text), so it costs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_text_and_replace_nick_rewrite_before_formatting() {
    let pair = Pair::start().await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"b\"\n\
         replace_text = [[\"(?i)\\\\bcolour\\\\b\", \"color\"], [\"color\", \"hue\"], [\"(\\\\w+)@example\\\\.com\", \"$1@…\"]]\n\
         replace_nick = [[\"^irc_(?P<who>.+)$\", \"${{who}}\"]]\n\
         ignore_text = [\"^(a|a)*b$\"]\n\
         [[bridge.room]]\nroom = \"fishroom.tuna:general\"\n\
         [[bridge.room]]\nroom = \"fishroom.lug:chat\"\nreplace_text = []\n",
        account("tuna", &pair.tuna, "11", "key-tuna"),
        account("lug", &pair.lug, "22", "key-lug"),
    );
    let running = start(&source, &["fishroom.tuna", "fishroom.lug"]).await;
    let (mut at_lug, mut at_tuna) = (pair.lug.subscribe(), pair.tuna.subscribe());
    pair.tuna.say("general", "irc", "irc_alice", "Colour of bob@example.com, $5");
    let post = next_post(&mut at_lug).await;
    assert_eq!((post.sender.as_str(), post.content.as_str()), ("[fishroom] a\u{200B}lice", "hue of bob@…, $5"));
    // lug's room clears the text rewrites for its own messages; the nick rewrite is the bridge's.
    pair.lug.say("chat", "irc", "irc_bob", "my colour");
    let post = next_post(&mut at_tuna).await;
    assert_eq!((post.sender.as_str(), post.content.as_str()), ("[fishroom] b\u{200B}ob", "my colour"));
    let slow = "a".repeat(5_000);
    pair.tuna.say("general", "irc", "carol", &slow);
    assert_eq!(next_post(&mut at_lug).await.content, slow);
    running.shutdown().await;
}
