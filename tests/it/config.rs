//! Every configuration fixture, the example file and `chatbridge check`.

use std::path::{Path, PathBuf};
use std::process::Command;

use chatbridge::config::{Config, LoadError};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture folder exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

#[test]
fn valid_fixtures_load() {
    for file in fixtures("valid") {
        if let Err(e) = Config::load(&file) {
            panic!("{} should be valid:\n{e}", file.display());
        }
    }
}

#[test]
fn invalid_fixtures_report_exactly_their_expected_problems() {
    for file in fixtures("invalid") {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# expect: ")).collect();
        assert!(!expected.is_empty(), "{} has no `# expect:` lines", file.display());
        let problems = match Config::load(&file) {
            Err(LoadError::Invalid(problems)) => problems,
            Err(e) => panic!("{}: {e}", file.display()),
            Ok(_) => panic!("{} should be invalid", file.display()),
        };
        let lines: Vec<String> = problems.0.iter().map(|p| format!("{}:{}: {}", p.line, p.column, p.message)).collect();
        assert_eq!(lines.len(), expected.len(), "{}: reported\n{}", file.display(), lines.join("\n"));
        for (line, expect) in lines.iter().zip(&expected) {
            assert!(line.starts_with(expect), "{}:\n  reported {line}\n  expected {expect}", file.display());
        }
    }
}

#[test]
fn warning_fixtures_load_and_say_exactly_their_expected_warnings() {
    for file in fixtures("warn") {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# warn: ")).collect();
        assert!(!expected.is_empty(), "{} has no `# warn:` lines", file.display());
        // Parsed, not loaded: the file's mode (which adds its own warnings) is another test's.
        let config = Config::parse(&text, "f").unwrap_or_else(|e| panic!("{} should load:\n{e}", file.display()));
        let lines: Vec<String> =
            config.notes.iter().map(|p| format!("{}:{}: {}", p.line, p.column, p.message)).collect();
        assert_eq!(lines.len(), expected.len(), "{}: warned\n{}", file.display(), lines.join("\n"));
        for (line, expect) in lines.iter().zip(&expected) {
            assert!(line.starts_with(expect), "{}:\n  warned   {line}\n  expected {expect}", file.display());
        }
    }
    // Every valid fixture is meant as written: no warning.
    for file in fixtures("valid") {
        let config = Config::parse(&std::fs::read_to_string(&file).unwrap(), "f").expect("valid");
        assert!(config.notes.is_empty(), "{}: {:?}", file.display(), config.notes);
    }
}

#[test]
fn problems_name_the_file() {
    let file = &fixtures("invalid")[0];
    let Err(LoadError::Invalid(problems)) = Config::load(file) else { panic!("invalid") };
    assert!(problems.to_string().starts_with(&format!("{}:", file.display())));
}

fn check(file: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatbridge"));
    command.arg("check").arg("-c").arg(file).env_remove("RUST_LOG");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("the binary runs")
}

