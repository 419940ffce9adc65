//! Yunhu groups bridged with Fishroom and with each other, through the simulators.

use std::time::Duration;

use chatbridge::adapters::AccountState;
use chatbridge::sim::fishroom::FishroomSim;
use chatbridge::sim::yunhu::{Request, Sent, YunhuSim};

use crate::harness::{
    FAST, Running, YUNHU_TOKEN, YUNHU_TOKEN_2, account, fishroom, next_post, next_request, settle, start, wait_state,
    yunhu, yunhu_account,
};

fn sent(request: Request) -> Sent {
    match request {
        Request::Send(send) => send,
        other => panic!("expected a send, got {other:?}"),
    }
}

/// Yunhu groups `big` (account me) and `small` (account other), and Fishroom `general`.
async fn bridged() -> (YunhuSim, FishroomSim, Running) {
    let sim = yunhu().await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"yunhu.me:group/big\", \"yunhu.other:group/small\", \"fishroom.tuna:general\"]\n",
        yunhu_account("me", &sim, YUNHU_TOKEN, ""),
        yunhu_account("other", &sim, YUNHU_TOKEN_2, ""),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["yunhu.me", "yunhu.other", "fishroom.tuna"]).await;
    (sim, fish, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_with_fishroom_and_between_groups_without_echoes() {
    let (sim, fish, running) = bridged().await;
    let (mut at_fish, mut requests) = (fish.subscribe(), sim.subscribe());
    sim.say("big", ("u1", "小明"), "你好");
    assert_eq!(next_post(&mut at_fish).await.content, "你好");
    let copy = sent(next_request(&mut requests).await);
    assert_eq!((copy.chat_id.as_str(), copy.chat_type), ("small", 2));
    assert_eq!(copy.text, "[yunhu] 小明: 你好");
    assert_eq!(copy.msg_id.len(), 32, "a uuid as hex");

    fish.say("general", "irc", "alice", "hi yunhu");
    let mut texts = Vec::new();
    for _ in 0..2 {
        let send = sent(next_request(&mut requests).await);
        texts.push((send.chat_id, send.text));
    }
    texts.sort();
    assert_eq!(
        texts,
        [
            ("big".to_owned(), "[fishroom] alice: hi yunhu".to_owned()),
            ("small".to_owned(), "[fishroom] alice: hi yunhu".to_owned())
        ]
    );
    settle().await;
    assert_eq!(sim.requests().len(), 3, "our own pushes come back and are not relayed");
    assert_eq!(fish.posted().len(), 1);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_recalls_reach_the_copies() {
    let (sim, fish, running) = bridged().await;
    let (mut at_fish, mut requests) = (fish.subscribe(), sim.subscribe());
    let original = sim.say("big", ("u1", "小明"), "helo");
    let copy = sent(next_request(&mut requests).await);
    assert_eq!(next_post(&mut at_fish).await.content, "helo");

    sim.edit(&original, "hello");
    match next_request(&mut requests).await {
        Request::Edit { msg_id, text } => {
            assert_eq!(msg_id, copy.msg_id, "the copy in the other group is edited");
            assert_eq!(text, "[yunhu] 小明: hello");
        }
        other => panic!("expected an edit, got {other:?}"),
    }
    assert_eq!(next_post(&mut at_fish).await.content, "hello (edited)", "Fishroom cannot edit: a new message");

    sim.recall(&original);
    assert_eq!(
        next_request(&mut requests).await,
        Request::Recall { msg_id: copy.msg_id.clone(), chat_id: "small".into() }
    );
    settle().await;
    assert_eq!(sim.requests().len(), 3, "the echoes of our edit and recall go nowhere");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_point_at_the_right_copy_and_mentions_follow_the_directory() {
    let (sim, _fish, running) = bridged().await;
    let mut requests = sim.subscribe();
    // 阿花 has spoken in `small`: the bridge knows her id there.
    sim.say("small", ("u2", "阿花"), "早");
    let _ = next_request(&mut requests).await;
    let question = sim.say("big", ("u1", "小明"), "吃了吗");
    let copy = sent(next_request(&mut requests).await);

    sim.post("big", ("u3", "老王"), "@阿花 @路人 吃了", &["u2b", "u9"], (&question, "小明: 吃了吗"));
    let reply = sent(next_request(&mut requests).await);
    assert_eq!(reply.quote_msg_id, copy.msg_id, "the reply points at the copy in `small`");
    assert_eq!(reply.mentioned_id, ["u2"], "阿花 is known in `small`; 路人 is not");
    assert_eq!(reply.text, "[yunhu] 老王: @阿花  @路人 吃了");
    assert_eq!(reply.quote_msg_text, "小明: 吃了吗");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_message_arrives_once_and_whole() {
    let (sim, fish, running) = bridged().await;
    let mut at_fish = fish.subscribe();
    sim.stream("big", ("b1", "helperbot"), &["Once ", "upon ", "a time."], Duration::from_millis(100)).await;
    let post = next_post(&mut at_fish).await;
    assert_eq!((post.sender.as_str(), post.content.as_str()), ("[yunhu] h\u{200B}elperbot", "Once upon a time."));
    settle().await;
    assert_eq!(fish.posted().len(), 1);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_stops_only_its_account() {
    let sim = yunhu().await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"yunhu.me:group/big\", \"yunhu.bad:group/small\", \"fishroom.tuna:general\"]\n",
        yunhu_account("me", &sim, YUNHU_TOKEN, ""),
        yunhu_account("bad", &sim, "ffffffff-0000-0000-0000-000000000000", ""),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["yunhu.me", "fishroom.tuna"]).await;
    wait_state(
        &running,
        &["yunhu.bad"],
        |s| matches!(s, AccountState::Stopped { reason } if reason.contains("token is invalid")),
    )
    .await;
    let mut at_fish = fish.subscribe();
    sim.say("big", ("u1", "小明"), "still here");
    assert_eq!(next_post(&mut at_fish).await.content, "still here");
    running.shutdown().await;
}

/// Formatting goes as markdown by default; an account with `markdown = false` sends it as plain text. Plain text
/// that looks like markdown goes as text either way (tests/it/formatting.rs has every pair).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formatting_goes_as_markdown_unless_the_account_says_not() {
    let sim = yunhu().await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}{}\n[[bridge]]\nname = \"b\"\nformat = \"{{text}}\"\n\
         rooms = [\"yunhu.me:group/big\", \"yunhu.plain:group/small\", \"fishroom.tuna:general\"]\n",
        yunhu_account("me", &sim, YUNHU_TOKEN, ""),
        yunhu_account("plain", &sim, YUNHU_TOKEN_2, "markdown = false\n"),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["yunhu.me", "yunhu.plain", "fishroom.tuna"]).await;
    let mut requests = sim.subscribe();
    fish.say_rich("general", "alice", &[(&[], "this is "), (&["bold"], "important")]);
    fish.say("general", "irc", "alice", "this is **typed**");
    let mut got = Vec::new();
    for _ in 0..4 {
        let sent = sent(next_request(&mut requests).await);
        got.push((sent.chat_id, sent.content_type, sent.text));
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("big".into(), 1, "this is **typed**".into()),
            ("big".into(), 3, "this is **important**".into()),
            ("small".into(), 1, "this is **typed**".into()),
            ("small".into(), 1, "this is important".into()),
        ]
    );
    running.shutdown().await;
}

