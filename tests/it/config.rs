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
    assert_eq!(lines.len(), 3);
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
    let source = "[accounts.fishroom.t]\ntoken_id = \"1\"\ntoken_key = \"very-secret-key\"\n";
    let config = Config::parse(source, "t.toml").unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("very-secret-key"), "{debug}");
    assert!(debug.contains("***"));
}
