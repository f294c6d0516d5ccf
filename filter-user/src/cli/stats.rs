//! `regionfilter stats`: per-country counters summed over CPUs, most drops first.

use std::{
    io::{IsTerminal as _, Write as _},
    time::{Duration, Instant},
};

use anyhow::{bail, Result};

use crate::{
    kernel::maps::{CounterTotals, FilterMaps},
    model::{country::Country, iface::IfaceName},
    ops::{
        metrics,
        stats::{self, rates, InterfaceStats, Rate},
    },
    state::Layout,
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
    /// Live rates instead of totals: packets and bits per second per country, refreshed every
    /// SECS seconds (default 1), until interrupted or `--count` refreshes.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "1",
          value_parser = watch_interval, conflicts_with_all = ["json", "format"])]
    pub watch: Option<Duration>,
    /// With `--watch`: the countries shown per interface, busiest first (0: all, as for
    /// `inspect --top`).
    #[arg(long, value_name = "N", default_value_t = 10, requires = "watch")]
    pub top: usize,
    /// With `--watch`: stop after N refreshes.
    #[arg(long, value_name = "N", requires = "watch", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

/// `--watch`: seconds between refreshes, from 0.1 to an hour.
fn watch_interval(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| "give the seconds between refreshes, e.g. 1 or 0.5".to_owned())?;
    if !(0.1..=3600.0).contains(&secs) {
        return Err("give between 0.1 and 3600 seconds".to_owned());
    }
    Ok(Duration::from_secs_f64(secs))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Prometheus,
}

pub fn run(layout: &Layout, args: &StatsArgs) -> Result<()> {
    let ifaces = stats::with_counters(layout, args.iface.as_ref())?;
    if let Some(interval) = args.watch {
        return watch(layout, &ifaces, interval, args.top, args.count);
    }
    let format = if args.json { Format::Json } else { args.format };
    if format == Format::Prometheus {
        let mut all = Vec::new();
        for iface in ifaces {
            let facts = |_: &str| {
                let facts = metrics::DataFacts::known_good(layout, &iface);
                if facts.is_none() {
                    // Without it the series of countries with no traffic yet, and the data's
                    // build time, are missing: say so rather than print a thinner exposition.
                    eprintln!(
                        "warning: {iface}: no known-good copy in {}: the exposition lacks the \
                         data's facts and the zero series of countries without traffic \
                         (--lib-dir or REGIONFILTER_LIB_DIR names where attach kept it)",
                        layout.lib_dir.display()
                    );
                }
                facts
            };
            all.push(metrics::InterfaceMetrics::read(layout, &iface, facts)?);
        }
        print!("{}", metrics::exposition(&all));
        return Ok(());
    }
    let mut all = Vec::new();
    let mut notes = Vec::new();
    for iface in ifaces {
        let (stats, note) = stats::read(layout, &iface)?;
        all.push(stats);
        notes.push(note);
    }
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "interfaces": all }))?
        );
    } else if all.is_empty() {
        println!("regionfilter is not attached to any interface");
    } else {
        for (stats, note) in all.iter().zip(&notes) {
            print_table(stats, note.as_deref());
        }
    }
    Ok(())
}

/// `stats --watch`: rates every `interval`, redrawn in place on a terminal and appended
/// (with a time stamp) otherwise.
fn watch(
    layout: &Layout,
    ifaces: &[IfaceName],
    interval: Duration,
    top: usize,
    count: Option<u64>,
) -> Result<()> {
    let mut maps: Vec<(IfaceName, FilterMaps)> = ifaces
        .iter()
        .map(|iface| {
            Ok((
                iface.clone(),
                FilterMaps::open_pinned(&layout.pin_dir(iface))?,
            ))
        })
        .collect::<Result<_>>()?;
    if maps.is_empty() {
        bail!("regionfilter is not attached to any interface");
    }
    let terminal = std::io::stdout().is_terminal();
    let mut last: Vec<CounterTotals> = maps
        .iter()
        .map(|(_, m)| m.counter_totals())
        .collect::<Result<_>>()?;
    let mut taken = Instant::now();
    let mut refreshes = 0;
    while count.is_none_or(|n| refreshes < n) {
        std::thread::sleep(interval);
        let now = Instant::now();
        let secs = now.duration_since(taken).as_secs_f64();
        taken = now;
        let mut text = String::new();
        if terminal {
            text.push_str("\x1b[H\x1b[2J");
        }
        // A filter detached meanwhile leaves the watch (the maps held open here would only
        // repeat its last counts); one whose interface went is shown with why it reads zero.
        let mut kept = Vec::new();
        for ((iface, m), mut before) in maps.into_iter().zip(last) {
            let (condition, note) = stats::condition(layout, &iface)?;
            if condition == "detached" {
                text.push_str(&format!("{}\n", note.unwrap_or_default()));
                continue;
            }
            let after = m.counter_totals()?;
            text.push_str(&rates_table(
                &iface,
                &rates(&before, &after, secs),
                top,
                secs,
            ));
            if let Some(note) = note {
                text.push_str(&format!("  {note}\n"));
            }
            before = after;
            kept.push(((iface, m), before));
        }
        (maps, last) = kept.into_iter().unzip();
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        if !terminal {
            writeln!(stdout)?;
        }
        stdout.flush()?;
        refreshes += 1;
        if maps.is_empty() {
            bail!("every filter watched was detached");
        }
    }
    Ok(())
}

