//! `chatbridge bridges add|rm|ls|export`: the bridges provisioned in the store (issue #34), changed where the state
//! is — SQLite in `state_dir`, or PostgreSQL — and applied by the running daemons (within a second on SQLite, at
//! once through PostgreSQL's notification). Needs no secret but the store's: an admin shell has neither the
//! service's environment nor its credentials.

use std::path::PathBuf;

use clap::Subcommand;

use crate::config::{Config, Provisioned};
use crate::store::provisioned::{Bridges, Changed};

#[derive(Debug, Subcommand)]
pub enum BridgeAction {
    /// Add or replace a bridge: `bridges add NAME ROOM ROOM…` (each room `platform.account:room`, both ways), or
    /// `bridges add --file BRIDGE.toml` (one [[bridge]] table as the file writes it; `-` reads standard input).
    Add {
        /// The bridge's name (with rooms).
        #[arg(required_unless_present = "file", requires = "rooms")]
        name: Option<String>,
        /// Its rooms.
        rooms: Vec<String>,
        /// A file with one [[bridge]] table, every option of the configuration file allowed.
        #[arg(long, conflicts_with_all = ["name", "rooms"])]
        file: Option<PathBuf>,
    },
    /// Remove a provisioned bridge (what its rooms still have queued is kept until it expires, as for a reload).
    Rm { name: String },
    /// One line per provisioned bridge, and those the file leaves out with their problems (the default).
    Ls,
    /// Every provisioned bridge as [[bridge]] tables, to paste into the configuration file.
    Export,
}

pub fn bridges(path: &std::path::Path, action: Option<BridgeAction>) -> anyhow::Result<()> {
    let base = super::load(Config::load_without_secrets(path), "")?;
    let store = Bridges::of(&base.general)?
        .ok_or_else(|| anyhow::anyhow!("general.durable = false: there is no store to keep provisioned bridges in"))?;
    match action.unwrap_or(BridgeAction::Ls) {
        BridgeAction::Add { name, rooms, file } => {
            let bridge = match file {
                Some(file) => {
                    let text = if file.as_os_str() == "-" {
                        std::io::read_to_string(std::io::stdin())?
                    } else {
                        std::fs::read_to_string(&file)
                            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?
                    };
                    Provisioned::from_toml(&text).map_err(|p| anyhow::anyhow!("{}", super::invalid(&p, "")))?
                }
                None => {
                    let value = serde_json::json!({"name": name.unwrap_or_default(), "rooms": rooms});
                    Provisioned::from_json(&value).map_err(|p| anyhow::anyhow!("{}", super::invalid(&p, "")))?
                }
            };
            anyhow::ensure!(
                !base.is_from_file(&bridge.name),
                "the configuration file has a bridge named `{}`: change it there",
                bridge.name
            );
            let name = bridge.name.clone();
            let candidate = bridge.clone();
            let check = move |others: &[Provisioned]| {
                crate::settings::without_secrets(|| base.check_provisioned(others, &candidate)).map(drop)
            };
            match store.put(bridge, check)? {
                Changed::Written { version, created } => {
                    let what = if created { "added" } else { "replaced" };
                    println!("Bridge {name} {what} (version {version}); running daemons apply it within seconds.");
                }
                Changed::Refused(problems) => anyhow::bail!("{}", super::invalid(&problems, "; nothing was changed")),
                Changed::NotFound => unreachable!("a put finds or creates"),
            }
        }
        BridgeAction::Rm { name } => {
            anyhow::ensure!(
                !base.is_from_file(&name),
                "`{name}` is a bridge of the configuration file: remove it there and reload"
            );
            match store.remove(&name)? {
                Changed::Written { version, .. } => println!("Bridge {name} removed (version {version})."),
                _ => anyhow::bail!("no provisioned bridge is named `{name}` (see `chatbridge bridges ls`)"),
            }
        }
        BridgeAction::Ls => {
            let listed = store.list()?;
            let (_, left) = crate::settings::without_secrets(|| base.with_provisioned(&listed.bridges))
                .map_err(|p| anyhow::anyhow!("{}", super::invalid(&p, "")))?;
            for bridge in &listed.bridges {
                let rooms = Provisioned::rooms(&bridge.toml);
                match left.iter().find(|l| l.name == bridge.name) {
                    None => println!("{}: {}", bridge.name, rooms.join(", ")),
                    Some(out) => {
                        println!("{}: {}  LEFT OUT:", bridge.name, rooms.join(", "));
                        for problem in &out.problems.0 {
                            println!("    {problem}");
                        }
                    }
                }
            }
            println!("{} provisioned bridge(s), version {}.", listed.bridges.len(), listed.version);
        }
        BridgeAction::Export => print!("{}", crate::admin::provision::export(&store.list()?.bridges)),
    }
    Ok(())
}
