//! `chatbridge deadletters`: list and re-queue what was given up. Reads the state only: no secret is needed.

use super::DeadLetterAction;
use crate::config::Config;

pub fn dead_letters(path: &std::path::Path, action: Option<DeadLetterAction>) -> anyhow::Result<()> {
    // Only the state is read: no secret is needed (an admin shell has neither the service's environment nor
    // its credentials).
    let config = super::load(Config::load_without_secrets(path), "")?;
    let dir = &config.general.state_dir;
    anyhow::ensure!(
        dir.join(crate::store::FILE_NAME).exists(),
        "no state database in {} (general.state_dir): nothing was ever given up here",
        dir.display()
    );
    match action.unwrap_or(DeadLetterAction::List) {
        DeadLetterAction::List => {
            let letters = crate::store::admin::dead_letters(dir)?;
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
            let marked = crate::store::admin::requeue(dir, (!all).then_some(&keys[..]))?;
            if marked > 0 {
                println!("{marked} dead letter(s) re-queued: delivered when the daemon next starts.");
            }
            if !all && marked < keys.len() {
                anyhow::bail!(
                    "{} of the given keys are not dead letters (see `chatbridge deadletters list`)",
                    keys.len() - marked
                );
            }
        }
    }
    Ok(())
}
