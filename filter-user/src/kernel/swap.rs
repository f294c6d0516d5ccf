//! Blue/green installation: complete new contents go into the half packets do not see, are
//! self-tested there, and become live with one write of `ACTIVE`. The old half is cleared only
//! after every program run that could still be reading it has finished.

use anyhow::{Context as _, Result};

use crate::{
    compile::artifact::Artifact,
    compile::paint::{self, Entries},
    compile::RegionSet,
    kernel::maps::{hash_bytes, FilterMaps, HalfContents},
    kernel::tables::{FastTables, TablesFull},
    model::lookup::Lookup,
    model::policy::Policy,
    sys::time::unix_now,
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
    /// Compiles the maps' contents for `lookup`; refuses data the maps cannot hold, naming the
    /// limit that was hit and what filled it.
    pub fn new(regions: RegionSet, policy: Policy, lookup: Lookup) -> Result<Self> {
        let entries = paint::entries(&regions, Some(&policy));
        let tables = fit(&regions, &policy, &entries, lookup)?;
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

/// The fast tables for `entries` (`None` under `--lookup lpm`), or why the maps cannot hold
/// them: the limit `lookup` actually has (table chunks, or trie prefixes), and the exception
/// CIDRs when they are what overflows it. An exception splits the data around it (a /32 inside
/// a /8 turns it into 25 prefixes) and may need table chunks of its own. Telling whether the
/// data alone fits costs a second build, only when something does not fit.
fn fit(
    regions: &RegionSet,
    policy: &Policy,
    entries: &Entries,
    lookup: Lookup,
) -> Result<Option<FastTables>> {
    let max = REGION_MAX_ENTRIES as usize;
    let in_tries = |e: &Entries| e.v4.len() <= max && e.v6.len() <= max;
    let exceptions = format!(
        "the policy's {} exception CIDRs (--allow-cidr, --deny-cidr)",
        policy.allow_cidrs.len() + policy.deny_cidrs.len()
    );
    let has_exceptions = !(policy.allow_cidrs.is_empty() && policy.deny_cidrs.is_empty());
    const FEWER: &str = "give fewer exceptions, or merge adjacent ones";
    match lookup {
        Lookup::Lpm => {
            if in_tries(entries) {
                return Ok(None);
            }
            let data = paint::entries(regions, None);
            if !has_exceptions || !in_tries(&data) {
                check_capacity(entries.v4.len(), entries.v6.len())?;
            }
            anyhow::bail!(
                "the LPM tries hold at most {max} prefixes per family, and {exceptions} split \
                 the data into {} IPv4 and {} IPv6 ({} and {} without them): {FEWER}",
                entries.v4.len(),
                entries.v6.len(),
                data.v4.len(),
                data.v6.len()
            )
        }
        Lookup::Fast => {
            /// What overflowed: a pool of table chunks, or the trie of IPv6 prefixes past /64.
            enum Overflow {
                Chunks(TablesFull),
                LongV6(usize),
            }
            let overflow = match FastTables::build(entries) {
                Ok(tables) if tables.v6_long.len() <= max => return Ok(Some(tables)),
                Ok(tables) => Overflow::LongV6(tables.v6_long.len()),
                Err(full) => Overflow::Chunks(full),
            };
            let data = FastTables::build(&paint::entries(regions, None))
                .ok()
                .filter(|d| has_exceptions && d.v6_long.len() <= max);
            let Some(data) = data else {
                // The data alone does not fit (or there are no exceptions): blame it.
                return Err(match overflow {
                    Overflow::Chunks(full) => full.into(),
                    Overflow::LongV6(long) => anyhow::anyhow!(
                        "the data needs {long} IPv6 prefixes longer than /64; the trie holds at \
                         most {max}. Load fewer sources or countries"
                    ),
                });
            };
            let lpm = if in_tries(entries) {
                ", or attach with --lookup lpm, whose tries hold them"
            } else {
                ""
            };
            match overflow {
                Overflow::Chunks(full) => {
                    let (v4, v6) = data.pool_chunks();
                    let alone = if full.family == "IPv4" { v4 } else { v6 };
                    anyhow::bail!(
                        "the {family} fast table holds {capacity} chunks of 256 entries; the data \
                         alone takes {alone}, and {exceptions} need more than the rest: \
                         {FEWER}{lpm}",
                        family = full.family,
                        capacity = full.capacity,
                    )
                }
                Overflow::LongV6(long) => anyhow::bail!(
                    "the IPv6 trie behind the fast table holds at most {max} prefixes longer \
                     than /64, and {exceptions} make {long} ({} without them): {FEWER}{lpm}",
                    data.v6_long.len()
                ),
            }
        }
    }
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
    let (old, settings) = maps.active()?;
    let new = 1 - old;
    let generation = settings.generation + 1;
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

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, net::Ipv4Addr};

    use ipnet::{IpNet, Ipv4Net};

    use super::*;
    use crate::{
        compile::Span,
        data::SourceInfo,
        model::{country::Country, policy::Mode},
    };

    fn deny_cidrs(addrs: impl Iterator<Item = u32>) -> Policy {
        Policy {
            deny_cidrs: addrs
                .map(|a| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), 32).unwrap()))
                .collect(),
            ..Policy::new(Mode::Deny, BTreeSet::new())
        }
    }

    #[test]
    fn too_many_exceptions_for_the_fast_table_are_blamed_on_the_exceptions() {
        // One /32 in each of 25,000 /16s: a chunk for the /16 and one for the /24 each.
        let policy = deny_cidrs((1..=25_000u32).map(|i| i << 16 | 0x0101));
        let err = Staged::new(RegionSet::default(), policy, Lookup::Fast)
            .err()
            .expect("50,000 chunks do not fit");
        assert_eq!(
            err.to_string(),
            format!(
                "the IPv4 fast table holds {} chunks of 256 entries; the data alone takes 3, and \
                 the policy's 25000 exception CIDRs (--allow-cidr, --deny-cidr) need more than \
                 the rest: give fewer exceptions, or merge adjacent ones, or attach with --lookup \
                 lpm, whose tries hold them",
                filter_common::V4_POOL_ENTRIES
            )
        );
    }

    #[test]
    fn exceptions_that_split_the_data_beyond_the_tries_are_blamed_on_the_exceptions() {
        // One country over 16.0.0.0-63.255.255.255, split by a /32 every 2,048 addresses into
        // about 12 prefixes per exception.
        let regions = RegionSet {
            sources: vec![SourceInfo::default()],
            v4: vec![Span {
                start: 16 << 24,
                end: (64 << 24) - 1,
                country: Country::parse("GB").unwrap(),
                source: 0,
            }],
            v6: vec![],
        };
        let policy = deny_cidrs((0..100_000u32).map(|k| (16 << 24) + k * 2048 + 1027));
        let err = Staged::new(regions.clone(), policy.clone(), Lookup::Lpm)
            .err()
            .expect("over a million prefixes do not fit the tries");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "the LPM tries hold at most {REGION_MAX_ENTRIES} prefixes per family, and the \
                 policy's 100000 exception CIDRs (--allow-cidr, --deny-cidr) split the data into "
            )) && text.ends_with(": give fewer exceptions, or merge adjacent ones"),
            "{text}"
        );
        // Under the fast table the limit is its chunks (one per /24 here), and --lookup lpm is
        // no way out.
        let text = Staged::new(regions, policy, Lookup::Fast)
            .err()
            .expect("100,000 /24 chunks do not fit")
            .to_string();
        assert!(
            text.starts_with("the IPv4 fast table holds ")
                && text.ends_with(
                    "need more than the rest: give fewer exceptions, or merge adjacent ones"
                ),
            "{text}"
        );
    }
}
