//! One command at a time per interface: `attach`, `detach`, `update` and `rollback` take an
//! exclusive lock on `<state_dir>/<iface>.lock`, released by the kernel when the holder exits,
//! however it exits. So a killed command never leaves a lock behind, and a concurrent one
//! never sees (or removes) another's half-made pins.

use std::{
    fs::{self, File, TryLockError},
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
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

/// The process is stopping and waits no more for locks (see [`IfaceLock::cancel_waits`]).
#[derive(Debug, thiserror::Error)]
#[error("stopping: gave up waiting for {path}, which another regionfilter command holds; nothing was changed")]
pub struct Cancelled {
    pub path: String,
}

/// Set once by [`IfaceLock::cancel_waits`].
static CANCEL_WAITS: AtomicBool = AtomicBool::new(false);

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
        // O_NOFOLLOW: a symlink planted at the lock's path is refused, not followed to a file
        // regionfilter would then create or hold open for writing.
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
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
            if CANCEL_WAITS.load(Ordering::Relaxed) {
                return Err(Cancelled {
                    path: path.display().to_string(),
                }
                .into());
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

    /// Makes every wait for a lock in this process, now and later, give up within one retry
    /// (`Cancelled`): a stopping agent finishes the switch under way, and starts none that
    /// still waits for another command. A lock already held is not affected.
    pub fn cancel_waits() {
        CANCEL_WAITS.store(true, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_at_the_lock_path_is_refused_not_followed() {
        let dir = std::env::temp_dir().join(format!("rf-lock-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("target");
        let link = dir.join("eth0.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = IfaceLock::acquire(&link, Duration::ZERO)
            .err()
            .expect("refused");
        assert!(!target.exists(), "the lock followed the link: {err:#}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_held_lock_is_busy_and_seen_as_held() {
        let dir = std::env::temp_dir().join(format!("rf-lock2-{}", std::process::id()));
        let path = dir.join("eth0.lock");
        let held = IfaceLock::acquire(&path, Duration::ZERO).unwrap();
        assert!(IfaceLock::is_held(&path));
        let err = IfaceLock::acquire(&path, Duration::from_millis(60))
            .err()
            .unwrap();
        assert!(err.downcast_ref::<Busy>().is_some(), "{err:#}");
        drop(held);
        assert!(!IfaceLock::is_held(&path));
        fs::remove_dir_all(&dir).unwrap();
    }
}
