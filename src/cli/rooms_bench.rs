//! `chatbridge bench --rooms N --instances K --store URL` and `--provision N` (issue #34 §3): thousands of rooms on
//! several instances sharing PostgreSQL. The simulators run in this process; the instances are `chatbridge run`
//! processes of this same binary. A Missevan account with N live rooms (leased one by one) is bridged room by room to
//! N groups of one Yunhu bot (leased whole), each way `in` → `out`, so a message said on one instance's room is often
//! sent by another (through the database).
//!
//! `--rooms`: the time until every room is joined, resident memory per idle room (above K instances with no room),
//! idle CPU; then `--rate` msg/s spread over all rooms for `--seconds`: p50/p99 from said to sent, commits and
//! connections per instance; then the instance holding most rooms is SIGKILLed under traffic: the time until every
//! one of its leases is held elsewhere, and every message is counted (lost or doubled fails the run).
//! `--provision`: K instances start with accounts and no bridge; N bridges are added through the first one's admin
//! API; the time until every room relays.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::sim::missevan::{MissevanSim, MissevanSimConfig};
use crate::sim::yunhu::{Request, YunhuSim, YunhuSimConfig};

const MISSEVAN_TOKEN: &str = "bench-missevan-token";
const YUNHU_TOKEN: &str = "bench-yunhu-token";
const FIRST_ROOM: u64 = 100_000;

pub struct RoomsOptions {
    pub rooms: usize,
    pub instances: usize,
    pub store: String,
    pub rate: f64,
    pub seconds: u64,
    /// Instead of the rooms run: provision this many bridges through the API.
    pub provision: bool,
}

struct Bench {
    missevan: MissevanSim,
    yunhu: YunhuSim,
    dir: std::path::PathBuf,
    /// Said text → when.
    said: Arc<Mutex<HashMap<String, Instant>>>,
    /// Sent text → when, how many times.
    sent: Arc<Mutex<HashMap<String, (Instant, usize)>>>,
}

