//! `chatbridge manpage`: one page, chatbridge(1), with every command in it (no page is named that is not
//! generated), and the sections an operator looks for: SIGNALS, FILES, ENVIRONMENT, EXIT STATUS.

use std::io::Write;

use clap::CommandFactory;

/// Roff text: backslashes and a leading dot or quote made literal.
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    match text.chars().next() {
        Some('.' | '\'') => format!("\\&{text}"),
        _ => text,
    }
}

const SIGNALS: &[(&str, &str)] = &[
    (
        "SIGHUP",
        "Read the configuration again. A valid file is applied (what only a start can apply restarts the daemon in-process); a broken one is refused, logged, and shown by /health, /metrics and STATUS=, and the running configuration stays.",
    ),
    (
        "SIGTERM, SIGINT",
        "Stop receiving, deliver what is queued within general.shutdown_timeout (a read in flight, such as a Fishroom poll, is waited for), close, exit 0. What is still queued stays in the store. A second signal exits at once (130).",
    ),
];

const FILES: &[(&str, &str)] = &[
    (
        "/etc/chatbridge/config.toml",
        "The configuration (-c, CHATBRIDGE_CONFIG). Readable by the service's user; no secret in it.",
    ),
    (
        "/etc/chatbridge/secrets.env",
        "NAME=value lines read by systemd (EnvironmentFile=) for env:NAME secrets; root's alone (0600).",
    ),
    (
        "/var/lib/chatbridge/chatbridge.db",
        "The store: outbox, id map, read cursors, dead letters (StateDirectory=, general.state_dir).",
    ),
    ("/var/lib/chatbridge/chatbridge.lock", "Held while a daemon uses the state directory: a second one is refused."),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    ("CHATBRIDGE_CONFIG", "The configuration file, when -c is not given."),
    (
        "RUST_LOG",
        "Log levels, over general.log_level (e.g. chatbridge=debug,info); one that is not valid is set aside with a warning.",
    ),
    ("STATE_DIRECTORY", "Where the store is when general.state_dir is not set (systemd sets it from StateDirectory=)."),
    ("CREDENTIALS_DIRECTORY", "Where cred:NAME secrets are read (systemd sets it for LoadCredential=)."),
    (
        "NOTIFY_SOCKET, WATCHDOG_USEC",
        "systemd's notification socket and watchdog: READY=1, STATUS=, RELOADING=1, WATCHDOG=1, STOPPING=1.",
    ),
    ("NO_COLOR", "No colours in the logs on a terminal."),
];

fn tagged(out: &mut String, heading: &str, items: &[(&str, &str)]) {
    out.push_str(&format!(".SH {heading}\n"));
    for (tag, text) in items {
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", escape(tag), escape(text)));
    }
}

/// Writes the page to `w`.
pub fn render(w: &mut dyn Write) -> std::io::Result<()> {
    let command = super::Cli::command();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    let mut out = String::from(".SH COMMANDS\n");
    for sub in command.get_subcommands() {
        let about = sub.get_long_about().or(sub.get_about()).map(ToString::to_string).unwrap_or_default();
        out.push_str(&format!(".TP\n\\fBchatbridge {}\\fR\n{}\n", escape(sub.get_name()), escape(&about)));
        let options: Vec<String> = sub
            .get_arguments()
            .filter(|a| !a.is_global_set() && !a.is_hide_set())
            .filter_map(|a| a.get_long().map(|long| format!("\\-\\-{}", escape(long))))
            .collect();
        if !options.is_empty() {
            let name = escape(sub.get_name());
            out.push_str(&format!(
                ".br\nOptions: {} (\\fBchatbridge {name} \\-\\-help\\fR says each).\n",
                options.join(", ")
            ));
        }
    }
    tagged(&mut out, "SIGNALS", SIGNALS);
    tagged(&mut out, "FILES", FILES);
    tagged(&mut out, "ENVIRONMENT", ENVIRONMENT);
    out.push_str(".SH \"EXIT STATUS\"\n0 on success (a stop by signal included); 1 on an error (a configuration with problems, every account stopped); 2 on a bad command line or a missing configuration; 130 on a second signal.\n");
    out.push_str(".SH \"SEE ALSO\"\n\\fBsystemctl\\fR(1), \\fBsystemd.exec\\fR(5); docs/operations.md and docs/configuration.md in the source.\n");
    w.write_all(out.as_bytes())?;
    man.render_version_section(w)
}
