//! The program's maps, typed, whether freshly loaded or reopened from their pins, and how one
//! half is cleared and written.

use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use aya::{
    maps::{lpm_trie::Key, Array, LpmTrie, Map, MapData, PerCpuArray, RingBuf},
    Ebpf,
};
use filter_common::{
    maps::{self, HalfNames},
    Chunk, Counter, PolicyRow, PortChunk, SampleBudget, Settings, COUNTER_SLOTS, FLAG_DRY_RUN,
    FLAG_JUDGE_ICMP_ERRORS, FLAG_SCOPE, FLAG_TCP_SYN_ONLY, HALVES, ROW_MAIN, V4_L1_ENTRIES,
    V4_POOL_ENTRIES, V6_POOL_ENTRIES,
};
use ipnet::{Ipv4Net, Ipv6Net};

use crate::{
    compile::paint::Entries,
    kernel::tables::FastTables,
    model::{
        lookup::Lookup,
        policy::{IcmpErrors, Policy, Tcp},
    },
};

/// LPM key of an IPv4 prefix: prefix length plus the address in network byte order.
#[must_use]
pub fn v4_key(net: &Ipv4Net) -> Key<[u8; 4]> {
    Key::new(u32::from(net.prefix_len()), net.network().octets())
}

/// LPM key of an IPv6 prefix.
#[must_use]
pub fn v6_key(net: &Ipv6Net) -> Key<[u8; 16]> {
    Key::new(u32::from(net.prefix_len()), net.network().octets())
}

/// Everything one half holds, built in userspace before the kernel is touched.
pub struct HalfContents<'a> {
    /// Countries with the exceptions and the local class painted over them.
    pub entries: &'a Entries,
    /// Present for `Lookup::Fast`.
    pub tables: Option<&'a FastTables>,
    pub policy: &'a Policy,
    /// Raw SHA-256 recorded in the half's settings.
    pub content_hash: [u8; 32],
    pub generation: u64,
}

/// The maps of one half.
pub struct HalfMaps {
    pub settings: Array<MapData, Settings>,
    pub policy: Array<MapData, PolicyRow>,
    pub ports: Array<MapData, PortChunk>,
    pub lpm_v4: LpmTrie<MapData, [u8; 4], u16>,
    pub lpm_v6: LpmTrie<MapData, [u8; 16], u16>,
    pub v4_l1: Array<MapData, Chunk>,
    pub v4_pool: Array<MapData, Chunk>,
    pub v6_pool: Array<MapData, Chunk>,
}

/// Every map the XDP program uses.
pub struct FilterMaps {
    pub active: Array<MapData, u32>,
    pub counters: PerCpuArray<MapData, Counter>,
    pub halves: [HalfMaps; HALVES],
    /// Drop samples for `watch`, and their per-CPU rate limit.
    pub samples: RingBuf<MapData>,
    pub sample_budget: PerCpuArray<MapData, SampleBudget>,
}

/// Counters summed over every CPU, one entry per slot.
pub type CounterTotals = Vec<Counter>;

macro_rules! typed {
    ($get:ident, $name:expr) => {
        $get($name)?
            .try_into()
            .with_context(|| format!("map {} has an unexpected type or size", $name))?
    };
}

/// How many entries this build gives the fast-table map `name`, if it is one.
fn table_entries(name: &str) -> Option<u32> {
    maps::HALF.iter().find_map(|half| {
        let [v4_l1, v4_pool, v6_pool] = half.tables();
        [
            (v4_l1, V4_L1_ENTRIES),
            (v4_pool, V4_POOL_ENTRIES),
            (v6_pool, V6_POOL_ENTRIES),
        ]
        .into_iter()
        .find_map(|(table, entries)| (table == name).then_some(entries))
    })
}

impl FilterMaps {
    /// Takes the maps out of a freshly loaded object, pinning each under `pin_dir` if given
    /// (the directory must exist).
    pub fn take(ebpf: &mut Ebpf, pin_dir: Option<&Path>) -> Result<Self> {
        Self::build(|name| {
            let map = ebpf
                .take_map(name)
                .ok_or_else(|| anyhow!("map {name} missing from the embedded object"))?;
            if let Some(dir) = pin_dir {
                let path = dir.join(name);
                map.pin(&path)
                    .with_context(|| format!("cannot pin map {}", path.display()))?;
            }
            Ok(map)
        })
    }

