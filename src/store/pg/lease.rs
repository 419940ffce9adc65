//! Leases: which instance runs which account — or, where a platform gives each room a connection of its own
//! (`Platform::leases_per_room`), which room — when several share one PostgreSQL store. A lease is named by its
//! unit: an account (`missevan.main` has none), or a room (`missevan.main:123`); below, "account" is either.
//!
//! Every instance has a row in `instances`, renewed with its leases (its heartbeat); every account a row in
//! `leases` with its owner (instance name and run), an expiry on the database's clock, and a fencing epoch that
//! grows with every claim. Every `ttl / 3` an instance renews what it holds, counts the live instances (a
//! heartbeat within `ttl`), and claims free or expired leases up to its fair share,
//! `ceil(accounts / live instances)`; one holding more than its share hands the rest over (gracefully: the
//! account is settled and closed first, then its lease released). An instance that cannot renew for
//! `2 ttl / 3` stops all its accounts, before any lease it held can expire and be claimed by another. At start an
//! instance says it is alive and waits a moment ([`settle`]) before its first claim, so that instances started
//! together share from the start. The writer checks every write against the epoch it was made under (fencing,
//! in `writer`).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_postgres::Client;
use tracing::{error, info, warn};

pub use super::held::Held;
pub use super::unit::{Unit, units};
use super::{PgTarget, reason};
use crate::stats::Stats;

/// How this instance takes part.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// `general.instance`.
    pub instance: String,
    /// `general.lease_ttl`.
    pub ttl: Duration,
    /// The leases of the configuration's bridged accounts: each account's, or each room's where rooms are
    /// leased one by one ([`units`]).
    pub accounts: Vec<String>,
}

/// What the lease task tells the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEvent {
    /// The account (or room) is this instance's now: connect it.
    Acquired(Unit),
    /// The account (or room) is no longer this instance's (taken over, or the lease could not be renewed): stop
    /// it at once; its queue stays in the store for the next owner.
    Lost(Unit),
    /// This instance holds more than its share: settle it and close it, then release it
    /// ([`LeaseCommand::Released`]).
    Release(Unit),
}

/// What the daemon tells the lease task.
#[derive(Debug)]
pub enum LeaseCommand {
    /// The account (or room) is settled and closed: its lease goes back at once.
    Released(Unit),
    /// A reload changed which leases exist ([`units`]).
    Accounts(Vec<String>),
}

/// The lease task's handles, for the daemon.
pub struct Leases {
    pub events: mpsc::UnboundedReceiver<LeaseEvent>,
    pub commands: mpsc::UnboundedSender<LeaseCommand>,
    pub held: Held,
    /// Reads the cursors of an account that comes to this instance.
    pub reader: super::PgReader,
    /// Told when the provisioned bridges changed (a `chatbridge_bridges` notification, or the listener connected
    /// again and may have missed one).
    pub bridges_changed: std::sync::Arc<tokio::sync::Notify>,
}

/// How long an instance waits at start between saying it is alive and claiming: a tenth of the lease, at most a
/// second.
pub(super) fn settle(ttl: Duration) -> Duration {
    (ttl / 10).min(Duration::from_secs(1))
}

/// A duration as the queries take it (`$n * interval '1 millisecond'`).
fn millis(d: Duration) -> f64 {
    d.as_millis() as f64
}

pub(super) struct LeaseTask {
    pub(super) target: PgTarget,
    pub(super) client: Client,
    pub(super) run: i64,
    pub(super) settings: LeaseSettings,
    pub(super) held: Held,
    pub(super) events: mpsc::UnboundedSender<LeaseEvent>,
    pub(super) stats: Arc<Stats>,
    /// Accounts asked to be handed over, not released yet.
    pub(super) releasing: BTreeSet<String>,
    /// After a round short of its share: how soon a lease held elsewhere expires.
    pub(super) soonest: Option<Duration>,
    /// Asks the writer to say when what it was given is committed.
    pub(super) barrier: mpsc::UnboundedSender<super::writer::Barrier>,
}

/// Whether a live instance already uses `name` (a second one of that name is counted as the same instance, so
/// the shares come out wrong; after a crash it is the instance's own last run, until its heartbeat is old).
pub(super) async fn name_taken(client: &Client, name: &str, ttl: Duration) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT 1 FROM instances WHERE name = $1 AND NOT stopping
             AND heartbeat > clock_timestamp() - $2 * interval '1 millisecond'",
            &[&name, &millis(ttl)],
        )
        .await?;
    Ok(row.is_some())
}

