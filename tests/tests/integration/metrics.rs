//! `stats --format prometheus`: real traffic across a veth pair, then the exposition text is
//! checked by Prometheus' own `promtool check metrics` and must carry the exact counts sent,
//! and zeros for the data's countries without traffic.

use std::{net::IpAddr, time::Duration};

use integration_tests::{
    cli::{country_packets, Instance},
    consts::{GB_V4, SE_V4, WAIT},
    netns::{VethPair, RECEIVER_V4},
    prometheus::{self, promtool_check},
    traffic::{self, Receiver},
    wait::wait_until,
};

const COUNT: usize = 12;

#[test]
fn the_prometheus_exposition_passes_promtool_and_counts_what_was_sent() {
    let pair = VethPair::new("prom").unwrap();
    for src in [GB_V4, SE_V4] {
        pair.add_source(src.parse().unwrap()).unwrap();
    }
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    inst.attach_test_db(&pair.receiver, &iface, &["--deny", "GB"])
        .unwrap();
    let rx = Receiver::bind(&pair.receiver).unwrap();
    let dst: IpAddr = RECEIVER_V4.parse().unwrap();
    for src in [GB_V4, SE_V4] {
        traffic::send(&pair.sender, src.parse().unwrap(), dst, src, COUNT).unwrap();
    }
    rx.receive_until(WAIT, |got| got.get(SE_V4).copied().unwrap_or(0) >= COUNT);
    inst.wait_for_stats(&iface, WAIT, |s| {
        country_packets(s, Some("GB"), "dropped") >= COUNT as u64
    })
    .unwrap();

    // Without the known-good copy (the wrong lib directory) the zero series cannot be known:
    // a warning says so.
    let elsewhere = inst.state_dir.join("no-lib");
    let thin = inst
        .command(None, &["stats", "--format", "prometheus"])
        .env("REGIONFILTER_LIB_DIR", &elsewhere)
        .output()
        .unwrap();
    assert!(thin.status.success());
    let err = String::from_utf8_lossy(&thin.stderr);
    assert!(
        err.contains(&format!(
            "warning: {iface}: no known-good copy in {}",
            elsewhere.display()
        )),
        "{err}"
    );

    let out = inst
        .command(None, &["stats", "--format", "prometheus"])
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    promtool_check(&text).unwrap();
    let series = |name: &str, country: &str, verdict: &str| {
        let labels = format!("interface=\"{iface}\",country=\"{country}\",verdict=\"{verdict}\"");
        prometheus::series(&text, name, &labels)
    };
    assert_eq!(
        series("regionfilter_packets_total", "GB", "dropped"),
        Some(COUNT as u64)
    );
    assert_eq!(
        series("regionfilter_packets_total", "GB", "passed"),
        Some(0)
    );
    assert_eq!(
        series("regionfilter_packets_total", "SE", "passed"),
        Some(COUNT as u64)
    );
    // Whole frames: Ethernet 14 + IPv4 20 + UDP 8 + the payload `TAG#i`.
    let gb_bytes: usize = (0..COUNT).map(|i| 42 + format!("{GB_V4}#{i}").len()).sum();
    assert_eq!(
        series("regionfilter_bytes_total", "GB", "dropped"),
        Some(gb_bytes as u64)
    );
    // A country of the data that sent nothing is a zero, not a missing series.
    assert_eq!(
        series("regionfilter_packets_total", "JP", "dropped"),
        Some(0)
    );
    assert!(text.contains(&format!(
        "regionfilter_generation{{interface=\"{iface}\"}} 1"
    )));
    assert!(text.contains("regionfilter_content_info{"), "{text}");
}

#[test]
fn stats_watch_shows_live_rates_while_traffic_flows() {
    let pair = VethPair::new("watch").unwrap();
    pair.add_source(GB_V4.parse().unwrap()).unwrap();
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    inst.attach_test_db(&pair.receiver, &iface, &["--deny", "GB"])
        .unwrap();
    let dst: IpAddr = RECEIVER_V4.parse().unwrap();
    let watching = std::sync::atomic::AtomicBool::new(true);
    let out = std::thread::scope(|scope| {
        // A paced flow from GB for as long as the watch runs, bounded at 10 s.
        scope.spawn(|| {
            wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
                if !watching.load(std::sync::atomic::Ordering::Relaxed) {
                    return true;
                }
                traffic::send(&pair.sender, GB_V4.parse().unwrap(), dst, GB_V4, 20).unwrap();
                false
            });
        });
        let out = inst.ok(
            None,
            &["stats", "--iface", &iface, "--watch", "0.5", "--count", "3"],
        );
        watching.store(false, std::sync::atomic::Ordering::Relaxed);
        out
    })
    .unwrap();
    // Three refreshes, each with its header; GB's drops show as a positive rate.
    assert_eq!(
        out.matches(&format!("{iface} (rates over ")).count(),
        3,
        "{out}"
    );
    let gb_rates: Vec<f64> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("GB "))
        .map(|l| l.split_whitespace().rev().nth(2).unwrap().parse().unwrap())
        .collect();
    assert!(gb_rates.iter().any(|&r| r > 0.0), "{out}");

    // The interface goes during a watch: its rates read zero, and the watch says why; the
    // filter is detached: the watch ends (exit 1) instead of showing zeros for ever. Bounded:
    // at most 50 refreshes of 0.2 s.
    use std::io::BufRead as _;
    let mut watch = inst
        .command(
            None,
            &[
                "stats", "--iface", &iface, "--watch", "0.2", "--count", "50",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut read_until = |part: &str| {
        for line in lines.by_ref() {
            let line = line.unwrap();
            let found = line.contains(part);
            seen.push(line);
            if found {
                return;
            }
        }
        panic!("no line with {part:?}: {seen:?}");
    };
    read_until("(rates over ");
    pair.receiver.ip(&["link", "del", &iface]).unwrap();
    read_until("GONE: the interface");
    let stats = inst.stats(&iface).unwrap();
    assert_eq!(stats["condition"], "gone", "{stats}");
    inst.ok(Some(&pair.receiver), &["detach", "--iface", &iface])
        .unwrap();
    read_until("was detached: its counters are gone");
    let done = watch.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(1));
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(err.contains("every filter watched was detached"), "{err}");
}