fn rates_table(iface: &IfaceName, rates: &[Rate], top: usize, secs: f64) -> String {
    let top = if top == 0 { rates.len() } else { top };
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{iface} (rates over {secs:.1} s at {}):",
        crate::sys::time::date(crate::sys::time::unix_now())
    );
    let _ = writeln!(
        out,
        "  {:<8} {:<24} {:>12} {:>12} {:>12} {:>14}",
        "COUNTRY", "NAME", "PASSED/S", "DROPPED/S", "WOULD DROP/S", "BITS/S"
    );
    for r in rates.iter().take(top) {
        let (code, name) = match r.country {
            Some(c) => (c.code(), c.name().unwrap_or("").to_owned()),
            None => ("--".to_owned(), "unknown space".to_owned()),
        };
        let name: String = name.chars().take(24).collect();
        let _ = writeln!(
            out,
            "  {code:<8} {name:<24} {:>12.1} {:>12.1} {:>12.1} {:>14.0}",
            r.passed_pps, r.dropped_pps, r.would_drop_pps, r.bps
        );
    }
    if rates.len() > top {
        let more = rates.len() - top;
        let noun = if more == 1 { "country" } else { "countries" };
        let _ = writeln!(
            out,
            "  ... {more} more {noun} with traffic (--top 0 lists all)"
        );
    }
    out
}

fn print_table(stats: &InterfaceStats, note: Option<&str>) {
    println!("{}:", stats.iface);
    if let Some(note) = note {
        println!("  {note}");
    }
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
    println!(
        "  neighbour discovery passed {}; undeclared NAT64 dropped {} would drop {}; drop samples lost {}",
        stats.ndp_passed.packets,
        stats.undeclared_nat64_dropped.packets,
        stats.undeclared_nat64_would_drop.packets,
        stats.samples_lost
    );
}

#[cfg(test)]
mod tests {
    use filter_common::{country_slot, Counter, ACTION_DROP, ACTION_PASS};

    use super::*;

    #[test]
    fn top_zero_lists_every_country_and_the_rest_is_counted_in_words() {
        let rate = |code: &str| Rate {
            country: Some(Country::parse(code).unwrap()),
            passed_pps: 1.0,
            dropped_pps: 0.0,
            would_drop_pps: 0.0,
            bps: 8.0,
        };
        let rates = [rate("GB"), rate("SE"), rate("JP")];
        let iface: IfaceName = "eth0".parse().unwrap();
        let all = rates_table(&iface, &rates, 0, 1.0);
        assert!(
            all.contains("GB") && all.contains("SE") && all.contains("JP") && !all.contains("more"),
            "{all}"
        );
        let one_more = rates_table(&iface, &rates, 2, 1.0);
        assert!(
            one_more.contains("... 1 more country with traffic (--top 0 lists all)"),
            "{one_more}"
        );
        let two_more = rates_table(&iface, &rates, 1, 1.0);
        assert!(
            two_more.contains("... 2 more countries with traffic"),
            "{two_more}"
        );
    }

    #[test]
    fn rates_are_deltas_per_second_busiest_first() {
        let gb = Country::parse("GB").unwrap().index();
        let se = Country::parse("SE").unwrap().index();
        let before = vec![Counter::default(); filter_common::COUNTER_SLOTS as usize];
        let mut after = before.clone();
        after[country_slot(gb, ACTION_DROP) as usize] = Counter {
            packets: 40,
            bytes: 4000,
        };
        after[country_slot(se, ACTION_PASS) as usize] = Counter {
            packets: 10,
            bytes: 1000,
        };
        let r = rates(&before, &after, 2.0);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].country.map(Country::code).as_deref(), Some("GB"));
        assert_eq!((r[0].dropped_pps, r[0].bps), (20.0, 16_000.0));
        assert_eq!((r[1].passed_pps, r[1].bps), (5.0, 4_000.0));
        // A counter that went backwards (a re-attach) is no traffic, not a negative rate.
        assert!(rates(&after, &before, 1.0).is_empty());
    }
}
