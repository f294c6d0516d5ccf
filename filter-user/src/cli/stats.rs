//! `regionfilter stats`: per-country counters summed over CPUs, most drops first.

use anyhow::{bail, Result};
use filter_common::{
    country_slot, would_drop_slot, Counter, ACTION_DROP, ACTION_PASS, COUNTRY_SLOTS,
    SLOT_EXCEPTION_DROP, SLOT_EXCEPTION_PASS, SLOT_EXCEPTION_WOULD_DROP, SLOT_FRAGMENT_PASS,
    SLOT_ICMP_ERROR_PASS, SLOT_LOCAL_DROP, SLOT_LOCAL_PASS, SLOT_LOCAL_WOULD_DROP,
    SLOT_MALFORMED_DROP, SLOT_MALFORMED_PASS, SLOT_MALFORMED_WOULD_DROP, SLOT_NON_IP,
    SLOT_OUT_OF_SCOPE, SLOT_TCP_NOT_SYN,
};
use serde::Serialize;

use crate::{
    country::Country,
    iface::IfaceName,
    known_good::KnownGood,
    maps::{hash_hex, CounterTotals, FilterMaps, Lookup},
    metrics,
    pins::{self, PinState},
    state::{AttachState, Layout},
};

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Only this interface (default: every attached interface).
    #[arg(long, value_name = "IF")]
    pub iface: Option<IfaceName>,
    /// Print JSON instead of a table (the same as `--format json`).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// `table`, `json`, or `prometheus` (the text exposition format, for node_exporter's
    /// textfile collector).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Prometheus,
}

/// Counters of one interface.
#[derive(Debug, Serialize)]
pub struct InterfaceStats {
    pub iface: IfaceName,
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
    pub fn from_totals(iface: &IfaceName, totals: &CounterTotals) -> Self {
        let slot = |s: u32| totals[s as usize];
        let mut countries: Vec<CountryStats> = (0..COUNTRY_SLOTS)
            .map(|i| u16::try_from(i).expect("COUNTRY_SLOTS fits u16"))
            .map(|index| CountryStats {
                country: Country::from_index(index).map(Country::code),
                passed: slot(country_slot(index, ACTION_PASS)),
                dropped: slot(country_slot(index, ACTION_DROP)),
                would_drop: slot(would_drop_slot(country_slot(index, ACTION_DROP))),
            })
            .filter(|c| c.passed.packets + c.dropped.packets + c.would_drop.packets > 0)
            .collect();
        countries.sort_by(|a, b| {
            (b.dropped.packets, b.would_drop.packets, b.passed.packets).cmp(&(
                a.dropped.packets,
                a.would_drop.packets,
                a.passed.packets,
            ))
        });
        Self {
            iface: iface.clone(),
            countries,
            non_ip: slot(SLOT_NON_IP),
            malformed_passed: slot(SLOT_MALFORMED_PASS),
            malformed_dropped: slot(SLOT_MALFORMED_DROP),
            malformed_would_drop: slot(SLOT_MALFORMED_WOULD_DROP),
            exception_passed: slot(SLOT_EXCEPTION_PASS),
            exception_dropped: slot(SLOT_EXCEPTION_DROP),
            exception_would_drop: slot(SLOT_EXCEPTION_WOULD_DROP),
            icmp_errors_passed: slot(SLOT_ICMP_ERROR_PASS),
            local_passed: slot(SLOT_LOCAL_PASS),
            local_dropped: slot(SLOT_LOCAL_DROP),
            local_would_drop: slot(SLOT_LOCAL_WOULD_DROP),
            out_of_scope: slot(SLOT_OUT_OF_SCOPE),
            fragments_passed: slot(SLOT_FRAGMENT_PASS),
            tcp_not_syn_passed: slot(SLOT_TCP_NOT_SYN),
        }
    }
}