impl LeaseTask {
    /// Runs until `stop` fires, then releases every lease at once and marks the instance gone.
    pub(super) async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<LeaseCommand>,
        stop: tokio::sync::oneshot::Receiver<()>,
        released: Arc<tokio::sync::Notify>,
    ) {
        let every = self.settings.ttl / 3;
        // The first round was made when the store opened.
        let mut last_ok = Instant::now();
        let mut next = tokio::time::Instant::now() + every.min(self.soonest.take().unwrap_or(every));
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep_until(next) => {
                    // Renewals every third of the lease; sooner when a lease this instance may claim expires
                    // before that (a dead instance's accounts are taken over as soon as their leases run out).
                    next = tokio::time::Instant::now() + every;
                }
                // Another instance released leases (a hand-over, a stop): claim now.
                _ = released.notified() => {}
                Some(command) = commands.recv() => {
                    let mut reload = matches!(command, LeaseCommand::Accounts(_));
                    match command {
                        LeaseCommand::Released(unit) => {
                            // Every release already asked for goes in one batch (a rebalance hands thousands of
                            // rooms over at once); the next commands wait their turn.
                            let mut units = vec![unit.to_string()];
                            let mut next = None;
                            while let Ok(command) = commands.try_recv() {
                                match command {
                                    LeaseCommand::Released(unit) => units.push(unit.to_string()),
                                    other => {
                                        next = Some(other);
                                        break;
                                    }
                                }
                            }
                            for unit in &units {
                                self.releasing.remove(unit);
                            }
                            // Their acknowledgements are committed first: the next instance must not take (and
                            // send again) what was delivered here.
                            let (done, committed) = tokio::sync::oneshot::channel();
                            if self.barrier.send(done).is_ok() {
                                let _ = tokio::time::timeout(Duration::from_secs(5), committed).await;
                            }
                            self.release(&units).await;
                            if let Some(LeaseCommand::Accounts(accounts)) = next {
                                self.settings.accounts = accounts;
                                reload = true;
                            }
                        }
                        // A reload: claim what it added at once. What it removed stays held until the
                        // account has drained and closed (then `Released`).
                        LeaseCommand::Accounts(accounts) => self.settings.accounts = accounts,
                    }
                    if !reload {
                        continue;
                    }
                }
            }
            let started = Instant::now();
            if self.client.is_closed() {
                match self.target.connect().await {
                    Ok(client) => self.client = client,
                    Err(e) => {
                        self.failed(&reason(&e), started, last_ok);
                        continue;
                    }
                }
            }
            match self.round().await {
                Ok(()) => {
                    last_ok = started;
                    if let Some(soon) = self.soonest.take() {
                        next = next.min(tokio::time::Instant::now() + soon);
                    }
                }
                Err(e) => self.failed(&reason(&e), started, last_ok),
            }
        }
        if self.client.is_closed()
            && let Ok(client) = self.target.connect().await
        {
            self.client = client;
        }
        let all = self.held.accounts();
        self.release(&all).await;
        let _ = self
            .client
            .execute(
                "UPDATE instances SET stopping = true WHERE name = $1 AND run = $2",
                &[&self.settings.instance, &self.run],
            )
            .await;
        info!(instance = %self.settings.instance, released = all.len(), "Leases handed over.");
    }

    /// A round failed: once nothing was renewed for two thirds of the lease, every account stops, before
    /// another instance may claim its lease.
    fn failed(&mut self, why: &str, now: Instant, last_ok: Instant) {
        warn!(error = %why, "The account leases could not be renewed.");
        if now.duration_since(last_ok) < self.settings.ttl * 2 / 3 || self.held.len() == 0 {
            return;
        }
        error!(
            accounts = self.held.len(),
            "The account leases could not be renewed in time: every account of this instance stops until PostgreSQL answers again."
        );
        for account in self.held.accounts() {
            self.lose(&account);
        }
    }

    fn lose(&self, account: &str) {
        self.held.set(account, None);
        self.stats.leases_held.store(self.held.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if let Some(unit) = Unit::parse(account) {
            let _ = self.events.send(LeaseEvent::Lost(unit));
        }
    }

    /// The first round, at start: the instance says it is alive, waits [`settle`] so that instances started
    /// with it can say so too, then claims its share of what they are all about to share. Without the wait the
    /// first one up claims every lease and hands two thirds over moments later: each of those rooms joined
    /// twice, and that instance keeps the memory of all of them (docs/performance.md, "Memory per room").
    pub(super) async fn first_round(&mut self) -> Result<(), tokio_postgres::Error> {
        self.heartbeat().await?;
        tokio::time::sleep(settle(self.settings.ttl)).await;
        self.round().await
    }

    async fn heartbeat(&self) -> Result<u64, tokio_postgres::Error> {
        self.client
            .execute(
                "INSERT INTO instances (name, run, started, heartbeat) VALUES ($1, $2, clock_timestamp(), clock_timestamp())
                 ON CONFLICT (name) DO UPDATE SET run = EXCLUDED.run, heartbeat = EXCLUDED.heartbeat, stopping = false,
                     started = CASE WHEN instances.run = EXCLUDED.run THEN instances.started ELSE EXCLUDED.started END",
                &[&self.settings.instance, &self.run],
            )
            .await
    }

    /// One round: heartbeat, renewals, claims up to the fair share, hand-overs past it.
    pub(super) async fn round(&mut self) -> Result<(), tokio_postgres::Error> {
        let ttl = millis(self.settings.ttl);
        let until = Instant::now() + self.settings.ttl * 2 / 3;
        let (name, run) = (&self.settings.instance.clone(), self.run);
        let accounts: Vec<String> = self.settings.accounts.clone();
        self.heartbeat().await?;
        self.client
            .execute("INSERT INTO leases (account) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", &[&accounts])
            .await?;
        // Renew what is held; what is not renewed was taken.
        let held = self.held.accounts();
        let renewed: Vec<String> = self
            .client
            .query(
                "UPDATE leases SET expires = clock_timestamp() + $3 * interval '1 millisecond'
                 WHERE run = $1 AND account = ANY($2) RETURNING account",
                &[&run, &held, &ttl],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        self.stats.lease_renewals.add(renewed.len() as u64);
        for account in &renewed {
            self.held.extend(account, until);
        }
        // Sets, not lists: an instance may hold thousands of room leases, and a round looks each one up.
        let renewed: HashSet<&String> = renewed.iter().collect();
        for account in held.iter().filter(|a| !renewed.contains(a)) {
            warn!(account = %account, "Another instance holds this account's lease now: it stops here.");
            self.releasing.remove(account);
            self.lose(account);
        }
        // Live: renewed within two thirds of the lease (a live instance renews every third), so that an instance
        // that died is no longer counted by the time its leases expire, and the survivors' shares cover them.
        let live: i64 = self
            .client
            .query_one(
                "SELECT COUNT(*) FROM instances WHERE NOT stopping
                 AND heartbeat > clock_timestamp() - $1 * interval '1 millisecond'",
                &[&(ttl * 2.0 / 3.0)],
            )
            .await?
            .get(0);
        let share = accounts.len().div_ceil(live.max(1) as usize);
        // An account a reload removed is held while it drains, outside the share.
        let wanted: HashSet<&String> = accounts.iter().collect();
        let configured: Vec<String> = self.held.accounts().into_iter().filter(|a| wanted.contains(a)).collect();
        let holding = configured.len();
        if holding < share {
            let claimed = self
                .client
                .query(
                    "UPDATE leases SET owner = $1, run = $2, epoch = epoch + 1,
                         expires = clock_timestamp() + $3 * interval '1 millisecond'
                     WHERE account IN (
                         SELECT account FROM leases
                         WHERE account = ANY($4) AND (run IS NULL OR expires < clock_timestamp())
                         ORDER BY account LIMIT $5 FOR UPDATE SKIP LOCKED)
                     RETURNING account, epoch",
                    &[name, &run, &ttl, &accounts, &((share - holding) as i64)],
                )
                .await?;
            for row in claimed {
                let (account, epoch): (String, i64) = (row.get(0), row.get(1));
                self.held.set(&account, Some((epoch, until)));
                self.stats.lease_takeovers.inc();
                info!(account = %account, epoch, "Lease taken: the account runs on this instance.");
                if let Some(unit) = Unit::parse(&account) {
                    let _ = self.events.send(LeaseEvent::Acquired(unit));
                }
            }
        } else if holding > share + self.releasing.len() {
            // More than a fair share (another instance joined): hand the surplus over.
            let mut mine: Vec<String> = configured.into_iter().filter(|a| !self.releasing.contains(a)).collect();
            mine.sort();
            let surplus = holding - share - self.releasing.len();
            for account in mine.into_iter().rev().take(surplus) {
                info!(account = %account, share, "Handing the account over to even the load.");
                self.releasing.insert(account.clone());
                if let Some(unit) = Unit::parse(&account) {
                    let _ = self.events.send(LeaseEvent::Release(unit));
                }
            }
        }
        // Look again as soon as one of the others' leases runs out: if its instance died, this one takes the
        // account over then, not up to a third of the lease later.
        let soonest: Option<f64> = self
            .client
            .query_one(
                "SELECT EXTRACT(EPOCH FROM MIN(expires) - clock_timestamp())::float8 FROM leases
                 WHERE account = ANY($1) AND run IS NOT NULL AND run <> $2",
                &[&accounts, &run],
            )
            .await?
            .get(0);
        self.soonest = soonest.map(|s| Duration::from_secs_f64(s.max(0.0)) + Duration::from_millis(20));
        self.stats.leases_held.store(self.held.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Gives leases back at once (their accounts are closed): another instance may claim them next round.
    async fn release(&mut self, accounts: &[String]) {
        if accounts.is_empty() {
            return;
        }
        for account in accounts {
            self.held.set(account, None);
        }
        self.stats.leases_held.store(self.held.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let released = self
            .client
            .execute(
                "UPDATE leases SET owner = NULL, run = NULL, expires = NULL WHERE run = $1 AND account = ANY($2)",
                &[&self.run, &accounts],
            )
            .await;
        let _ = self.client.execute("SELECT pg_notify('chatbridge_leases', '')", &[]).await;
        if let Err(e) = released {
            warn!(error = %reason(&e), "Leases could not be released; they expire instead.");
        }
    }
}
