//! `chatbridge demo`: two simulated Fishroom servers on loopback, a bridge between a room on each, and
//! a short scripted conversation; every relayed message is printed as the destination receives it.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Daemon;
use crate::adapters::AccountState;
use crate::config::Config;
use crate::sim::fishroom::{FishroomSim, FishroomSimConfig};

const WAIT: Duration = Duration::from_secs(10);

/// Who says what, where: (server index, channel, sender, text).
const SCRIPT: [(usize, &str, &str, &str); 4] = [
    (0, "irc", "alice", "Hello from IRC on the tuna server!"),
    (1, "telegram", "bob", "Hi alice, this is Telegram on the lug server."),
    (0, "irc", "alice", "Each message crosses once, with the bridge's format, and never comes back."),
    (1, "xmpp", "carol", "/me waves"),
];

pub async fn run(duration: Option<Duration>) -> anyhow::Result<()> {
    let servers = [
        start_server("general", ("10000001", "demo-key-tuna")).await?,
        start_server("chat", ("20000002", "demo-key-lug")).await?,
    ];
    let source = format!(
        r#"
[general]
shutdown_timeout = "3s"
retry_delay = "200ms"

[accounts.fishroom.tuna]
api_url = "{tuna}"
token_id = "10000001"
token_key = "demo-key-tuna"

[accounts.fishroom.lug]
api_url = "{lug}"
token_id = "20000002"
token_key = "demo-key-lug"

[[bridge]]
name = "demo"
rooms = ["fishroom.tuna:general", "fishroom.lug:chat"]
nick_format = "[{{platform}}/{{account}}] {{nick}}"
"#,
        tuna = servers[0].api_url(),
        lug = servers[1].api_url(),
    );
    let config = Config::parse(&source, "demo.toml").map_err(|p| anyhow::anyhow!("the demo configuration: {p}"))?;
    let stop = CancellationToken::new();
    let daemon = Daemon::start(config, stop.clone());
    wait_connected(&daemon).await?;

    println!("chatbridge demo: bridge `demo` joins fishroom.tuna:general and fishroom.lug:chat (simulated).\n");
    let (relayed_tx, mut relayed) = mpsc::unbounded_channel();
    let names = ["fishroom.tuna:general", "fishroom.lug:chat"];
    for (server, name) in servers.iter().zip(names) {
        let mut posted = server.subscribe();
        let relayed_tx = relayed_tx.clone();
        tokio::spawn(async move {
            while let Ok(post) = posted.recv().await {
                println!("    → {name:<22} {}: {}", post.sender, post.content);
                let _ = relayed_tx.send(());
            }
        });
    }
    for (server, channel, sender, text) in SCRIPT {
        let room = if server == 0 { "general" } else { "chat" };
        println!("  {:<24} <{sender}@{channel}> {text}", names[server]);
        servers[server].say(room, channel, sender, text);
        tokio::time::timeout(WAIT, relayed.recv()).await.context("a message was not relayed in time")?;
    }
    // Anything echoed back would arrive now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posts: usize = servers.iter().map(|s| s.posted().len()).sum();
    if posts != SCRIPT.len() {
        bail!("expected {} relayed messages, saw {posts}", SCRIPT.len());
    }
    if let Some(duration) = duration {
        println!("\nRunning for {}; interrupt with Ctrl-C.", humantime::format_duration(duration));
        let signals = crate::shutdown::on_signals()?;
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = signals.cancelled() => {}
        }
    }
    stop.cancel();
    let summary = daemon.wait().await;
    println!("\n{} messages relayed, none echoed back, {} left undelivered.", SCRIPT.len(), summary.undelivered);
    Ok(())
}

async fn start_server(room: &str, (id, key): (&str, &str)) -> anyhow::Result<FishroomSim> {
    let config = FishroomSimConfig {
        rooms: vec![room.to_owned()],
        tokens: vec![(id.to_owned(), key.to_owned(), "bridge".to_owned())],
        poll_timeout: Duration::from_secs(2),
        ..FishroomSimConfig::default()
    };
    FishroomSim::start(config).await.context("starting a simulated Fishroom server")
}

async fn wait_connected(daemon: &Daemon) -> anyhow::Result<()> {
    let mut states = daemon.states();
    let all_up = states.wait_for(|s| !s.is_empty() && s.values().all(|s| *s == AccountState::Connected));
    match tokio::time::timeout(WAIT, all_up).await {
        Ok(Ok(_)) => Ok(()),
        _ => bail!("the simulated accounts did not connect: {:?}", *daemon.states().borrow()),
    }
}
