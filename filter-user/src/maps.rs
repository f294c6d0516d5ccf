//! The program's maps, typed, whether freshly loaded or reopened from their pins.

use std::path::Path;

use anyhow::{anyhow, Context as _, Result};
use aya::{
    maps::{lpm_trie::Key, Array, LpmTrie, Map, MapData, PerCpuArray},
    Ebpf,
};
use filter_common::{maps, Config, Counter, ExceptionValue, COUNTER_SLOTS};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::{compile::Prefixes, policy::Policy};

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

/// Every map the XDP program uses.
pub struct FilterMaps {
    pub region_v4: LpmTrie<MapData, [u8; 4], u16>,
    pub region_v6: LpmTrie<MapData, [u8; 16], u16>,
    pub exc_pass_v4: LpmTrie<MapData, [u8; 4], ExceptionValue>,
    pub exc_pass_v6: LpmTrie<MapData, [u8; 16], ExceptionValue>,
    pub exc_drop_v4: LpmTrie<MapData, [u8; 4], ExceptionValue>,
    pub exc_drop_v6: LpmTrie<MapData, [u8; 16], ExceptionValue>,
    pub policy: Array<MapData, u8>,
    pub counters: PerCpuArray<MapData, Counter>,
    pub config: Array<MapData, Config>,
}

/// Counters summed over every CPU, one entry per slot.
pub type CounterTotals = Vec<Counter>;

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

    /// Reopens the maps pinned under `dir` by `attach`.
    pub fn open_pinned(dir: &Path) -> Result<Self> {
        Self::build(|name| {
            let path = dir.join(name);
            let data = MapData::from_pin(&path)
                .with_context(|| format!("cannot open pinned map {}", path.display()))?;
            Map::from_map_data(data)
                .with_context(|| format!("pinned map {} has an unexpected type", path.display()))
        })
    }

    fn build(mut get: impl FnMut(&str) -> Result<Map>) -> Result<Self> {
        macro_rules! typed {
            ($name:expr) => {
                get($name)?
                    .try_into()
                    .with_context(|| format!("map {} has an unexpected type or size", $name))?
            };
        }
        Ok(Self {
            region_v4: typed!(maps::REGION_V4),
            region_v6: typed!(maps::REGION_V6),
            exc_pass_v4: typed!(maps::EXC_PASS_V4),
            exc_pass_v6: typed!(maps::EXC_PASS_V6),
            exc_drop_v4: typed!(maps::EXC_DROP_V4),
            exc_drop_v6: typed!(maps::EXC_DROP_V6),
            policy: typed!(maps::POLICY),
            counters: typed!(maps::COUNTERS),
            config: typed!(maps::CONFIG),
        })
    }

    /// Inserts every country prefix. Longest-prefix match happens in the kernel.
    pub fn write_regions(&mut self, data: &Prefixes) -> Result<()> {
        for (net, country) in &data.v4 {
            self.region_v4
                .insert(&v4_key(net), country.index(), 0)
                .with_context(|| format!("cannot insert {net} into {}", maps::REGION_V4))?;
        }
        for (net, country) in &data.v6 {
            self.region_v6
                .insert(&v6_key(net), country.index(), 0)
                .with_context(|| format!("cannot insert {net} into {}", maps::REGION_V6))?;
        }
        Ok(())
    }

    /// Writes the country action table, the config and the exception CIDRs.
    pub fn write_policy(&mut self, policy: &Policy) -> Result<()> {
        for (index, action) in (0u32..).zip(policy.action_table()) {
            self.policy
                .set(index, action, 0)
                .context("cannot write the policy array")?;
        }
        let config = Config {
            malformed: u32::from(policy.malformed.kernel()),
        };
        self.config
            .set(0, config, 0)
            .context("cannot write the config array")?;
        for net in &policy.allow_cidrs {
            insert_exception(&mut self.exc_pass_v4, &mut self.exc_pass_v6, net)?;
        }
        for net in &policy.deny_cidrs {
            insert_exception(&mut self.exc_drop_v4, &mut self.exc_drop_v6, net)?;
        }
        Ok(())
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

fn insert_exception(
    v4: &mut LpmTrie<MapData, [u8; 4], ExceptionValue>,
    v6: &mut LpmTrie<MapData, [u8; 16], ExceptionValue>,
    net: &IpNet,
) -> Result<()> {
    match net.trunc() {
        IpNet::V4(net) => v4.insert(&v4_key(&net), 1, 0),
        IpNet::V6(net) => v6.insert(&v6_key(&net), 1, 0),
    }
    .with_context(|| format!("cannot insert exception {net}"))
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
}
