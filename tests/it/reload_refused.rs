//! A reload refused for a broken file is seen where an operator looks: `/health` names the result and the
//! problems, `/metrics` has `chatbridge_config_last_reload_success 0`, `STATUS=` says so, and the configuration
//! before it runs on. A good file afterwards clears all three (issue #30 §3).

use std::process::Stdio;
use std::time::Duration;

use crate::binary::{Reaped, bin, read_all, sighup, sigterm, temp_dir, wait_exit, write_config};
use crate::harness::{Pair, eventually, free_port, next_post, notifications};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reload_shows_in_health_metrics_and_status() {
    let pair = Pair::start().await;
    let dir = temp_dir("reload-refused");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let general = format!("[general]\nshutdown_timeout = \"1s\"\nhttp_listen = \"127.0.0.1:{port}\"\n");
    let config = write_config(&dir, &pair.config(&general));
    let socket_path = dir.join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    // Killed when the test ends, however it ends.
    let mut child = Reaped(
        bin()
            .args(["run", "-c"])
            .arg(&config)
            .current_dir(&dir)
            .env_remove("STATE_DIRECTORY")
            .env_remove("RUST_LOG")
            .env("NOTIFY_SOCKET", &socket_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the daemon starts"),
    );
    let stderr = child.stderr.take();
    let log = std::thread::spawn(move || read_all(stderr));
    let (messages, reader) = notifications(socket, Duration::from_secs(30));
    let seen = |what: &str| messages.lock().unwrap().iter().any(|m| m.contains(what));
    eventually("READY=1", || seen("READY=1")).await;
    let http = chatbridge::adapters::http_client(Duration::from_secs(5));
    let get = |path: &str| {
        let request = http.get(format!("http://127.0.0.1:{port}{path}"));
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let health: serde_json::Value = serde_json::from_str(&get("/health").await).unwrap();
    assert_eq!(health["config"]["last_reload"], serde_json::Value::Null, "{health}");
    assert!(get("/metrics").await.contains("\nchatbridge_config_last_reload_success 1\n"));

    // A broken file: refused, and said in all three places; the bridge goes on as it was.
    std::fs::write(&config, format!("{general}\n[accounts.fishroom.tuna]\ntoken_id = 11\n")).unwrap();
    sighup(&child);
    let mut health = serde_json::Value::Null;
    for _ in 0..100 {
        health = serde_json::from_str(&get("/health").await).unwrap();
        if health["config"]["last_reload"]["result"] == "refused" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(health["config"]["last_reload"]["result"], "refused", "{health}");
    let errors = health["config"]["last_reload"]["errors"].as_array().expect("a list").clone();
    assert!(errors.iter().any(|e| e.as_str().unwrap().contains("`token_id` must be a string")), "{health}");
    assert_eq!(health["status"], "ok", "the running configuration serves: {health}");
    assert!(get("/metrics").await.contains("\nchatbridge_config_last_reload_success 0\n"));
    eventually("STATUS= says the reload was refused", || seen("STATUS=reload refused")).await;
    let mut at_lug = pair.lug.subscribe();
    pair.tuna.say("general", "irc", "alice", "still bridged");
    assert_eq!(next_post(&mut at_lug).await.content, "still bridged");

    // A good file: applied, and the refusal is gone.
    write_config(&dir, &pair.config(&general));
    sighup(&child);
    for _ in 0..100 {
        health = serde_json::from_str(&get("/health").await).unwrap();
        if health["config"]["last_reload"]["result"] == "applied" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(health["config"]["last_reload"]["result"], "applied", "{health}");
    assert!(get("/metrics").await.contains("\nchatbridge_config_last_reload_success 1\n"));
    let build = get("/metrics").await;
    assert!(build.contains(&format!("chatbridge_build_info{{version=\"{}\",commit=\"", env!("CARGO_PKG_VERSION"))));
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(10))).await.unwrap();
    assert!(status.success());
    reader.join().unwrap();
    let log = log.join().unwrap();
    assert!(log.contains("The new configuration is not valid"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}
