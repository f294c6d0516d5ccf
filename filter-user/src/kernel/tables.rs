//! The fast lookup tables (`LOOKUP_FAST`): compiled from the prefixes in userspace so the XDP
//! program resolves almost every source with one or a few array reads instead of a trie walk.
//!
//! IPv4 is DIR-16-8-8: the first level (a chunk per first byte, indexed by the second) resolves
//! every /16; a /16 that holds longer prefixes points to a pool chunk indexed by the third
//! byte, and a /24 that does to one indexed by the fourth. IPv6 walks byte-wide
//! chunks over the first 64 bits; a /64 that holds longer prefixes says "ask the LPM trie",
//! which then holds only those longer prefixes. [`FastTables::country_v4`] and
//! [`FastTables::country_v6`] mirror the kernel walk for tests.

use std::net::{Ipv4Addr, Ipv6Addr};

use filter_common::{
    Chunk, MAX_CHUNKS, TABLE_CHUNK, TABLE_LPM, UNKNOWN_COUNTRY, V4_L1_ENTRIES, V4_POOL_ENTRIES,
    V6_POOL_ENTRIES, V6_TABLE_BYTES,
};
use ipnet::{Ipv4Net, Ipv6Net};

use crate::compile::paint::{Entries, Entry};

/// The data does not fit the fixed-size tables.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "the {family} fast table needs {needed} chunks but holds {capacity}: attach with --lookup lpm"
)]
pub struct TablesFull {
    pub family: &'static str,
    pub needed: usize,
    pub capacity: usize,
}

/// Everything `LOOKUP_FAST` needs, ready to copy into one half's maps.
pub struct FastTables {
    /// `V4_L1_ENTRIES` chunks, one per first byte.
    pub v4_l1: Vec<Chunk>,
    /// Chunks for the third and fourth bytes.
    pub v4_pool: Vec<Chunk>,
    /// Chunk 0 is the root (first byte).
    pub v6_pool: Vec<Chunk>,
    /// Prefixes the tables hand over to the LPM trie: those longer than /64.
    pub v6_long: Vec<(Ipv6Net, Entry)>,
}

impl FastTables {
    /// Compiles the tables. Prefixes may overlap: longer ones win, as in the trie.
    pub fn build(prefixes: &Entries) -> Result<Self, TablesFull> {
        let mut tables = Self {
            v4_l1: vec![[UNKNOWN_COUNTRY; 256]; V4_L1_ENTRIES as usize],
            v4_pool: Vec::new(),
            v6_pool: vec![[UNKNOWN_COUNTRY; 256]],
            v6_long: Vec::new(),
        };
        let mut v4: Vec<&(Ipv4Net, Entry)> = prefixes.v4.iter().collect();
        v4.sort_by_key(|(net, _)| net.prefix_len());
        for &(net, entry) in v4 {
            tables.add_v4(net, entry)?;
        }
        let mut v6: Vec<&(Ipv6Net, Entry)> = prefixes.v6.iter().collect();
        v6.sort_by_key(|(net, _)| net.prefix_len());
        for &(net, country) in v6 {
            tables.add_v6(net, country)?;
        }
        Ok(tables)
    }

    fn add_v4(&mut self, net: Ipv4Net, country: u16) -> Result<(), TablesFull> {
        let bytes = net.network().octets();
        let len = usize::from(net.prefix_len());
        if len <= 16 {
            let first = usize::from(bytes[0]) << 8 | usize::from(bytes[1]);
            for slash16 in first..first + (1 << (16 - len)) {
                self.v4_l1[slash16 >> 8][slash16 & 0xff] = country;
            }
            return Ok(());
        }
        let mut chunk = chunk_of(
            &mut self.v4_l1[usize::from(bytes[0])][usize::from(bytes[1])],
            &mut self.v4_pool,
            V4_POOL_ENTRIES as usize,
            "IPv4",
        )?;
        if len > 24 {
            let mut entry = self.v4_pool[chunk][usize::from(bytes[2])];
            let next = chunk_of(
                &mut entry,
                &mut self.v4_pool,
                V4_POOL_ENTRIES as usize,
                "IPv4",
            )?;
            self.v4_pool[chunk][usize::from(bytes[2])] = entry;
            chunk = next;
        }
        // Byte 2 for /17-/24, byte 3 for /25-/32.
        let depth = if len > 24 { 3 } else { 2 };
        let first = usize::from(bytes[depth]);
        self.v4_pool[chunk][first..first + (1 << (8 * (depth + 1) - len))].fill(country);
        Ok(())
    }

