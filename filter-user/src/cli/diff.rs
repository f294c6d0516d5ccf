//! `regionfilter diff`: which addresses changed country between two databases or artifacts.

use std::path::PathBuf;

use anyhow::Result;
use ipnet::IpNet;

use crate::cli::args::SourceOptions;
use crate::{
    compile::changes::{Balance, Changes},
    compile::{cidrs_v4, cidrs_v6},
    model::country::Country,
};

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The older database or artifact.
    pub old: PathBuf,
    /// The newer database or artifact.
    pub new: PathBuf,
    #[command(flatten)]
    pub source: SourceOptions,
    /// How many of the largest changed prefixes to list.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

pub fn run(args: &DiffArgs) -> Result<()> {
    let (old, _) = args.source.load(&args.old)?;
    let (new, _) = args.source.load(&args.new)?;
    let changes = Changes::between(&old, &new);
    let balances = changes.balances();
    let total_v4: u64 = changes
        .v4
        .iter()
        .map(|c| u64::from(c.end - c.start) + 1)
        .sum();
    let total_v6: u128 = changes
        .v6
        .iter()
        .map(|c| (c.end - c.start).saturating_add(1))
        .fold(0, u128::saturating_add);
    println!(
        "{} IPv4 addresses in {} ranges and {} IPv6 /48s in {} ranges changed country",
        total_v4,
        changes.v4.len(),
        slash48s(total_v6),
        changes.v6.len()
    );
    if balances.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<(&Country, &Balance)> = balances.iter().collect();
    rows.sort_by_key(|(c, b)| (std::cmp::Reverse(b.gained_v4 + b.lost_v4), **c));
    println!(
        "\n{:<4} {:>14} {:>14} {:>14} {:>14}",
        "cc", "IPv4 gained", "IPv4 lost", "IPv6 /48s +", "IPv6 /48s -"
    );
    for (country, b) in rows {
        println!(
            "{:<4} {:>14} {:>14} {:>14} {:>14}",
            country.code(),
            b.gained_v4,
            b.lost_v4,
            slash48s(b.gained_v6),
            slash48s(b.lost_v6)
        );
    }
    let name = |c: Option<Country>| c.map_or_else(|| "none".to_owned(), |c| c.code());
    // The largest prefixes inside changed ranges, shortest prefix first, per family.
    let v4 = changes
        .v4
        .iter()
        .flat_map(|c| cidrs_v4(c.start, c.end).map(move |n| (IpNet::V4(n), c.old, c.new)));
    let v6 = changes
        .v6
        .iter()
        .flat_map(|c| cidrs_v6(c.start, c.end).map(move |n| (IpNet::V6(n), c.old, c.new)));
    for (family, prefixes) in [("IPv4", v4.collect::<Vec<_>>()), ("IPv6", v6.collect())] {
        if prefixes.is_empty() {
            continue;
        }
        let mut prefixes = prefixes;
        prefixes.sort_by_key(|(n, _, _)| (n.prefix_len(), *n));
        println!(
            "
largest changed {family} prefixes:"
        );
        for (net, old, new) in prefixes.iter().take(args.top) {
            println!("  {:<43} {} -> {}", net.to_string(), name(*old), name(*new));
        }
    }
    Ok(())
}

/// IPv6 address counts as /48 networks, the usual unit of assignment.
pub fn slash48s(addresses: u128) -> String {
    let n = addresses >> 80;
    if n == 0 && addresses > 0 {
        "<1".to_owned()
    } else {
        n.to_string()
    }
}