/// Messages that waited for a send token go to Yunhu merged; a recall of one of them edits the merged copy without
/// its line, and an edit rewrites its line (Yunhu edits; elsewhere the recall is not sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recall_of_a_merged_message_edits_the_merged_copy() {
    let sim = yunhu().await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"b\"\nformat = \"{{nick}}: {{text}}\"\n\
         rooms = [\"yunhu.me:group/big\", \"yunhu.slow:group/small\"]\n",
        yunhu_account("me", &sim, YUNHU_TOKEN, "send_rate = 0\n"),
        yunhu_account("slow", &sim, YUNHU_TOKEN_2, "send_rate = 0.5\nsend_burst = 1\n"),
    );
    let running = start(&source, &["yunhu.me", "yunhu.slow"]).await;
    let mut requests = sim.subscribe();
    let ids: Vec<String> = (0..4).map(|n| sim.say("big", ("u1", "阿花"), &format!("n{n}"))).collect();
    assert_eq!(sent(next_request(&mut requests).await).text, "阿花: n0");
    // The other three wait two seconds for the next token and go as one.
    let merged = sent(next_request(&mut requests).await);
    assert_eq!(merged.text, "阿花: n1\n阿花: n2\n阿花: n3");
    sim.recall(&ids[2]);
    let edit = next_request(&mut requests).await;
    assert_eq!(edit, Request::Edit { msg_id: merged.msg_id.clone(), text: "阿花: n1\n阿花: n3".into() });
    sim.edit(&ids[3], "n3, better");
    let edit = next_request(&mut requests).await;
    assert_eq!(edit, Request::Edit { msg_id: merged.msg_id, text: "阿花: n1\n阿花: n3, better".into() });
    running.shutdown().await;
}
