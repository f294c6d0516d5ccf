//! Blue/green installation: complete new contents go into the half packets do not see, are
//! self-tested there, and become live with one write of `ACTIVE`. The old half is cleared only
//! after every program run that could still be reading it has finished.

use anyhow::{Context as _, Result};

use crate::{
    compile::artifact::Artifact,
    compile::paint::{self, Entries},
    compile::RegionSet,
    kernel::maps::{hash_bytes, FilterMaps, HalfContents, Lookup},
    kernel::tables::FastTables,
    model::policy::Policy,
    ops::state::unix_now,
};
use filter_common::REGION_MAX_ENTRIES;

/// New contents, compiled and checked in userspace before any map is touched. The artifact
/// (data, policy, counts, content hash) is the one kept as known-good once it is live.
pub struct Staged {
    pub artifact: Artifact,
    pub policy: Policy,
    /// Countries with the policy's exceptions and the local class painted over them.
    pub entries: Entries,
    pub tables: Option<FastTables>,
}

impl Staged {
    /// Compiles the maps' contents for `lookup`; refuses data the maps cannot hold.
    pub fn new(regions: RegionSet, policy: Policy, lookup: Lookup) -> Result<Self> {
        let entries = paint::entries(&regions, Some(&policy));
        check_capacity(entries.v4.len(), entries.v6.len())?;
        let tables = match lookup {
            Lookup::Fast => Some(FastTables::build(&entries)?),
            Lookup::Lpm => None,
        };
        Ok(Self {
            artifact: Artifact::new(regions, Some(policy.clone()), unix_now()),
            policy,
            entries,
            tables,
        })
    }

    #[must_use]
    pub fn regions(&self) -> &RegionSet {
        &self.artifact.regions
    }

    /// IPv4 and IPv6 prefixes of the country data (before exceptions and the local class are
    /// painted over it): what guards compare and status reports.
    #[must_use]
    pub fn data_prefixes(&self) -> (usize, usize) {
        let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let header = &self.artifact.header;
        (count(header.prefixes_v4), count(header.prefixes_v6))
    }

    /// Hex SHA-256 of regions and policy, as artifacts carry it.
    #[must_use]
    pub fn content_hash(&self) -> &str {
        &self.artifact.header.content_hash
    }
}

/// Refuses data that would not fit the tries, before anything is created.
pub fn check_capacity(v4: usize, v6: usize) -> Result<()> {
    let max = REGION_MAX_ENTRIES as usize;
    if v4 > max || v6 > max {
        anyhow::bail!(
            "the data needs {v4} IPv4 and {v6} IPv6 prefixes; the maps hold at most {max} per family. \
             Load fewer sources or countries"
        );
    }
    Ok(())
}

/// Writes `staged` into the inactive half, runs `selftest` on that half, makes it active and
/// clears the old one. Returns the half now active. If anything fails before the switch,
/// packets never saw the new contents.
pub fn install(
    maps: &mut FilterMaps,
    staged: &Staged,
    lookup: Lookup,
    selftest: impl FnOnce(usize) -> Result<()>,
) -> Result<usize> {
    let old = maps.active_half()?;
    let new = 1 - old;
    let generation = maps.halves[old].settings()?.generation + 1;
    let contents = HalfContents {
        entries: &staged.entries,
        tables: staged.tables.as_ref(),
        policy: &staged.policy,
        content_hash: hash_bytes(staged.content_hash())
            .with_context(|| format!("bad content hash {:?}", staged.content_hash()))?,
        generation,
    };
    maps.halves[new].write(&contents, lookup)?;
    selftest(new)?;
    maps.set_active(new)?;
    wait_for_readers();
    if let Err(e) = maps.halves[old].clear() {
        // Harmless: packets no longer see that half, and the next update clears it first.
        log::warn!("switched to the new data, but could not clear the old half: {e:#}");
    }
    Ok(new)
}

/// Waits until every XDP program run that started before now has finished. XDP runs inside
/// an RCU read-side section, and `membarrier(MEMBARRIER_CMD_GLOBAL)` is `synchronize_rcu()`.
/// On `nohz_full` kernels that command is refused; fall back to a pause far longer than any
/// program run.
pub fn wait_for_readers() {
    use rustix::thread::{membarrier, MembarrierCommand};
    if let Err(e) = membarrier(MembarrierCommand::Global) {
        log::debug!("membarrier failed ({e}); waiting 100 ms instead");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
