//! A real full-world country database (GeoLite2 Country as ip-location-db repackages it, fetched
//! and checksum-pinned by `cargo xtask setup`): compiled, loaded into the kernel, and checked
//! against the database itself.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use filter_common::{country_slot, CLASS_LOCAL, UNKNOWN_COUNTRY};
use filter_user::{
    compile::compile,
    data::{self, mmdb::Database, CountryField, SourceSpec},
    model::country::Country,
    model::lookup::Lookup,
    model::policy::{Action, Mode, Policy},
};
use integration_tests::{
    cli::Instance,
    frame,
    kernel::{LoadedFilter, XDP_DROP, XDP_PASS},
    rng::Rng,
};

fn world(file: &str) -> PathBuf {
    let dir = std::env::var_os("REGIONFILTER_WORLD_DATA")
        .expect("REGIONFILTER_WORLD_DATA unset: run the tests with `cargo xtask test`");
    let path = PathBuf::from(dir).join(file);
    assert!(
        path.exists(),
        "{} missing: run `cargo xtask setup`",
        path.display()
    );
    path
}

#[test]
fn kernel_verdicts_for_100k_random_addresses_match_direct_database_lookups() {
    let path = world("geolite2-country.mmdb");
    let source = data::load(&SourceSpec {
        path: path.clone(),
        format: None,
        country_field: CountryField::Country,
    })
    .unwrap();
    let regions = compile(vec![source], &[0]).unwrap();
    let prefixes = regions.prefixes();
    assert!(prefixes.v4.len() > 300_000 && prefixes.v6.len() > 300_000);

    // Deny a pseudo-random half of the countries, so a wrong country flips the verdict half the
    // time; the per-country counters below catch every wrong country exactly.
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let countries = regions
        .counts()
        .into_keys()
        .filter(|_| rng.next().is_multiple_of(2))
        .collect();
    let policy = Policy {
        unknown: Action::Drop,
        ..Policy::new(Mode::Deny, countries)
    };
    let mut filter = LoadedFilter::new(&prefixes, &policy, Lookup::Fast);
    let db = Database::open(&path, CountryField::Country).unwrap();

    let local = filter_user::compile::paint::local_networks();
    let mut expected_slots: BTreeMap<u32, u64> = BTreeMap::new();
    for i in 0..100_000u32 {
        let r = rng.next();
        // IPv4 uniformly over all of the space; IPv6 inside a random range of the data (uniform
        // IPv6 would almost never hit assigned space), plus some uniform global unicast.
        let (addr, frame) = if i % 2 == 0 {
            let a = Ipv4Addr::from(u32::try_from(r >> 32).unwrap());
            (IpAddr::V4(a), frame::ipv4(&[], a, 8))
        } else {
            let high = u128::from(r) << 64 | u128::from(rng.next());
            let a = if i % 10 == 1 {
                (0x2000 << 112) | (high >> 3)
            } else {
                let span = &regions.v6[usize::try_from(r % regions.v6.len() as u64).unwrap()];
                span.start + high % (span.end - span.start).saturating_add(1).max(1)
            };
            let a = Ipv6Addr::from(a);
            (IpAddr::V6(a), frame::ipv6(&[], a, 8))
        };
        // The program judges an IPv6 source that embeds an IPv4 address (6to4, Teredo, ...,
        // which random addresses in 2000::/3 hit now and then) by that address.
        let judged = filter_user::model::policy::as_judged(addr);
        let country = db.country(judged).unwrap();
        // Special-purpose space is the local class, whatever the database says.
        let local = local.iter().any(|n| n.contains(&judged));
        let index = if local {
            CLASS_LOCAL
        } else {
            country.map_or(UNKNOWN_COUNTRY, Country::index)
        };
        let action = policy.rule_action(policy.mode, &policy.countries, index);
        let want = match action {
            Action::Pass => XDP_PASS,
            Action::Drop => XDP_DROP,
        };
        assert_eq!(filter.run(&frame), want, "{addr} ({country:?})");
        *expected_slots
            .entry(country_slot(index, action.kernel()))
            .or_default() += 1;
    }
    let counters = filter.maps.counter_totals().unwrap();
    for (slot, counter) in counters.iter().enumerate() {
        let slot = u32::try_from(slot).unwrap();
        let want = expected_slots.get(&slot).copied().unwrap_or(0);
        assert_eq!(counter.packets, want, "counter slot {slot}");
    }
}

