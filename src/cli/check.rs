//! `chatbridge check`: the configuration read and checked as `run` would, the state directory judged, what the
//! store keeps for rooms no longer configured, and the warnings.

use std::process::ExitCode;

use crate::config::{Config, LoadError};

pub fn check(path: &std::path::Path, connect: bool, without_secrets: bool) -> ExitCode {
    let loaded = if without_secrets { Config::load_without_secrets(path) } else { Config::load(path) };
    match loaded {
        Ok(config) => {
            println!("ok");
            for line in config.summary() {
                println!("{line}");
            }
            if without_secrets {
                println!(
                    "secrets: not read (--without-secrets): their form was checked, not their values; the service \
                     reads them at start, and its `check` (ExecStartPre=) with them"
                );
            }
            if let Ok(spec) = std::env::var("RUST_LOG")
                && let Err(e) = crate::settings::check_filter(&spec)
            {
                eprintln!(
                    "warning: RUST_LOG `{spec}` in this environment: {e}; the daemon would use general.log_level instead"
                );
            }
            if let Some(store) = &config.general.store {
                if without_secrets && !connect {
                    println!("state: PostgreSQL (general.store, a secret: not read with --without-secrets)");
                    for warning in config.warnings() {
                        eprintln!("warning: {warning}");
                    }
                    return ExitCode::SUCCESS;
                }
                return check_postgres(&config, store, connect);
            }
            if config.general.durable {
                println!("state: {} (from {})", config.general.state_dir.display(), config.general.state_dir_from);
                if let Err(why) = creatable(&config.general.state_dir) {
                    eprintln!(
                        "state: {} cannot be created: {why}; create it for the daemon's user, or set general.state_dir",
                        config.general.state_dir.display()
                    );
                    return ExitCode::FAILURE;
                }
                match writable(&config.general.state_dir) {
                    Ok(note) => println!("state: {note}"),
                    Err(why) => {
                        eprintln!("state: {}: {why}", config.general.state_dir.display());
                        return ExitCode::FAILURE;
                    }
                }
            }
            let config = if config.general.durable {
                match provisioned(config, without_secrets) {
                    Ok(config) => config,
                    Err(code) => return code,
                }
            } else {
                config
            };
            if config.general.durable {
                match crate::store::admin::queues(&config.general.state_dir) {
                    Ok(queues) => orphans(&config, &queues.unwrap_or_default()),
                    Err(e) => {
                        eprintln!("stored: the state database cannot be read: {e}");
                        eprintln!(
                            "Move it aside to start with an empty store (what it held is then not delivered), or restore a backup."
                        );
                        return ExitCode::FAILURE;
                    }
                }
            }
            for warning in config.warnings() {
                eprintln!("warning: {warning}");
            }
            ExitCode::SUCCESS
        }
        Err(LoadError::Invalid(problems)) => {
            eprintln!("{}", super::invalid(&problems, ""));
            let unreadable = |p: &crate::config::Problem| {
                p.message.contains("is not set") || p.message.contains("CREDENTIALS_DIRECTORY")
            };
            if !without_secrets && problems.0.iter().any(unreadable) {
                eprintln!(
                    "Where the service's environment or credentials are not at hand (an admin shell), \
                     `chatbridge check --without-secrets` checks everything but the secrets' values."
                );
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The file with the bridges provisioned in the store (`chatbridge bridges`), each said; one that does not go with the
/// file is a problem, as it is at a start (where the daemon leaves it out).
fn provisioned(config: Config, without_secrets: bool) -> Result<Config, ExitCode> {
    let listed = match crate::store::provisioned::Bridges::of(&config.general).map(|b| b.map(|b| b.list())) {
        Ok(Some(Ok(listed))) => listed,
        Ok(None) => return Ok(config),
        Ok(Some(Err(e))) | Err(e) => {
            eprintln!("provisioned: the bridges in the store cannot be read: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    if listed.bridges.is_empty() {
        return Ok(config);
    }
    let merged = if without_secrets {
        crate::settings::without_secrets(|| config.with_provisioned(&listed.bridges))
    } else {
        config.with_provisioned(&listed.bridges)
    };
    let (merged, left) = match merged {
        Ok(found) => found,
        Err(problems) => {
            eprintln!("{}", super::invalid(&problems, " with the provisioned bridges"));
            return Err(ExitCode::FAILURE);
        }
    };
    println!("provisioned: {} bridge(s) in the store (`chatbridge bridges ls`)", listed.bridges.len());
    if left.is_empty() {
        return Ok(merged);
    }
    let problems: Vec<_> = left.into_iter().flat_map(|l| l.problems.0).collect();
    let problems = crate::config::Problems(problems);
    eprintln!(
        "{}",
        super::invalid(
            &problems,
            " in provisioned bridges: the daemon leaves them out (`chatbridge bridges rm`, or fix the file)"
        )
    );
    Err(ExitCode::FAILURE)
}

/// Says which stored queues belong to rooms the configuration no longer has.
fn orphans(config: &Config, queues: &[crate::store::admin::Queue]) {
    let configured = config.destinations();
    for queue in queues {
        if !configured.contains(&(queue.room.clone(), queue.bridge.clone())) {
            println!(
                "stored: {} message(s) queued for {} in bridge `{}`, which the configuration no longer has; \
                 kept until general.orphan_max_age ({}) has passed, then moved to the dead letters",
                queue.messages,
                queue.room,
                queue.bridge,
                readable(config.general.orphan_max_age)
            );
        }
    }
}

/// `check` of a configuration whose state is in PostgreSQL: the database is named, and contacted only with
/// `--connect` (its schema judged, and what it keeps for rooms no longer configured said).
fn check_postgres(config: &Config, store: &crate::config::StoreUrl, connect: bool) -> ExitCode {
    use crate::store::pg;
    let target = match store.resolve().and_then(|url| pg::PgTarget::parse(&url)) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("state: general.store: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("state: PostgreSQL at {} (general.store)", target.describe());
    if !connect {
        println!("state: not contacted (`check --connect` connects and checks the schema)");
    } else {
        match pg::status(&target) {
            Ok(state) if state.found == state.current => {
                println!("state: connected; schema current (version {})", state.current)
            }
            Ok(state) if state.found < state.current => println!(
                "state: connected; schema at version {} — the daemon migrates it to {} at start (or `chatbridge migrate`)",
                state.found, state.current
            ),
            Ok(state) => {
                eprintln!(
                    "state: the database's schema (version {}) is from a newer chatbridge than this one (version {})",
                    state.found, state.current
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("state: {e}");
                return ExitCode::FAILURE;
            }
        }
        let config = match provisioned(config.clone(), false) {
            Ok(config) => config,
            Err(code) => return code,
        };
        if let Ok(queues) = pg::queues(&target) {
            orphans(&config, &queues);
        }
    }
    for warning in config.warnings() {
        eprintln!("warning: {warning}");
    }
    ExitCode::SUCCESS
}

/// `chatbridge migrate`: brings the PostgreSQL store's schema to this build's version.
pub fn migrate(path: &std::path::Path) -> anyhow::Result<()> {
    let config = super::load(Config::load_without_secrets(path), "")?;
    let Some(store) = &config.general.store else {
        println!(
            "The state is in SQLite ({}): its schema is migrated when the daemon opens it.",
            config.general.state_dir.display()
        );
        return Ok(());
    };
    let target =
        crate::store::pg::PgTarget::parse(&store.resolve().map_err(anyhow::Error::msg)?).map_err(anyhow::Error::msg)?;
    let done = crate::store::pg::migrate(&target)?;
    if done.from == done.to {
        println!("{}: schema current (version {}); nothing to do.", target.describe(), done.to);
    } else {
        println!("{}: schema migrated from version {} to {}.", target.describe(), done.from, done.to);
    }
    Ok(())
}

/// `chatbridge status`: the instances sharing the PostgreSQL store and the accounts each runs.
pub fn status(path: &std::path::Path) -> anyhow::Result<()> {
    let config = super::load(Config::load_without_secrets(path), "")?;
    let Some(store) = &config.general.store else {
        anyhow::bail!(
            "the state is in SQLite ({}): one instance, no leases to list",
            config.general.state_dir.display()
        );
    };
    let target =
        crate::store::pg::PgTarget::parse(&store.resolve().map_err(anyhow::Error::msg)?).map_err(anyhow::Error::msg)?;
    let (instances, free) = crate::store::pg::instances(&target)?;
    let live = config.general.lease_ttl.as_secs_f64();
    for instance in &instances {
        let state = if instance.stopping {
            "stopped"
        } else if instance.seen <= live {
            "live"
        } else {
            "silent"
        };
        println!(
            "{:<20} {:<7} seen {:>6.1}s ago  {}",
            instance.name,
            state,
            instance.seen,
            if instance.accounts.is_empty() { "(no account)".to_owned() } else { instance.accounts.join(", ") }
        );
    }
    if !free.is_empty() {
        println!("{:<20} {:<7} {}", "(nobody)", "", free.join(", "));
    }
    Ok(())
}

/// Whether `dir` can be created when it is missing: its nearest existing ancestor is a directory. (Whether the
/// service's user may write there is not judged: `check` may run as another user than the service.)
fn creatable(dir: &std::path::Path) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    let absolute = std::env::current_dir().map(|cwd| cwd.join(dir)).map_err(|e| e.to_string())?;
    let Some(existing) = absolute.ancestors().find(|a| a.exists()) else {
        return Err("no part of the path exists".into());
    };
    if !existing.is_dir() {
        return Err(format!("{} is not a directory", existing.display()));
    }
    Ok(())
}

/// Whether this user can write in `dir` (tried: a file made and removed), and what that says of the service. Run as
/// root, the answer is no answer: root writes anywhere, so the service's own user is named instead.
fn writable(dir: &std::path::Path) -> Result<String, String> {
    let uid = crate::config::effective_uid();
    if dir.is_dir() {
        let probe = dir.join(format!(".chatbridge-check-{}", std::process::id()));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) => {
                return Err(format!(
                    "not writable by uid {} ({e}): the daemon keeps its store there; give the directory to the \
                     service's user, or set general.state_dir",
                    uid.map_or("?".to_owned(), |u| u.to_string())
                ));
            }
        }
    }
    Ok(match uid {
        Some(0) if dir != std::path::Path::new(crate::config::UNIT_STATE_DIR) => format!(
            "{} checked as root, who may write anywhere: under the shipped unit the daemon runs as its own user \
             and may write only {} (StateDirectory=, ProtectSystem=strict); elsewhere add ReadWritePaths= and \
             give the directory to that user",
            dir.display(),
            crate::config::UNIT_STATE_DIR
        ),
        Some(0) => format!("{} is the unit's StateDirectory=, made the service's own by systemd", dir.display()),
        _ if !dir.is_dir() => format!("{} is made at the first start", dir.display()),
        Some(uid) => format!("{} writable by uid {uid}, who runs this check", dir.display()),
        None => format!("{} writable", dir.display()),
    })
}

/// A duration as people write it: "7 days", "90 s".
fn readable(duration: std::time::Duration) -> String {
    let seconds = duration.as_secs();
    let (value, unit) = match seconds {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{value} {unit}{}", if value == 1 { "" } else { "s" })
}
