//! The PostgreSQL store's writer: the SQLite writer's batching and failure handling over one connection,
//! which it opens again when the server went away.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_postgres::Client;
use tracing::{error, info, warn};

use super::batch::{Outcome, transaction, unwritten_rows};
use super::lease::Held;
use super::listen::Notify;
use super::{PgTarget, Stamped, reason};
use crate::store::intake::Intake;
use crate::store::{Closing, GATHER, MAX_BATCH, Op, PRUNE_EVERY, SIZE_EVERY, StoreEvent, StoreSettings};

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long a closing store keeps trying to write what it was given.
const CLOSE_RETRIES: Duration = Duration::from_secs(3);

/// The writer's connection and what it needs to open it again.
pub(super) struct Writer {
    target: PgTarget,
    client: Option<Client>,
    /// The connection's prepared statements.
    cache: HashMap<&'static str, tokio_postgres::Statement>,
    run: i64,
    settings: StoreSettings,
    held: Held,
    /// What the router read and has not acknowledged (`taken.rs`).
    taken: super::taken::Taken,
}

impl Writer {
    pub(super) fn new(target: PgTarget, client: Client, run: i64, settings: StoreSettings, held: Held) -> Self {
        Self { target, client: Some(client), cache: HashMap::new(), run, settings, held, taken: Default::default() }
    }

    /// The connection, opened again when it was lost.
    async fn client(&mut self) -> Result<&mut Client, String> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            self.cache.clear();
            let client = self.target.connect().await.map_err(|e| reason(&e))?;
            info!(database = %self.target.describe(), "Connected to PostgreSQL again.");
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("just set"))
    }
}

/// Counts the outbox and the dead letters, removing the oldest dead letters past their limit.
async fn sizes(client: &Client, max_dead_letters: u64) -> Result<(u64, u64), tokio_postgres::Error> {
    let row = client.query_one("SELECT (SELECT COUNT(*) FROM outbox), (SELECT COUNT(*) FROM deadletters)", &[]).await?;
    let (outbox, mut dead_letters) = (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64);
    if dead_letters > max_dead_letters {
        let excess = (dead_letters - max_dead_letters) as i64;
        let removed = client
            .execute(
                "DELETE FROM deadletters WHERE key IN (SELECT key FROM deadletters ORDER BY failed_at, key LIMIT $1)",
                &[&excess],
            )
            .await?;
        warn!(
            removed,
            max = max_dead_letters,
            "The dead letters are at their limit (general.max_dead_letters): the oldest were removed."
        );
        dead_letters -= removed;
    }
    Ok((outbox, dead_letters))
}

/// A request to be told once everything given to the writer before it is committed (the lease task waits
/// for that before it releases a lease, so that the account's next instance finds its acknowledgements).
pub(super) type Barrier = tokio::sync::oneshot::Sender<()>;