    /// Reopens the maps pinned under `dir` by `attach`. Refuses pins whose tables have another
    /// shape than this build's: the attached program would read what this build writes
    /// differently.
    pub fn open_pinned(dir: &Path) -> Result<Self> {
        Self::build(|name| {
            let path = dir.join(name);
            let data = MapData::from_pin(&path)
                .with_context(|| format!("cannot open pinned map {}", path.display()))?;
            // The counter layout grew a slot (ICMP errors): a filter attached by an older build
            // would be read with the wrong slots.
            if name == maps::COUNTERS {
                let entries = data.info()?.max_entries();
                if entries != COUNTER_SLOTS {
                    bail!(
                        "the filter pinned in {} was attached by a different regionfilter build \
                         (map {name} has {entries} entries, this build expects {COUNTER_SLOTS}): \
                         detach and attach again with this build",
                        dir.display()
                    );
                }
            }
            if let Some(expected) = table_entries(name) {
                let entries = data.info()?.max_entries();
                // `--lookup lpm` shrinks the tables to one entry.
                if entries != expected && entries != 1 {
                    bail!(
                        "the filter pinned in {} was attached by a different regionfilter build \
                         (map {name} has {entries} entries, this build expects {expected}): \
                         detach and attach again with this build",
                        dir.display()
                    );
                }
            }
            Map::from_map_data(data)
                .with_context(|| format!("pinned map {} has an unexpected type", path.display()))
        })
    }

    fn build(mut get: impl FnMut(&str) -> Result<Map>) -> Result<Self> {
        let [h0, h1] = maps::HALF;
        Ok(Self {
            active: typed!(get, maps::ACTIVE),
            counters: typed!(get, maps::COUNTERS),
            halves: [
                HalfMaps::build(&mut get, &h0)?,
                HalfMaps::build(&mut get, &h1)?,
            ],
            samples: typed!(get, maps::SAMPLES),
            sample_budget: typed!(get, maps::SAMPLE_BUDGET),
        })
    }

    /// The half packets are judged by.
    pub fn active_half(&self) -> Result<usize> {
        let half = self
            .active
            .get(&0, 0)
            .context("cannot read the ACTIVE map")?;
        Ok(usize::from(half == 1))
    }

    /// The half packets are judged by, and its settings (read through this index, so the two
    /// always belong together).
    pub fn active(&self) -> Result<(usize, Settings)> {
        let half = self.active_half()?;
        Ok((half, self.halves[half].settings()?))
    }

    /// The settings of the half packets are judged by.
    pub fn active_settings(&self) -> Result<Settings> {
        Ok(self.active()?.1)
    }

    /// Makes `half` the one packets see: a single map write, atomic for the program.
    pub fn set_active(&mut self, half: usize) -> Result<()> {
        let value = u32::try_from(half).expect("0 or 1");
        self.active
            .set(0, value, 0)
            .context("cannot write the ACTIVE map")
    }

    /// Sums every counter slot over the possible CPUs.
    pub fn counter_totals(&self) -> Result<CounterTotals> {
        (0..COUNTER_SLOTS)
            .map(|slot| {
                let per_cpu = self
                    .counters
                    .get(&slot, 0)
                    .context("cannot read counters")?;
                Ok(per_cpu.iter().fold(Counter::default(), |sum, c| Counter {
                    packets: sum.packets + c.packets,
                    bytes: sum.bytes + c.bytes,
                }))
            })
            .collect()
    }
}

impl HalfMaps {
    fn build(get: &mut impl FnMut(&str) -> Result<Map>, names: &HalfNames) -> Result<Self> {
        Ok(Self {
            settings: typed!(get, names.settings),
            policy: typed!(get, names.policy),
            ports: typed!(get, names.ports),
            lpm_v4: typed!(get, names.lpm_v4),
            lpm_v6: typed!(get, names.lpm_v6),
            v4_l1: typed!(get, names.v4_l1),
            v4_pool: typed!(get, names.v4_pool),
            v6_pool: typed!(get, names.v6_pool),
        })
    }

    pub fn settings(&self) -> Result<Settings> {
        self.settings
            .get(&0, 0)
            .context("cannot read the settings map")
    }

    /// Empties the tries and marks the half incomplete. Arrays keep stale entries, which no
    /// lookup reaches once the settings and L1 table are rewritten.
    pub fn clear(&mut self) -> Result<()> {
        self.settings
            .set(0, Settings::default(), 0)
            .context("cannot reset the settings map")?;
        clear_trie(&mut self.lpm_v4)?;
        clear_trie(&mut self.lpm_v6)
    }

    /// Writes complete contents into this half; the settings go last, marking it complete.
    /// Only ever called on a half packets do not see.
    pub fn write(&mut self, contents: &HalfContents<'_>, lookup: Lookup) -> Result<()> {
        self.clear()?;
        match (lookup, contents.tables) {
            (Lookup::Fast, Some(tables)) => self.write_tables(tables)?,
            (Lookup::Fast, None) => return Err(anyhow!("fast lookup needs compiled tables")),
            (Lookup::Lpm, _) => self.write_tries(contents.entries)?,
        }
        let policy = contents.policy;
        let portless_row = self.write_policy(policy)?;
        let flag = |on: bool, bit: u32| if on { bit } else { 0 };
        let settings = Settings {
            malformed: u32::from(policy.malformed.kernel()),
            lookup: lookup.kernel(),
            portless_row: u32::from(portless_row.unwrap_or(ROW_MAIN)),
            complete: 1,
            flags: flag(
                policy.icmp_errors == IcmpErrors::Judge,
                FLAG_JUDGE_ICMP_ERRORS,
            ) | flag(policy.dry_run, FLAG_DRY_RUN)
                | flag(portless_row.is_some(), FLAG_SCOPE)
                | flag(policy.tcp == Tcp::Syn, FLAG_TCP_SYN_ONLY),
            samples_per_sec: policy.samples,
            generation: contents.generation,
            content_hash: contents.content_hash,
            nat64: policy.nat64_table(),
        };
        self.settings
            .set(0, settings, 0)
            .context("cannot write the settings map")
    }

