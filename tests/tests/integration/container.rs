//! The container image of `cargo xtask image`, run by podman as the DaemonSet runs its pod: a
//! test namespace for the host's network namespace, bpffs and the state and lib directories
//! bind-mounted, only CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON. Real packets prove the filter;
//! containers stopped, restarted and upgraded under a stream of packets lose no allowed one
//! and deliver no denied one; a container killed mid-update leaves one whole policy.

use std::{
    collections::BTreeMap,
    fs,
    net::{IpAddr, SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use integration_tests::{
    agent::get,
    cli::{country_packets, fixture, Instance},
    consts::{GB_V4, SE_V4, WAIT},
    container::{PodSettings, Podman, CONTAINER_WAIT, LISTEN},
    netns::{NetNs, VethPair, RECEIVER_V4},
    prometheus::series,
    traffic::{self, Receiver},
    update::{write_lists, Probe, CHANGING, POLICY, UNDER_B},
    wait::wait_until,
};

/// The directory a test's agent.toml and data live in, mounted as /etc/regionfilter.
fn config_dir(inst: &Instance) -> PathBuf {
    let dir = inst.state_dir.with_file_name("etc");
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// An agent.toml filtering `iface` with `db` (a path inside the container) and `policy`.
fn write_config(dir: &Path, iface: &str, db: &str, policy: &str) {
    fs::write(
        dir.join("agent.toml"),
        format!(
            "metrics_listen = \"{LISTEN}\"\n\n[[interface]]\nname = \"{iface}\"\nmode = \"skb\"\n\
             db = [\"{db}\"]\n[interface.policy]\n{policy}\n"
        ),
    )
    .unwrap();
}

/// A configuration directory filtering `iface` with the bundled test database (copied in)
/// and `deny = ["GB"]`.
fn deny_gb_config(inst: &Instance, iface: &str) -> PathBuf {
    let etc = config_dir(inst);
    fs::copy(
        fixture("maxmind/GeoLite2-Country-Test.mmdb"),
        etc.join("country.mmdb"),
    )
    .unwrap();
    write_config(
        &etc,
        iface,
        "/etc/regionfilter/country.mmdb",
        "deny = [\"GB\"]",
    );
    etc
}

/// Waits until the agent in `ns` answers /healthz with 200.
fn wait_ready(ns: &NetNs) -> bool {
    wait_until(CONTAINER_WAIT, Duration::from_millis(20), || {
        get(ns, LISTEN, "/healthz").is_ok_and(|(code, _)| code == 200)
    })
}

#[test]
fn the_image_is_one_static_binary_and_its_licences_on_an_empty_base() {
    let podman = Podman::new().unwrap();
    let image = podman.inspect(&podman.image).unwrap();
    let labels = &image["Labels"];
    let label = |key: &str| {
        labels[format!("org.opencontainers.image.{key}")]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let version = label("version");
    assert!(!version.is_empty(), "{labels}");
    let revision = label("revision");
    let hex = revision.trim_end_matches("-dirty");
    assert!(
        hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "revision label {revision:?}"
    );
    assert_eq!(
        label("licenses"),
        "(MIT OR Apache-2.0) AND (MIT OR GPL-2.0-only)"
    );
    assert_eq!(
        image["Config"]["Entrypoint"],
        serde_json::json!(["/usr/bin/regionfilter"])
    );
    assert_eq!(
        image["Config"]["Cmd"],
        serde_json::json!(["agent", "--config", "/etc/regionfilter/agent.toml"])
    );

    assert_eq!(label("title"), "regionfilter");
    assert!(!label("description").is_empty() && !label("source").is_empty());

    // Exactly the binary and the licences: no shell, no libc, nothing else.
    assert_eq!(
        podman.image_paths(&podman.image).unwrap(),
        [
            "usr",
            "usr/bin",
            "usr/bin/regionfilter",
            "usr/share",
            "usr/share/licenses",
            "usr/share/licenses/regionfilter",
            "usr/share/licenses/regionfilter/LICENSE-APACHE",
            "usr/share/licenses/regionfilter/LICENSE-MIT",
            "usr/share/licenses/regionfilter/THIRD-PARTY",
        ]
    );

    // It runs with no loader or libc beside it: static.
    let version = podman
        .ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            &podman.image,
            "--version",
        ])
        .unwrap();
    assert_eq!(
        version,
        format!("regionfilter {}", env!("CARGO_PKG_VERSION"))
    );
    let shell = podman
        .output(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "/bin/sh",
            &podman.image,
            "-c",
            "true",
        ])
        .unwrap();
    assert!(!shell.status.success(), "the image has a shell");
}

/// Pairs of one denied (GB) and one allowed (SE) datagram, sent from one CPU at about
/// `PAIRS_PER_SECOND` until told to stop; bounded by `MAX_PAIRS` and `MAX_STREAM`.
const PAIRS_PER_SECOND: u64 = 1000;
const MAX_PAIRS: u64 = 120_000;
const MAX_STREAM: Duration = Duration::from_secs(120);

/// Sends the stream in `ns` until `stop`; how many pairs it sent.
fn stream(ns: &NetNs, stop: &AtomicBool) -> u64 {
    let dst = SocketAddr::new(RECEIVER_V4.parse().unwrap(), traffic::PORT);
    ns.enter(|| {
        let denied = UdpSocket::bind((GB_V4.parse::<IpAddr>().unwrap(), 0)).unwrap();
        let allowed = UdpSocket::bind((SE_V4.parse::<IpAddr>().unwrap(), 0)).unwrap();
        let started = Instant::now();
        let mut sent = 0;
        while !stop.load(Ordering::Acquire) && sent < MAX_PAIRS && started.elapsed() < MAX_STREAM {
            denied
                .send_to(format!("{GB_V4}#{sent}").as_bytes(), dst)
                .unwrap();
            allowed
                .send_to(format!("{SE_V4}#{sent}").as_bytes(), dst)
                .unwrap();
            sent += 1;
            // Pacing, so the receiving socket never overflows: a lost datagram must mean
            // a filtering fault, not a full buffer.
            let due = Duration::from_micros(sent * 1_000_000 / PAIRS_PER_SECOND);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
        sent
    })
    .unwrap()
}

/// Tells the sender to stop and the receiver to expect nothing more.
struct StopOnDrop<'a>(&'a AtomicBool, &'a AtomicU64);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Release);
            self.1.store(0, Ordering::Release);
        }
    }
}

