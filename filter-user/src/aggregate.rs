//! Merges adjacent and nested prefixes of the same country, so the kernel holds fewer entries
//! and answers every address exactly as before.
//!
//! Precondition: the input networks are pairwise disjoint, as the leaves of a MaxMind search tree
//! are. Then each country's union is unchanged by `aggregate` (it covers exactly the union, never
//! more), the unions of different countries stay disjoint, and longest-prefix match gives the
//! same country for every address.

use std::collections::BTreeMap;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::{country::Country, mmdb::RegionData};

/// Aggregates both families of `data` in place.
pub fn aggregate(data: &mut RegionData) {
    data.v4 = per_country(&data.v4, Ipv4Net::aggregate);
    data.v6 = per_country(&data.v6, Ipv6Net::aggregate);
}

fn per_country<N: Copy + Ord>(
    nets: &[(N, Country)],
    merge: impl Fn(&Vec<N>) -> Vec<N>,
) -> Vec<(N, Country)> {
    let mut by_country: BTreeMap<Country, Vec<N>> = BTreeMap::new();
    for (net, country) in nets {
        by_country.entry(*country).or_default().push(*net);
    }
    let mut out: Vec<(N, Country)> = by_country
        .into_iter()
        .flat_map(|(country, nets)| merge(&nets).into_iter().map(move |n| (n, country)))
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// Deterministic xorshift, so a failure reproduces.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn cc(code: &str) -> Country {
        Country::parse(code).unwrap()
    }

    /// First address of the window the oracle covers: 10.0.0.0/16 with 256 addresses either side.
    const WINDOW_START: u32 = (10 << 24) - 256;
    const WINDOW_LEN: usize = (1 << 16) + 512;

    /// The naive oracle: the country of every address in the window, painted shortest prefix
    /// first so longer prefixes overwrite (longest-prefix match by construction).
    fn paint(nets: &[(Ipv4Net, Country)]) -> Vec<Option<Country>> {
        let mut sorted = nets.to_vec();
        sorted.sort_by_key(|(n, _)| n.prefix_len());
        let mut table = vec![None; WINDOW_LEN];
        for (net, country) in sorted {
            let first = u32::from(net.network()).saturating_sub(WINDOW_START) as usize;
            let last = (u32::from(net.broadcast()) - WINDOW_START) as usize;
            for slot in &mut table[first..=last.min(WINDOW_LEN - 1)] {
                *slot = Some(country);
            }
        }
        table
    }

    /// Disjoint networks: split 10.0.0.0/16 into random-sized blocks, most assigned a country,
    /// with runs of neighbours sharing one so there is something to merge.
    fn random_disjoint(rng: &mut Rng) -> Vec<(Ipv4Net, Country)> {
        let countries = [cc("DE"), cc("FR"), cc("NL")];
        let mut out = Vec::new();
        let mut start = u32::from(Ipv4Addr::new(10, 0, 0, 0));
        let end = start + (1 << 16);
        let mut country = countries[0];
        while start < end {
            // Largest aligned block at `start`, then maybe smaller.
            let align = start.trailing_zeros().min(12);
            let len = 32 - align + u32::try_from(rng.next() % 4).unwrap();
            let len = len.min(32);
            let net = Ipv4Net::new(start.into(), u8::try_from(len).unwrap()).unwrap();
            if rng.next().is_multiple_of(4) {
                country = countries[usize::try_from(rng.next() % 3).unwrap()];
            }
            if !rng.next().is_multiple_of(10) {
                out.push((net, country));
            }
            start += 1 << (32 - len);
        }
        out
    }

    #[test]
    fn merges_siblings_and_keeps_countries_apart() {
        let mut data = RegionData {
            v4: vec![
                ("10.0.0.0/24".parse().unwrap(), cc("DE")),
                ("10.0.1.0/24".parse().unwrap(), cc("DE")),
                ("10.0.2.0/24".parse().unwrap(), cc("FR")),
                ("10.0.3.0/24".parse().unwrap(), cc("DE")),
            ],
            v6: vec![
                ("2001:db8::/33".parse().unwrap(), cc("NL")),
                ("2001:db8:8000::/33".parse().unwrap(), cc("NL")),
            ],
            ..RegionData::default()
        };
        aggregate(&mut data);
        assert_eq!(
            data.v4,
            vec![
                ("10.0.0.0/23".parse().unwrap(), cc("DE")),
                ("10.0.2.0/24".parse().unwrap(), cc("FR")),
                ("10.0.3.0/24".parse().unwrap(), cc("DE")),
            ]
        );
        assert_eq!(data.v6, vec![("2001:db8::/32".parse().unwrap(), cc("NL"))]);
    }

    #[test]
    fn every_address_keeps_its_country() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20 {
            let input = random_disjoint(&mut rng);
            let mut data = RegionData::default();
            data.v4.clone_from(&input);
            aggregate(&mut data);
            assert!(data.v4.len() <= input.len());
            let (before, after) = (paint(&input), paint(&data.v4));
            for (offset, (b, a)) in before.iter().zip(&after).enumerate() {
                let addr = Ipv4Addr::from(WINDOW_START + offset as u32);
                assert_eq!(a, b, "{addr} changed country");
            }
        }
    }

    #[test]
    fn maxmind_test_database_answers_the_same_after_aggregation() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/maxmind/GeoIP2-Country-Test.mmdb");
        let original = crate::mmdb::load(&path).unwrap();
        let mut merged = original.clone();
        aggregate(&mut merged);
        // MaxMind's test data has no mergeable neighbours (Python's collapse_addresses agrees), so
        // this checks only that real-layout data keeps its answers; merging is tested above.
        assert!(merged.v4.len() <= original.v4.len() && merged.v6.len() <= original.v6.len());
        let db = crate::mmdb::Database::open(&path).unwrap();
        for (addr, _) in original.boundaries() {
            assert_eq!(merged.country_of(addr), db.country(addr).unwrap(), "{addr}");
        }
    }
}
