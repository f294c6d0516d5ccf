//! How much of the public unicast address space a region set covers.
//!
//! "Public" is all space minus IANA's special-purpose and reserved blocks: it stands in for the
//! announced space without needing a BGP table, and is what a country database can cover.

use crate::compile::{RegionSet, Span};

/// IPv4 special-purpose (RFC 6890 and successors), multicast and reserved blocks.
const RESERVED_V4: &[(u32, u8)] = &[
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0a00_0000, 8),  // 10.0.0.0/8 private
    (0x6440_0000, 10), // 100.64.0.0/10 shared (CGN)
    (0x7f00_0000, 8),  // 127.0.0.0/8 loopback
    (0xa9fe_0000, 16), // 169.254.0.0/16 link-local
    (0xac10_0000, 12), // 172.16.0.0/12 private
    (0xc000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
    (0xc000_0200, 24), // 192.0.2.0/24 documentation
    (0xc058_6300, 24), // 192.88.99.0/24 6to4 relay anycast (deprecated)
    (0xc0a8_0000, 16), // 192.168.0.0/16 private
    (0xc612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xc633_6400, 24), // 198.51.100.0/24 documentation
    (0xcb00_7100, 24), // 203.0.113.0/24 documentation
    (0xe000_0000, 4),  // 224.0.0.0/4 multicast
    (0xf000_0000, 4),  // 240.0.0.0/4 reserved, broadcast
];

/// IPv6 global unicast (2000::/3) minus the blocks inside it that are not a country's.
const GLOBAL_V6: (u128, u8) = (0x2000 << 112, 3);
const RESERVED_V6: &[(u128, u8)] = &[
    (0x2001 << 112, 23),     // 2001::/23 IETF protocol assignments (Teredo, ...)
    (0x2001_0db8 << 96, 32), // 2001:db8::/32 documentation
    (0x2002 << 112, 16),     // 2002::/16 6to4
];

/// Covered and total public addresses, per family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coverage {
    pub covered_v4: u64,
    pub public_v4: u64,
    pub covered_v6: u128,
    pub public_v6: u128,
}

impl Coverage {
    #[must_use]
    pub fn of(regions: &RegionSet) -> Self {
        let reserved_v4: Vec<(u64, u64)> = RESERVED_V4
            .iter()
            .map(|&(net, len)| {
                let size = 1u64 << (32 - len);
                (u64::from(net), u64::from(net) + size - 1)
            })
            .collect();
        let public_v4 = (1u64 << 32) - reserved_v4.iter().map(|(s, e)| e - s + 1).sum::<u64>();
        let covered_v4 = regions
            .v4
            .iter()
            .map(|s| {
                let (start, end) = (u64::from(s.start), u64::from(s.end));
                let hidden: u64 = reserved_v4.iter().map(|&r| overlap(start, end, r)).sum();
                end - start + 1 - hidden
            })
            .sum();

        let block = |(net, len): (u128, u8)| (net, net | (u128::MAX >> len));
        let global = block(GLOBAL_V6);
        let reserved_v6: Vec<(u128, u128)> = RESERVED_V6.iter().map(|&r| block(r)).collect();
        let public_v6 =
            (global.1 - global.0 + 1) - reserved_v6.iter().map(|(s, e)| e - s + 1).sum::<u128>();
        let covered_v6 = regions
            .v6
            .iter()
            .map(|s: &Span<u128>| {
                let inside = overlap(s.start, s.end, global);
                let hidden: u128 = reserved_v6
                    .iter()
                    .map(|&r| overlap(s.start, s.end, r))
                    .sum();
                inside.saturating_sub(hidden)
            })
            .fold(0u128, u128::saturating_add);
        Self {
            covered_v4,
            public_v4,
            covered_v6,
            public_v6,
        }
    }

    #[must_use]
    pub fn share_v4(&self) -> f64 {
        self.covered_v4 as f64 / self.public_v4 as f64
    }

    #[must_use]
    pub fn share_v6(&self) -> f64 {
        self.covered_v6 as f64 / self.public_v6 as f64
    }
}

/// Addresses shared by `[start, end]` and `block` (inclusive bounds).
fn overlap<A>(start: A, end: A, block: (A, A)) -> A
where
    A: Copy + Ord + std::ops::Sub<Output = A> + std::ops::Add<Output = A> + From<u8>,
{
    let (lo, hi) = (start.max(block.0), end.min(block.1));
    if lo > hi {
        A::from(0)
    } else {
        hi - lo + A::from(1)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::{
        compile::compile,
        data::{Range, SourceData},
        model::country::Country,
    };

    fn set(v4: &[(u32, u32)], v6: &[(u128, u128)]) -> RegionSet {
        fn ranges<A: Copy>(bounds: &[(A, A)]) -> Vec<Range<A>> {
            let country = Country::parse("DE").unwrap();
            bounds
                .iter()
                .map(|&(start, end)| Range {
                    start,
                    end,
                    country,
                })
                .collect()
        }
        let source = SourceData {
            v4: ranges(v4),
            v6: ranges(v6),
            info: crate::data::SourceInfo {
                path: PathBuf::from("t"),
                ..Default::default()
            },
        };
        compile(vec![source], &[0]).unwrap()
    }

    #[test]
    fn reserved_space_is_not_counted() {
        // All of IPv4: exactly the public space is covered.
        let all = Coverage::of(&set(&[(0, u32::MAX)], &[(0, u128::MAX)]));
        assert_eq!(all.covered_v4, all.public_v4);
        assert_eq!(all.covered_v6, all.public_v6);
        assert!((all.share_v4() - 1.0).abs() < 1e-12);
        // 10.0.0.0/8 is private; 11.0.0.0/8 is public.
        let c = Coverage::of(&set(&[(0x0a00_0000, 0x0bff_ffff)], &[]));
        assert_eq!(c.covered_v4, 1 << 24);
        // Public IPv4 is 2^32 minus about 592 million reserved addresses.
        assert_eq!(all.public_v4, 3_702_258_432);
    }
}
