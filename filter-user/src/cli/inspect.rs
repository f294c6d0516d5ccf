//! `regionfilter inspect`: what an artifact or a database holds.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use super::{diff::slash48s, status::describe_source};
use crate::{cli::args::SourceOptions, sys::time::date};
use crate::{compile::coverage::Coverage, compile::CountryCounts, model::country::Country};

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// An artifact (from `regionfilter compile`) or a source file.
    pub file: PathBuf,
    #[command(flatten)]
    pub source: SourceOptions,
    /// How many countries to list, largest IPv4 space first (0: all).
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Print JSON (every country) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Report {
    kind: &'static str,
    content_hash: Option<String>,
    created: Option<u64>,
    policy: Option<String>,
    sources: Vec<crate::data::SourceInfo>,
    ranges_v4: usize,
    ranges_v6: usize,
    prefixes_v4: u64,
    prefixes_v6: u64,
    addresses_v4: u64,
    public_v4_share: f64,
    public_v6_share: f64,
    countries: std::collections::BTreeMap<Country, CountryCounts>,
}

pub fn run(args: &InspectArgs) -> Result<()> {
    let (regions, header) = args.source.load(&args.file)?;
    let countries = regions.counts();
    let coverage = Coverage::of(&regions);
    let report = Report {
        kind: if header.is_some() {
            "artifact"
        } else {
            "source"
        },
        content_hash: header.as_ref().map(|h| h.content_hash.clone()),
        created: header.as_ref().map(|h| h.created),
        policy: header
            .as_ref()
            .and_then(|h| h.policy.as_ref())
            .map(crate::model::policy::Policy::summary),
        sources: regions.sources.clone(),
        ranges_v4: regions.v4.len(),
        ranges_v6: regions.v6.len(),
        prefixes_v4: countries.values().map(|c| c.prefixes_v4).sum(),
        prefixes_v6: countries.values().map(|c| c.prefixes_v6).sum(),
        addresses_v4: countries.values().map(|c| c.addresses_v4).sum(),
        public_v4_share: coverage.share_v4(),
        public_v6_share: coverage.share_v6(),
        countries,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{}: {}", args.file.display(), report.kind);
    if let (Some(hash), Some(created)) = (&report.content_hash, report.created) {
        println!("  content sha256: {hash}");
        println!("  compiled:       {}", date(created));
        println!(
            "  policy:         {}",
            report.policy.as_deref().unwrap_or("none")
        );
    }
    for s in &report.sources {
        println!("  source:         {}", describe_source(s));
        if s.skipped > 0 {
            println!(
                "  skipped:        {} record{} without a country (unknown space)",
                s.skipped,
                if s.skipped == 1 { "" } else { "s" }
            );
        }
    }
    println!(
        "  IPv4: {} ranges, {} prefixes, {} addresses, {:.2}% of public unicast space",
        report.ranges_v4,
        report.prefixes_v4,
        report.addresses_v4,
        100.0 * report.public_v4_share
    );
    println!(
        "  IPv6: {} ranges, {} prefixes, {:.4}% of global unicast space",
        report.ranges_v6,
        report.prefixes_v6,
        100.0 * report.public_v6_share
    );
    println!("  countries: {}", report.countries.len());
    let mut rows: Vec<(&Country, &CountryCounts)> = report.countries.iter().collect();
    rows.sort_by_key(|(c, n)| (std::cmp::Reverse(n.addresses_v4), **c));
    let shown = if args.top == 0 {
        rows.len()
    } else {
        args.top.min(rows.len())
    };
    println!(
        "\n  {:<4} {:<28} {:>12} {:>14} {:>12} {:>12}",
        "cc", "name", "IPv4 pfx", "IPv4 addrs", "IPv6 pfx", "IPv6 /48s"
    );
    for (country, n) in &rows[..shown] {
        let name: String = country.name().unwrap_or("?").chars().take(28).collect();
        println!(
            "  {:<4} {:<28} {:>12} {:>14} {:>12} {:>12}",
            country.code(),
            name,
            n.prefixes_v4,
            n.addresses_v4,
            n.prefixes_v6,
            slash48s(n.addresses_v6)
        );
    }
    if shown < rows.len() {
        println!("  ... {} more (--top 0 lists all)", rows.len() - shown);
    }
    Ok(())
}