#[test]
fn a_pod_like_container_filters_and_restarts_and_upgrades_under_traffic_without_a_gap() {
    let pair = VethPair::new("ctr").unwrap();
    for src in [GB_V4, SE_V4] {
        pair.add_source(src.parse().unwrap()).unwrap();
    }
    let ns = &pair.receiver;
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    let etc = deny_gb_config(&inst, &iface);
    // Declared after the instance: containers go before the directories they mount.
    let podman = Podman::new().unwrap();
    let upgrade = podman
        .derive("upgrade", "org.opencontainers.image.revision=upgrade-test")
        .unwrap();

    let first = podman.start_agent(&podman.image, ns, &inst, &etc).unwrap();
    assert!(wait_ready(ns), "{}", podman.logs(&first).unwrap());
    podman
        .wait_for_line(&first, &["event=attached", &format!("iface={iface}")])
        .unwrap();
    let (code, metrics) = get(ns, LISTEN, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        series(
            &metrics,
            "regionfilter_interface_ready",
            &format!("interface=\"{iface}\"")
        ),
        Some(1)
    );

    // Real packets: GB dropped, SE delivered.
    let rx = Receiver::bind(ns).unwrap();
    let dst: IpAddr = RECEIVER_V4.parse().unwrap();
    for src in [GB_V4, SE_V4] {
        traffic::send(&pair.sender, src.parse().unwrap(), dst, src, 10).unwrap();
    }
    let got = rx.receive_until(WAIT, |got| got.get(SE_V4).copied().unwrap_or(0) >= 10);
    assert_eq!(got.get(SE_V4), Some(&10));
    assert_eq!(got.get(GB_V4), None, "GB is denied");
    let counted = |stats: &serde_json::Value| {
        (
            country_packets(stats, Some("GB"), "dropped"),
            country_packets(stats, Some("SE"), "passed"),
        )
    };
    let before = counted(
        &inst
            .wait_for_stats(&iface, WAIT, |s| counted(s) == (10, 10))
            .unwrap(),
    );

    // The stream flows while the container is stopped and replaced twice: by the same
    // image, then by the upgrade.
    let sender_done = AtomicBool::new(false);
    // How many allowed datagrams the receiver must see before it stops (known at the end).
    let expected = AtomicU64::new(u64::MAX);
    let mut switches = Vec::new();
    let mut running = first;
    let (pairs, after, delivered) = std::thread::scope(|scope| {
        let receiver = scope.spawn(|| {
            let mut total = BTreeMap::new();
            let deadline = Instant::now() + MAX_STREAM + WAIT;
            while (total.get(SE_V4).copied().unwrap_or(0) as u64) < expected.load(Ordering::Acquire)
                && Instant::now() < deadline
            {
                for (tag, n) in rx.receive_until(Duration::from_millis(200), |_| false) {
                    *total.entry(tag).or_insert(0) += n;
                }
            }
            total
        });
        let sender = scope.spawn(|| stream(&pair.sender, &sender_done));
        // A failing assertion below stops both threads at once, not at their bounds.
        let _stop_on_panic = StopOnDrop(&sender_done, &expected);
        for image in [podman.image.clone(), upgrade.clone()] {
            let started = Instant::now();
            assert_eq!(
                podman.stop(&running).unwrap(),
                0,
                "{}",
                podman.logs(&running).unwrap()
            );
            let stopped = started.elapsed();
            running = podman.start_agent(&image, ns, &inst, &etc).unwrap();
            podman
                .wait_for_line(&running, &["event=adopted", &format!("iface={iface}")])
                .unwrap();
            assert!(wait_ready(ns), "{}", podman.logs(&running).unwrap());
            switches.push((image, stopped, started.elapsed()));
            let log = podman.logs(&running).unwrap();
            assert!(
                !log.contains("event=attached") && !log.contains("event=updated"),
                "the new agent adopts without a switch:\n{log}"
            );
        }
        sender_done.store(true, Ordering::Release);
        let pairs = sender.join().unwrap();
        // The filter has judged everything sent once its counters reach the totals.
        let after = counted(
            &inst
                .wait_for_stats(&iface, WAIT, |s| {
                    counted(s) == (before.0 + pairs, before.1 + pairs)
                })
                .unwrap(),
        );
        expected.store(pairs, Ordering::Release);
        (pairs, after, receiver.join().unwrap())
    });
    let delivered_denied = delivered.get(GB_V4).copied().unwrap_or(0);
    let delivered_allowed = delivered.get(SE_V4).copied().unwrap_or(0) as u64;
    println!(
        "restart measurement: {pairs} pairs at {PAIRS_PER_SECOND}/s across {} container \
         replacements; denied: {pairs} sent, {} dropped by the filter, {delivered_denied} \
         delivered; allowed: {pairs} sent, {delivered_allowed} delivered, {} lost",
        switches.len(),
        after.0 - before.0,
        pairs.saturating_sub(delivered_allowed)
    );
    for (image, stopped, ready) in &switches {
        println!(
            "restart measurement: {image}: old container stopped in {} ms, new one ready {} ms after the stop began",
            stopped.as_millis(),
            ready.as_millis()
        );
    }
    assert!(pairs > 0);
    assert_eq!(delivered_denied, 0, "denied packets delivered");
    assert_eq!(delivered_allowed, pairs, "allowed packets lost");
    assert_eq!(after, (before.0 + pairs, before.1 + pairs));

    assert_eq!(podman.stop(&running).unwrap(), 0);
    assert_eq!(inst.attached(), [iface], "the filter stays after the pod");
}

