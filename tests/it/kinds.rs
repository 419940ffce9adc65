//! Live rooms as their fans see them (issue #33), through the daemon and the simulators: Heihei gifts arrive named
//! (from the live gift's own name, and for gifts that carry only an id, from the gift list the simulator serves as
//! seed 001 shows it), and a kind of event the bridge does not carry is counted in `/metrics` by platform and kind.

use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heihei_gifts_arrive_named_and_unknown_kinds_are_counted() {
    let hh = heihei().await;
    let live = hh.start_live(HEIHEI_HOST);
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let general = FAST.replace("[general]\n", "[general]\nhttp_listen = \"127.0.0.1:0\"\n");
    let source = format!(
        "{general}{}{}\n[[bridge]]\nname = \"live\"\n[[bridge.room]]\nroom = \"heihei.hh:host/{HEIHEI_HOST}\"\n\
         [[bridge.room]]\nroom = \"fishroom.tuna:general\"\nevents = [\"message\", \"gift\"]\ngift_combo = \"0s\"\n",
        heihei_account("hh", &hh, ""),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["heihei.hh", "fishroom.tuna"]).await;
    heihei_following(&hh).await;
    let mut at_fish = fish.subscribe();
    let gift = |id: u64, name: Option<&str>, amount: u64| {
        let mut msg = json!({"msgType": "gift", "amount": amount, "giftId": id, "roomId": live.room_id,
            "fromUserId": 1233, "fromUserName": "谁送的", "gender": "Male", "totalTicket": 123322,
            "gift_uuid": "adfd32ffa424", "msgId": 12222221334124u64});
        if let Some(name) = name {
            msg["gift"] = json!({"id": amount, "name": name, "type": 1, "desc": "啪啪啪"});
        }
        msg
    };
    // Named by its frame; named by the gift list (read at the start); never named: the id.
    hh.push(Some(live.live_id), gift(12, Some("asjkdfa"), 128));
    let first = next_post(&mut at_fish).await.content;
    assert!(first.contains("128 × asjkdfa"), "{first}");
    hh.push(Some(live.live_id), gift(123, None, 2));
    let second = next_post(&mut at_fish).await.content;
    assert!(second.contains("2 × 小黄瓜"), "{second}");
    hh.push(Some(live.live_id), gift(999, None, 1));
    let third = next_post(&mut at_fish).await.content;
    assert!(third.contains("1 × gift #999"), "{third}");

    // A kind nobody taught the bridge: not relayed, counted by platform and kind.
    hh.push(Some(live.live_id), json!({"msgType": "pk-battle", "roomId": live.room_id, "msgId": 5}));
    hh.push(Some(live.live_id), json!({"msgType": "pk-battle", "roomId": live.room_id, "msgId": 6}));
    let metrics_url = format!("http://{}/metrics", running.daemon().status_addr().unwrap());
    let line = "chatbridge_events_unknown_kind_total{platform=\"heihei\",kind=\"pk-battle\"} 2";
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = reqwest::get(&metrics_url).await.unwrap().text().await.unwrap();
        if metrics.contains(line) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(metrics.contains(line), "{metrics}");
    settle().await;
    assert_eq!(fish.posted().len(), 3, "nothing of the unknown kind relayed: {:?}", fish.posted());
    running.shutdown().await;
}

/// Issue #33 §2: a Missevan sender's titles fill `{badge}`, `{level}` and `{medal}` of the destination's template;
/// a sender without them leaves them empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missevan_titles_fill_the_badge_level_and_medal_placeholders() {
    const ROOM: u64 = 868858631;
    let fm = missevan(&[ROOM], None).await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"live\"\nrooms = [\"missevan.fm:{ROOM}\", \"fishroom.tuna:general\"]\n\
         nick_format = \"{{badge}}|Lv{{level}}|{{medal}}|{{nick}}\"\n",
        missevan_account("fm", &fm, ""),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["missevan.fm", "fishroom.tuna"]).await;
    let mut at_fish = fish.subscribe();
    let item = |id: &str, name: &str, titles: serde_json::Value| {
        json!({"type": "message", "event": "new", "room_id": ROOM, "msg_id": id, "message": "晚上好",
            "user": {"user_id": 3414816, "username": name, "iconurl": "", "titles": titles}})
    };
    let titles = json!([{"type": "level", "level": 54}, {"type": "medal", "name": "猫耳", "level": 7},
        {"type": "noble", "name": "大咖", "level": 4}]);
    fm.push(ROOM, vec![item("7a1b5a7e-1111-4222-8333-944445555601", "大咖本咖", titles)]);
    let post = next_post(&mut at_fish).await;
    assert_eq!(post.sender.replace('\u{200B}', ""), "大咖|Lv54|猫耳 7|大咖本咖", "{post:?}");
    fm.push(ROOM, vec![item("7a1b5a7e-1111-4222-8333-944445555602", "路人", json!([]))]);
    let post = next_post(&mut at_fish).await;
    assert_eq!(post.sender.replace('\u{200B}', ""), "|Lv||路人", "{post:?}");
    running.shutdown().await;
}

