//! What a first day at the command line shows (issue #30 §6): the manual page, the version, the dead letters'
//! help and what `requeue --all` says when there is nothing to do.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chatbridge"))
}

#[test]
fn the_manual_page_has_every_command_and_the_sections_an_operator_looks_for() {
    let out = bin().arg("manpage").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    for section in [".SH COMMANDS", ".SH SIGNALS", ".SH FILES", ".SH ENVIRONMENT", ".SH \"EXIT STATUS\""] {
        assert!(page.contains(section), "{section} missing");
    }
    for command in ["run", "check", "deadletters", "sim", "demo", "manpage"] {
        assert!(page.contains(&format!("\\fBchatbridge {command}\\fR")), "{command} missing");
    }
    // No page is named that is not made: chatbridge-run(1) and the like.
    assert!(!page.contains("chatbridge\\-run") && !page.contains("chatbridge-run"), "names a page never generated");
    for word in ["SIGHUP", "secrets.env", "CREDENTIALS_DIRECTORY", "RUST_LOG", "chatbridge.lock"] {
        assert!(page.contains(word), "{word} missing");
    }
}

#[test]
fn the_version_names_the_commit_and_the_build() {
    let out = bin().arg("--version").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with(&format!("chatbridge {} (commit ", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(text.contains(" build)"), "{text}");
}

#[test]
fn dead_letters_say_how_to_requeue_all_and_that_there_was_nothing_to_do() {
    let help = bin().args(["deadletters", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("requeue --all"));
    let dir = std::env::temp_dir().join(format!("chatbridge-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // An empty database: what the daemon leaves when nothing was ever given up.
    drop(rusqlite::Connection::open(dir.join("chatbridge.db")).unwrap());
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[general]\nstate_dir = \"{}\"\n[accounts.fishroom.a]\ntoken_id = \"1\"\ntoken_key = \"k\"\n\
             [accounts.fishroom.b]\ntoken_id = \"2\"\ntoken_key = \"k2\"\n\
             [[bridge]]\nname = \"b\"\nrooms = [\"fishroom.a:x\", \"fishroom.b:y\"]\n",
            dir.display()
        ),
    )
    .unwrap();
    let out = bin().args(["deadletters", "-c"]).arg(&config).args(["requeue", "--all"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "No dead letters: nothing to re-queue.");
    let _ = std::fs::remove_dir_all(dir);
}
