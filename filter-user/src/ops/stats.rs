//! `stats`'s answer: each filter's counters summed over CPUs and decoded by country and class,
//! rates between two readings, and whether the counters still count the interface's packets.

use anyhow::{bail, Result};
use filter_common::Counter;
use serde::Serialize;

use crate::{
    kernel::maps::{CounterTotals, FilterMaps},
    kernel::pins::{self, PinState},
    kernel::placement::{self, Condition},
    kernel::slots::{Decoded, Verdicts},
    model::country::Country,
    model::iface::IfaceName,
    state::Layout,
};

/// The interfaces with counters: `iface` (an error when it has none), or every one. Counters
/// live in the maps: a filter whose interface is gone still has them, an attach that did not
/// finish has none worth showing.
pub fn with_counters(layout: &Layout, iface: Option<&IfaceName>) -> Result<Vec<IfaceName>> {
    let has_counters = |iface: &IfaceName| -> Result<bool> {
        Ok(matches!(
            pins::inspect(&layout.pin_dir(iface))?,
            PinState::Attached { .. } | PinState::Gone
        ))
    };
    if let Some(iface) = iface {
        if !has_counters(iface)? {
            bail!("regionfilter is not attached to {iface}; `regionfilter status` lists attached interfaces");
        }
        return Ok(vec![iface.clone()]);
    }
    let mut with_counters = Vec::new();
    for iface in layout.pinned_interfaces()? {
        if has_counters(&iface)? {
            with_counters.push(iface);
        }
    }
    Ok(with_counters)
}

/// `iface`'s counters now, with what an operator should read about them ([`condition`]).
pub fn read(layout: &Layout, iface: &IfaceName) -> Result<(InterfaceStats, Option<String>)> {
    let maps = FilterMaps::open_pinned(&layout.pin_dir(iface))?;
    let (condition, note) = condition(layout, iface)?;
    let stats = InterfaceStats::from_totals(iface, condition, &maps.counter_totals()?);
    Ok((stats, note))
}

/// Counters of one interface.
#[derive(Debug, Serialize)]
pub struct InterfaceStats {
    pub iface: IfaceName,
    /// `attached`, or `gone`/`moved` (as in `status`): then nothing of this interface is judged
    /// and the counters no longer move.
    pub condition: &'static str,
    /// Countries with traffic, most dropped packets first. `country` is `null` for unknown space.
    pub countries: Vec<CountryStats>,
    pub non_ip: Counter,
    pub malformed_passed: Counter,
    pub malformed_dropped: Counter,
    pub malformed_would_drop: Counter,
    pub exception_passed: Counter,
    pub exception_dropped: Counter,
    pub exception_would_drop: Counter,
    /// ICMP errors passed whatever their source (`--icmp-errors pass`).
    pub icmp_errors_passed: Counter,
    /// Special-purpose sources (`--local`).
    pub local_passed: Counter,
    pub local_dropped: Counter,
    pub local_would_drop: Counter,
    /// Packets to no port of the scope (and, under a scope, packets without ports).
    pub out_of_scope: Counter,
    /// Non-first fragments under a scope or `--tcp syn`: passed, they carry no ports.
    pub fragments_passed: Counter,
    /// TCP segments other than connection attempts under `--tcp syn`.
    pub tcp_not_syn_passed: Counter,
    /// Neighbour discovery (ICMPv6 133-137 with hop limit 255), passed whatever the source.
    pub ndp_passed: Counter,
    /// Sources in 64:ff9b:1::/48 outside every declared NAT64 prefix.
    pub undeclared_nat64_dropped: Counter,
    pub undeclared_nat64_would_drop: Counter,
    /// Drop samples lost because the ring was full (not packets of a verdict).
    pub samples_lost: u64,
}

#[derive(Debug, Serialize)]
pub struct CountryStats {
    pub country: Option<String>,
    pub passed: Counter,
    pub dropped: Counter,
    /// Passed by a dry run that would have dropped them.
    pub would_drop: Counter,
}

