//! One command at a time per interface: `attach`, `detach`, `update` and `rollback` take an
//! exclusive lock on `<state_dir>/<iface>.lock`, released by the kernel when the holder exits,
//! however it exits. So a killed command never leaves a lock behind, and a concurrent one
//! never sees (or removes) another's half-made pins.

use std::{
    fs::{self, File, TryLockError},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

/// Another command holds the lock.
#[derive(Debug, thiserror::Error)]
#[error("another regionfilter command is working on this interface: it holds {path} (waited {waited:?}); try again later or raise --wait")]
pub struct Busy {
    pub path: String,
    pub waited: Duration,
}

/// Held until dropped.
pub struct IfaceLock {
    _file: File,
}

/// How often a waiting command retries the lock.
const RETRY: Duration = Duration::from_millis(50);

impl IfaceLock {
    /// Takes the lock, waiting up to `wait` for the current holder to finish.
    pub fn acquire(path: &Path, wait: Duration) -> Result<Self> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("cannot lock {}", path.display()))
                }
            }
            if started.elapsed() >= wait {
                return Err(Busy {
                    path: path.display().to_string(),
                    waited: wait,
                }
                .into());
            }
            std::thread::sleep(RETRY);
        }
    }

    /// Whether some process holds the lock right now, without creating anything (for
    /// `status`, which only reads).
    #[must_use]
    pub fn is_held(path: &Path) -> bool {
        let Ok(file) = File::open(path) else {
            return false;
        };
        matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
    }
}