/// Issue #33 §2: Yunhu posts, forms, buttons, calls and tips (the golden frames, pushed by the simulator) arrive
/// elsewhere as text a fan can read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yunhu_posts_forms_buttons_and_calls_arrive_readable() {
    let yh = yunhu().await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"g\"\nrooms = [\"yunhu.yh:group/big-group\", \"fishroom.tuna:general\"]\n\
         format = \"{{text}}\"\n",
        yunhu_account("yh", &yh, YUNHU_TOKEN, ""),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["yunhu.yh", "fishroom.tuna"]).await;
    let mut at_fish = fish.subscribe();
    let golden = include_str!("../fixtures/wire/yunhu/content_kinds.jsonl");
    let frames: Vec<serde_json::Value> =
        golden.lines().filter(|l| !l.starts_with('#')).map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut seen = Vec::new();
    for frame in &frames {
        yh.push_content("big-group", ("7654321", "小明"), frame["content_type"].as_u64().unwrap(), &frame["content"]);
        seen.push(next_post(&mut at_fish).await.content);
    }
    assert!(seen[0].contains("周末活动") && seen[0].contains("报名截止周五"), "{seen:?}");
    assert!(seen[1].contains("[form]") && seen[1].contains("昵称: 小明"), "{seen:?}");
    assert!(seen[2].contains("[buttons: 赞成 | 反对 | 详情]"), "{seen:?}");
    assert!(seen[3].contains("[call] 语音通话 — 通话时长 01:23"), "{seen:?}");
    assert!(seen[4].contains("撤回了一条消息"), "{seen:?}");
    running.shutdown().await;
}

/// Issue #33 §2: an IIROSE song card arrives elsewhere as a line with its title and artist, and its cover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iirose_music_card_arrives_as_a_line_with_its_cover() {
    let sim = iirose().await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"b\"\nrooms = [\"iirose.rose:{ROSE_ROOM}\", \"fishroom.tuna:general\"]\n\
         format = \"{{text}}\"\n",
        iirose_account("rose", &sim, ""),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["iirose.rose", "fishroom.tuna"]).await;
    let mut at_fish = fish.subscribe();
    // The card's text as the golden record has it (the simulator escapes it as the server does).
    sim.say(
        ROSE_ROOM,
        "679a51f1d4893",
        "上学",
        "m__4@netease>晴天>周杰伦>https://p1.music.126.net/cover.jpg>ffffff>320",
    );
    let post = next_post(&mut at_fish).await;
    assert!(post.content.starts_with("[music] 晴天 — 周杰伦"), "{post:?}");
    assert!(post.content.contains("https://p1.music.126.net/cover.jpg"), "the cover as media: {post:?}");
    running.shutdown().await;
}

/// Issue #33 §2: with `presence = "summary"`, a burst of joins and leaves reaches the other side as one line, the few
/// named and the many counted; a room without it gets each as it comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_leaves_fold_into_one_line_where_the_room_asks() {
    let sim = iirose().await;
    let fish = fishroom(&["general", "each"], &[("11", "key", "bridge"), ("12", "key2", "each")]).await;
    let source = format!(
        "{FAST}{}{}{}\n[[bridge]]\nname = \"b\"\n[[bridge.room]]\nroom = \"iirose.rose:{ROSE_ROOM}\"\n\
         [[bridge.room]]\nroom = \"fishroom.tuna:general\"\nevents = [\"message\", \"join\", \"leave\"]\n\
         presence = \"summary\"\npresence_every = \"1s\"\n\
         [[bridge.room]]\nroom = \"fishroom.each:each\"\nevents = [\"message\", \"join\", \"leave\"]\n",
        iirose_account("rose", &sim, ""),
        account("tuna", &fish, "11", "key"),
        account("each", &fish, "12", "key2"),
    );
    let running = start(&source, &["iirose.rose", "fishroom.tuna", "fishroom.each"]).await;
    for n in 0..5 {
        sim.presence(ROSE_ROOM, &format!("5b0fe8a3b1f{n:02}"), &format!("fan{n}"), true);
    }
    sim.presence(ROSE_ROOM, "5b0fe8a3b1f99", "eve", false);
    eventually("the summary line arrives", || fish.posted().iter().any(|p| p.room == "general")).await;
    settle().await;
    let general: Vec<String> = fish.posted().into_iter().filter(|p| p.room == "general").map(|p| p.content).collect();
    assert_eq!(general.len(), 1, "one line for six events: {general:?}");
    assert!(general[0].contains("5 joined") && general[0].contains("eve left"), "{general:?}");
    let each = fish.posted().into_iter().filter(|p| p.room == "each").count();
    assert_eq!(each, 6, "the room without a summary gets each");
    running.shutdown().await;
}