#[test]
fn the_example_file_is_valid_and_check_summarises_it() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let out = check(
        &example,
        &[
            ("FISHROOM_KEY", "k1"),
            ("FISHROOM_LUG_KEY", "k2"),
            ("MISSEVAN_COOKIE", "token=t"),
            ("IIROSE_PASSWORD", "pw"),
            ("HEIHEI_TOKEN", "t"),
            ("YUNHU_TOKEN", "t"),
            ("API_TOKEN", "t"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "ok");
    assert_eq!(
        lines[1],
        "bridge fans: 6 rooms: fishroom.tuna:general (inout), fishroom.lug:chat (inout), missevan.fm:868858631 (inout), \
         iirose.rose:5ce6a4b520a90 (inout), yunhu.me:group/big (inout), api.bots:fans (inout)"
    );
    assert_eq!(
        lines[2],
        "bridge announcements: 3 rooms: fishroom.tuna:general (in), heihei.hh:host/38298237 (in), fishroom.lug:announce (out)"
    );
    assert_eq!(lines[3], "state: /var/lib/chatbridge (from general.state_dir)");
    // Whether the daemon could write there, judged as far as this user can (root writes anywhere: it says so).
    assert!(lines[4].starts_with("state: /var/lib/chatbridge "), "{}", lines[4]);
    assert_eq!(lines.len(), 5);
}

#[test]
fn check_lists_every_problem_and_fails() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    // Without the environment variables all seven secrets are unreadable: seven problems, one run.
    let out = check(&example, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`FISHROOM_KEY` is not set"), "{stderr}");
    assert!(stderr.contains("`FISHROOM_LUG_KEY` is not set"), "{stderr}");
    assert!(stderr.contains("`MISSEVAN_COOKIE` is not set"), "{stderr}");
    assert!(stderr.contains("`IIROSE_PASSWORD` is not set"), "{stderr}");
    assert!(stderr.contains("`HEIHEI_TOKEN` is not set"), "{stderr}");
    assert!(stderr.contains("`YUNHU_TOKEN` is not set"), "{stderr}");
    assert!(stderr.contains("`API_TOKEN` is not set"), "{stderr}");
    assert!(stderr.contains("7 problem(s) found."), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn secrets_are_masked_in_debug_output() {
    let source = "[accounts.fishroom.t]\ntoken_id = \"1\"\ntoken_key = \"very-secret-key\"\n\n\
                  [accounts.fishroom.u]\ntoken_id = \"2\"\ntoken_key = \"k\"\n\n\
                  [[bridge]]\nname = \"b\"\nrooms = [\"fishroom.t:a\", \"fishroom.u:b\"]\n";
    let config = Config::parse(source, "t.toml").unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("very-secret-key"), "{debug}");
    assert!(debug.contains("***"));
}

#[test]
fn check_fails_on_a_damaged_database_and_warns_about_an_open_api() {
    let dir = std::env::temp_dir().join(format!("chatbridge-it-check-{}", uuid::Uuid::new_v4()));
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        format!(
            "[general]\nstate_dir = \"{}\"\n\n[accounts.api.open]\nlisten = \"0.0.0.0:4242\"\n\n[accounts.api.two]\nlisten = \"127.0.0.1:4243\"\n\n[[bridge]]\nname = \"b\"\nrooms = [\"api.open:b\", \"api.two:b\"]\n",
            state.display()
        ),
    )
    .unwrap();
    // No database yet: accepted, with the warning about an API open to anyone.
    let out = check(&file, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning: api.open listens on 0.0.0.0:4242 without a `token`"), "{stderr}");
    assert!(!stderr.contains("api.two"), "a loopback API is not warned about: {stderr}");
    // A database that is not one: refused, with the path.
    std::fs::write(state.join(chatbridge::store::FILE_NAME), vec![0x42u8; 8192]).unwrap();
    let out = check(&file, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a damaged database fails the check");
    assert!(stderr.contains("chatbridge.db") && stderr.contains("cannot be read"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_config_option_goes_before_or_after_the_subcommand() {
    let dir = std::env::temp_dir().join(format!("chatbridge-it-global-c-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        format!(
            "[general]\nstate_dir = \"{}\"\n\n[accounts.api.a]\nlisten = \"127.0.0.1:4244\"\n\n[accounts.api.b]\nlisten = \"127.0.0.1:4245\"\n\n[[bridge]]\nname = \"b\"\nrooms = [\"api.a:g\", \"api.b:g\"]\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_chatbridge"))
            .args(args)
            .env_remove("CHATBRIDGE_CONFIG")
            .env_remove("RUST_LOG")
            .output()
            .expect("the binary runs")
    };
    let path = file.to_str().unwrap();
    for args in [vec!["-c", path, "check"], vec!["check", "-c", path], vec!["--config", path, "check"]] {
        let out = run(&args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok"), "{args:?}");
    }
    for args in [vec!["deadletters", "list", "-c", path], vec!["-c", path, "deadletters", "list"]] {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("unexpected argument"), "{args:?}: {stderr}");
        assert!(stderr.contains("no state database in"), "{args:?}: the file was read: {stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn admin_commands_need_no_secret_and_check_names_the_state_directory() {
    let dir = std::env::temp_dir().join(format!("chatbridge-it-admin-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "[accounts.fishroom.a]\napi_url = \"http://127.0.0.1:1/api\"\ntoken_id = \"1\"\ntoken_key = \"env:CHATBRIDGE_IT_NEVER_SET\"\n\n\
         [accounts.yunhu.y]\ntoken = \"file:/run/credentials/chatbridge.service/yunhu\"\n\n\
         [[bridge]]\nname = \"b\"\nrooms = [\"fishroom.a:r\", \"yunhu.y:group/g\"]\n",
    )
    .unwrap();
    let state = dir.join("state");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_chatbridge"))
            .args(args)
            .arg("-c")
            .arg(&file)
            .env("STATE_DIRECTORY", &state)
            .env_remove("CHATBRIDGE_IT_NEVER_SET")
            .env_remove("RUST_LOG")
            .output()
            .expect("the binary runs")
    };
    // `check` needs the secrets (the service will), and names both.
    let out = run(&["check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("CHATBRIDGE_IT_NEVER_SET"), "{stderr}");
    // `deadletters` reads only the state: it finds the service's directory and needs no secret.
    chatbridge::store::Store::open(
        &state,
        &chatbridge::store::StoreSettings {
            full_sync: false,
            id_map_max_age: std::time::Duration::from_secs(60),
            id_map_capacity: 10,
            orphan_max_age: std::time::Duration::from_secs(60),
            per_room: 10,
            page_limit: Default::default(),
            max_outbox: 10,
            max_dead_letters: 10,
        },
        |_, _| true,
        |_| {},
    )
    .unwrap();
    let out = run(&["deadletters"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 dead letter(s)."));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_missing_file_is_said_once() {
    let out = check(Path::new("/nonexistent/chatbridge.toml"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_chatbridge"))
        .args(["run", "-c", "/nonexistent/chatbridge.toml"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
}

#[test]
fn a_bare_chatbridge_without_a_configuration_says_what_to_do() {
    let out = Command::new(env!("CARGO_BIN_EXE_chatbridge"))
        .env("CHATBRIDGE_CONFIG", "/nonexistent/chatbridge.toml")
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("No configuration at /nonexistent/chatbridge.toml"), "{stderr}");
    assert!(stderr.contains("chatbridge demo"), "{stderr}");
}

#[test]
fn completions_and_the_manual_page_come_from_the_command_line_definitions() {
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_chatbridge")).args(args).output().expect("runs");
    let bash = run(&["completions", "bash"]);
    assert!(bash.status.success());
    let script = String::from_utf8_lossy(&bash.stdout);
    assert!(script.contains("deadletters") && script.contains("--config"), "{script}");
    let man = run(&["manpage"]);
    assert!(man.status.success());
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(page.starts_with(".ie") || page.contains(".TH chatbridge"), "{page}");
    assert!(page.contains("check") && page.contains("\\-\\-config"), "{page}");
}

#[test]
fn check_refuses_a_state_directory_that_cannot_be_created() {
    let dir = std::env::temp_dir().join(format!("chatbridge-it-statedir-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    // Under a regular file, nothing can be created.
    let blocker = dir.join("not-a-directory");
    std::fs::write(&blocker, "x").unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        format!(
            "[general]\nstate_dir = \"{}/state\"\n\n[accounts.api.a]\nlisten = \"127.0.0.1:4246\"\n\n[accounts.api.b]\nlisten = \"127.0.0.1:4247\"\n\n[[bridge]]\nname = \"b\"\nrooms = [\"api.a:g\", \"api.b:g\"]\n",
            blocker.display()
        ),
    )
    .unwrap();
    let out = check(&file, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused");
    assert!(stderr.contains("cannot be created") && stderr.contains("is not a directory"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
