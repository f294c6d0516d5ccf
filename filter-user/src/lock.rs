//! One update at a time per interface: an exclusive `flock` on `<state_dir>/<iface>.lock`,
//! released by the kernel when the holder exits, however it exits.

use std::{
    fs::{self, File},
    os::fd::AsRawFd as _,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

/// Another update holds the lock.
#[derive(Debug, thiserror::Error)]
#[error("update in progress: another regionfilter holds {path} (waited {waited:?}); try again later or raise --wait")]
pub struct Busy {
    pub path: String,
    pub waited: Duration,
}

/// Held until dropped.
pub struct UpdateLock {
    _file: File,
}

/// How often a waiting update retries the lock.
const RETRY: Duration = Duration::from_millis(50);

impl UpdateLock {
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
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Self { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(err).with_context(|| format!("cannot lock {}", path.display()));
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
}