/// Issue #33 §2: the same gift from the same fan, sent one by one within seconds, arrives as one line with the total;
/// another fan's stays their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gift_combo_arrives_as_one_line_with_the_total() {
    const ROOM: u64 = 868858631;
    let fm = missevan(&[ROOM], None).await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"live\"\nrooms = [\"missevan.fm:{ROOM}\", \"fishroom.tuna:general\"]\n\
         events = [\"message\", \"gift\"]\ngift_combo = \"1s\"\n",
        missevan_account("fm", &fm, ""),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["missevan.fm", "fishroom.tuna"]).await;
    let gift = |user: u64, name: &str| {
        json!({"type": "gift", "event": "send", "room_id": ROOM, "user": {"user_id": user, "username": name},
            "gift": {"name": "小鱼干", "price": 10, "num": 1}})
    };
    for _ in 0..3 {
        fm.push(ROOM, vec![gift(7, "giver")]);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    fm.push(ROOM, vec![gift(8, "other")]);
    eventually("both lines arrive", || fish.posted().len() >= 2).await;
    settle().await;
    let mut lines: Vec<String> = fish.posted().into_iter().map(|p| p.content.replace('\u{200B}', "")).collect();
    lines.sort();
    assert_eq!(lines, ["giver sent 3 × 小鱼干", "other sent 1 × 小鱼干"]);
    running.shutdown().await;
}

/// A stop does not lose what a combo holds: it goes before the daemon ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_combo_held_at_a_stop_is_delivered_before_the_end() {
    const ROOM: u64 = 868858631;
    let fm = missevan(&[ROOM], None).await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let source = format!(
        "{FAST}{}{}\n[[bridge]]\nname = \"live\"\nrooms = [\"missevan.fm:{ROOM}\", \"fishroom.tuna:general\"]\n\
         events = [\"message\", \"gift\"]\ngift_combo = \"10s\"\n",
        missevan_account("fm", &fm, ""),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["missevan.fm", "fishroom.tuna"]).await;
    fm.push(
        ROOM,
        vec![json!({"type": "gift", "event": "send", "room_id": ROOM, "user": {"user_id": 7, "username": "giver"},
            "gift": {"name": "小鱼干", "price": 10, "num": 2}})],
    );
    let stats = running.daemon().stats();
    eventually("the gift is taken in", || stats.received.get() >= 1).await;
    assert!(fish.posted().is_empty(), "held");
    running.shutdown().await;
    let lines: Vec<String> = fish.posted().into_iter().map(|p| p.content.replace('\u{200B}', "")).collect();
    assert_eq!(lines, ["giver sent 2 × 小鱼干"]);
}

/// Issue #33 §2: a Missevan room's audience (`room/statistics`, every couple of minutes) is on the status page and in
/// the admin API, and is neither relayed nor counted as an unknown kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_rooms_audience_is_on_the_status_page() {
    const ROOM: u64 = 868858631;
    let fm = missevan(&[ROOM], None).await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let general = FAST.replace("[general]\n", "[general]\nhttp_listen = \"127.0.0.1:0\"\n");
    let source = format!(
        "{general}{}{}\n[[bridge]]\nname = \"live\"\nrooms = [\"missevan.fm:{ROOM}\", \"fishroom.tuna:general\"]\n",
        missevan_account("fm", &fm, ""),
        account("tuna", &fish, "11", "key"),
    );
    let running = start(&source, &["missevan.fm", "fishroom.tuna"]).await;
    let base = format!("http://{}", running.daemon().status_addr().unwrap());
    fm.push(
        ROOM,
        vec![json!({"type": "room", "event": "statistics", "room_id": ROOM,
            "statistics": {"online": 120, "score": 9999, "accumulation": 5, "vip": 1, "revenue": 100, "attention_count": 3}})],
    );
    let mut online = None;
    for _ in 0..100 {
        let bridges: serde_json::Value =
            reqwest::get(format!("{base}/admin/api/v1/bridges")).await.unwrap().json().await.unwrap();
        let rooms = bridges["bridges"][0]["rooms"].as_array().unwrap().clone();
        online = rooms.iter().find(|r| r["room"] == format!("missevan.fm:{ROOM}")).and_then(|r| r["online"].as_u64());
        if online.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(online, Some(120));
    let page = reqwest::get(format!("{base}/")).await.unwrap().text().await.unwrap();
    assert!(page.contains("120 watching"), "{page}");
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("room/statistics"), "not an unknown kind: {metrics}");
    assert!(fish.posted().is_empty());
    running.shutdown().await;
}