/// A filter denying GB with `--samples SAMPLES`, after `flood` datagrams from GB were sent and
/// counted as dropped; also how many seconds the flood took to be counted.
fn gb_flood(tag: &str, samples: &str, flood: usize) -> (VethPair, Instance, f64) {
    let pair = VethPair::new(tag).unwrap();
    pair.add_source(GB_V4.parse().unwrap()).unwrap();
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    inst.attach_test_db(
        &pair.receiver,
        &iface,
        &["--deny", "GB", "--samples", samples],
    )
    .unwrap();
    let dst: IpAddr = RECEIVER_V4.parse().unwrap();
    let started = std::time::Instant::now();
    traffic::send(&pair.sender, GB_V4.parse().unwrap(), dst, GB_V4, flood).unwrap();
    inst.wait_for_stats(&iface, WAIT, |s| {
        country_packets(s, Some("GB"), "dropped") >= flood as u64
    })
    .unwrap();
    (pair, inst, started.elapsed().as_secs_f64())
}

#[test]
fn drop_samples_hold_their_rate_limit_under_a_flood() {
    const RATE: u64 = 5;
    const FLOOD: usize = 2000;
    let (pair, inst, elapsed) = gb_flood("samples", &RATE.to_string(), FLOOD);
    let iface = pair.receiver_if.clone();
    let dst: IpAddr = RECEIVER_V4.parse().unwrap();
    let out = inst
        .ok(None, &["watch", "--iface", &iface, "--drain", "--json"])
        .unwrap();
    let samples: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Each CPU starts with one second of credit and earns RATE per second after that.
    let cpus = std::thread::available_parallelism().map_or(1, usize::from) as u64;
    let bound = cpus * RATE * (1 + elapsed.ceil() as u64);
    assert!(
        !samples.is_empty() && samples.len() as u64 <= bound,
        "{} samples of {FLOOD} drops in {elapsed:.2} s (bound {bound})",
        samples.len()
    );
    let first = &samples[0];
    assert_eq!(first["source"], GB_V4);
    assert_eq!(first["country"], "GB");
    assert_eq!(
        (first["reason"].as_str(), first["verdict"].as_str()),
        (Some("country"), Some("dropped"))
    );
    assert_eq!(
        (first["protocol"].as_str(), first["dport"].as_u64()),
        (Some("udp"), Some(9999))
    );
    assert_eq!(first["interface"], iface.as_str());
    // Nothing else was counted as a sample: the drops are all there.
    let stats = inst.stats(&iface).unwrap();
    assert_eq!(country_packets(&stats, Some("GB"), "dropped"), FLOOD as u64);

    // Following: a live sample arrives, then the filter is detached and the watch ends (exit
    // 1) instead of waiting for samples that can no longer come.
    use std::io::BufRead as _;
    let mut watch = inst
        .command(None, &["watch", "--iface", &iface])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let sampled = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        // A paced flow from GB until the first live sample, bounded at 10 s.
        scope.spawn(|| {
            wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
                if sampled.load(std::sync::atomic::Ordering::Relaxed) {
                    return true;
                }
                traffic::send(&pair.sender, GB_V4.parse().unwrap(), dst, GB_V4, 5).unwrap();
                false
            });
        });
        let first = lines.next().map(Result::unwrap);
        sampled.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(
            first.as_deref().is_some_and(|l| l.contains(GB_V4)),
            "{first:?}"
        );
    });
    inst.ok(Some(&pair.receiver), &["detach", "--iface", &iface])
        .unwrap();
    let mut status = None;
    if !wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        status = watch.try_wait().unwrap();
        status.is_some()
    }) {
        let _ = watch.kill();
        panic!("watch still waiting 20 s after the detach");
    }
    let status = status.expect("the watch exited");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut watch.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("every filter watched was detached"), "{err}");
}

/// With no reader, a flood fills the samples ring: what it had no room for is counted, and
/// `watch`, `stats` and the metrics say how many (they used to vanish without a word).
#[test]
fn samples_lost_to_a_full_ring_are_counted_and_said() {
    const FLOOD: usize = 12_000;
    // A budget no flood here can spend: every drop is offered to the ring.
    let (pair, inst, _) = gb_flood("sampfull", "100000", FLOOD);
    let iface = pair.receiver_if.clone();
    let stats = inst.stats(&iface).unwrap();
    let lost = stats["samples_lost"].as_u64().unwrap();
    let out = inst
        .output(None, &["watch", "--iface", &iface, "--drain", "--json"])
        .unwrap();
    let kept = String::from_utf8_lossy(&out.stdout).lines().count() as u64;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(lost > 0 && kept > 0, "lost {lost}, kept {kept}");
    assert_eq!(lost + kept, FLOOD as u64, "lost {lost}, kept {kept}");
    assert!(
        err.contains(&format!("{lost} drop samples lost (the ring was full")),
        "{err}"
    );
    let text = inst
        .ok(
            None,
            &["stats", "--iface", &iface, "--format", "prometheus"],
        )
        .unwrap();
    assert!(
        text.contains(&format!(
            "regionfilter_samples_lost_total{{interface=\"{iface}\"}} {lost}"
        )),
        "{text}"
    );
}