    fn write_tries(&mut self, data: &Entries) -> Result<()> {
        for (net, entry) in &data.v4 {
            self.lpm_v4
                .insert(&v4_key(net), entry, 0)
                .with_context(|| format!("cannot insert {net} into the IPv4 trie"))?;
        }
        for (net, entry) in &data.v6 {
            self.lpm_v6
                .insert(&v6_key(net), entry, 0)
                .with_context(|| format!("cannot insert {net} into the IPv6 trie"))?;
        }
        Ok(())
    }

    fn write_tables(&mut self, tables: &FastTables) -> Result<()> {
        write_chunks(&mut self.v4_l1, &tables.v4_l1, "IPv4 first-level table")?;
        write_chunks(&mut self.v4_pool, &tables.v4_pool, "IPv4 chunk pool")?;
        write_chunks(&mut self.v6_pool, &tables.v6_pool, "IPv6 chunk pool")?;
        for (net, entry) in &tables.v6_long {
            self.lpm_v6
                .insert(&v6_key(net), entry, 0)
                .with_context(|| format!("cannot insert {net} into the IPv6 trie"))?;
        }
        Ok(())
    }

    /// Writes the policy rows and, under a scope, the ports array; returns the row of
    /// packets without ports when there is a scope.
    fn write_policy(&mut self, policy: &Policy) -> Result<Option<u8>> {
        for (index, row) in (0u32..).zip(policy.rows()) {
            self.policy
                .set(index, row, 0)
                .context("cannot write the policy array")?;
        }
        let Some(table) = policy.scope.port_table() else {
            return Ok(None);
        };
        for (index, chunk) in (0u32..).zip(&table.chunks) {
            self.ports
                .set(index, chunk, 0)
                .context("cannot write the ports array")?;
        }
        Ok(Some(table.portless_row))
    }
}

fn write_chunks(map: &mut Array<MapData, Chunk>, chunks: &[Chunk], what: &str) -> Result<()> {
    for (index, chunk) in (0u32..).zip(chunks) {
        map.set(index, chunk, 0)
            .with_context(|| format!("cannot write chunk {index} of the {what}"))?;
    }
    Ok(())
}

/// Deletes every key. Keys are collected first: deleting while walking would skip some.
fn clear_trie<K: aya::Pod, V: aya::Pod>(trie: &mut LpmTrie<MapData, K, V>) -> Result<()> {
    let keys: Vec<Key<K>> = trie
        .keys()
        .collect::<Result<_, _>>()
        .context("cannot list a trie's keys")?;
    for key in &keys {
        trie.remove(key).context("cannot clear a trie")?;
    }
    Ok(())
}

/// Hex SHA-256 (as artifacts carry it) to the raw bytes the settings hold. Anything but 64 hex
/// digits is an error: a hash that became zeros would make different contents look alike.
pub fn hash_bytes(hex: &str) -> Result<[u8; 32], hex::FromHexError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out)?;
    Ok(out)
}

/// Raw SHA-256 back to hex.
#[must_use]
pub fn hash_hex(bytes: &[u8; 32]) -> String {
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_network_byte_order_and_truncated() {
        let key = v4_key(&"81.2.69.160/27".parse().unwrap());
        assert_eq!({ key.prefix_len() }, 27);
        assert_eq!(key.data(), [81, 2, 69, 160]);
        let key = v6_key(&"2001:db8::/32".parse().unwrap());
        assert_eq!(key.data()[..4], [0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!({ key.prefix_len() }, 32);
    }

    #[test]
    fn content_hashes_round_trip_through_settings_bytes() {
        let hex = "00ff10ab".repeat(8);
        assert_eq!(hash_hex(&hash_bytes(&hex).unwrap()), hex);
        assert_eq!(
            hash_bytes(&hex.to_uppercase()).unwrap(),
            hash_bytes(&hex).unwrap()
        );
    }

    #[test]
    fn malformed_content_hashes_are_errors_not_zeros() {
        let good = "00ff10ab".repeat(8);
        for bad in [
            String::new(),
            good[..62].to_owned(),
            format!("{good}00"),
            format!("zz{}", &good[2..]),
            format!("{} ", &good[..63]),
        ] {
            assert!(hash_bytes(&bad).is_err(), "{bad:?}");
        }
    }
}