/// The content hash the kernel's active half records.
fn active_hash(pin_dir: &Path) -> String {
    let maps = filter_user::kernel::maps::FilterMaps::open_pinned(pin_dir).unwrap();
    let active = maps.halves[maps.active_half().unwrap()].settings().unwrap();
    assert_eq!(active.complete, 1, "the active half is complete");
    filter_user::kernel::maps::hash_hex(&active.content_hash)
}

/// The content hash of a known-good copy (`current.rgnf`, `next.rgnf`), if it exists.
fn known_good_hash(inst: &Instance, iface: &str, name: &str) -> Option<String> {
    let path = inst.lib_dir().join(iface).join(name);
    path.exists().then(|| {
        filter_user::compile::artifact::Artifact::read(&path)
            .unwrap()
            .header
            .content_hash
    })
}

#[test]
fn a_container_killed_mid_update_leaves_one_whole_policy() {
    let pair = VethPair::new("ctk").unwrap();
    let ns = &pair.receiver;
    let inst = Instance::new();
    let etc = config_dir(&inst);
    write_lists(&etc);
    let iface = pair.receiver_if.clone();
    let policy = format!("deny = [\"{}\"]\nunknown = \"{}\"", POLICY[1], POLICY[3]);
    let configure = |list: char| {
        let db = format!("/etc/regionfilter/{}.txt", list.to_ascii_lowercase());
        write_config(&etc, &iface, &db, &policy);
    };
    configure('A');
    let podman = Podman::new().unwrap();
    let mut running = podman.start_agent(&podman.image, ns, &inst, &etc).unwrap();
    assert!(wait_ready(ns), "{}", podman.logs(&running).unwrap());
    let pin_dir = inst.pin_root.join(&iface);
    let mut probe = Probe::from_pin(&pin_dir);
    assert_eq!(probe.answering_list(), 'A');

    // How long a reload's switch takes here, so that kills land all over it.
    configure('B');
    // Signals go straight to the agent's PID: a `podman kill` process would add its own
    // start-up time, much longer than the switch, to where each kill lands.
    let pid = podman.pid(&running).unwrap();
    let started = Instant::now();
    // SAFETY: kill(2) on the agent's process, which keeps running.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    // One source's verdict: the whole-list check could catch the switch between sources.
    assert!(wait_until(CONTAINER_WAIT, Duration::from_millis(1), || {
        probe.verdict(CHANGING[0]) == UNDER_B
    }));
    let full = started.elapsed();

    let mut outcomes = [0usize; 2];
    let mut kills = 0u64;
    while kills < 6 || (outcomes.contains(&0) && kills < 16) {
        kills += 1;
        let before = probe.answering_list();
        let target = if before == 'A' { 'B' } else { 'A' };
        configure(target);
        // Spread over 0 to 1.2 times a whole switch; the delay picks where the kill lands,
        // nothing waits on it for correctness.
        let delay = full.mul_f64(1.2 * ((kills * 7) % 16) as f64 / 16.0);
        let pid = podman.pid(&running).unwrap();
        // SAFETY: kill(2) on the agent's process, alive until the SIGKILL below.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
        std::thread::sleep(delay);
        // SAFETY: as above; the process may have finished its switch, not exited.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        podman.exit_code(&running).unwrap();

        // One whole policy: every source answers from one list, the active half is
        // complete, and a known-good copy holds what the kernel runs: the current one, or
        // the one staged before the switch when the kill came between switch and rename.
        let after = probe.answering_list();
        outcomes[usize::from(after != before)] += 1;
        let copies = |name: &str| known_good_hash(&inst, &iface, name);
        let running_hash = active_hash(&pin_dir);
        assert!(
            [copies("current.rgnf"), copies("next.rgnf")].contains(&Some(running_hash.clone())),
            "no known-good copy of what the kernel runs after kill {kills}"
        );

        // The next container converges on what its configuration asks for, and its
        // known-good copy is what the kernel runs.
        running = podman.start_agent(&podman.image, ns, &inst, &etc).unwrap();
        assert!(wait_ready(ns), "{}", podman.logs(&running).unwrap());
        assert_eq!(probe.answering_list(), target, "after kill {kills}");
        assert_eq!(
            copies("current.rgnf"),
            Some(active_hash(&pin_dir)),
            "known-good copy after kill {kills} and a restart"
        );
    }
    println!(
        "kills mid-update: {kills} over a {} ms switch; kept the old policy {}, switched {}",
        full.as_millis(),
        outcomes[0],
        outcomes[1]
    );
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "kept old / switched: {outcomes:?} in {kills} kills over {full:?}"
    );
    assert_eq!(podman.stop(&running).unwrap(), 0);
}

