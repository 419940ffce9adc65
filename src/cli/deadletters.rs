//! `chatbridge deadletters`: list and re-queue what was given up. Reads the state only: no secret is needed.

use super::DeadLetterAction;
use crate::config::Config;

pub fn dead_letters(path: &std::path::Path, action: Option<DeadLetterAction>) -> anyhow::Result<()> {
    // Only the state is read: no secret is needed (an admin shell has neither the service's environment nor
    // its credentials).
    // (A PostgreSQL store's connection string is the one secret resolved.)
    let config = super::load(Config::load_without_secrets(path), "")?;
    let dir = &config.general.state_dir;
    let target = match &config.general.store {
        Some(store) => Some(
            crate::store::pg::PgTarget::parse(&store.resolve().map_err(anyhow::Error::msg)?)
                .map_err(anyhow::Error::msg)?,
        ),
        None => {
            anyhow::ensure!(
                dir.join(crate::store::FILE_NAME).exists(),
                "no state database in {} (general.state_dir): nothing was ever given up here",
                dir.display()
            );
            None
        }
    };
    match action.unwrap_or(DeadLetterAction::List) {
        DeadLetterAction::List => {
            let letters = match &target {
                Some(target) => crate::store::pg::dead_letters(target)?,
                None => crate::store::admin::dead_letters(dir)?,
            };
            for letter in &letters {
                let failed = std::time::UNIX_EPOCH + std::time::Duration::from_millis(letter.failed_at.max(0) as u64);
                println!(
                    "{:>8}  {}  → {} [{}]  {}  ({}){}",
                    letter.key,
                    humantime::format_rfc3339_seconds(failed),
                    letter.room,
                    letter.bridge,
                    letter.summary,
                    letter.reason,
                    if letter.requeued { "  re-queued at the next start" } else { "" }
                );
            }
            println!("{} dead letter(s).", letters.len());
        }
        DeadLetterAction::Requeue { keys, all } => {
            let keys = (!all).then_some(&keys[..]);
            let marked = match &target {
                Some(target) => crate::store::pg::requeue(target, keys)?,
                None => crate::store::admin::requeue(dir, keys)?,
            };
            if marked > 0 {
                println!("{marked} dead letter(s) re-queued: delivered when the daemon next starts.");
            } else if keys.is_none() {
                println!("No dead letters: nothing to re-queue.");
            }
            if let Some(keys) = keys
                && marked < keys.len()
            {
                anyhow::bail!(
                    "{} of the given keys are not dead letters (see `chatbridge deadletters list`)",
                    keys.len() - marked
                );
            }
        }
    }
    Ok(())
}