    fn add_v6(&mut self, net: Ipv6Net, country: Entry) -> Result<(), TablesFull> {
        let bytes = net.network().octets();
        let len = usize::from(net.prefix_len());
        // Depth whose entries this prefix fills (byte `depth` of the address), capped at the
        // /64 level; longer prefixes mark their /64 and go to the trie.
        let depth = (len.max(1) - 1) / 8;
        let depth = depth.min(V6_TABLE_BYTES - 1);
        let mut chunk = 0;
        for &byte in &bytes[..depth] {
            let mut entry = self.v6_pool[chunk][usize::from(byte)];
            let next = chunk_of(
                &mut entry,
                &mut self.v6_pool,
                V6_POOL_ENTRIES as usize,
                "IPv6",
            )?;
            self.v6_pool[chunk][usize::from(byte)] = entry;
            chunk = next;
        }
        let byte = usize::from(bytes[depth]);
        if len > 8 * V6_TABLE_BYTES {
            let entry = &mut self.v6_pool[chunk][byte];
            if *entry < TABLE_CHUNK && *entry != UNKNOWN_COUNTRY {
                // A shorter prefix covered this /64: it moves to the trie with the longer one.
                let covered =
                    Ipv6Net::new(net.network(), 8 * V6_TABLE_BYTES as u8).expect("a valid length");
                self.v6_long.push((covered.trunc(), *entry));
            }
            *entry = TABLE_LPM;
            self.v6_long.push((net, country));
            return Ok(());
        }
        let span = 1 << (8 * (depth + 1) - len);
        self.v6_pool[chunk][byte..byte + span].fill(country);
        Ok(())
    }

    /// The country the kernel finds for an IPv4 source under `LOOKUP_FAST`.
    #[must_use]
    pub fn country_v4(&self, addr: Ipv4Addr) -> u16 {
        let [a, b, c, d] = addr.octets();
        let mut entry = self.v4_l1[usize::from(a)][usize::from(b)];
        for byte in [c, d] {
            if entry < TABLE_CHUNK {
                return entry;
            }
            entry = self.v4_pool[usize::from(entry - TABLE_CHUNK)][usize::from(byte)];
        }
        entry
    }

    /// The country the tables give an IPv6 source, or `None` when the LPM trie decides.
    #[must_use]
    pub fn country_v6(&self, addr: Ipv6Addr) -> Option<u16> {
        let mut entry = TABLE_CHUNK;
        for &byte in &addr.octets()[..V6_TABLE_BYTES] {
            if entry < TABLE_CHUNK {
                return Some(entry);
            }
            if entry == TABLE_LPM {
                return None;
            }
            entry = self.v6_pool[usize::from(entry - TABLE_CHUNK)][usize::from(byte)];
        }
        (entry != TABLE_LPM).then_some(entry)
    }

    /// Bytes the kernel arrays of one half need for these tables.
    #[must_use]
    pub fn pool_chunks(&self) -> (usize, usize) {
        (self.v4_pool.len(), self.v6_pool.len())
    }
}