impl InterfaceStats {
    #[must_use]
    pub fn from_totals(iface: &IfaceName, condition: &'static str, totals: &CounterTotals) -> Self {
        let decoded = Decoded::new(totals);
        let with_traffic =
            |v: &Verdicts| v.passed.packets + v.dropped.packets + v.would_drop.packets > 0;
        let stats = |country: Option<String>, v: &Verdicts| CountryStats {
            country,
            passed: v.passed,
            dropped: v.dropped,
            would_drop: v.would_drop,
        };
        let mut countries: Vec<CountryStats> = decoded
            .countries
            .iter()
            .filter(|(_, v)| with_traffic(v))
            .map(|(c, v)| stats(Some(c.code()), v))
            .chain(with_traffic(&decoded.unknown).then(|| stats(None, &decoded.unknown)))
            .collect();
        countries.sort_by(|a, b| {
            (b.dropped.packets, b.would_drop.packets, b.passed.packets).cmp(&(
                a.dropped.packets,
                a.would_drop.packets,
                a.passed.packets,
            ))
        });
        let class = |label| decoded.class(label);
        Self {
            iface: iface.clone(),
            condition,
            countries,
            non_ip: class("non_ip").passed,
            malformed_passed: class("malformed").passed,
            malformed_dropped: class("malformed").dropped,
            malformed_would_drop: class("malformed").would_drop,
            exception_passed: class("always_pass").passed,
            exception_dropped: class("always_drop").dropped,
            exception_would_drop: class("always_drop").would_drop,
            icmp_errors_passed: class("icmp_error").passed,
            local_passed: class("local").passed,
            local_dropped: class("local").dropped,
            local_would_drop: class("local").would_drop,
            out_of_scope: class("out_of_scope").passed,
            fragments_passed: class("fragment").passed,
            tcp_not_syn_passed: class("tcp_not_syn").passed,
            ndp_passed: class("neighbour_discovery").passed,
            undeclared_nat64_dropped: class("undeclared_nat64").dropped,
            undeclared_nat64_would_drop: class("undeclared_nat64").would_drop,
            samples_lost: decoded.samples_lost,
        }
    }
}

/// One country's rates over an interval.
#[derive(Clone, Debug, PartialEq)]
pub struct Rate {
    /// `None` for unknown space.
    pub country: Option<Country>,
    pub passed_pps: f64,
    pub dropped_pps: f64,
    pub would_drop_pps: f64,
    /// Bits per second of all three.
    pub bps: f64,
}

/// Per-country rates between two snapshots of the counters `secs` apart, busiest first
/// (packets per second over all verdicts), countries without traffic left out.
#[must_use]
pub fn rates(before: &CounterTotals, after: &CounterTotals, secs: f64) -> Vec<Rate> {
    let (before, after) = (Decoded::new(before), Decoded::new(after));
    let delta = |b: Counter, a: Counter| {
        (
            a.packets.saturating_sub(b.packets) as f64 / secs,
            a.bytes.saturating_sub(b.bytes) as f64 * 8.0 / secs,
        )
    };
    let rate = |country: Option<Country>, b: &Verdicts, a: &Verdicts| {
        let (passed, pass_bits) = delta(b.passed, a.passed);
        let (dropped, drop_bits) = delta(b.dropped, a.dropped);
        let (would, would_bits) = delta(b.would_drop, a.would_drop);
        Rate {
            country,
            passed_pps: passed,
            dropped_pps: dropped,
            would_drop_pps: would,
            bps: pass_bits + drop_bits + would_bits,
        }
    };
    let mut out: Vec<Rate> = after
        .countries
        .iter()
        .map(|(c, a)| {
            rate(
                Some(*c),
                &before.countries.get(c).copied().unwrap_or_default(),
                a,
            )
        })
        .chain(std::iter::once(rate(None, &before.unknown, &after.unknown)))
        .filter(|r| r.passed_pps + r.dropped_pps + r.would_drop_pps > 0.0)
        .collect();
    let total = |r: &Rate| r.passed_pps + r.dropped_pps + r.would_drop_pps;
    out.sort_by(|a, b| total(b).total_cmp(&total(a)));
    out
}

/// Whether `iface`'s counters still count its packets: `attached`, or `gone`/`moved` with
/// what an operator should read (as `status` says it); `detached` once its pins are removed.
pub fn condition(layout: &Layout, iface: &IfaceName) -> Result<(&'static str, Option<String>)> {
    let condition = placement::condition(layout, iface)?;
    let problem = condition.problem(iface, &layout.pin_dir(iface));
    Ok(match condition {
        Condition::Filtering => ("attached", None),
        Condition::Moved(_) => (
            "moved",
            Some(format!(
                "MOVED: {}; these counters are not {iface}'s",
                problem.unwrap_or_default()
            )),
        ),
        Condition::Gone => (
            "gone",
            Some(format!(
                "GONE: {}, and these counters no longer move",
                problem.unwrap_or_default()
            )),
        ),
        _ => (
            "detached",
            Some(format!("{iface} was detached: its counters are gone")),
        ),
    })
}
