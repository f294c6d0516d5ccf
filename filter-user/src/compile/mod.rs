//! Compiles sources into one region set: overlaps resolved by precedence, provenance kept per
//! range, and the minimal prefix list the kernel loads.
//!
//! Exactness argument: after painting, the spans are disjoint, so every address has exactly one
//! country (or none). Merging touching spans of one country into maximal runs and covering each
//! run with its minimal CIDR decomposition (`Ipv4Subnets`/`Ipv6Subnets`) yields disjoint prefixes
//! whose union per country is exactly that country's addresses. With disjoint prefixes,
//! longest-prefix match and plain membership agree, so the kernel answers every address as the
//! sources did. Adjacent and nested prefixes of one country end up merged because they belong
//! to one run.

pub mod artifact;
pub mod changes;
pub mod coverage;
pub mod paint;
pub mod reference;

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::{Ipv4Net, Ipv4Subnets, Ipv6Net, Ipv6Subnets};
use rangemap::RangeInclusiveMap;
use serde::{Deserialize, Serialize};

use crate::{
    data::{Range, SourceData, SourceInfo},
    model::country::Country,
};

/// An address as an integer: `u32` for IPv4, `u128` for IPv6.
pub trait Address: Copy + Ord + rangemap::StepLite + std::fmt::Debug {
    const MAX: Self;
}

impl Address for u32 {
    const MAX: Self = u32::MAX;
}

impl Address for u128 {
    const MAX: Self = u128::MAX;
}

/// A range of one country from one source. Spans of a [`RegionSet`] are sorted and disjoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span<A> {
    pub start: A,
    pub end: A,
    pub country: Country,
    /// Index into [`RegionSet::sources`].
    pub source: u8,
}

/// The country data to load, with where each range came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegionSet {
    pub sources: Vec<SourceInfo>,
    pub v4: Vec<Span<u32>>,
    pub v6: Vec<Span<u128>>,
}

/// The prefixes the kernel's tries hold: disjoint, so longest-prefix match equals membership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prefixes {
    pub v4: Vec<(Ipv4Net, Country)>,
    pub v6: Vec<(Ipv6Net, Country)>,
}

/// Per-country totals, shown by `inspect` and stored in artifacts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountryCounts {
    pub prefixes_v4: u64,
    pub prefixes_v6: u64,
    pub addresses_v4: u64,
    pub addresses_v6: u128,
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("too many sources ({0}); at most 255 can be combined")]
    TooManySources(usize),
}

/// Combines `sources`: where they overlap, a source later in `order` wins. `order` lists source
/// indices from lowest to highest precedence and must name each source once.
pub fn compile(sources: Vec<SourceData>, order: &[usize]) -> Result<RegionSet, CompileError> {
    if sources.len() > usize::from(u8::MAX) {
        return Err(CompileError::TooManySources(sources.len()));
    }
    debug_assert_eq!(order.len(), sources.len());
    let ranked = || order.iter().map(|&i| (&sources[i], i as u8));
    let v4 = paint(ranked().map(|(s, i)| (s.v4.as_slice(), i)));
    let v6 = paint(ranked().map(|(s, i)| (s.v6.as_slice(), i)));
    Ok(RegionSet {
        sources: sources.into_iter().map(|s| s.info).collect(),
        v4,
        v6,
    })
}

/// Paints each source's ranges over the earlier ones (within a source, later lines win too).
fn paint<'a, A>(ranked: impl Iterator<Item = (&'a [Range<A>], u8)>) -> Vec<Span<A>>
where
    A: Address + 'a,
{
    let ranked: Vec<_> = ranked.collect();
    // A single source that is already sorted and disjoint (every MaxMind tree) needs no map.
    if let [(ranges, source)] = ranked[..] {
        if ranges.windows(2).all(|w| w[0].end < w[1].start) {
            return coalesce(ranges.iter().map(|r| Span {
                start: r.start,
                end: r.end,
                country: r.country,
                source,
            }));
        }
    }
    let mut map: RangeInclusiveMap<A, (Country, u8)> = RangeInclusiveMap::new();
    for (ranges, source) in ranked {
        for r in ranges {
            map.insert(r.start..=r.end, (r.country, source));
        }
    }
    coalesce(map.iter().map(|(range, &(country, source))| Span {
        start: *range.start(),
        end: *range.end(),
        country,
        source,
    }))
}

/// Joins touching spans with the same country and source.
fn coalesce<A: Address>(spans: impl Iterator<Item = Span<A>>) -> Vec<Span<A>> {
    let mut out: Vec<Span<A>> = Vec::new();
    for span in spans {
        match out.last_mut() {
            Some(last)
                if last.country == span.country
                    && last.source == span.source
                    && last.end.add_one() == span.start =>
            {
                last.end = span.end;
            }
            _ => out.push(span),
        }
    }
    out
}

