//! What the kernel's lookup structures hold: the country data with the exception CIDRs and
//! the local class painted over it, so the program finds a source's country or class with the
//! one lookup it already does. Precedence, highest first: always-pass CIDRs, always-drop
//! CIDRs, local (special-purpose) space, countries.

use std::net::{Ipv4Addr, Ipv6Addr};

use filter_common::{CLASS_EXCEPTION_DROP, CLASS_EXCEPTION_PASS, CLASS_LOCAL};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rangemap::RangeInclusiveMap;

use crate::{
    compile::{cidrs_v4, cidrs_v6, country_runs, Address, Prefixes, RegionSet},
    model::policy::Policy,
};

/// A table entry: a country index or a class (`filter_common::CLASS_*`).
pub type Entry = u16;

/// Disjoint prefixes with their entries, ready for the tries or the fast tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entries {
    pub v4: Vec<(Ipv4Net, Entry)>,
    pub v6: Vec<(Ipv6Net, Entry)>,
}

/// Special-purpose IPv4 space that is not globally reachable (IANA's IPv4 Special-Purpose
/// Address Registry), plus multicast and the reserved block, which are never valid sources.
pub const LOCAL_V4: &[&str] = &[
    "0.0.0.0/8",       // "this network" (DHCP clients before they have an address)
    "10.0.0.0/8",      // private
    "100.64.0.0/10",   // shared address space (CGNAT)
    "127.0.0.0/8",     // loopback
    "169.254.0.0/16",  // link-local
    "172.16.0.0/12",   // private
    "192.0.0.0/24",    // IETF protocol assignments
    "192.0.2.0/24",    // documentation (TEST-NET-1)
    "192.168.0.0/16",  // private
    "198.18.0.0/15",   // benchmarking
    "198.51.100.0/24", // documentation (TEST-NET-2)
    "203.0.113.0/24",  // documentation (TEST-NET-3)
    "224.0.0.0/4",     // multicast
    "240.0.0.0/4",     // reserved, and the limited broadcast address
];

/// Special-purpose IPv6 space that is not globally reachable (IANA's IPv6 Special-Purpose
/// Address Registry). The ranges that embed an IPv4 address (mapped, 6to4, Teredo, NAT64) are
/// judged by that address before any lookup, so they are not listed.
pub const LOCAL_V6: &[&str] = &[
    "::/128",        // unspecified (duplicate address detection)
    "::1/128",       // loopback
    "100::/64",      // discard-only
    "2001:2::/48",   // benchmarking
    "2001:db8::/32", // documentation
    "3fff::/20",     // documentation
    "5f00::/16",     // segment routing SIDs
    "fc00::/7",      // unique local
    "fe80::/10",     // link-local (neighbour discovery, router advertisements)
    "ff00::/8",      // multicast
];

/// The local class as networks.
#[must_use]
pub fn local_networks() -> Vec<IpNet> {
    LOCAL_V4
        .iter()
        .chain(LOCAL_V6)
        .map(|n| n.parse().expect("a valid built-in network"))
        .collect()
}

/// The classes painted over the countries, in precedence order (later wins).
fn overlays(policy: Option<&Policy>) -> Vec<(IpNet, Entry)> {
    let mut out: Vec<(IpNet, Entry)> = local_networks()
        .into_iter()
        .map(|n| (n, CLASS_LOCAL))
        .collect();
    if let Some(p) = policy {
        out.extend(
            p.deny_cidrs
                .iter()
                .map(|n| (n.trunc(), CLASS_EXCEPTION_DROP)),
        );
        out.extend(
            p.allow_cidrs
                .iter()
                .map(|n| (n.trunc(), CLASS_EXCEPTION_PASS)),
        );
    }
    out
}

/// The entries of `regions` under `policy` (its exceptions; `None` paints the local class only).
#[must_use]
pub fn entries(regions: &RegionSet, policy: Option<&Policy>) -> Entries {
    let runs_v4 = country_runs(&regions.v4).map(|(s, e, c)| (s, e, c.index()));
    let runs_v6 = country_runs(&regions.v6).map(|(s, e, c)| (s, e, c.index()));
    build(runs_v4, runs_v6, policy)
}