fn kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds a process used (user and system).
fn cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    ticks / 100.0
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Bench {
    async fn start(rooms: usize) -> anyhow::Result<Self> {
        let missevan = MissevanSim::start(MissevanSimConfig {
            rooms: (0..rooms as u64).map(|i| FIRST_ROOM + i).collect(),
            users: vec![(MISSEVAN_TOKEN.into(), 3_414_815, "bridgebot".into())],
            room_buffer: 256,
            ..MissevanSimConfig::default()
        })
        .await
        .context("starting a simulated Missevan site")?;
        let yunhu = YunhuSim::start(YunhuSimConfig {
            users: vec![(YUNHU_TOKEN.into(), "9001".into(), "bridgebot".into())],
            discard_uploads: true,
        })
        .await
        .context("starting a simulated Yunhu server")?;
        let dir = std::env::temp_dir().join(format!("chatbridge-rooms-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let sent: Arc<Mutex<HashMap<String, (Instant, usize)>>> = Arc::default();
        let mut requests = yunhu.subscribe();
        let record = Arc::clone(&sent);
        tokio::spawn(async move {
            loop {
                match requests.recv().await {
                    Ok(Request::Send(s)) => {
                        let mut sent = record.lock().expect("not poisoned");
                        sent.entry(s.text).or_insert((Instant::now(), 0)).1 += 1;
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        eprintln!("warning: {n} sends not seen")
                    }
                    Err(_) => return,
                }
            }
        });
        Ok(Self { missevan, yunhu, dir, said: Arc::default(), sent })
    }

    /// `[general]` of instance `name` and the accounts; bridges after it.
    fn config(&self, store: &str, name: &str, port: u16, bridges: usize) -> String {
        let mut text = format!(
            "[general]\nstore = {store:?}\ninstance = \"{name}\"\nlease_ttl = \"10s\"\nhttp_listen = \"127.0.0.1:{port}\"\n\
             log_level = \"warn\"\n\n[accounts.missevan.fm]\ncookie = \"token={MISSEVAN_TOKEN}\"\napi_url = \"{}\"\n\
             ws_url = \"{}\"\nsend_rate = 0\n\n[accounts.yunhu.bot]\ntoken = \"{YUNHU_TOKEN}\"\napi_url = \"{}\"\n\
             ws_url = \"{}\"\nsend_rate = 0\n",
            self.missevan.api_url(),
            self.missevan.ws_url(),
            self.yunhu.api_url(),
            self.yunhu.ws_url()
        );
        for i in 0..bridges {
            text.push_str(&bridge_toml(i));
        }
        text
    }

    fn spawn(&self, config: &str, name: &str) -> anyhow::Result<Child> {
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&path, config)?;
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        Command::new(std::env::current_exe()?)
            .args(["run", "-c"])
            .arg(&path)
            .arg("--log-format=json")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting an instance")
    }

    /// Says `text` in room `i`, noting when.
    fn say(&self, i: usize, text: String) {
        self.said.lock().expect("not poisoned").insert(text.clone(), Instant::now());
        self.missevan.say(FIRST_ROOM + i as u64, 42, "fan", &text);
    }

    fn joined(&self) -> usize {
        self.missevan.joins().iter().map(|(room, _)| *room).collect::<std::collections::HashSet<_>>().len()
    }

    /// Waits until every said text was sent; (lost, doubled).
    async fn drained(&self, limit: Duration) -> (usize, usize) {
        let deadline = Instant::now() + limit;
        loop {
            let (lost, doubled) = {
                let (said, sent) = (self.said.lock().expect("not poisoned"), self.sent.lock().expect("not poisoned"));
                let lost = said.keys().filter(|t| !sent.contains_key(*t)).count();
                (lost, sent.values().filter(|(_, n)| *n > 1).count())
            };
            if lost == 0 || Instant::now() > deadline {
                return (lost, doubled);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// p50 and p99 from said to sent, of the texts starting with `prefix`, in ms.
    fn latency(&self, prefix: &str) -> (f64, f64) {
        let (said, sent) = (self.said.lock().expect("not poisoned"), self.sent.lock().expect("not poisoned"));
        let mut ms: Vec<f64> = said
            .iter()
            .filter(|(t, _)| t.starts_with(prefix))
            .filter_map(|(t, at)| sent.get(t).map(|(got, _)| got.duration_since(*at).as_secs_f64() * 1000.0))
            .collect();
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms.get(((ms.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
        (at(0.5), at(0.99))
    }

    /// Says `rate` messages a second over every room for `seconds`, each `<prefix><n>`.
    async fn traffic(&self, rooms: usize, rate: f64, seconds: f64, prefix: &str, from: &mut usize) {
        let started = tokio::time::Instant::now();
        let total = (rate * seconds) as usize;
        for k in 0..total {
            tokio::time::sleep_until(started + Duration::from_secs_f64(k as f64 / rate)).await;
            let n = *from + k;
            self.say(n % rooms, format!("{prefix}{n}"));
        }
        *from += total;
    }
}

fn bridge_toml(i: usize) -> String {
    let room = FIRST_ROOM + i as u64;
    format!(
        "\n[[bridge]]\nname = \"r{i}\"\nformat = \"{{text}}\"\n[[bridge.room]]\nroom = \"missevan.fm:{room}\"\n\
         direction = \"in\"\n[[bridge.room]]\nroom = \"yunhu.bot:group/g{i}\"\ndirection = \"out\"\n"
    )
}

/// A counter of an instance's `/metrics`.
async fn metric(http: &reqwest::Client, port: u16, name: &str) -> f64 {
    let text = match http.get(format!("http://127.0.0.1:{port}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return 0.0,
    };
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn wait(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while !done().await {
        if started.elapsed() > limit {
            bail!("{what}: not within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(started.elapsed())
}

/// The instances, killed if the run ends early (an error): none is left running.
struct Instances(Vec<Child>);

impl Drop for Instances {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn stop(children: &mut [Child]) {
    for child in children.iter() {
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    }
    for child in children.iter_mut() {
        let _ = child.wait();
    }
}

pub async fn run(o: RoomsOptions) -> anyhow::Result<()> {
    ensure!(o.instances >= 1 && o.rooms >= 1, "--rooms and --instances must be at least 1");
    crate::adapters::install_crypto_provider();
    let bench = Bench::start(o.rooms).await?;
    let (pg, connection) = tokio_postgres::connect(&o.store, tokio_postgres::NoTls).await.context("--store")?;
    tokio::spawn(connection);
    let http = reqwest::Client::new();
    let names: Vec<String> = (0..o.instances).map(|i| format!("i{i}")).collect();
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect::<anyhow::Result<_>>()?;
    println!(
        "# {} rooms, {} instances, PostgreSQL {}",
        o.rooms,
        o.instances,
        o.store.split('@').next_back().unwrap_or("")
    );

    if o.provision {
        let mut children = Instances(Vec::new());
        for (name, port) in names.iter().zip(&ports) {
            children.0.push(bench.spawn(&bench.config(&o.store, name, *port, 0), name)?);
        }
        let admin = format!("http://127.0.0.1:{}/admin/api/v1", ports[0]);
        wait("the first instance's API", Duration::from_secs(30), async || {
            http.get(format!("{admin}/provisioned")).send().await.is_ok_and(|r| r.status().is_success())
        })
        .await?;
        let started = Instant::now();
        for i in 0..o.rooms {
            let room = format!("missevan.fm:{}", FIRST_ROOM + i as u64);
            let body = serde_json::json!({"format": "{text}", "room": [{"room": room, "direction": "in"}, {"room": format!("yunhu.bot:group/g{i}"), "direction": "out"}]});
            let answer = http.put(format!("{admin}/bridges/r{i}")).json(&body).send().await?;
            ensure!(answer.status().is_success(), "bridge r{i}: {}", answer.text().await.unwrap_or_default());
        }
        let put = started.elapsed();
        let mut n = 0;
        let relay = wait("every provisioned room relays", Duration::from_secs(300), async || {
            for i in 0..o.rooms {
                bench.say(i, format!("probe{n}-{i}"));
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let sent = bench.sent.lock().expect("not poisoned");
            (0..o.rooms).all(|i| (0..n).any(|k| sent.contains_key(&format!("probe{k}-{i}"))))
        })
        .await?;
        println!(
            "provision {} bridges: PUTs {:.2} s; every room relays {:.2} s after the first PUT",
            o.rooms,
            put.as_secs_f64(),
            (put + relay).as_secs_f64()
        );
        stop(&mut children.0);
        return Ok(());
    }

    // Baseline: the instances with no room.
    let mut children = Instances(Vec::new());
    for (name, port) in names.iter().zip(&ports) {
        children.0.push(bench.spawn(&bench.config(&o.store, name, *port, 0), name)?);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let baseline: u64 = children.0.iter().map(|c| kb(c.id(), "VmRSS:")).sum();
    stop(&mut children.0);

    let started = Instant::now();
    let mut instances = Instances(Vec::new());
    for (name, port) in names.iter().zip(&ports) {
        instances.0.push(bench.spawn(&bench.config(&o.store, name, *port, o.rooms), name)?);
    }
    let children = &mut instances.0;
    let joined = wait("every room joined", Duration::from_secs(600), async || bench.joined() >= o.rooms).await?;
    // Each instance waits a beat after its first heartbeat to see the others, then claims its share.
    let share = (o.rooms + 1).div_ceil(o.instances) as f64;
    let (http2, ports2) = (http.clone(), ports.clone());
    wait("the leases spread evenly", Duration::from_secs(600), async || {
        let held =
            futures_util::future::join_all(ports2.iter().map(|p| metric(&http2, *p, "chatbridge_leases_held"))).await;
        held.iter().all(|h| *h <= share + 1.0) && held.iter().sum::<f64>() >= (o.rooms + 1) as f64
    })
    .await?;
    let spread = started.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu_before: Vec<f64> = children.iter().map(|c| cpu(c.id())).collect();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu: f64 = children.iter().zip(&cpu_before).map(|(c, b)| cpu(c.id()) - b).sum::<f64>() / 10.0;
    let rss: Vec<u64> = children.iter().map(|c| kb(c.id(), "VmRSS:")).collect();
    let held: Vec<f64> =
        futures_util::future::join_all(ports.iter().map(|p| metric(&http, *p, "chatbridge_leases_held"))).await;
    println!(
        "joined {} rooms in {:.2} s, spread evenly in {:.2} s; leases per instance {held:?}; RSS per instance {:?} KB \
         (baseline {} KB in all); {:.1} KB per idle room; idle CPU {:.1} % of a core in all",
        o.rooms,
        joined.as_secs_f64(),
        spread.as_secs_f64(),
        rss,
        baseline,
        (rss.iter().sum::<u64>().saturating_sub(baseline)) as f64 / o.rooms as f64,
        idle_cpu * 100.0
    );

    let commits = |http: reqwest::Client, ports: Vec<u16>| async move {
        futures_util::future::join_all(ports.iter().map(|p| metric(&http, *p, "chatbridge_store_commits_total"))).await
    };
    let before = commits(http.clone(), ports.clone()).await;
    let mut n = 0;
    bench.traffic(o.rooms, o.rate, o.seconds as f64, "t", &mut n).await;
    let (lost, doubled) = bench.drained(Duration::from_secs(60)).await;
    let after = commits(http.clone(), ports.clone()).await;
    let (p50, p99) = bench.latency("t");
    let connections: i64 =
        pg.query_one("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()", &[]).await?.get(0);
    let per_second: Vec<String> =
        after.iter().zip(&before).map(|(a, b)| format!("{:.0}", (a - b) / o.seconds as f64)).collect();
    println!(
        "traffic {} msg/s for {} s: p50 {p50:.2} ms, p99 {p99:.2} ms; lost {lost}, doubled {doubled}; commits a second per instance {per_second:?}; connections {} ({:.1} per instance, this tool's 1 included)",
        o.rate,
        o.seconds,
        connections,
        (connections - 1) as f64 / o.instances as f64
    );
    ensure!(lost == 0 && doubled == 0, "messages lost or doubled under steady traffic");
    if o.instances < 2 {
        stop(children);
        return Ok(());
    }

    // The instance with the most leases is SIGKILLed under traffic.
    let victim = held.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
    let victim_name = names[victim].clone();
    children[victim].kill()?;
    children[victim].wait()?;
    let killed = Instant::now();
    let q = "SELECT COUNT(*) FROM leases WHERE owner = $1 AND expires > clock_timestamp() OR run IS NULL OR expires < clock_timestamp()";
    let mut moved = None;
    while moved.is_none() {
        bench.traffic(o.rooms, o.rate / 2.0, 0.5, "k", &mut n).await;
        let left: i64 = pg.query_one(q, &[&victim_name]).await?.get(0);
        if left == 0 {
            moved = Some(killed.elapsed());
        }
        ensure!(killed.elapsed() < Duration::from_secs(120), "the killed instance's rooms were not taken over");
    }
    bench.traffic(o.rooms, o.rate / 2.0, 5.0, "k", &mut n).await;
    let (lost, doubled) = bench.drained(Duration::from_secs(120)).await;
    let (k50, k99) = bench.latency("k");
    println!(
        "SIGKILL {victim_name} (holding {:.0} leases): every lease elsewhere {:.2} s after (lease_ttl 10 s); lost {lost}, doubled {doubled}; p50 {k50:.0} ms, p99 {k99:.0} ms across the takeover",
        held[victim],
        moved.unwrap_or_default().as_secs_f64()
    );
    let _ = children.remove(victim).wait();
    stop(children);
    ensure!(lost == 0 && doubled == 0, "messages lost or doubled across the SIGKILL");
    let _ = std::fs::remove_dir_all(&bench.dir);
    Ok(())
}