#[test]
fn without_the_pods_seccomp_or_perfmon_the_agent_says_what_is_missing_and_attaches_nothing() {
    let pair = VethPair::new("ctp").unwrap();
    let ns = &pair.receiver;
    let inst = Instance::new();
    let etc = deny_gb_config(&inst, &pair.receiver_if);
    let podman = Podman::new().unwrap();

    // The runtime's default seccomp profile: the agent runs, cannot create a map, says why,
    // and is not ready.
    let confined = PodSettings {
        seccomp_unconfined: false,
        ..PodSettings::default()
    };
    let name = podman
        .start_agent_with(&podman.image, ns, &inst, &etc, &confined)
        .unwrap();
    let line = podman
        .wait_for_line(&name, &["event=reconcile_failed"])
        .unwrap();
    assert!(
        line.contains("its seccomp profile must allow bpf(2)"),
        "{line}"
    );
    podman
        .wait_for_line(&name, &["event=reconciled", "ready=0"])
        .unwrap();
    assert_eq!(get(ns, LISTEN, "/healthz").unwrap().0, 503);
    assert_eq!(podman.stop(&name).unwrap(), 0);
    assert!(inst.attached().is_empty());

    // Without CAP_PERFMON: refused at start, naming it.
    let without_perfmon = PodSettings {
        capabilities: "CAP_BPF,CAP_NET_ADMIN",
        ..PodSettings::default()
    };
    let name = podman
        .start_agent_with(&podman.image, ns, &inst, &etc, &without_perfmon)
        .unwrap();
    assert_eq!(podman.exit_code(&name).unwrap(), 1);
    let log = podman.logs(&name).unwrap();
    assert!(
        log.contains(
            "regionfilter agent needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON and lacks CAP_PERFMON"
        ),
        "{log}"
    );
    assert!(inst.attached().is_empty());
}