#[test]
fn csv_and_mmdb_releases_compile_to_identical_country_data() {
    let inst = Instance::new();
    let dir = tempfile::Builder::new()
        .prefix("rfworld")
        .tempdir()
        .unwrap();
    let artifact = dir.path().join("from-csv.rfa");
    let (v4, v6) = (
        world("geolite2-country-ipv4.csv"),
        world("geolite2-country-ipv6.csv"),
    );
    let out = inst
        .ok(
            None,
            &[
                "compile",
                "--db",
                v4.to_str().unwrap(),
                "--db",
                v6.to_str().unwrap(),
                "--out",
                artifact.to_str().unwrap(),
            ],
        )
        .unwrap();
    assert!(out.contains("from 2 source(s)"), "{out}");
    let mmdb = world("geolite2-country.mmdb");
    let diff = inst
        .ok(
            None,
            &["diff", mmdb.to_str().unwrap(), artifact.to_str().unwrap()],
        )
        .unwrap();
    dir.close().unwrap();
    assert!(
        diff.starts_with("0 IPv4 addresses in 0 ranges and 0 IPv6 /48s in 0 ranges changed"),
        "{diff}"
    );
}

/// The fast tables against the plain tries, both in the kernel, over the full world: two
/// million sources, half uniform over the space, half inside random prefixes (where long
/// prefixes and chunk boundaries are as likely as big blocks). Counter slot and verdict must be
/// identical for every one.
#[test]
fn fast_tables_and_lpm_tries_agree_on_two_million_sources() {
    let source = data::load(&SourceSpec {
        path: world("geolite2-country.mmdb"),
        format: None,
        country_field: CountryField::Country,
    })
    .unwrap();
    let regions = compile(vec![source], &[0]).unwrap();
    let prefixes = regions.prefixes();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let countries = regions
        .countries()
        .into_iter()
        .filter(|_| rng.next().is_multiple_of(2))
        .collect();
    let policy = Policy {
        unknown: Action::Drop,
        ..Policy::new(Mode::Allow, countries)
    };
    let mut fast = LoadedFilter::new(&prefixes, &policy, Lookup::Fast);
    let mut lpm = LoadedFilter::new(&prefixes, &policy, Lookup::Lpm);
    let mut differences = Vec::new();
    for i in 0..2_000_000u32 {
        let r = rng.next();
        let addr = match i % 4 {
            0 => IpAddr::V4(Ipv4Addr::from(u32::try_from(r >> 32).unwrap())),
            1 => {
                let net = prefixes.v4[usize::try_from(r % prefixes.v4.len() as u64).unwrap()].0;
                let host = u32::try_from(rng.next() >> 32).unwrap() & !u32::from(net.netmask());
                IpAddr::V4(Ipv4Addr::from(u32::from(net.network()) | host))
            }
            2 => IpAddr::V6(Ipv6Addr::from((0x2000 << 112) | (u128::from(r) << 61))),
            _ => {
                let net = prefixes.v6[usize::try_from(r % prefixes.v6.len() as u64).unwrap()].0;
                let host = (u128::from(rng.next()) << 64 | u128::from(rng.next()))
                    & !u128::from(net.netmask());
                IpAddr::V6(Ipv6Addr::from(u128::from(net.network()) | host))
            }
        };
        let (got, want) = (fast.classify(addr), lpm.classify(addr));
        if got != want {
            differences.push((addr, got, want));
        }
    }
    assert!(
        differences.is_empty(),
        "{} sources differ (fast vs lpm slot/code), first: {:?}",
        differences.len(),
        &differences[..differences.len().min(5)]
    );
}
