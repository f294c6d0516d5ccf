//! `cargo xtask demo`: two namespaces, one veth pair, a deny-list for two countries, then a
//! policy-only `update` to another one.
//!
//! A binary of the test kit rather than part of xtask: it needs the built filter, and xtask
//! must build with stable Rust alone (it installs the eBPF toolchain first, then runs this).
//! Everything happens inside namespaces created here; the guards remove them on exit.

use std::{net::IpAddr, time::Duration};

use anyhow::{bail, Context as _, Result};
use integration_tests::{
    cli::{fixture, Instance},
    netns::{VethPair, RECEIVER_V4, RECEIVER_V6},
    traffic::{self, Receiver},
};

/// (source address, country in the bundled database)
const SOURCES: [(&str, &str); 4] = [
    ("81.2.69.160", "GB"),
    ("2001:218::1", "JP"),
    ("89.160.20.130", "SE"),
    ("2a02:d000::1", "CH"),
];
const DENIED: &str = "GB,JP";
/// The policy `update` switches to halfway.
const DENIED_LATER: &str = "SE";
const COUNT: usize = 10;

fn main() -> Result<()> {
    let pair = VethPair::new("demo").context("cannot create the demo namespaces")?;
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    let db = fixture("maxmind/GeoLite2-Country-Test.mmdb")
        .display()
        .to_string();
    println!(
        "== namespaces {} (sender) and {} (receiver), veth {} -> {}",
        pair.sender.name(),
        pair.receiver.name(),
        pair.sender_if,
        iface
    );
    for (src, _) in SOURCES {
        pair.add_source(src.parse()?)?;
    }

    println!("\n$ regionfilter attach --iface {iface} --db {db} --deny {DENIED}");
    print!(
        "{}",
        inst.ok(
            Some(&pair.receiver),
            &["attach", "--iface", &iface, "--db", &db, "--deny", DENIED]
        )?
    );

    let mut as_expected = traffic_round(&pair, DENIED)?;

    // The policy changes in place: the new one goes into the other half of every map, is
    // self-tested there, and takes over with one map write.
    println!("\n$ regionfilter update --iface {iface} --deny {DENIED_LATER}");
    print!(
        "{}",
        inst.ok(
            Some(&pair.receiver),
            &["update", "--iface", &iface, "--deny", DENIED_LATER]
        )?
    );
    as_expected &= traffic_round(&pair, DENIED_LATER)?;

    println!("\n$ regionfilter stats");
    print!("{}", inst.ok(None, &["stats"])?);
    println!("\n$ regionfilter status");
    print!("{}", inst.ok(None, &["status"])?);
    println!("\n$ regionfilter detach --iface {iface}");
    print!(
        "{}",
        inst.ok(Some(&pair.receiver), &["detach", "--iface", &iface])?
    );
    if !as_expected {
        bail!("the demo did not see the expected drops");
    }
    println!(
        "\ndemo ok: denied countries dropped in XDP, the others delivered; namespaces removed"
    );
    Ok(())
}

/// Sends `COUNT` datagrams from each source and shows how many arrived; true when exactly the
/// sources outside `denied` got through.
fn traffic_round(pair: &VethPair, denied: &str) -> Result<bool> {
    println!("\n== sending {COUNT} UDP datagrams from each source");
    let rx = Receiver::bind(&pair.receiver)?;
    for (src, _) in SOURCES {
        let src: IpAddr = src.parse()?;
        let dst: IpAddr = if src.is_ipv4() {
            RECEIVER_V4.parse()?
        } else {
            RECEIVER_V6.parse()?
        };
        traffic::send(&pair.sender, src, dst, &src.to_string(), COUNT)?;
    }
    let allowed: Vec<&str> = SOURCES
        .iter()
        .filter(|(_, c)| !denied.contains(c))
        .map(|(s, _)| *s)
        .collect();
    let got = rx.receive_until(Duration::from_secs(10), |got| {
        allowed.iter().all(|a| got.get(*a) >= Some(&COUNT))
    });
    let mut as_expected = true;
    for (src, country) in SOURCES {
        let arrived = got.get(src).copied().unwrap_or(0);
        let is_denied = denied.contains(country);
        as_expected &= arrived == if is_denied { 0 } else { COUNT };
        println!(
            "  {src:<16} {country}  {arrived:>2}/{COUNT} arrived{}",
            if is_denied { "  (denied)" } else { "" }
        );
    }
    Ok(as_expected)
}
