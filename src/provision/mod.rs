//! Bridges provisioned at runtime (issue #34): added, changed and removed through the admin API or
//! `chatbridge bridges`, kept in the store (`store::provisioned`), and applied by every running daemon through the
//! path a reload takes. Beside `router/` and `admin/`: it reads and writes the store and checks with `config`; the
//! daemon applies what it says, and the admin side reaches it through the operator contract.
//!
//! - The file is the base: its `[general]`, its accounts and its bridges. What runs is the base with the store's
//!   bridges after it ([`merge`]); a stored bridge that no longer goes with the file is left out and said.
//! - A change is checked beside the store's other bridges inside the transaction that writes it, so two changes at
//!   once cannot each pass alone and clash together.
//! - Running daemons learn of a change from PostgreSQL's `chatbridge_bridges` notification, or (SQLite) by looking
//!   at the store's version every second ([`watch_sqlite`]); this daemon's own changes tell it at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tracing::{error, warn};

use crate::config::{Config, LeftOut, Problems, Provisioned};
use crate::store::StoreError;
use crate::store::provisioned::{Bridges, Changed, Listed};

/// How long an API change waits to see this daemon apply it.
const APPLIED_WITHIN: Duration = Duration::from_secs(10);
/// How often a daemon on SQLite looks at the store's version.
const SQLITE_EVERY: Duration = Duration::from_secs(1);

/// The base configuration with the provisioned bridges after it, and those left out (each said in the log).
pub fn merge(base: &Config, listed: &Listed) -> (Config, Vec<LeftOut>) {
    match base.with_provisioned(&listed.bridges) {
        Ok((config, left)) => {
            for out in &left {
                for problem in &out.problems.0 {
                    error!(bridge = %out.name, %problem, "A provisioned bridge does not go with the configuration file; it is left out (`chatbridge bridges rm`, or fix the file).");
                }
            }
            (config, left)
        }
        Err(problems) => {
            for problem in &problems.0 {
                error!(%problem, "The provisioned bridges cannot be read with the configuration file; only the file's bridges run.");
            }
            let left = listed.bridges.iter().map(|b| LeftOut { name: b.name.clone(), problems: problems.clone() });
            (base.clone(), left.collect())
        }
    }
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{problems}{count} problem(s) found", problems = .0, count = .0.0.len())]
    Invalid(Problems),
    #[error("the configuration file has a bridge named `{0}`: change it there")]
    FromFile(String),
    #[error("no provisioned bridge is named `{0}`")]
    NotFound(String),
    #[error("there is no store to keep provisioned bridges in (general.durable = false)")]
    NoStore,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub version: i64,
    pub created: bool,
    /// This daemon applied it before the answer (false: it is still on its way).
    pub applied: bool,
}

/// What the daemon and its admin side share: the store's place, the file's configuration, what was applied.
pub struct Provisioner {
    bridges: Option<Bridges>,
    base: Mutex<Config>,
    /// The version this daemon runs, and the bridges that version left out.
    applied: watch::Sender<(i64, Vec<LeftOut>)>,
    /// Rung for the daemon to look at the store again.
    pub changed: Arc<Notify>,
    runtime: tokio::runtime::Handle,
}

impl Provisioner {
    /// For a daemon starting with the file's `base`; reads the store's bridges and returns what runs. Call it on
    /// the runtime.
    pub fn start(base: Config) -> Result<(Arc<Self>, Config), StoreError> {
        let bridges = Bridges::of(&base.general)?;
        let listed = match &bridges {
            Some(bridges) => bridges.list()?,
            None => Listed::default(),
        };
        let (config, left) = merge(&base, &listed);
        let provisioner = Self {
            bridges,
            base: Mutex::new(base),
            applied: watch::channel((listed.version, left)).0,
            changed: Arc::new(Notify::new()),
            runtime: tokio::runtime::Handle::current(),
        };
        Ok((Arc::new(provisioner), config))
    }

