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

/// A new, exclusively created file beside its future name ([`tempfile`]: a random name opened
/// with `O_EXCL`, so a link planted under a guessable name is never followed); removed on drop
/// unless persisted.
pub struct TempFile(tempfile::NamedTempFile);

impl TempFile {
    /// Creates `.<name>.<random>.tmp` in the directory of `target`.
    pub fn new_for(target: &Path) -> Result<Self, WriteError> {
        let dir = parent(target);
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map(Self)
            .map_err(|source| io_error(&dir.join(format!(".{name}.*.tmp")), source))
    }

    pub fn file(&mut self) -> &mut File {
        self.0.as_file_mut()
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Syncs the file, renames it to `target` and syncs the directory.
    pub fn persist(self, target: &Path) -> Result<(), WriteError> {
        check_target(target)?;
        self.0
            .as_file()
            .sync_all()
            .map_err(|source| io_error(self.0.path(), source))?;
        self.0
            .persist(target)
            .map_err(|e| io_error(target, e.error))?;
        sync_dir(parent(target)).map_err(|source| io_error(target, source))
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

    struct Dir(tempfile::TempDir);

    impl Dir {
        fn new(name: &str) -> Self {
            Self(
                tempfile::Builder::new()
                    .prefix(&format!("rf-fs-{name}"))
                    .tempdir()
                    .unwrap(),
            )
        }

        fn join(&self, name: &str) -> PathBuf {
            self.0.path().join(name)
        }

        fn entries(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(self.0.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = Dir::new("replace");
        let path = dir.join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(dir.entries(), ["state.json"]);
    }

    #[test]
    fn targets_that_are_not_regular_files_are_refused_and_left_alone() {
        let dir = Dir::new("refuse");
        let sub = dir.join("sub");
        fs::create_dir(&sub).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, b"keep").unwrap();
        let link = dir.join("link");
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
    fn a_failed_write_leaves_the_target_and_no_temporary_behind() {
        let dir = Dir::new("failed");
        let target = dir.join("out");
        fs::write(&target, b"keep").unwrap();
        let mut temp = TempFile::new_for(&target).unwrap();
        temp.file().write_all(b"half").unwrap();
        drop(temp);
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert_eq!(dir.entries(), ["out"]);
    }
}