/// Maximal runs of touching spans of one country, whatever their sources.
pub(crate) fn country_runs<A: Address>(
    spans: &[Span<A>],
) -> impl Iterator<Item = (A, A, Country)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let first = spans.get(i)?;
        let mut end = first.end;
        i += 1;
        while let Some(next) = spans.get(i) {
            if next.country != first.country || end.add_one() != next.start {
                break;
            }
            end = next.end;
            i += 1;
        }
        Some((first.start, end, first.country))
    })
}

/// The maximal run of one country around `a`, as [`country_runs`] would yield it.
fn run_around<A: Address>(spans: &[Span<A>], a: A) -> Option<(A, A, Country)> {
    let i = spans.partition_point(|s| s.start <= a).checked_sub(1)?;
    if spans[i].end < a {
        return None;
    }
    let country = spans[i].country;
    let touches = |l: &Span<A>, r: &Span<A>| l.country == r.country && l.end.add_one() == r.start;
    let mut lo = i;
    while lo > 0 && touches(&spans[lo - 1], &spans[lo]) {
        lo -= 1;
    }
    let mut hi = i;
    while hi + 1 < spans.len() && touches(&spans[hi], &spans[hi + 1]) {
        hi += 1;
    }
    Some((spans[lo].start, spans[hi].end, country))
}

/// Minimal CIDR cover of an inclusive IPv4 range.
pub fn cidrs_v4(start: u32, end: u32) -> impl Iterator<Item = Ipv4Net> {
    Ipv4Subnets::new(Ipv4Addr::from(start), Ipv4Addr::from(end), 0)
}

/// Minimal CIDR cover of an inclusive IPv6 range.
pub fn cidrs_v6(start: u128, end: u128) -> impl Iterator<Item = Ipv6Net> {
    Ipv6Subnets::new(Ipv6Addr::from(start), Ipv6Addr::from(end), 0)
}

impl RegionSet {
    /// The minimal disjoint prefix list for the kernel.
    #[must_use]
    pub fn prefixes(&self) -> Prefixes {
        Prefixes {
            v4: country_runs(&self.v4)
                .flat_map(|(s, e, c)| cidrs_v4(s, e).map(move |n| (n, c)))
                .collect(),
            v6: country_runs(&self.v6)
                .flat_map(|(s, e, c)| cidrs_v6(s, e).map(move |n| (n, c)))
                .collect(),
        }
    }

    /// Every country with at least one address.
    #[must_use]
    pub fn countries(&self) -> std::collections::BTreeSet<Country> {
        let v4 = self.v4.iter().map(|s| s.country);
        v4.chain(self.v6.iter().map(|s| s.country)).collect()
    }

    /// Prefix and address totals per country.
    #[must_use]
    pub fn counts(&self) -> BTreeMap<Country, CountryCounts> {
        let mut counts: BTreeMap<Country, CountryCounts> = BTreeMap::new();
        for (s, e, c) in country_runs(&self.v4) {
            let entry = counts.entry(c).or_default();
            entry.prefixes_v4 += cidrs_v4(s, e).count() as u64;
            entry.addresses_v4 += u64::from(e - s) + 1;
        }
        for (s, e, c) in country_runs(&self.v6) {
            let entry = counts.entry(c).or_default();
            entry.prefixes_v6 += cidrs_v6(s, e).count() as u64;
            entry.addresses_v6 = entry.addresses_v6.saturating_add((e - s).saturating_add(1));
        }
        counts
    }

