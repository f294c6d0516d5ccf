//! What regionfilter keeps on the host about each attachment: where its pins, record, lock and
//! known-good files live ([`Layout`]), and the record `status` reads ([`AttachState`]).

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::{
    data::SourceInfo,
    model::{
        iface::{IfaceName, LinkLayer},
        lookup::Lookup,
        policy::Policy,
    },
};

/// Roots for pins and state records, overridable so tests and several instances never collide.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Per-interface pin directories live below this bpffs directory.
    pub pin_root: PathBuf,
    /// Per-interface JSON records and update locks live here.
    pub state_dir: PathBuf,
    /// Per-interface known-good artifacts (`known_good`) live here.
    pub lib_dir: PathBuf,
}

impl Layout {
    // Paths come only from validated names: an `IfaceName` is one plain path component.
    #[must_use]
    pub fn pin_dir(&self, iface: &IfaceName) -> PathBuf {
        self.pin_root.join(iface)
    }

    #[must_use]
    pub fn state_file(&self, iface: &IfaceName) -> PathBuf {
        self.state_dir.join(format!("{iface}.json"))
    }

    #[must_use]
    pub fn lock_file(&self, iface: &IfaceName) -> PathBuf {
        self.state_dir.join(format!("{iface}.lock"))
    }

    /// The lock one agent holds while it runs: in a directory, not a `NAME.lock` file, so no
    /// interface name can share it.
    #[must_use]
    pub fn agent_lock_file(&self) -> PathBuf {
        self.state_dir.join("agent").join("lock")
    }

    /// The cache of `update --url` and the agent's downloads.
    #[must_use]
    pub fn download_dir(&self) -> PathBuf {
        self.lib_dir.join("downloads")
    }

    /// Interfaces with a pin directory (complete or not), sorted by name. Entries whose names
    /// are not interface names are not regionfilter's and are skipped.
    pub fn pinned_interfaces(&self) -> Result<Vec<IfaceName>> {
        let entries = match fs::read_dir(&self.pin_root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot list {}", self.pin_root.display()))
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry =
                entry.with_context(|| format!("cannot list {}", self.pin_root.display()))?;
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if let (true, Some(Ok(name))) = (is_dir, entry.file_name().to_str().map(str::parse)) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

/// What `attach` did, recorded for `status`. The maps remain the truth for verdicts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AttachState {
    pub iface: IfaceName,
    pub ifindex: u32,
    /// The network namespace of the attach (`kernel::netdev::netns_id`): interface names
    /// are only compared with the filter's interface from inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<u64>,
    /// `native` or `skb`.
    pub mode: String,
    /// Whether frames start with an Ethernet header or with the IP header.
    #[serde(default = "ethernet")]
    pub link_layer: LinkLayer,
    /// How the program looks countries up; fixed for the life of the attachment.
    #[serde(default = "fast")]
    pub lookup: Lookup,
    pub policy: Policy,
    /// Every source of the loaded data, lowest precedence first.
    pub sources: Vec<SourceInfo>,
    /// The artifact the data came from, if it came from one.
    pub artifact: Option<std::path::PathBuf>,
    /// Content hash of the loaded data and policy (as `compile` computes it).
    pub content_hash: String,
    pub prefixes_v4: usize,
    pub prefixes_v6: usize,
    /// Unix time of the attach.
    pub attached_at: u64,
    /// Unix time of the last `update` or `rollback` that switched halves.
    #[serde(default)]
    pub updated_at: Option<u64>,
}

fn ethernet() -> LinkLayer {
    LinkLayer::Ethernet
}

fn fast() -> Lookup {
    Lookup::Fast
}

impl AttachState {
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path.parent().context("state file has no directory")?;
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // Atomic and synced, so a reader never sees half a record, nor a crash an empty one.
        crate::sys::fs::write_atomic(path, &serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a valid state record", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::symlink};

    use super::*;
    use crate::model::policy::Mode;

    /// The state record used to go to `<iface>.json.tmp` with a plain write, which follows a
    /// link at that name, and was never synced.
    #[test]
    fn state_records_do_not_follow_a_link_at_the_old_temporary_name() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        symlink(&victim, dir.path().join("eth0.json.tmp")).unwrap();
        let state = AttachState {
            iface: "eth0".parse().unwrap(),
            link_layer: LinkLayer::Ethernet,
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
        let path = dir.path().join("eth0.json");
        state.save(&path).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(AttachState::load(&path).unwrap().iface.as_str(), "eth0");
    }
}
