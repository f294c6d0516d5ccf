//! What changed country between two region sets: per-country gains and losses, and the ranges.

use std::collections::BTreeMap;

use crate::{
    compile::{Address, RegionSet, Span},
    model::country::Country,
};

/// A range whose country differs between the old and the new data (`None`: no country).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change<A> {
    pub start: A,
    pub end: A,
    pub old: Option<Country>,
    pub new: Option<Country>,
}

/// Addresses a country gained and lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    pub gained_v4: u64,
    pub lost_v4: u64,
    pub gained_v6: u128,
    pub lost_v6: u128,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub v4: Vec<Change<u32>>,
    pub v6: Vec<Change<u128>>,
}

impl Changes {
    #[must_use]
    pub fn between(old: &RegionSet, new: &RegionSet) -> Self {
        Self {
            v4: changed(&old.v4, &new.v4),
            v6: changed(&old.v6, &new.v6),
        }
    }

    /// Gains and losses per country.
    #[must_use]
    pub fn balances(&self) -> BTreeMap<Country, Balance> {
        let mut out: BTreeMap<Country, Balance> = BTreeMap::new();
        for c in &self.v4 {
            let n = u64::from(c.end - c.start) + 1;
            if let Some(old) = c.old {
                out.entry(old).or_default().lost_v4 += n;
            }
            if let Some(new) = c.new {
                out.entry(new).or_default().gained_v4 += n;
            }
        }
        for c in &self.v6 {
            let n = (c.end - c.start).saturating_add(1);
            if let Some(old) = c.old {
                let b = out.entry(old).or_default();
                b.lost_v6 = b.lost_v6.saturating_add(n);
            }
            if let Some(new) = c.new {
                let b = out.entry(new).or_default();
                b.gained_v6 = b.gained_v6.saturating_add(n);
            }
        }
        out
    }
}

/// Sweeps both sorted, disjoint span lists and yields the maximal ranges whose country differs.
fn changed<A: Address>(old: &[Span<A>], new: &[Span<A>]) -> Vec<Change<A>> {
    // Every boundary where either side's country may change, as "first address of a piece".
    let mut cuts: Vec<A> = Vec::with_capacity(2 * (old.len() + new.len()));
    for s in old.iter().chain(new) {
        cuts.push(s.start);
        if s.end != A::MAX {
            cuts.push(s.end.add_one());
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let country_at = |spans: &[Span<A>], a: A| {
        let i = spans.partition_point(|s| s.start <= a);
        spans[..i].last().filter(|s| s.end >= a).map(|s| s.country)
    };
    let mut out: Vec<Change<A>> = Vec::new();
    for (i, &start) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).map_or(A::MAX, |next| next.sub_one());
        let (o, n) = (country_at(old, start), country_at(new, start));
        if o == n {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.old == o && last.new == n && last.end.add_one() == start => {
                last.end = end;
            }
            _ => out.push(Change {
                start,
                end,
                old: o,
                new: n,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u32, end: u32, code: &str) -> Span<u32> {
        Span {
            start,
            end,
            country: Country::parse(code).unwrap(),
            source: 0,
        }
    }

    fn set(spans: Vec<Span<u32>>) -> RegionSet {
        RegionSet {
            v4: spans,
            ..RegionSet::default()
        }
    }

    #[test]
    fn finds_moved_new_and_vanished_ranges() {
        let old = set(vec![span(0, 99, "DE"), span(200, 299, "FR")]);
        let new = set(vec![
            span(0, 49, "DE"),
            span(50, 99, "NL"),
            span(300, 399, "FR"),
        ]);
        let changes = Changes::between(&old, &new);
        let cc = |c: &str| Some(Country::parse(c).unwrap());
        assert_eq!(
            changes.v4,
            vec![
                Change {
                    start: 50,
                    end: 99,
                    old: cc("DE"),
                    new: cc("NL")
                },
                Change {
                    start: 200,
                    end: 299,
                    old: cc("FR"),
                    new: None
                },
                Change {
                    start: 300,
                    end: 399,
                    old: None,
                    new: cc("FR")
                },
            ]
        );
        let balances = changes.balances();
        assert_eq!(balances[&Country::parse("DE").unwrap()].lost_v4, 50);
        assert_eq!(balances[&Country::parse("FR").unwrap()].lost_v4, 100);
        assert_eq!(balances[&Country::parse("FR").unwrap()].gained_v4, 100);
        assert!(Changes::between(&old, &old).v4.is_empty());
    }

    #[test]
    fn ranges_reaching_the_top_of_the_space_work() {
        let old = set(vec![span(u32::MAX - 9, u32::MAX, "DE")]);
        let changes = Changes::between(&old, &set(vec![]));
        assert_eq!(changes.v4.len(), 1);
        assert_eq!(changes.v4[0].end, u32::MAX);
    }
}