/// The writer: gathers inputs as the SQLite writer does and writes them as one transaction; a transaction
/// that fails is kept and written again (the connection opened again when it was lost) until it commits,
/// with [`StoreEvent::Failing`] meanwhile so that no message is taken in.
pub(super) async fn write(
    mut writer: Writer,
    mut inputs: mpsc::UnboundedReceiver<Vec<Stamped>>,
    mut barriers: mpsc::UnboundedReceiver<Barrier>,
    notify: Notify,
) -> Closing {
    let notify = |event| notify(event);
    let mut carry: Vec<Vec<Stamped>> = Vec::new();
    // Barriers answered after the next commit.
    let mut waiting: Vec<Barrier> = Vec::new();
    let mut closed = false;
    let mut intake = Intake::default();
    let mut failing: Option<(Instant, u64)> = None;
    let mut retry = RETRY_MIN;
    let mut last_prune = Instant::now();
    let mut last_size: Option<Instant> = None;
    loop {
        if carry.is_empty() && last_size.is_none_or(|t| t.elapsed() >= SIZE_EVERY) {
            last_size = Some(Instant::now());
            let max_dead = writer.settings.max_dead_letters;
            if let Ok(client) = writer.client().await
                && let Ok((outbox, dead_letters)) = sizes(client, max_dead).await
            {
                notify(StoreEvent::Sizes { outbox, dead_letters });
                intake.outbox(outbox, writer.settings.max_outbox);
            }
        }
        intake.report(&notify);
        if carry.is_empty() {
            if closed {
                break;
            }
            tokio::select! {
                input = tokio::time::timeout(SIZE_EVERY, inputs.recv()) => match input {
                    Ok(Some(ops)) => carry.push(ops),
                    Ok(None) => break,
                    Err(_) => continue,
                },
                Some(barrier) = barriers.recv() => waiting.push(barrier),
            }
        }
        // What was given before a barrier is in the inputs by now: gathered below, committed with them.
        while let Ok(barrier) = barriers.try_recv() {
            waiting.push(barrier);
        }
        closed |= gather(&mut inputs, &mut carry).await;
        if carry.is_empty() {
            // A barrier with nothing before it.
            waiting.drain(..).for_each(|barrier| {
                let _ = barrier.send(());
            });
            continue;
        }
        let prune_due = last_prune.elapsed() >= PRUNE_EVERY;
        let max_age = writer.settings.id_map_max_age;
        let run = writer.run;
        let result = match writer.client().await {
            Ok(_) => {
                let client = writer.client.as_mut().expect("connected");
                let prune = prune_due.then_some(max_age);
                let (held, taken) = (&writer.held, &mut writer.taken);
                transaction(client, &mut writer.cache, &carry, run, held, taken, prune).await.map_err(|e| reason(&e))
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(Outcome { written, skipped, loaded, refused, took, gone }) => {
                writer.taken.gone(&gone);
                for (room, epoch, keys, exhausted) in took {
                    writer.taken.took(&room, epoch, &keys, exhausted);
                }
                if refused > 0 {
                    warn!(refused, "Writes for accounts this instance no longer holds were refused (fencing).");
                    notify(StoreEvent::Fenced { refused });
                }
                if prune_due {
                    last_prune = Instant::now();
                }
                if written + skipped > 0 {
                    notify(StoreEvent::Committed { written, skipped });
                }
                for (room, rows, through, exhausted) in loaded {
                    notify(StoreEvent::Loaded { room, rows, through, exhausted });
                }
                carry.clear();
                waiting.drain(..).for_each(|barrier| {
                    let _ = barrier.send(());
                });
                if let Some((since, attempts)) = failing.take() {
                    info!(attempts, after = ?since.elapsed(), "PostgreSQL is written again; nothing was lost.");
                    intake.failing(None);
                    writer.held.set_failing(false);
                }
                retry = RETRY_MIN;
            }
            Err(e) => {
                let (since, attempts) = failing.get_or_insert_with(|| {
                    error!(error = %e, database = %writer.target.describe(), "Writing to PostgreSQL failed; the changes are kept in memory and written again, and no message is taken in until they are.");
                    (Instant::now(), 0)
                });
                if !intake.is_failing() {
                    intake.failing(Some(e.clone()));
                    writer.held.set_failing(true);
                    intake.report(&notify);
                }
                *attempts += 1;
                if (*attempts).is_power_of_two() && *attempts > 1 {
                    warn!(error = %e, attempts = *attempts, failing_for = ?since.elapsed(), "PostgreSQL still cannot be written.");
                }
                if closed && since.elapsed() >= CLOSE_RETRIES {
                    break;
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
    let unwritten = unwritten_rows(&carry);
    if unwritten > 0 {
        error!(
            messages = unwritten,
            "PostgreSQL could not be written before the store closed: these queued messages are lost."
        );
    }
    let stored = match writer.client().await {
        Ok(client) => {
            client.query_one("SELECT COUNT(*) FROM outbox", &[]).await.ok().map(|r| r.get::<_, i64>(0) as u64)
        }
        Err(_) => None,
    };
    Closing { stored, unwritten }
}

/// Whether someone waits on the commit of `op`: another instance for a row it is to send (written unheld, it
/// is notified at the commit), or the router for a room's rows (a load). Such a batch is committed as soon as
/// nothing more is ready, without the gathering window: only this instance's own rows, which its router sends
/// from memory meanwhile, are worth waiting a few milliseconds to batch.
fn urgent(stamped: &Stamped) -> bool {
    match &stamped.op {
        Op::Load { .. } => true,
        Op::Put { .. } => stamped.holder.is_none(),
        _ => false,
    }
}

/// Takes the inputs that come within the gathering window (none that are not ready when the batch is
/// [`urgent`]); true when the store closed.
async fn gather(inputs: &mut mpsc::UnboundedReceiver<Vec<Stamped>>, carry: &mut Vec<Vec<Stamped>>) -> bool {
    let started = Instant::now();
    loop {
        loop {
            match inputs.try_recv() {
                Ok(ops) => carry.push(ops),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return true,
            }
        }
        if carry.iter().flatten().any(urgent) {
            return false;
        }
        let Some(left) = MAX_BATCH.checked_sub(started.elapsed()) else { return false };
        tokio::time::sleep(GATHER.min(left)).await;
        match inputs.try_recv() {
            Ok(ops) => carry.push(ops),
            Err(mpsc::error::TryRecvError::Empty) => return false,
            Err(mpsc::error::TryRecvError::Disconnected) => return true,
        }
    }
}
