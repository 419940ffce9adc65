//! The state directory's files: created for their owner only, the lock that keeps a second daemon out, and
//! the files the store watches while it runs.

use std::path::{Path, PathBuf};

use tracing::warn;

use super::StoreError;

/// Creates the state directory, for its owner only (0700). One that exists is left as it is (it may be
/// shared on purpose), with a WARN when others can read it.
pub(super) fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o007 != 0 {
            warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777), "The state directory is open to other users; the database in it is not (0600).");
        }
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Makes a file of the state directory readable and writable by its owner only (0600).
pub(super) fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// The lock's file name inside `state_dir`.
pub(super) const LOCK_FILE: &str = "chatbridge.lock";

/// How long a lock held by someone else is waited for before the start is refused: a store closed a moment ago
/// (an in-process restart) can still be locked through a process another thread was starting at that moment —
/// the child shares the lock's open file until its `exec` closes it.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes the state directory's lock (released by the kernel when the process ends, however it ends).
pub(super) fn lock(dir: &Path) -> Result<std::fs::File, StoreError> {
    lock_within(dir, LOCK_PATIENCE)
}

pub(super) fn lock_within(dir: &Path, patience: std::time::Duration) -> Result<std::fs::File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::Lock { path: path.clone(), source })?;
    let until = std::time::Instant::now() + patience;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::Locked { path }),
            Err(std::fs::TryLockError::Error(source)) => return Err(StoreError::Lock { path, source }),
        }
    }
}

/// A file the store holds open, as it was opened: removed or replaced under a running daemon, what the
/// store writes is lost at the next start (the database) or a second daemon can start (the lock).
pub(super) struct Held {
    path: PathBuf,
    id: (u64, u64),
}

impl Held {
    pub(super) fn of(path: PathBuf) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&path).ok()?;
        Some(Self { path, id: (meta.dev(), meta.ino()) })
    }

    /// Why the file is no longer the one held, if it is not.
    pub(super) fn gone(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(&self.path) {
            Err(_) => Some(format!("{} was removed", self.path.display())),
            Ok(meta) if (meta.dev(), meta.ino()) != self.id => Some(format!("{} was replaced", self.path.display())),
            Ok(_) => None,
        }
    }
}