/// The entries of prefixes that may overlap (longer ones win, as in a trie): for tests and
/// benchmarks that build data by hand.
#[must_use]
pub fn entries_of_prefixes(prefixes: &Prefixes, policy: Option<&Policy>) -> Entries {
    fn disjoint<N: Copy, A: Address>(
        nets: &[(N, crate::model::country::Country)],
        len: impl Fn(&N) -> u8,
        range: impl Fn(&N) -> (A, A),
    ) -> Vec<(A, A, Entry)> {
        let mut sorted: Vec<_> = nets.iter().collect();
        sorted.sort_by_key(|(n, _)| len(n));
        let mut map = RangeInclusiveMap::new();
        for (net, country) in sorted {
            let (s, e) = range(net);
            map.insert(s..=e, country.index());
        }
        map.iter()
            .map(|(r, &v)| (*r.start(), *r.end(), v))
            .collect()
    }
    let v4 = disjoint(&prefixes.v4, Ipv4Net::prefix_len, |n| {
        (u32::from(n.network()), u32::from(n.broadcast()))
    });
    let v6 = disjoint(&prefixes.v6, Ipv6Net::prefix_len, |n| {
        (u128::from(n.network()), u128::from(n.broadcast()))
    });
    build(v4.into_iter(), v6.into_iter(), policy)
}

fn build(
    v4: impl Iterator<Item = (u32, u32, Entry)>,
    v6: impl Iterator<Item = (u128, u128, Entry)>,
    policy: Option<&Policy>,
) -> Entries {
    let mut top_v4: RangeInclusiveMap<u32, Entry> = RangeInclusiveMap::new();
    let mut top_v6: RangeInclusiveMap<u128, Entry> = RangeInclusiveMap::new();
    for (net, entry) in overlays(policy) {
        match net {
            IpNet::V4(n) => top_v4.insert(u32::from(n.network())..=u32::from(n.broadcast()), entry),
            IpNet::V6(n) => {
                top_v6.insert(u128::from(n.network())..=u128::from(n.broadcast()), entry)
            }
        }
    }
    Entries {
        v4: coalesce(overlay(v4, &top_v4))
            .into_iter()
            .flat_map(|(s, e, v)| cidrs_v4(s, e).map(move |n| (n, v)))
            .collect(),
        v6: coalesce(overlay(v6, &top_v6))
            .into_iter()
            .flat_map(|(s, e, v)| cidrs_v6(s, e).map(move |n| (n, v)))
            .collect(),
    }
}

/// Sorted disjoint `base` ranges with `top` painted over them: one pass over the base (the
/// overlays are few and the base may hold a million ranges), then one sort.
fn overlay<A: Address>(
    base: impl Iterator<Item = (A, A, Entry)>,
    top: &RangeInclusiveMap<A, Entry>,
) -> Vec<(A, A, Entry)> {
    let tops: Vec<(A, A, Entry)> = top
        .iter()
        .map(|(r, &v)| (*r.start(), *r.end(), v))
        .collect();
    let mut out = Vec::new();
    let mut first = 0;
    for (start, end, value) in base {
        while first < tops.len() && tops[first].1 < start {
            first += 1;
        }
        // The parts of this base range between the top ranges that overlap it.
        let mut from = Some(start);
        for &(top_start, top_end, _) in tops[first..].iter().take_while(|t| t.0 <= end) {
            let Some(at) = from else { break };
            if top_start > at {
                out.push((at, top_start.sub_one(), value));
            }
            from = (top_end < end).then(|| top_end.add_one());
        }
        if let Some(at) = from {
            out.push((at, end, value));
        }
    }
    out.extend(tops);
    out.sort_unstable_by_key(|r| r.0);
    out
}

/// Joins touching ranges with the same entry.
fn coalesce<A: Address>(ranges: Vec<(A, A, Entry)>) -> Vec<(A, A, Entry)> {
    let mut out: Vec<(A, A, Entry)> = Vec::with_capacity(ranges.len());
    for (s, e, v) in ranges {
        match out.last_mut() {
            Some(last) if last.2 == v && last.1 != A::MAX && last.1.add_one() == s => last.1 = e,
            _ => out.push((s, e, v)),
        }
    }
    out
}

impl Entries {
    /// The prefix the kernel's tables hold `addr` under: exceptions and local space split the
    /// data's prefixes, so this can be longer than the data's own.
    #[must_use]
    pub fn prefix_of(&self, addr: std::net::IpAddr) -> Option<IpNet> {
        fn find<N: Copy, A: Copy + Ord>(
            nets: &[(N, Entry)],
            addr: A,
            first: impl Fn(&N) -> A,
            contains: impl Fn(&N, &A) -> bool,
        ) -> Option<N> {
            let after = nets.partition_point(|(n, _)| first(n) <= addr);
            let &(net, _) = nets.get(after.checked_sub(1)?)?;
            contains(&net, &addr).then_some(net)
        }
        match addr {
            std::net::IpAddr::V4(a) => {
                find(&self.v4, a, Ipv4Net::network, |n, a| n.contains(a)).map(IpNet::V4)
            }
            std::net::IpAddr::V6(a) => {
                find(&self.v6, a, Ipv6Net::network, |n, a| n.contains(a)).map(IpNet::V6)
            }
        }
    }

