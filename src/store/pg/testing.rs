//! Tests only: throw-away PostgreSQL servers on loopback. `initdb` into a temporary directory, the server
//! started on a free port with sockets off and `fsync` off (a killed server keeps what it committed; a
//! machine that loses power does not: tests, not benchmarks), as `nobody` when the
//! tests run as root (PostgreSQL refuses root). Each test gets a database of its own.
//!
//! Where no PostgreSQL is installed, [`TestPostgres::shared`] says so once on stderr and returns `None`, and
//! the tests that need it return early; with `CHATBRIDGE_REQUIRE_PG=1` (CI) that is a failure instead.
//! `CHATBRIDGE_PG_BIN` names the directory of `initdb` and `postgres` when they are elsewhere.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::settings::Secret;

/// A PostgreSQL server of the tests.
pub struct TestPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Mutex<Option<Child>>,
    databases: AtomicU32,
}

/// The test server's certificate and key (for 127.0.0.1 and localhost, until 2126), and the authority that
/// signed it: made for these tests with `openssl`, never used for anything else.
const SERVER_CERT: &str = include_str!("testdata/server.pem");
const SERVER_KEY: &str = include_str!("testdata/server.key");
const CA_CERT: &str = include_str!("testdata/ca.pem");

/// The user the server runs as when the tests run as root.
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:").map(|u| u.split_whitespace().nth(1) == Some("0"))))
        .unwrap_or(false)
}

/// Where `initdb` and `postgres` are.
fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CHATBRIDGE_PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").exists().then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists())
}

fn command(bin: &Path, program: &str) -> Command {
    let mut command = Command::new(bin.join(program));
    if is_root() {
        use std::os::unix::process::CommandExt;
        command.uid(NOBODY).gid(NOBODY);
    }
    command.env_remove("PGDATA");
    command
}

impl TestPostgres {
    /// One server for the whole test process, started at the first call and stopped when the process ends.
    pub fn shared() -> Option<&'static TestPostgres> {
        static SHARED: OnceLock<Option<TestPostgres>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let server = Self::start()?;
                server.stop_with_process();
                Some(server)
            })
            .as_ref()
    }

    /// A server of its own (stopped when dropped), or `None` (said once) where PostgreSQL is not installed.
    pub fn start() -> Option<TestPostgres> {
        let Some(bin) = find_bin() else {
            not_run("no PostgreSQL found (install Debian's `postgresql` package, or set CHATBRIDGE_PG_BIN)");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("chatbridge-pg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        if is_root() {
            std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).expect("the directory given to nobody");
        }
        let data = dir.join("data");
        let out = command(&bin, "initdb")
            .args(["--no-sync", "--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C"])
            .arg("-D")
            .arg(&data)
            .output()
            .expect("initdb runs");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        // TLS on, with a certificate for 127.0.0.1 from the tests' own authority (`testdata/`; [`TestPostgres::ca_file`]).
        for (name, pem) in [("server.pem", SERVER_CERT), ("server.key", SERVER_KEY), ("ca.pem", CA_CERT)] {
            let path = if name == "ca.pem" { dir.join(name) } else { data.join(name) };
            std::fs::write(&path, pem).expect("a certificate written");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("its permissions");
            if is_root() && name != "ca.pem" {
                std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).expect("given to nobody");
            }
        }
        let port = free_port();
        let server = TestPostgres { bin, dir, port, child: Mutex::new(None), databases: AtomicU32::new(0) };
        server.resume();
        Some(server)
    }

    /// Starts the server (again) on its port, and waits until it takes connections.
    pub fn resume(&self) {
        let log = std::fs::File::create(self.dir.join("server.log")).expect("a log file");
        if is_root() {
            let _ = std::os::unix::fs::chown(self.dir.join("server.log"), Some(NOBODY), Some(NOBODY));
        }
        let child = command(&self.bin, "postgres")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=300"])
            .args(["-c", "ssl=on", "-c", "ssl_cert_file=server.pem", "-c", "ssl_key_file=server.key"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log"))
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.answers() {
                return;
            }
            assert!(Instant::now() < deadline, "the test PostgreSQL did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server at once (as a crash or a kill would), keeping its data.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            // SIGQUIT: the immediate shutdown, which also ends the server's own processes.
            unsafe_signal(child.id(), 3);
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The authority that signed the server's certificate (PEM), for `sslrootcert`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A fresh database, and the connection string to it.
    pub fn database(&self) -> Secret {
        let n = self.databases.fetch_add(1, Ordering::SeqCst);
        let name = format!("t{}_{n}", std::process::id());
        self.sql(&format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    pub fn url(&self, database: &str) -> Secret {
        let url = format!("postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable", self.port);
        Secret::resolve(&url).expect("a literal")
    }

    /// Runs a query on `url`'s database; its rows, one per line, columns separated by `|`.
    pub fn query(&self, url: &Secret, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .arg(url.expose())
            .args(["-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs SQL on the `postgres` database.
    pub fn sql(&self, sql: &str) {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-qAt"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn answers(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// A watcher that stops the server and removes its directory when this test process has ended (a
    /// shared server is never dropped).
    fn stop_with_process(&self) {
        let Some(pid) = self.child.lock().unwrap().as_ref().map(Child::id) else { return };
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill -QUIT {pid} 2>/dev/null; sleep 2; \
             kill -KILL {pid} 2>/dev/null; rm -rf '{dir}'",
            me = std::process::id(),
            dir = self.dir.display()
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unsafe_signal(pid: u32, signal: i32) {
    let _ = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status();
}

/// A port nothing listens on now (the server binds it a moment later, and again after a restart): below the
/// kernel's ephemeral range, so that no outgoing connection takes it meanwhile.
fn free_port() -> u16 {
    loop {
        let port = 20_000 + fastrand::u16(..12_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Says once per process that the PostgreSQL tests were not run, and why; fails instead under
/// `CHATBRIDGE_REQUIRE_PG=1`.
fn not_run(why: &str) {
    if std::env::var_os("CHATBRIDGE_REQUIRE_PG").is_some_and(|v| v == "1") {
        panic!("CHATBRIDGE_REQUIRE_PG=1 but the PostgreSQL tests cannot run: {why}");
    }
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        // Straight to stderr: the test harness captures print macros of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "note: the PostgreSQL tests were not run: {why}; with it installed, `cargo test` runs them"
        );
    });
}
