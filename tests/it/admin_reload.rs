//! The admin API's reload through the binary (issue #32 §3): `POST /admin/api/v1/reload` takes SIGHUP's path,
//! answers 422 with the problems of a refused file (the running configuration goes on) and `applied` for a good
//! one; the status names the configuration file, and the warnings ring shows what the log warned of, with no
//! secret in it.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::binary::{Reaped, bin, read_all, sigterm, temp_dir, wait_exit, write_config};
use crate::harness::{Pair, free_port, next_post};

const TOKEN: &str = "adm-0b7c4e1f9a2d5e83";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_through_the_api_answers_with_the_problems_or_applies() {
    let pair = Pair::start().await;
    let dir = temp_dir("admin-reload");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let general = format!(
        "[general]\nshutdown_timeout = \"1s\"\nhttp_listen = \"127.0.0.1:{port}\"\nadmin_token = \"{TOKEN}\"\n"
    );
    let config = write_config(&dir, &pair.config(&general));
    let mut child = Reaped(
        bin()
            .args(["run", "-c"])
            .arg(&config)
            .current_dir(&dir)
            .env_remove("STATE_DIRECTORY")
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the daemon starts"),
    );
    let stderr = child.stderr.take();
    let log = std::thread::spawn(move || read_all(stderr));
    let http = chatbridge::adapters::http_client(Duration::from_secs(15));
    let base = format!("http://127.0.0.1:{port}/admin/api/v1");
    let mut up = false;
    for _ in 0..200 {
        if http.get(format!("{base}/status")).bearer_auth(TOKEN).send().await.is_ok_and(|r| r.status() == 200) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the admin API answers");
    let reload = || http.post(format!("{base}/reload")).bearer_auth(TOKEN).send();

    // Without the token: refused, nothing reloaded.
    let anonymous = http.post(format!("{base}/reload")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // A broken file: 422 with its problems; the bridge goes on as it was.
    std::fs::write(&config, format!("{general}\n[accounts.fishroom.tuna]\ntoken_id = 11\n")).unwrap();
    let refused = reload().await.unwrap();
    assert_eq!(refused.status(), 422);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"], "refused", "{refused}");
    let problems = refused["problems"].as_array().expect("the problems").clone();
    assert!(problems.iter().any(|p| p.as_str().unwrap().contains("`token_id` must be a string")), "{refused}");
    let mut at_lug = pair.lug.subscribe();
    pair.tuna.say("general", "irc", "alice", "still bridged");
    assert_eq!(next_post(&mut at_lug).await.content, "still bridged");
    let status: Value =
        http.get(format!("{base}/status")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["last_reload"]["applied"], false, "{status}");
    let file = std::fs::canonicalize(&config).unwrap();
    assert_eq!(status["config_file"], file.display().to_string(), "{status}");
    // The refusal was logged as a warning or an error: the ring has it, and never the admin token.
    let warnings = status["warnings"].as_array().expect("the warnings").clone();
    assert!(warnings.iter().any(|w| w["text"].as_str().unwrap().contains("not valid")), "{status}");
    assert!(!status.to_string().contains(TOKEN), "no secret in the status");

    // A good file: applied, with a new bridge name the page and the API follow.
    write_config(&dir, &pair.config(&general).replace("name = \"b\"", "name = \"renamed\""));
    let applied = reload().await.unwrap();
    assert_eq!(applied.status(), 200);
    let applied: Value = applied.json().await.unwrap();
    assert_eq!(applied["applied"], true, "{applied}");
    let bridges: Value =
        http.get(format!("{base}/bridges")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(bridges["bridges"][0]["name"], "renamed", "{bridges}");
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(10))).await.unwrap();
    assert!(status.success());
    let log = log.join().unwrap();
    assert!(log.contains("The new configuration is not valid"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}