    pub fn base(&self) -> Config {
        self.base.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// A reload's new file.
    pub fn set_base(&self, base: Config) {
        *self.base.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = base;
    }

    /// What runs now: the store read (blocking) and merged with the file; `None` when the store's version is the
    /// one applied (nothing changed).
    pub fn next(&self, force: bool) -> Option<(i64, Config, Vec<LeftOut>)> {
        let bridges = self.bridges.as_ref()?;
        let listed = match bridges.list() {
            Ok(listed) => listed,
            Err(e) => {
                warn!(error = %e, "Cannot read the provisioned bridges; the running ones stay.");
                return None;
            }
        };
        if !force && listed.version == self.applied.borrow().0 {
            return None;
        }
        let (config, left) = merge(&self.base(), &listed);
        Some((listed.version, config, left))
    }

    /// The daemon runs `version` now.
    pub fn applied(&self, version: i64, left: Vec<LeftOut>) {
        self.applied.send_replace((version, left));
    }

    /// The bridges provisioned, and those of them left out with their problems (blocking).
    pub fn list(&self) -> Result<(Listed, Vec<LeftOut>), ProvisionError> {
        let bridges = self.bridges.as_ref().ok_or(ProvisionError::NoStore)?;
        Ok((bridges.list()?, self.applied.borrow().1.clone()))
    }

    /// Adds or replaces a bridge, checked with the file and the store's other bridges (blocking).
    pub fn put(&self, bridge: Provisioned) -> Result<Outcome, ProvisionError> {
        let bridges = self.bridges.as_ref().ok_or(ProvisionError::NoStore)?;
        let base = self.base();
        if base.is_from_file(&bridge.name) {
            return Err(ProvisionError::FromFile(bridge.name));
        }
        let candidate = bridge.clone();
        let check = move |others: &[Provisioned]| base.check_provisioned(others, &candidate).map(drop);
        match bridges.put(bridge, check)? {
            Changed::Written { version, created } => Ok(Outcome { version, created, applied: self.wait(version) }),
            Changed::Refused(problems) => Err(ProvisionError::Invalid(problems)),
            Changed::NotFound => unreachable!("a put finds or creates"),
        }
    }

    /// Removes a provisioned bridge (blocking).
    pub fn remove(&self, name: &str) -> Result<Outcome, ProvisionError> {
        let bridges = self.bridges.as_ref().ok_or(ProvisionError::NoStore)?;
        if self.base().is_from_file(name) {
            return Err(ProvisionError::FromFile(name.to_owned()));
        }
        match bridges.remove(name)? {
            Changed::Written { version, .. } => Ok(Outcome { version, created: false, applied: self.wait(version) }),
            _ => Err(ProvisionError::NotFound(name.to_owned())),
        }
    }

    /// Tells the daemon, and waits (a while) until it runs `version` or a later one.
    fn wait(&self, version: i64) -> bool {
        self.changed.notify_one();
        let mut applied = self.applied.subscribe();
        self.runtime.block_on(async {
            tokio::time::timeout(APPLIED_WITHIN, applied.wait_for(|(v, _)| *v >= version))
                .await
                .is_ok_and(|r| r.is_ok())
        })
    }

    /// With SQLite, where no notification comes: rings `changed` whenever the store's version is not the one
    /// applied (a `chatbridge bridges` command changed it). Ends when the daemon's provisioner goes.
    pub fn watch_sqlite(self: &Arc<Self>) {
        if !matches!(self.bridges, Some(Bridges::Sqlite(_))) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SQLITE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(this) = weak.upgrade() else { return };
                let Some(bridges) = this.bridges.clone() else { return };
                let version = tokio::task::spawn_blocking(move || bridges.version()).await;
                if let Ok(Ok(version)) = version
                    && version != this.applied.borrow().0
                {
                    this.changed.notify_one();
                }
            }
        });
    }
}
