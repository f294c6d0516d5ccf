//! The last known-good data per interface, kept on disk so `rollback` and policy-only updates
//! have complete contents to work from.
//!
//! `<lib_dir>/<iface>/current.rgnf` is the artifact (data and policy) packets are judged by,
//! `previous.rgnf` the one before it. An update writes `next.rgnf` before it switches halves
//! and renames afterwards; a crash in between is repaired by [`KnownGood::recover`], which
//! compares `next.rgnf` with the content hash the kernel's active half records.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

use crate::{
    compile::artifact::{Artifact, ArtifactError},
    model::iface::IfaceName,
};

pub struct KnownGood {
    dir: PathBuf,
}

impl KnownGood {
    #[must_use]
    pub fn new(lib_dir: &Path, iface: &IfaceName) -> Self {
        Self {
            dir: lib_dir.join(iface),
        }
    }

    #[must_use]
    pub fn current_path(&self) -> PathBuf {
        self.dir.join("current.rgnf")
    }

    #[must_use]
    pub fn previous_path(&self) -> PathBuf {
        self.dir.join("previous.rgnf")
    }

    fn next_path(&self) -> PathBuf {
        self.dir.join("next.rgnf")
    }

    /// Present while the attachment these copies belong to has been ended by `detach`.
    fn detached_path(&self) -> PathBuf {
        self.dir.join("detached")
    }

    /// Records that `detach` ended this attachment on purpose, so nothing restores it as if a
    /// reboot had taken the pins (the copies stay, for `attach --artifact`). Nothing to record
    /// when there are no copies.
    pub fn mark_detached(&self) -> Result<()> {
        if !self.current_path().exists() {
            return Ok(());
        }
        Ok(crate::sys::fs::write_atomic(
            &self.detached_path(),
            b"ended by regionfilter detach\n",
        )?)
    }

    /// Takes back [`Self::mark_detached`]: the attachment did not end on purpose (the agent
    /// moved a filter whose interface was renamed away).
    pub fn clear_detached(&self) -> Result<()> {
        match fs::remove_file(self.detached_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", self.detached_path().display()))
            }
            _ => Ok(()),
        }
    }

    /// Whether `detach` ended the attachment the copies belong to.
    #[must_use]
    pub fn detached(&self) -> bool {
        self.detached_path().exists()
    }

    /// Writes the artifact about to become active, before the switch.
    pub fn stage(&self, artifact: &Artifact) -> Result<()> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        Ok(artifact.write(&self.next_path())?)
    }

    /// For a new attach: `artifact` becomes current and any history (a previous or staged
    /// artifact from an earlier attachment of this name, and its detached mark) is dropped, so
    /// `rollback` never restores data and policy the new filter never had.
    pub fn start(&self, artifact: &Artifact) -> Result<()> {
        for stale in [self.previous_path(), self.next_path(), self.detached_path()] {
            match fs::remove_file(&stale) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("cannot remove {}", stale.display()))
                }
                _ => {}
            }
        }
        self.stage(artifact)?;
        let (current, next) = (self.current_path(), self.next_path());
        fs::rename(&next, &current).with_context(|| format!("cannot write {}", current.display()))
    }

    /// For an update that found the kernel already running `artifact`: makes it the current
    /// copy when the current one is missing, damaged or another content (a full disk, a bit
    /// flip, a copy by hand), keeping the previous copy. True when it wrote one.
    pub fn ensure_current(&self, artifact: &Artifact) -> Result<bool> {
        let current = self.current_path();
        let good = Artifact::read(&current)
            .is_ok_and(|a| a.header.content_hash == artifact.header.content_hash);
        if good {
            return Ok(false);
        }
        self.stage(artifact)?;
        fs::rename(self.next_path(), &current)
            .with_context(|| format!("cannot write {}", current.display()))?;
        crate::sys::fs::sync_dir(&self.dir)
            .with_context(|| format!("cannot sync {}", self.dir.display()))?;
        Ok(true)
    }

    /// Drops a staged artifact that never became active.
    pub fn discard_staged(&self) {
        let _ = fs::remove_file(self.next_path());
    }

    /// After the switch: current becomes previous, the staged artifact becomes current.
    pub fn commit(&self) -> Result<()> {
        let (current, next) = (self.current_path(), self.next_path());
        if current.exists() {
            fs::rename(&current, self.previous_path())
                .with_context(|| format!("cannot move {} aside", current.display()))?;
        }
        fs::rename(&next, &current)
            .with_context(|| format!("cannot write {}", current.display()))?;
        // The renames are durable only once the directory is synced.
        crate::sys::fs::sync_dir(&self.dir)
            .with_context(|| format!("cannot sync {}", self.dir.display()))
    }

    /// For a rollback: the previous artifact becomes current and the current one previous.
    pub fn swap_previous(&self) -> Result<()> {
        let (previous, next) = (self.previous_path(), self.next_path());
        fs::rename(&previous, &next)
            .with_context(|| format!("cannot move {} aside", previous.display()))?;
        self.commit()
    }

    /// Finishes or discards what a killed update left: a staged artifact whose hash is the
    /// active half's was switched to, any other never was.
    pub fn recover(&self, active_hash: &str) -> Result<()> {
        let next = self.next_path();
        if !next.exists() {
            return Ok(());
        }
        match Artifact::read(&next) {
            Ok(staged) if staged.header.content_hash == active_hash => self.commit(),
            _ => {
                fs::remove_file(&next).with_context(|| format!("cannot remove {}", next.display()))
            }
        }
    }

    /// The artifact packets are judged by, if one was recorded.
    pub fn current(&self) -> Result<Option<Artifact>> {
        read_if_present(&self.current_path())
    }

    pub fn previous(&self) -> Result<Option<Artifact>> {
        read_if_present(&self.previous_path())
    }
}

fn read_if_present(path: &Path) -> Result<Option<Artifact>> {
    if !path.exists() {
        return Ok(None);
    }
    match Artifact::read(path) {
        // Written by an older regionfilter (an upgrade), or damaged (a bit flip, a truncation):
        // as if there were no copy, so only the absolute guards run, a policy-only update asks
        // for the data once, and the next update writes a good copy. A damaged copy never
        // blocks moving to good data.
        Err(
            e @ (ArtifactError::Version { .. }
            | ArtifactError::Damaged { .. }
            | ArtifactError::NotAnArtifact(_)),
        ) => {
            log::warn!("ignoring the known-good copy: {e}");
            Ok(None)
        }
        other => Ok(Some(other?)),
    }
}