    /// The entry for `addr` by plain membership (the prefixes are disjoint).
    #[must_use]
    pub fn entry_v4(&self, addr: Ipv4Addr) -> Option<Entry> {
        self.v4
            .iter()
            .find(|(n, _)| n.contains(&addr))
            .map(|&(_, e)| e)
    }

    #[must_use]
    pub fn entry_v6(&self, addr: Ipv6Addr) -> Option<Entry> {
        self.v6
            .iter()
            .find(|(n, _)| n.contains(&addr))
            .map(|&(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::country::Country, model::policy::Mode, sys::testing::Rng};

    /// Reference: the first of allow, deny, local, then the longest country prefix.
    fn naive(prefixes: &Prefixes, policy: &Policy, addr: Ipv4Addr) -> Option<Entry> {
        let hit = |nets: &[IpNet]| nets.iter().any(|n| n.contains(&std::net::IpAddr::V4(addr)));
        if hit(&policy.allow_cidrs) {
            return Some(CLASS_EXCEPTION_PASS);
        }
        if hit(&policy.deny_cidrs) {
            return Some(CLASS_EXCEPTION_DROP);
        }
        if hit(&local_networks()) {
            return Some(CLASS_LOCAL);
        }
        prefixes
            .v4
            .iter()
            .filter(|(n, _)| n.contains(&addr))
            .max_by_key(|(n, _)| n.prefix_len())
            .map(|(_, c)| c.index())
    }

    #[test]
    fn overlays_win_over_countries_in_order() {
        let mut rng = Rng(0xfeed_beef);
        for round in 0..20 {
            let mut prefixes = Prefixes::default();
            let mut policy = Policy::new(Mode::Deny, [Country::parse("CN").unwrap()].into());
            let random_net = |rng: &mut Rng, min: u64| {
                // Clustered near 10/8 and 11/8 so overlays, local space and countries meet.
                let addr = Ipv4Addr::from(
                    (9 + (rng.next() % 4) as u32) << 24 | rng.next() as u32 & 0xff_ffff,
                );
                Ipv4Net::new(addr, (min + rng.next() % (33 - min)) as u8)
                    .unwrap()
                    .trunc()
            };
            for _ in 0..200 {
                let net = random_net(&mut rng, 6);
                let c = Country::from_index(1 + (rng.next() % 50) as u16).unwrap();
                prefixes.v4.push((net, c));
            }
            for _ in 0..(round % 5) {
                policy.allow_cidrs.push(IpNet::V4(random_net(&mut rng, 8)));
                policy.deny_cidrs.push(IpNet::V4(random_net(&mut rng, 6)));
            }
            let entries = entries_of_prefixes(&prefixes, Some(&policy));
            // Disjoint and sorted.
            for w in entries.v4.windows(2) {
                assert!(w[0].0.broadcast() < w[1].0.network(), "{:?}", w);
            }
            for _ in 0..3000 {
                let addr = Ipv4Addr::from(
                    (9 + (rng.next() % 4) as u32) << 24 | rng.next() as u32 & 0xff_ffff,
                );
                assert_eq!(
                    entries.entry_v4(addr),
                    naive(&prefixes, &policy, addr),
                    "round {round}: {addr}"
                );
            }
        }
    }

    #[test]
    fn local_space_is_painted_without_data_and_v6_too() {
        let entries = entries_of_prefixes(&Prefixes::default(), None);
        assert_eq!(
            entries.entry_v4("10.1.2.3".parse().unwrap()),
            Some(CLASS_LOCAL)
        );
        assert_eq!(entries.entry_v4("8.8.8.8".parse().unwrap()), None);
        assert_eq!(
            entries.entry_v6("fe80::1".parse().unwrap()),
            Some(CLASS_LOCAL)
        );
        assert_eq!(entries.entry_v6("::".parse().unwrap()), Some(CLASS_LOCAL));
        assert_eq!(entries.entry_v6("2a00::1".parse().unwrap()), None);
        // The top of the address space is covered without overflow.
        assert_eq!(
            entries.entry_v4("255.255.255.255".parse().unwrap()),
            Some(CLASS_LOCAL)
        );
        assert_eq!(
            entries.entry_v6("ff02::1".parse().unwrap()),
            Some(CLASS_LOCAL)
        );
    }
}