pub fn run(layout: &Layout, args: &StatsArgs) -> Result<()> {
    // Counters live in the maps: a filter whose interface is gone still has them, an attach
    // that did not finish has none worth showing.
    let has_counters = |iface: &IfaceName| -> Result<bool> {
        Ok(matches!(
            pins::inspect(&layout.pin_dir(iface))?,
            PinState::Attached { .. } | PinState::Gone
        ))
    };
    let ifaces = match &args.iface {
        Some(iface) => {
            if !has_counters(iface)? {
                bail!("regionfilter is not attached to {iface}; `regionfilter status` lists attached interfaces");
            }
            vec![iface.clone()]
        }
        None => {
            let mut with_counters = Vec::new();
            for iface in layout.pinned_interfaces()? {
                if has_counters(&iface)? {
                    with_counters.push(iface);
                }
            }
            with_counters
        }
    };
    let format = if args.json { Format::Json } else { args.format };
    if format == Format::Prometheus {
        let mut all = Vec::new();
        for iface in ifaces {
            all.push(interface_metrics(layout, iface)?);
        }
        print!("{}", metrics::exposition(&all));
        return Ok(());
    }
    let mut all = Vec::new();
    for iface in ifaces {
        let maps = FilterMaps::open_pinned(&layout.pin_dir(&iface))?;
        all.push(InterfaceStats::from_totals(&iface, &maps.counter_totals()?));
    }
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "interfaces": all }))?
        );
    } else if all.is_empty() {
        println!("regionfilter is not attached to any interface");
    } else {
        for stats in &all {
            print_table(stats);
        }
    }
    Ok(())
}

/// The counters of `iface` and what its filter holds: the active half's settings from the
/// kernel, the countries and build time of its known-good data, the time of its last switch.
fn interface_metrics(layout: &Layout, iface: IfaceName) -> Result<metrics::InterfaceMetrics> {
    let maps = FilterMaps::open_pinned(&layout.pin_dir(&iface))?;
    let settings = maps.halves[maps.active_half()?].settings()?;
    // The data's countries label series before any packet of theirs arrives; without a
    // known-good copy only countries with traffic appear.
    let artifact = KnownGood::new(&layout.lib_dir, &iface)
        .current()
        .ok()
        .flatten();
    let state = AttachState::load(&layout.state_file(&iface)).ok();
    Ok(metrics::InterfaceMetrics {
        totals: maps.counter_totals()?,
        countries: artifact
            .as_ref()
            .map(|a| a.regions.countries())
            .unwrap_or_default(),
        data_built: artifact
            .as_ref()
            .and_then(|a| a.regions.sources.iter().map(|s| s.build_epoch).max()),
        updated_at: state.map(|s| s.updated_at.unwrap_or(s.attached_at)),
        generation: settings.generation,
        content_hash: hash_hex(&settings.content_hash),
        lookup: Lookup::from_kernel(settings.lookup).name(),
        iface,
    })
}

fn print_table(stats: &InterfaceStats) {
    println!("{}:", stats.iface);
    println!(
        "  {:<8} {:<24} {:>12} {:>14} {:>12} {:>14} {:>12}",
        "COUNTRY",
        "NAME",
        "PASSED PKTS",
        "PASSED BYTES",
        "DROPPED PKTS",
        "DROPPED BYTES",
        "WOULD DROP"
    );
    for c in &stats.countries {
        let (code, name) = match c.country.as_deref().and_then(Country::from_code) {
            Some(country) => (country.code(), country.name().unwrap_or("")),
            None => ("--".to_owned(), "unknown space"),
        };
        let name: String = name.chars().take(24).collect();
        println!(
            "  {code:<8} {name:<24} {:>12} {:>14} {:>12} {:>14} {:>12}",
            c.passed.packets,
            c.passed.bytes,
            c.dropped.packets,
            c.dropped.bytes,
            c.would_drop.packets
        );
    }
    println!(
        "  non-IP passed {}; malformed passed {} dropped {} would drop {}; exceptions passed {} dropped {} would drop {}; ICMP errors passed {}",
        stats.non_ip.packets,
        stats.malformed_passed.packets,
        stats.malformed_dropped.packets,
        stats.malformed_would_drop.packets,
        stats.exception_passed.packets,
        stats.exception_dropped.packets,
        stats.exception_would_drop.packets,
        stats.icmp_errors_passed.packets
    );
    println!(
        "  local passed {} dropped {} would drop {}; out of scope passed {}; fragments passed {}; TCP not opening a connection passed {}",
        stats.local_passed.packets,
        stats.local_dropped.packets,
        stats.local_would_drop.packets,
        stats.out_of_scope.packets,
        stats.fragments_passed.packets,
        stats.tcp_not_syn_passed.packets
    );
}
