//! A reload that adds a bridge over new rooms, or takes one away, leaves the sessions of accounts whose rooms are
//! joined one by one (Missevan, Heihei, Fishroom) or that receive every chat anyway (Yunhu) running: only the
//! rooms' own subscriptions change (issue #30 §3).

use chatbridge::sim::heihei::{HeiheiSim, HeiheiSimConfig};
use chatbridge::sim::yunhu::{Request, Sent};
use chatbridge::{Changes, Reloaded};

use crate::harness::*;

const ROOM_ONE: u64 = 868_858_631;
const ROOM_TWO: u64 = 868_858_632;
const HOST_TWO: u64 = 38_298_238;

fn ids(list: &[&str]) -> Vec<chatbridge::model::AccountId> {
    let mut ids: Vec<_> = list.iter().map(|s| parse_id(s)).collect();
    ids.sort();
    ids
}

fn parse_id(text: &str) -> chatbridge::model::AccountId {
    let (platform, name) = text.split_once('.').unwrap();
    chatbridge::model::AccountId::new(platform.parse().unwrap(), name)
}

async fn reload(running: &Running, source: &str) -> Reloaded {
    let mut config = parse(source);
    // The store stays where the daemon opened it (a new state_dir would be a restart).
    config.general.state_dir = running.state_dir.clone().expect("a durable test daemon");
    tokio::time::timeout(DEADLINE, running.daemon().reloader().reload(config)).await.expect("the reload answers")
}

fn sent(request: Request) -> Sent {
    match request {
        Request::Send(send) => send,
        other => panic!("expected a send, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_added_and_removed_change_subscriptions_not_sessions() {
    let fish = fishroom(&["general", "announce"], &[("11", "key-tuna", "bridge")]).await;
    let fm = missevan(&[ROOM_ONE, ROOM_TWO], None).await;
    let hh = HeiheiSim::start(HeiheiSimConfig {
        token: HEIHEI_TOKEN.to_owned(),
        user_id: 777,
        hosts: vec![HEIHEI_HOST, HOST_TWO],
    })
    .await
    .unwrap();
    hh.start_live(HEIHEI_HOST);
    let second_live = hh.start_live(HOST_TWO);
    let yh = yunhu().await;
    let accounts = format!(
        "{FAST}{}{}{}{}",
        account("tuna", &fish, "11", "key-tuna"),
        missevan_account("fm", &fm, ""),
        heihei_account("hh", &hh, ""),
        yunhu_account("yh", &yh, YUNHU_TOKEN, ""),
    );
    let first_bridge = format!(
        "\n[[bridge]]\nname = \"one\"\nrooms = [\"fishroom.tuna:general\", \"missevan.fm:{ROOM_ONE}\", \
         \"heihei.hh:host/{HEIHEI_HOST}\", \"yunhu.yh:group/g1\"]\n"
    );
    let second_bridge = format!(
        "\n[[bridge]]\nname = \"two\"\n\
         [[bridge.room]]\nroom = \"fishroom.tuna:announce\"\ndirection = \"out\"\n\
         [[bridge.room]]\nroom = \"missevan.fm:{ROOM_TWO}\"\n\
         [[bridge.room]]\nroom = \"heihei.hh:host/{HOST_TWO}\"\n\
         [[bridge.room]]\nroom = \"yunhu.yh:group/g2\"\n"
    );
    let all = ["fishroom.tuna", "missevan.fm", "heihei.hh", "yunhu.yh"];
    let running = start(&format!("{accounts}{first_bridge}"), &all).await;
    heihei_following(&hh).await;
    eventually("the first Missevan room is joined", || fm.joins().iter().any(|(r, _)| *r == ROOM_ONE)).await;
    let (yunhu_logins, missevan_joins, heihei_joins) = (yh.logins(), fm.joins().len(), hh.joins().len());
    let sessions = fm.issued_sessions().len();

    // A bridge over a new room of each account: applied without a new session anywhere.
    let applied = reload(&running, &format!("{accounts}{first_bridge}{second_bridge}")).await;
    let expected = Changes { rooms_changed: ids(&all), kept: 4, ..Changes::default() };
    assert!(matches!(&applied, Reloaded::Applied(c) if *c == expected), "{applied:?}");
    eventually("the new Missevan room is joined", || fm.joins().iter().any(|(r, _)| *r == ROOM_TWO)).await;
    eventually("the new broadcast is joined", || hh.joins().contains(&second_live.live_id)).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The new bridge relays: Missevan's second room to Yunhu's second group, Heihei's second host, Fishroom.
    let mut at_yunhu = yh.subscribe();
    let mut at_fish = fish.subscribe();
    let mut at_heihei = hh.subscribe();
    fm.say(ROOM_TWO, 42, "viewer", "in the new room");
    let copy = sent(next_request(&mut at_yunhu).await);
    assert_eq!((copy.chat_id.as_str(), copy.text.as_str()), ("g2", "[missevan] viewer: in the new room"));
    let post = next_post(&mut at_fish).await;
    assert_eq!((post.room.as_str(), post.content.as_str()), ("announce", "in the new room"));
    let said = tokio::time::timeout(std::time::Duration::from_secs(10), at_heihei.recv()).await.unwrap().unwrap();
    assert_eq!(said.live_id, second_live.live_id);
    // Yunhu's new group is received too: its socket takes the new chat's pushes.
    let mut at_missevan = fm.subscribe();
    yh.say("g2", ("5", "小明"), "from the new group");
    let copy = next_sent(&mut at_missevan).await;
    assert_eq!((copy.room_id, copy.message.as_str()), (ROOM_TWO, "[yunhu] 小明: from the new group"));
    // No account logged in or joined its old rooms again.
    assert_eq!(yh.logins(), yunhu_logins, "Yunhu's socket was not replaced");
    assert_eq!(fm.issued_sessions().len(), sessions, "no new Missevan session");
    assert_eq!(fm.joins().iter().filter(|(r, _)| *r == ROOM_ONE).count(), 1, "room one was not joined again");
    assert_eq!(fm.joins().len(), missevan_joins + 1);
    assert_eq!(hh.joins().len(), heihei_joins + 1, "only the new broadcast was joined");
    let polls = fish.polls();
    eventually("Fishroom's poll goes on", || fish.polls() > polls).await;

    // The bridge taken away again: the rooms are left, the sessions go on.
    let applied = reload(&running, &format!("{accounts}{first_bridge}")).await;
    assert!(matches!(&applied, Reloaded::Applied(c) if *c == expected), "{applied:?}");
    settle().await;
    let mut at_fish = fish.subscribe();
    fm.say(ROOM_TWO, 42, "viewer", "no longer bridged");
    fm.say(ROOM_ONE, 42, "viewer", "still bridged");
    let post = next_post(&mut at_fish).await;
    assert_eq!((post.room.as_str(), post.content.as_str()), ("general", "still bridged"));
    assert_eq!(yh.logins(), yunhu_logins);
    assert_eq!(fm.issued_sessions().len(), sessions);
    running.shutdown().await;
}