/// Issue #33 §3: a relayed gift goes out where each platform takes it — in Yunhu as Markdown with the gift's name in
/// bold, through the API with `event: "gift"` and the gift in `Extra`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gift_goes_to_yunhu_in_bold_and_to_the_api_with_its_kind() {
    const ROOM: u64 = 868858631;
    let fm = missevan(&[ROOM], None).await;
    let yh = yunhu().await;
    let port = free_port();
    let source = format!(
        "{FAST}{}{}\n[accounts.api.bots]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"api-secret-token\"\nhistory = 100\n\
         \n[[bridge]]\nname = \"live\"\nrooms = [\"missevan.fm:{ROOM}\", \"yunhu.yh:group/big-group\", \"api.bots:live\"]\n\
         events = [\"message\", \"gift\", \"join\"]\ngift_combo = \"0s\"\n",
        missevan_account("fm", &fm, ""),
        yunhu_account("yh", &yh, YUNHU_TOKEN, ""),
    );
    let running = start(&source, &["missevan.fm", "yunhu.yh", "api.bots"]).await;
    let mut requests = yh.subscribe();
    fm.push(
        ROOM,
        vec![json!({"type": "gift", "event": "send", "room_id": ROOM, "user": {"user_id": 7, "username": "giver"},
            "gift": {"name": "小鱼干", "price": 10, "num": 3}})],
    );
    let chatbridge::sim::yunhu::Request::Send(sent) = next_request(&mut requests).await else { panic!("a send") };
    assert_eq!(sent.content_type, 3, "Markdown: {sent:?}");
    assert!(sent.text.contains("sent 3 × **小鱼干**"), "{sent:?}");
    let http = reqwest::Client::new();
    let mut gift = serde_json::Value::Null;
    for _ in 0..100 {
        let messages: serde_json::Value = http
            .get(format!("http://127.0.0.1:{port}/api/messages"))
            .bearer_auth("api-secret-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(found) = messages.as_array().and_then(|m| m.iter().find(|m| m["event"] == "gift")) {
            gift = found.clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(gift["Extra"]["gift"]["name"], "小鱼干", "{gift}");
    assert_eq!(gift["Extra"]["gift"]["count"], 3, "{gift}");
    assert_eq!(gift["protocol"], "missevan", "{gift}");
    running.shutdown().await;
}

/// Issue #33 §2: an IIROSE like or follow of the bridge's account (seed 002's mailbox packets) reaches a room that
/// takes notices, and no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iirose_like_and_follow_are_notices_for_rooms_that_take_them() {
    let sim = iirose().await;
    let fish = fishroom(&["general", "plain"], &[("11", "key", "bridge"), ("12", "key2", "plain")]).await;
    let source = format!(
        "{FAST}{}{}{}\n[[bridge]]\nname = \"b\"\n[[bridge.room]]\nroom = \"iirose.rose:{ROSE_ROOM}\"\n\
         [[bridge.room]]\nroom = \"fishroom.tuna:general\"\nevents = [\"message\", \"notice\"]\n\
         [[bridge.room]]\nroom = \"fishroom.plain:plain\"\n",
        iirose_account("rose", &sim, ""),
        account("tuna", &fish, "11", "key"),
        account("plain", &fish, "12", "key2"),
    );
    let running = start(&source, &["iirose.rose", "fishroom.tuna", "fishroom.plain"]).await;
    let mut at_fish = fish.subscribe();
    sim.raw(ROSE_ROOM, "@*anata baka？>cartoon/600264>2>'*>>1762613079>d28ad2");
    sim.raw(ROSE_ROOM, "@*anata baka？>cartoon/600264>2>'^>>1762613260>d28ad2");
    let first = next_post(&mut at_fish).await;
    let second = next_post(&mut at_fish).await;
    assert_eq!((first.room.as_str(), second.room.as_str()), ("general", "general"));
    assert!(first.content.ends_with("liked the bridge's account."), "{first:?}");
    assert!(second.content.ends_with("followed the bridge's account."), "{second:?}");
    settle().await;
    assert!(fish.posted().iter().all(|p| p.room == "general"), "the room without notices gets none");
    running.shutdown().await;
}