    /// The span holding `addr`, if any: its country and the source it came from.
    #[must_use]
    pub fn lookup(&self, addr: IpAddr) -> Option<(IpAddr, IpAddr, Country, &SourceInfo)> {
        fn find<A: Copy + Ord>(spans: &[Span<A>], a: A) -> Option<&Span<A>> {
            let i = spans.partition_point(|s| s.start <= a);
            spans[..i].last().filter(|s| s.end >= a)
        }
        let (start, end, country, source) = match addr {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)).map(|s| {
                (
                    IpAddr::from(Ipv4Addr::from(s.start)),
                    IpAddr::from(Ipv4Addr::from(s.end)),
                    s.country,
                    s.source,
                )
            })?,
            IpAddr::V6(a) => find(&self.v6, u128::from(a)).map(|s| {
                (
                    IpAddr::from(Ipv6Addr::from(s.start)),
                    IpAddr::from(Ipv6Addr::from(s.end)),
                    s.country,
                    s.source,
                )
            })?,
        };
        Some((start, end, country, &self.sources[usize::from(source)]))
    }

    /// The prefix the kernel holds for `addr`, if any.
    #[must_use]
    pub fn kernel_prefix(&self, addr: IpAddr) -> Option<ipnet::IpNet> {
        match addr {
            IpAddr::V4(a) => {
                let (s, e, _) = run_around(&self.v4, u32::from(a))?;
                cidrs_v4(s, e).find(|n| n.contains(&a)).map(Into::into)
            }
            IpAddr::V6(a) => {
                let (s, e, _) = run_around(&self.v6, u128::from(a))?;
                cidrs_v6(s, e).find(|n| n.contains(&a)).map(Into::into)
            }
        }
    }

    /// The country of `addr`, if any.
    #[must_use]
    pub fn country_of(&self, addr: IpAddr) -> Option<Country> {
        self.lookup(addr).map(|(_, _, c, _)| c)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::data::Format;

    use crate::sys::testing::Rng;

    const COUNTRIES: [&str; 4] = ["DE", "FR", "NL", "JP"];

    fn cc(code: &str) -> Country {
        Country::parse(code).unwrap()
    }

    fn source(name: &str, v4: Vec<Range<u32>>) -> SourceData {
        SourceData {
            info: SourceInfo {
                path: PathBuf::from(name),
                format: Format::Csv,
                ..SourceInfo::default()
            },
            v4,
            v6: vec![],
        }
    }

    fn r(start: u32, end: u32, code: &str) -> Range<u32> {
        Range {
            start,
            end,
            country: cc(code),
        }
    }

    /// Naive oracle over a small window: paint every range of every source in precedence order.
    fn painted(sources: &[SourceData], order: &[usize], window: u32) -> Vec<Option<Country>> {
        let mut table = vec![None; window as usize];
        for &i in order {
            for range in &sources[i].v4 {
                for a in range.start..=range.end.min(window - 1) {
                    table[a as usize] = Some(range.country);
                }
            }
        }
        table
    }

    /// Naive longest-prefix match over a prefix list, as the kernel's trie answers.
    fn lpm(prefixes: &[(Ipv4Net, Country)], addr: u32) -> Option<Country> {
        prefixes
            .iter()
            .filter(|(n, _)| n.contains(&Ipv4Addr::from(addr)))
            .max_by_key(|(n, _)| n.prefix_len())
            .map(|(_, c)| *c)
    }

    fn random_source(rng: &mut Rng, name: &str, window: u32) -> SourceData {
        let ranges = (0..rng.below(40) + 1)
            .map(|_| {
                let start = u32::try_from(rng.below(u64::from(window))).unwrap();
                let len = u32::try_from(rng.below(300)).unwrap();
                let end = (start + len).min(window - 1);
                r(
                    start,
                    end,
                    COUNTRIES[usize::try_from(rng.below(4)).unwrap()],
                )
            })
            .collect();
        source(name, ranges)
    }

    #[test]
    fn later_sources_win_and_provenance_is_kept() {
        let base = source("base", vec![r(0, 255, "DE")]);
        let patch = source("patch", vec![r(16, 31, "FR")]);
        let set = compile(vec![base.clone(), patch.clone()], &[0, 1]).unwrap();
        assert_eq!(set.v4.len(), 3);
        let (_, _, country, from) = set.lookup(IpAddr::from(Ipv4Addr::from(20))).unwrap();
        assert_eq!(
            (country.code().as_str(), from.path.to_str()),
            ("FR", Some("patch"))
        );
        let (_, _, country, from) = set.lookup(IpAddr::from(Ipv4Addr::from(40))).unwrap();
        assert_eq!(
            (country.code().as_str(), from.path.to_str()),
            ("DE", Some("base"))
        );

        // --prefer base: base is painted last and hides the patch.
        let set = compile(vec![base, patch], &[1, 0]).unwrap();
        assert_eq!(set.v4.len(), 1);
        assert_eq!(
            set.prefixes().v4,
            vec![("0.0.0.0/24".parse().unwrap(), cc("DE"))]
        );
    }

    #[test]
    fn adjacent_and_nested_prefixes_of_one_country_merge() {
        let data = source(
            "s",
            vec![
                r(0, 127, "DE"),
                r(128, 255, "DE"),
                r(256, 511, "FR"),
                r(512, 1023, "DE"),
                r(600, 700, "DE"),
            ],
        );
        let set = compile(vec![data], &[0]).unwrap();
        let expected: Vec<(Ipv4Net, Country)> = vec![
            ("0.0.0.0/24".parse().unwrap(), cc("DE")),
            ("0.0.1.0/24".parse().unwrap(), cc("FR")),
            ("0.0.2.0/23".parse().unwrap(), cc("DE")),
        ];
        assert_eq!(set.prefixes().v4, expected);
    }

    /// Minimal disjoint CIDR cover by a different method: split the space top-down and keep
    /// every block that lies wholly inside the range.
    fn reference_cover(start: u64, end: u64, block: u64, size: u64, out: &mut Vec<(u64, u64)>) {
        let last = block + size - 1;
        if last < start || block > end {
        } else if start <= block && last <= end {
            out.push((block, size));
        } else {
            reference_cover(start, end, block, size / 2, out);
            reference_cover(start, end, block + size / 2, size / 2, out);
        }
    }

    #[test]
    fn range_decomposition_is_exact_and_minimal() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let mut cases: Vec<(u32, u32)> = vec![
            (0, u32::MAX),
            (0, 0),
            (u32::MAX, u32::MAX),
            (1, u32::MAX - 1),
        ];
        for _ in 0..2000 {
            let a = u32::try_from(rng.next() >> 32).unwrap();
            let width = rng.below(32) + 1;
            let b = a.saturating_add(u32::try_from(rng.below(1 << width)).unwrap());
            cases.push((a, b));
        }
        for (start, end) in cases {
            let ours: Vec<(u64, u64)> = cidrs_v4(start, end)
                .map(|n| {
                    (
                        u64::from(u32::from(n.network())),
                        1u64 << (32 - n.prefix_len()),
                    )
                })
                .collect();
            let mut reference = Vec::new();
            reference_cover(u64::from(start), u64::from(end), 0, 1 << 32, &mut reference);
            assert_eq!(ours, reference, "{start}..={end}");
        }
        // IPv6: the whole space, one address, and a cover that must tile its range exactly.
        assert_eq!(cidrs_v6(0, u128::MAX).count(), 1);
        assert_eq!(cidrs_v6(7, 7).count(), 1);
        let nets: Vec<Ipv6Net> = cidrs_v6(5, (1 << 100) + 3).collect();
        assert_eq!(u128::from(nets[0].network()), 5);
        assert_eq!(u128::from(nets.last().unwrap().broadcast()), (1 << 100) + 3);
        for w in nets.windows(2) {
            assert_eq!(u128::from(w[0].broadcast()) + 1, u128::from(w[1].network()));
        }
    }

    #[test]
    fn compiled_prefixes_answer_every_address_as_the_sources_do() {
        const WINDOW: u32 = 4096;
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..40 {
            let n = usize::try_from(rng.below(3)).unwrap() + 1;
            let sources: Vec<SourceData> = (0..n)
                .map(|i| random_source(&mut rng, &format!("s{i}"), WINDOW))
                .collect();
            let mut order: Vec<usize> = (0..n).collect();
            order.rotate_left(usize::try_from(rng.below(n as u64)).unwrap());
            let oracle = painted(&sources, &order, WINDOW);
            let set = compile(sources.clone(), &order).unwrap();
            let prefixes = set.prefixes().v4;
            let input_ranges: usize = sources.iter().map(|s| s.v4.len()).sum();
            for (addr, expected) in oracle.iter().enumerate() {
                let addr = u32::try_from(addr).unwrap();
                assert_eq!(lpm(&prefixes, addr), *expected, "address {addr}");
                let ip = IpAddr::from(Ipv4Addr::from(addr));
                assert_eq!(set.country_of(ip), *expected);
                let held = set.kernel_prefix(ip).map(|n| match n {
                    ipnet::IpNet::V4(n) => n,
                    ipnet::IpNet::V6(_) => unreachable!(),
                });
                assert_eq!(
                    held,
                    prefixes
                        .iter()
                        .find(|(n, _)| n.contains(&Ipv4Addr::from(addr)))
                        .map(|(n, _)| *n)
                );
            }
            // Disjoint output: no prefix contains another.
            for (i, (a, _)) in prefixes.iter().enumerate() {
                assert!(prefixes[i + 1..]
                    .iter()
                    .all(|(b, _)| !a.contains(b) && !b.contains(a)));
            }
            assert!(set.v4.len() <= 2 * input_ranges + 1);
        }
    }

    #[test]
    fn counts_add_up_per_country() {
        let set = compile(
            vec![source("s", vec![r(0, 255, "DE"), r(256, 257, "FR")])],
            &[0],
        )
        .unwrap();
        let counts = set.counts();
        assert_eq!(counts[&cc("DE")].addresses_v4, 256);
        assert_eq!(counts[&cc("DE")].prefixes_v4, 1);
        assert_eq!(counts[&cc("FR")].prefixes_v4, 1);
    }
}