/// The pool chunk an entry points to, turning a plain entry into a new chunk that repeats it.
fn chunk_of(
    entry: &mut u16,
    pool: &mut Vec<Chunk>,
    capacity: usize,
    family: &'static str,
) -> Result<usize, TablesFull> {
    if *entry >= TABLE_CHUNK && *entry != TABLE_LPM {
        return Ok(usize::from(*entry - TABLE_CHUNK));
    }
    let index = pool.len();
    if index >= capacity.min(MAX_CHUNKS as usize) {
        return Err(TablesFull {
            family,
            needed: index + 1,
            capacity,
        });
    }
    pool.push([*entry; 256]);
    *entry = TABLE_CHUNK + u16::try_from(index).expect("below MAX_CHUNKS");
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::{compile::Prefixes, model::country::Country, sys::testing::Rng};

    /// The prefixes as entries, overlaps kept: the tables resolve them as a trie would.
    fn raw(prefixes: &Prefixes) -> Entries {
        Entries {
            v4: prefixes.v4.iter().map(|&(n, c)| (n, c.index())).collect(),
            v6: prefixes.v6.iter().map(|&(n, c)| (n, c.index())).collect(),
        }
    }

    fn country(rng: &mut Rng) -> Country {
        Country::from_index(1 + (rng.next() % 600) as u16).unwrap()
    }

    /// Overlapping random prefixes clustered in a few /8s, so chunks and overrides happen.
    fn random_prefixes(rng: &mut Rng) -> Prefixes {
        let mut prefixes = Prefixes::default();
        for _ in 0..1000 {
            let addr = Ipv4Addr::from(
                (10 + (rng.next() % 3) as u32) << 24 | rng.next() as u32 & 0xff_ffff,
            );
            let len = 8 + (rng.next() % 25) as u8;
            prefixes
                .v4
                .push((Ipv4Net::new(addr, len).unwrap().trunc(), country(rng)));
            let top = (0x2001_0db8_u128 + u128::from(rng.next() % 4)) << 96;
            let addr = Ipv6Addr::from(top | u128::from(rng.next()) << 32 | u128::from(rng.next()));
            let len = 12 + (rng.next() % 60) as u8;
            prefixes
                .v6
                .push((Ipv6Net::new(addr, len).unwrap().trunc(), country(rng)));
        }
        prefixes
    }

    fn naive<N: Copy, A: Copy>(
        prefixes: &[(N, Entry)],
        addr: A,
        contains: impl Fn(&N, A) -> Option<u8>,
    ) -> u16 {
        prefixes
            .iter()
            .filter_map(|&(net, c)| contains(&net, addr).map(|len| (len, c)))
            .max_by_key(|&(len, _)| len)
            .map_or(UNKNOWN_COUNTRY, |(_, c)| c)
    }

    #[test]
    fn tables_agree_with_longest_prefix_match() {
        let mut rng = Rng(0x5eed_1234_abcd);
        let prefixes = raw(&random_prefixes(&mut rng));
        let tables = FastTables::build(&prefixes).unwrap();
        let long = Entries {
            v4: vec![],
            v6: tables.v6_long.clone(),
        };
        for i in 0..10_000u32 {
            // Half the probes inside a known prefix, half anywhere in the clusters.
            let (net, _) = prefixes.v4[i as usize % prefixes.v4.len()];
            let v4 = if i % 2 == 0 {
                Ipv4Addr::from(
                    u32::from(net.network()) | (rng.next() as u32 & !u32::from(net.netmask())),
                )
            } else {
                Ipv4Addr::from((10 + (rng.next() % 4) as u32) << 24 | rng.next() as u32 & 0xff_ffff)
            };
            let want = naive(&prefixes.v4, v4, |n, a| {
                n.contains(&a).then_some(n.prefix_len())
            });
            assert_eq!(tables.country_v4(v4), want, "{v4}");

            let (net, _) = prefixes.v6[i as usize % prefixes.v6.len()];
            let host = u128::from(rng.next()) << 64 | u128::from(rng.next());
            let v6 =
                Ipv6Addr::from(u128::from(net.network()) | (host & !u128::from(net.netmask())));
            let want = naive(&prefixes.v6, v6, |n, a| {
                n.contains(&a).then_some(n.prefix_len())
            });
            let got = tables.country_v6(v6).unwrap_or_else(|| {
                naive(&long.v6, v6, |n, a| {
                    n.contains(&a).then_some(n.prefix_len())
                })
            });
            assert_eq!(got, want, "{v6}");
        }
    }

    #[test]
    fn longer_prefixes_get_a_chunk_per_level() {
        let c = |s: &str| Country::parse(s).unwrap();
        let prefixes = Prefixes {
            v4: vec![
                ("81.2.69.0/24".parse().unwrap(), c("GB")),
                ("81.2.69.160/27".parse().unwrap(), c("FR")),
                ("81.2.69.192/28".parse().unwrap(), c("DE")),
                ("0.0.0.0/0".parse().unwrap(), c("US")),
            ],
            v6: vec![("2001:db8::/29".parse().unwrap(), c("NL"))],
        };
        let tables = FastTables::build(&raw(&prefixes)).unwrap();
        // IPv4: one chunk for 81.2.0.0/16 (third byte), one for 81.2.69.0/24 (fourth byte).
        assert_eq!(tables.pool_chunks(), (2, 4));
        let at = |s: &str| country_code(tables.country_v4(s.parse().unwrap()));
        assert_eq!(at("81.2.69.1"), "GB");
        assert_eq!(at("81.2.69.161"), "FR");
        assert_eq!(at("81.2.69.200"), "DE");
        assert_eq!(at("81.2.70.1"), "US");
        let v6 = |s: &str| tables.country_v6(s.parse().unwrap()).map(country_code);
        assert_eq!(v6("2001:dbf::1").as_deref(), Some("NL"));
        assert_eq!(v6("2001:dc0::1"), Some(String::new()));
    }

    fn country_code(index: u16) -> String {
        filter_common::country_code(index)
            .map_or_else(String::new, |c| String::from_utf8_lossy(&c).into_owned())
    }

    #[test]
    fn too_many_chunks_is_a_clear_error() {
        let c = Country::parse("GB").unwrap();
        let v4 = (0..=V4_POOL_ENTRIES)
            .map(|i| (Ipv4Net::new(Ipv4Addr::from(i << 8), 25).unwrap(), c))
            .collect();
        let err = FastTables::build(&raw(&Prefixes { v4, v6: vec![] }))
            .err()
            .unwrap();
        assert_eq!(err.needed, V4_POOL_ENTRIES as usize + 1);
        assert!(err.to_string().contains("--lookup lpm"), "{err}");
    }
}
