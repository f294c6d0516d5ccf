//! Writing files so that a crash, a power cut or a concurrent reader never sees half of one.
//!
//! Every file regionfilter writes goes through [`write_atomic`] or [`TempFile::persist`]: the
//! bytes go to a new temporary file in the target's directory (created exclusively, so a link
//! planted under a guessable name is never followed), are synced, renamed over the target, and
//! the directory is synced so the rename itself survives a crash. A target that exists and is
//! not a regular file (a directory, a device such as `/dev/full`, a symbolic link) is refused
//! before anything is created.

use std::{
    fs::{self, File},
    io::{self, Write as _},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

/// Why a file was not written. Nothing changed at the target when any of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path} exists and is not a regular file; refusing to replace it")]
    NotRegular { path: PathBuf },
    #[error("cannot write {path}")]
    Io { path: PathBuf, source: io::Error },
}

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    check_target(path)?;
    let mut temp = TempFile::new_for(path)?;
    temp.file()
        .write_all(bytes)
        .map_err(|source| io_error(temp.path(), source))?;
    temp.persist(path)
}

/// Refuses a target that exists and is not a regular file (links are not followed).
pub fn check_target(path: &Path) -> Result<(), WriteError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => Ok(()),
        Ok(_) => Err(WriteError::NotRegular {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io_error(path, source)),
    }
}

/// Syncs a directory, so renames and new entries in it survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A new, exclusively created file beside its future name; removed on drop unless persisted.
pub struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    /// Creates `.<name>.<pid>.<n>.tmp` in the directory of `target`.
    pub fn new_for(target: &Path) -> Result<Self, WriteError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = parent(target);
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
            match File::options().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(Self {
                        path,
                        file,
                        persisted: false,
                    })
                }
                // Left by a process with our pid before a reboot, or planted: take another name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => {}
                Err(source) => return Err(io_error(&path, source)),
            }
        }
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the file, renames it to `target` and syncs the directory.
    pub fn persist(mut self, target: &Path) -> Result<(), WriteError> {
        check_target(target)?;
        self.file
            .sync_all()
            .map_err(|source| io_error(&self.path, source))?;
        fs::rename(&self.path, target).map_err(|source| io_error(target, source))?;
        self.persisted = true;
        sync_dir(parent(target)).map_err(|source| io_error(target, source))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn io_error(path: &Path, source: io::Error) -> WriteError {
    WriteError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("rf-fsutil-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn entries(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = Dir::new("replace");
        let path = dir.0.join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(dir.entries(), ["state.json"]);
    }

    #[test]
    fn targets_that_are_not_regular_files_are_refused_and_left_alone() {
        let dir = Dir::new("refuse");
        let sub = dir.0.join("sub");
        fs::create_dir(&sub).unwrap();
        let victim = dir.0.join("victim");
        fs::write(&victim, b"keep").unwrap();
        let link = dir.0.join("link");
        symlink(&victim, &link).unwrap();
        for target in [&sub, &link, &PathBuf::from("/dev/null")] {
            let err = write_atomic(target, b"x").unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "{} exists and is not a regular file; refusing to replace it",
                    target.display()
                )
            );
        }
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(dir.entries(), ["link", "sub", "victim"]);
    }

    #[test]
    fn a_link_planted_under_a_temporary_name_is_not_followed() {
        let dir = Dir::new("planted");
        let victim = dir.0.join("victim");
        fs::write(&victim, b"keep").unwrap();
        let target = dir.0.join("out");
        let n = {
            // The next temporary name this process would take.
            let probe = TempFile::new_for(&target).unwrap();
            let name = probe
                .path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            name.rsplit('.').nth(1).unwrap().parse::<u64>().unwrap() + 1
        };
        for k in n..n + 4 {
            let planted = dir.0.join(format!(".out.{}.{k}.tmp", std::process::id()));
            symlink(&victim, planted).unwrap();
        }
        write_atomic(&target, b"new").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }

    /// The state record used to go to `<iface>.json.tmp` with a plain write, which follows a
    /// link at that name, and was never synced.
    #[test]
    fn state_records_do_not_follow_a_link_at_the_old_temporary_name() {
        use crate::{
            kernel::maps::Lookup,
            model::policy::{Mode, Policy},
            ops::state::AttachState,
        };
        let dir = Dir::new("state");
        let victim = dir.0.join("victim");
        fs::write(&victim, b"keep").unwrap();
        symlink(&victim, dir.0.join("eth0.json.tmp")).unwrap();
        let state = AttachState {
            iface: "eth0".parse().unwrap(),
            link_layer: crate::kernel::netdev::LinkLayer::Ethernet,
            netns: None,
            ifindex: 2,
            mode: "native".to_owned(),
            lookup: Lookup::Fast,
            policy: Policy::new(Mode::Deny, std::collections::BTreeSet::new()),
            sources: vec![],
            artifact: None,
            content_hash: String::new(),
            prefixes_v4: 0,
            prefixes_v6: 0,
            attached_at: 0,
            updated_at: None,
        };
        let path = dir.0.join("eth0.json");
        state.save(&path).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(AttachState::load(&path).unwrap().iface.as_str(), "eth0");
    }
}
