//! Gap filling says what it relayed of what others said while the bridge was away, not what it read: the message
//! the cursor names and the bridge's own copies are not counted (issue #30 §6).

use std::process::Stdio;
use std::time::Duration;

use crate::binary::{Reaped, bin, read_all, sigterm, temp_dir, wait_exit, write_config};
use crate::harness::{account, eventually, fishroom, missevan, missevan_account, next_post};

const ROOM: u64 = 868_858_631;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gap_filling_line_counts_what_others_said() {
    let fm = missevan(&[ROOM], None).await;
    let fish = fishroom(&["general"], &[("11", "key", "bridge")]).await;
    let dir = temp_dir("gap-log");
    std::fs::create_dir_all(&dir).unwrap();
    let config = write_config(
        &dir,
        &format!(
            "[general]\nshutdown_timeout = \"5s\"\nstate_dir = {:?}\n{}{}\n[[bridge]]\nname = \"live\"\n\
             rooms = [\"missevan.fm:{ROOM}\", \"fishroom.tuna:general\"]\n",
            dir.join("state").display().to_string(),
            missevan_account("fm", &fm, ""),
            account("tuna", &fish, "11", "key"),
        ),
    );
    // Killed when the test ends, however it ends.
    let spawn = || {
        Reaped(
            bin()
                .args(["run", "--log-format", "json", "-c"])
                .arg(&config)
                .env_remove("STATE_DIRECTORY")
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("the daemon starts"),
        )
    };
    let mut at_fish = fish.subscribe();
    let mut child = spawn();
    let stderr = child.stderr.take();
    let first_log = std::thread::spawn(move || read_all(stderr));
    eventually("the live room is joined", || !fm.joins().is_empty()).await;
    fm.say(ROOM, 42, "小明", "read before the stop");
    assert_eq!(next_post(&mut at_fish).await.content, "read before the stop");
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(15))).await.unwrap();
    assert!(status.success());
    drop(first_log.join());
    // Said while the bridge was stopped: one message of someone else's.
    fm.say(ROOM, 43, "阿花", "said while stopped");
    let mut child = spawn();
    let stderr = child.stderr.take();
    let log = std::thread::spawn(move || read_all(stderr));
    assert_eq!(next_post(&mut at_fish).await.content, "said while stopped");
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(15))).await.unwrap();
    assert!(status.success());
    let log = log.join().unwrap();
    let line = log.lines().find(|l| l.contains("Gap filling: relayed")).unwrap_or_else(|| panic!("{log}"));
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    // The history read holds the message the cursor names too; only the one said while stopped is counted.
    assert_eq!(line["fields"]["messages"], 1, "{line}");
    assert!(line["fields"]["read"].as_u64().unwrap() >= 2, "{line}");
    let _ = std::fs::remove_dir_all(dir);
}
