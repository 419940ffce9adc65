//! `chatbridge check` as an operator runs it: in an admin shell without the service's secrets, on a file others
//! can read, over a state directory it cannot write or a database a newer build wrote (issue #30 §1, §2).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chatbridge::config::Config;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chatbridge-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn check(file: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatbridge"));
    command.arg("check").args(args).arg("-c").arg(file).env_remove("RUST_LOG").env_remove("STATE_DIRECTORY");
    command.envs(env.iter().copied());
    command.output().expect("the binary runs")
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

const TWO_ROOMS: &str = "[accounts.fishroom.tuna]\ntoken_id = \"1\"\ntoken_key = \"env:CB_TEST_KEY_A\"\n\n\
    [accounts.yunhu.me]\ntoken = \"cred:yunhu\"\n\n\
    [[bridge]]\nname = \"b\"\nrooms = [\"fishroom.tuna:general\", \"yunhu.me:group/1\"]\n";

#[test]
fn an_admin_shell_checks_everything_but_the_secrets_and_is_told_so() {
    let dir = scratch("admin");
    let file = dir.join("config.toml");
    std::fs::write(&file, format!("[general]\nstate_dir = \"{}\"\n\n{TWO_ROOMS}", dir.join("state").display()))
        .unwrap();
    // Without the service's environment and credentials: two problems, and the way to check the rest.
    let (stdout, stderr) = text(&check(&file, &[], &[]));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("`CB_TEST_KEY_A` is not set") && stderr.contains("CREDENTIALS_DIRECTORY"), "{stderr}");
    assert!(stderr.contains("`chatbridge check --without-secrets`"), "{stderr}");
    // --without-secrets: accepted, and said.
    let out = check(&file, &["--without-secrets"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("ok\n") && stdout.contains("secrets: not read (--without-secrets)"), "{stdout}");
    // What is wrong besides the secrets is still found.
    std::fs::write(&file, TWO_ROOMS.replace("group/1", "channel/1")).unwrap();
    let (_, stderr) = text(&check(&file, &["--without-secrets"], &[]));
    assert!(stderr.contains("room `channel/1` is not a Yunhu chat"), "{stderr}");
    // A secret's form is checked without reading it: ` env:X` is refused, and so is one variable on two tokens.
    std::fs::write(&file, TWO_ROOMS.replace("\"cred:yunhu\"", "\" env:Y\"")).unwrap();
    let (_, stderr) = text(&check(&file, &["--without-secrets"], &[]));
    assert!(stderr.contains("it has spaces or line breaks around it"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_literal_secret_in_a_file_others_can_read_is_warned_of() {
    let dir = scratch("literal");
    let file = dir.join("config.toml");
    let source = TWO_ROOMS.replace("env:CB_TEST_KEY_A", "literal-key").replace("cred:yunhu", "env:CB_TEST_TOKEN");
    std::fs::write(&file, &source).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = Config::load_without_secrets(&file).unwrap();
    let warned: Vec<String> = config.notes.iter().map(|n| format!("{}:{}: {}", n.line, n.column, n.message)).collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].starts_with("3:13: secret `token_key` is written in the file, which others can read (mode 0644)")
    );
    // Root's alone: nothing to say.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Config::load_without_secrets(&file).unwrap().notes.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_state_directory_this_user_cannot_write_fails_the_check() {
    let dir = scratch("state");
    let state = dir.join("state");
    std::fs::create_dir(&state).unwrap();
    let file = dir.join("config.toml");
    let source = TWO_ROOMS.replace("env:CB_TEST_KEY_A", "k").replace("cred:yunhu", "t");
    std::fs::write(&file, format!("[general]\nstate_dir = \"{}\"\n\n{source}", state.display())).unwrap();
    let out = check(&file, &[], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    // Read-only for everyone; root is not bound by the mode, so it checks as an unprivileged uid where it can.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let root = chatbridge::config::effective_uid() == Some(0);
    let out = if root {
        if Command::new("setpriv").arg("--version").output().is_err() {
            panic!("setpriv (util-linux) is needed to check as another uid");
        }
        let mut command = Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        command.arg(env!("CARGO_BIN_EXE_chatbridge")).arg("check").arg("-c").arg(&file).env_remove("STATE_DIRECTORY");
        command.output().unwrap()
    } else {
        check(&file, &[], &[])
    };
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("not writable by uid") && stderr.contains("give the directory to the service's user"),
        "{stderr}"
    );
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_database_from_a_newer_chatbridge_fails_the_check_as_it_fails_the_start() {
    let dir = scratch("newer");
    let file = dir.join("config.toml");
    let source = TWO_ROOMS.replace("env:CB_TEST_KEY_A", "k").replace("cred:yunhu", "t");
    std::fs::write(&file, format!("[general]\nstate_dir = \"{}\"\n\n{source}", dir.display())).unwrap();
    let db = rusqlite::Connection::open(dir.join("chatbridge.db")).unwrap();
    db.pragma_update(None, "user_version", 99).unwrap();
    drop(db);
    let out = check(&file, &[], &[]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("newer"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_postgresql_forms_the_operations_guide_shows_are_accepted() {
    let dir = scratch("pg");
    let ca = dir.join("db-ca.pem");
    std::fs::write(&ca, "not read by check, only found").unwrap();
    let base = "[accounts.fishroom.a]\ntoken_id = \"1\"\ntoken_key = \"k\"\n[accounts.fishroom.b]\ntoken_id = \"2\"\n\
                token_key = \"k2\"\n[[bridge]]\nname = \"b\"\nrooms = [\"fishroom.a:x\", \"fishroom.b:y\"]\n";
    let parse = |url: &str| Config::parse(&format!("[general]\nstore = \"{url}\"\n{base}"), "t.toml");
    for url in [
        "postgres://u:p@db.example:5432/chat?sslmode=verify-full".to_owned(),
        "postgres://u:p@db.example:5432/chat?sslmode=verify-ca".to_owned(),
        format!("postgresql://u@db.example/chat?sslmode=verify-full&sslrootcert={}", ca.display()),
        "postgres://u@db.example/chat?sslmode=require".to_owned(),
    ] {
        assert!(parse(&url).is_ok(), "{url}: {:?}", parse(&url).err());
    }
    let missing = parse("postgres://u@db.example/chat?sslrootcert=/nonexistent/ca.pem").unwrap_err().to_string();
    assert!(missing.contains("`sslrootcert=/nonexistent/ca.pem`, which cannot be read"), "{missing}");
    let both = parse(&format!("postgres://u@h/chat?sslmode=disable&sslrootcert={}", ca.display())).unwrap_err();
    assert!(both.to_string().contains("sslmode=disable"), "{both}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_log_filter_that_would_silence_everything_is_refused() {
    let base = "[accounts.fishroom.a]\ntoken_id = \"1\"\ntoken_key = \"k\"\n[accounts.fishroom.b]\ntoken_id = \"2\"\n\
                token_key = \"k2\"\n[[bridge]]\nname = \"b\"\nrooms = [\"fishroom.a:x\", \"fishroom.b:y\"]\n";
    let parse = |level: &str| Config::parse(&format!("[general]\nlog_level = \"{level}\"\n{base}"), "t.toml");
    for good in ["info", "WARN", "chatbridge=debug,info", "chatbridge", "chatbridge::router=trace,warn", "off"] {
        assert!(parse(good).is_ok(), "{good}");
    }
    for bad in ["verbose", "info,loud", "debug,everything"] {
        assert!(parse(bad).unwrap_err().to_string().contains("is not a level"), "{bad}");
    }
    // RUST_LOG in the shell that runs `check`: said, since the daemon would set it aside.
    let dir = scratch("rustlog");
    let file = dir.join("config.toml");
    std::fs::write(&file, format!("[general]\ndurable = false\n{base}")).unwrap();
    let out = check(&file, &[], &[("RUST_LOG", "verbose")]);
    let (_, stderr) = text(&out);
    assert!(out.status.success());
    assert!(stderr.contains("warning: RUST_LOG `verbose` in this environment"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_media_store_check_names_the_rooms_that_get_the_platforms_links() {
    let dir = scratch("media");
    let file = dir.join("config.toml");
    let state =
        format!("[general]\nstate_dir = \"{}\"\nhttp_listen = \"127.0.0.1:0\"\n\n", dir.join("state").display());
    std::fs::write(&file, format!("{state}{TWO_ROOMS}")).unwrap();
    let (stdout, stderr) = text(&check(&file, &["--without-secrets"], &[]));
    let warned = format!("{stdout}{stderr}");
    assert!(
        warned
            .contains("[media] has no `public_url`: images and files reach fishroom.tuna:general, yunhu.me:group/1 as"),
        "both rooms receive from a platform that carries media: {warned}"
    );
    // With the store on: no such warning.
    std::fs::write(&file, format!("{state}[media]\npublic_url = \"https://media.example.org\"\n\n{TWO_ROOMS}"))
        .unwrap();
    let out = check(&file, &["--without-secrets"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(!format!("{stdout}{stderr}").contains("[media]"), "{stdout}{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