/// The shape of the DaemonSet's own configuration: the database downloaded over HTTPS (here
/// from a server on the namespace's loopback, under a private CA named by `ca_file`), native
/// mode, JSON logs. The empty image has no CA store and no libc: TLS and the download work
/// from what the binary carries.
#[test]
fn the_deploy_configuration_shape_downloads_over_https_from_the_empty_image() {
    let pair = VethPair::new("cth").unwrap();
    let ns = &pair.receiver;
    let inst = Instance::new();
    let etc = config_dir(&inst);
    let db = fs::read(fixture("maxmind/GeoLite2-Country-Test.mmdb")).unwrap();
    let server = integration_tests::http::Server::start_tls_in(ns, move |_| {
        integration_tests::http::Reply::ok(db.clone())
    })
    .unwrap();
    let _ = server.ca().unwrap().write_pem(&etc);
    let iface = pair.receiver_if.clone();
    fs::write(
        etc.join("agent.toml"),
        format!(
            "metrics_listen = \"{LISTEN}\"\nlog_format = \"json\"\nca_file = \"ca.pem\"\n\n\
             [[interface]]\nname = \"{iface}\"\nmode = \"native\"\nurl = \"{}\"\n\
             [interface.policy]\ndeny = [\"GB\"]\n",
            server.url("/geolite2-country.mmdb")
        ),
    )
    .unwrap();
    let podman = Podman::new().unwrap();
    let name = podman.start_agent(&podman.image, ns, &inst, &etc).unwrap();
    let attached = podman
        .wait_for_line(&name, &["\"event\":\"attached\"", &iface])
        .unwrap();
    assert!(attached.starts_with('{'), "JSON log lines: {attached}");
    assert!(wait_ready(ns), "{}", podman.logs(&name).unwrap());
    assert_eq!(server.requests(), 1);
    let status = inst.ok(Some(ns), &["status"]).unwrap();
    assert!(status.contains("native mode"), "{status}");
    assert_eq!(podman.stop(&name).unwrap(), 0);
}
