//! `regionfilter agent` in the real kernel: it attaches what is missing, keeps going past an
//! interface that fails, serves counts of real traffic at /metrics, reloads on SIGHUP (a bad
//! file changes nothing), stops a pass at SIGTERM before its next interface, leaves its
//! filters attached on SIGTERM and adopts them on restart without a switch, restores from the
//! known-good copy when the data is unavailable, logs drop samples within its own limit, and
//! its metrics server outlives running out of file descriptors. Unit files are checked by
//! `systemd-analyze verify`.

use std::{fs, net::IpAddr, path::PathBuf, process::Command, time::Duration};

use integration_tests::{
    agent::{get, Agent, LINE_WAIT},
    cli::{fixture, Instance},
    consts::{GB_V4, SE_V4, WAIT},
    netns::{VethPair, RECEIVER_V4},
    prometheus::{promtool_check, series},
    traffic::{self, Receiver},
    wait::wait_until,
};

const COUNT: usize = 12;
const LISTEN: &str = "127.0.0.1:9877";
/// An interface name no test creates: the agent must fail on it and carry on.
const MISSING: &str = "rfnosuch0";

fn config(inst: &Instance, iface: &str, deny: &str, extra_iface: bool, db: &str) -> PathBuf {
    let db_path = if db.is_empty() {
        fixture("maxmind/GeoLite2-Country-Test.mmdb")
    } else {
        PathBuf::from(db)
    };
    let mut text = format!(
        "metrics_listen = \"{LISTEN}\"\nlog_samples = 3\n\n\
         [[interface]]\nname = \"{iface}\"\nmode = \"skb\"\ndb = [\"{}\"]\n\
         [interface.policy]\ndeny = [\"{deny}\"]\nsamples = 1000\n",
        db_path.display()
    );
    if extra_iface {
        // Listed first: its failure must not keep the real interface from being filtered.
        text = text.replacen(
            "[[interface]]",
            &format!(
                "[[interface]]\nname = \"{MISSING}\"\ndb = [\"{}\"]\npolicy = {{ deny = [\"GB\"] }}\n\n[[interface]]",
                db_path.display()
            ),
            1,
        );
    }
    fs::create_dir_all(&inst.state_dir).unwrap();
    let path = inst.state_dir.join("agent.toml");
    fs::write(&path, text).unwrap();
    path
}

/// A namespace pair whose receiver an agent filters (`deny = ["GB"]`, the test database), the
/// agent's first pass done and the interface ready.
fn ready_agent(tag: &str) -> (VethPair, Instance, Agent) {
    let pair = VethPair::new(tag).unwrap();
    let inst = Instance::new();
    let path = config(&inst, &pair.receiver_if, "GB", false, "");
    let mut agent = Agent::start(&inst, &pair.receiver, &path, &[]).unwrap();
    agent
        .wait_for(&["event=reconciled", "trigger=start", "ready=1"])
        .unwrap();
    (pair, inst, agent)
}

fn ready(text: &str, iface: &str) -> Option<u64> {
    series(
        text,
        "regionfilter_interface_ready",
        &format!("interface=\"{iface}\""),
    )
}

fn generation(text: &str, iface: &str) -> Option<u64> {
    series(
        text,
        "regionfilter_generation",
        &format!("interface=\"{iface}\""),
    )
}

#[test]
fn the_agent_attaches_serves_metrics_reloads_and_leaves_filters_on_exit() {
    let pair = VethPair::new("agent").unwrap();
    for src in [GB_V4, SE_V4] {
        pair.add_source(src.parse().unwrap()).unwrap();
    }
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    let ns = &pair.receiver;
    let path = config(&inst, &iface, "GB", true, "");
    let mut agent = Agent::start(&inst, ns, &path, &[]).unwrap();
    agent
        .wait_for(&["event=reconcile_failed", &format!("iface={MISSING}")])
        .unwrap();
    agent
        .wait_for(&["event=attached", &format!("iface={iface}")])
        .unwrap();
    agent
        .wait_for(&["event=reconciled", "trigger=start", "ready=1", "of=2"])
        .unwrap();
    assert_eq!(inst.attached(), std::slice::from_ref(&iface));

    let (code, body) = get(ns, LISTEN, "/healthz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains(MISSING), "{body}");

    let rx = Receiver::bind(ns).unwrap();
    let dst: IpAddr = RECEIVER_V4.parse().unwrap();
    for src in [GB_V4, SE_V4] {
        traffic::send(&pair.sender, src.parse().unwrap(), dst, src, COUNT).unwrap();
    }
    let got = rx.receive_until(WAIT, |got| got.get(SE_V4).copied().unwrap_or(0) >= COUNT);
    assert_eq!(got.get(GB_V4), None, "GB is denied");
    inst.wait_for_stats(&iface, WAIT, |s| {
        integration_tests::cli::country_packets(s, Some("GB"), "dropped") >= COUNT as u64
    })
    .unwrap();

    let (code, text) = get(ns, LISTEN, "/metrics").unwrap();
    assert_eq!(code, 200);
    let label = |country: &str, verdict: &str| {
        format!("interface=\"{iface}\",country=\"{country}\",verdict=\"{verdict}\"")
    };
    let count = COUNT as u64;
    assert_eq!(
        series(&text, "regionfilter_packets_total", &label("GB", "dropped")),
        Some(count)
    );
    assert_eq!(
        series(&text, "regionfilter_packets_total", &label("SE", "passed")),
        Some(count)
    );
    // A country of the data with no traffic is a zero, not a missing series.
    assert_eq!(
        series(&text, "regionfilter_packets_total", &label("JP", "dropped")),
        Some(0)
    );
    let on = |name: &str, i: &str| series(&text, name, &format!("interface=\"{i}\""));
    assert_eq!(on("regionfilter_interface_ready", &iface), Some(1));
    assert_eq!(on("regionfilter_interface_ready", MISSING), Some(0));
    assert_eq!(on("regionfilter_refresh_failures_total", MISSING), Some(1));
    assert_eq!(on("regionfilter_refresh_failures_total", &iface), Some(0));
    assert!(
        on(
            "regionfilter_last_refresh_success_timestamp_seconds",
            &iface
        )
        .unwrap()
            > 0
    );
    assert_eq!(generation(&text, &iface), Some(1));

    // The drop samples of twelve packets in a burst, logged at most three a second.
    agent
        .wait_for(&["event=drop_sample", "country=GB"])
        .unwrap();
    agent.wait_for(&["event=samples_held_back"]).unwrap();

    // A bad file: an error line, and nothing changes.
    fs::write(&path, "refresh = \"soon\"\n").unwrap();
    agent.signal(libc::SIGHUP);
    agent
        .wait_for(&["event=config_error", "keeping the running configuration"])
        .unwrap();
    let (_, text) = get(ns, LISTEN, "/metrics").unwrap();
    assert_eq!(generation(&text, &iface), Some(1));

    // One agent per state directory.
    let second = inst
        .fails(Some(ns), &["agent", "--config", path.to_str().unwrap()])
        .unwrap();
    assert!(
        second.contains("another regionfilter agent is running"),
        "{second}"
    );

    // A policy the guards refuse (ZW has no prefixes in the data): the filter stays as it
    // was, and the interface is not ready, for the refusal's reason.
    // The line offers no option the agent lacks: `--force` is for a person, by hand.
    config(&inst, &iface, "GB\", \"ZW", true, "");
    agent.signal(libc::SIGHUP);
    let refused = agent
        .wait_for(&[
            "event=reconcile_failed",
            &format!("iface={iface}"),
            "reason=refused",
        ])
        .unwrap();
    assert!(
        refused.contains(&format!("hint=\"retried until the data or config changes; to accept it by hand: regionfilter update --iface {iface} with the configured data and policy and --force\""))
            && !refused.contains("override with --force"),
        "{refused}"
    );
    agent
        .wait_for(&["event=reconciled", "trigger=reload", "ready=0", "of=2"])
        .unwrap();
    let (code, body) = get(ns, LISTEN, "/healthz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains(&format!("{iface}: ")) && body.contains("ZW"),
        "{body}"
    );
    let (_, text) = get(ns, LISTEN, "/metrics").unwrap();
    assert_eq!(generation(&text, &iface), Some(1));
    assert_eq!(ready(&text, &iface), Some(0));

    // A new policy, and the missing interface gone from the file: one switch, then ready.
    let path = config(&inst, &iface, "SE", false, "");
    agent.signal(libc::SIGHUP);
    agent.wait_for(&["event=reloaded"]).unwrap();
    agent
        .wait_for(&["event=updated", &format!("iface={iface}")])
        .unwrap();
    agent
        .wait_for(&["event=reconciled", "trigger=reload", "ready=1", "of=1"])
        .unwrap();
    assert_eq!(
        get(ns, LISTEN, "/healthz").unwrap(),
        (200, "ready\n".into())
    );

    // SIGTERM leaves the filter on.
    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{status}\n{}", log.join("\n"));
    assert!(log.iter().any(|l| l.contains("event=stopped")));
    assert_eq!(inst.attached(), std::slice::from_ref(&iface));

    // A restart adopts it: no switch, no moment without filtering. It starts with sample
    // logging off.
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replace("log_samples = 3", "log_samples = 0")).unwrap();
    let mut agent = Agent::start(&inst, ns, &path, &["--detach-on-exit", "--json"]).unwrap();
    let line = agent.wait_for(&["\"event\":\"adopted\""]).unwrap();
    assert!(line.contains(&format!("\"iface\":\"{iface}\"")), "{line}");
    agent
        .wait_for(&["\"event\":\"reconciled\"", "\"ready\":\"1\""])
        .unwrap();
    let (_, text) = get(ns, LISTEN, "/metrics").unwrap();
    assert_eq!(generation(&text, &iface), Some(2));

    // Logging turned on by a reload: the drops after it are logged.
    fs::write(
        &path,
        fs::read_to_string(&path)
            .unwrap()
            .replace("log_samples = 0", "log_samples = 3"),
    )
    .unwrap();
    agent.signal(libc::SIGHUP);
    agent
        .wait_for(&[
            "\"event\":\"reconciled\"",
            "\"trigger\":\"reload\"",
            "\"ready\":\"1\"",
        ])
        .unwrap();
    traffic::send(&pair.sender, SE_V4.parse().unwrap(), dst, SE_V4, COUNT).unwrap();
    agent
        .wait_for(&["\"event\":\"drop_sample\"", "\"country\":\"SE\""])
        .unwrap();
    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{}", log.join("\n"));
    assert!(log.iter().any(|l| l.contains("\"event\":\"detached\"")));
    assert!(inst.attached().is_empty());
}

fn entry(iface: &str, source: &str) -> String {
    format!(
        "[[interface]]\nname = \"{iface}\"\nmode = \"skb\"\n{source}\npolicy = {{ deny = [\"GB\"] }}\n\n"
    )
}

fn db_source() -> String {
    format!(
        "db = [\"{}\"]",
        fixture("maxmind/GeoLite2-Country-Test.mmdb").display()
    )
}

/// Interfaces progress independently: one whose first attach waits for another command's
/// lock holds back neither the other interface nor SIGTERM, which ends the wait (nothing
/// changed on that interface) instead of waiting for the lock.
#[test]
fn one_interface_held_by_another_command_holds_back_neither_the_other_nor_a_stop() {
    let pair = VethPair::new("agterm").unwrap();
    let inst = Instance::new();
    let ns = &pair.receiver;
    let (first, second) = (pair.receiver_if.clone(), format!("{}b", pair.receiver_if));
    ns.add_veth(&second).unwrap();
    fs::create_dir_all(&inst.state_dir).unwrap();
    let path = inst.state_dir.join("agent.toml");
    let text = format!(
        "metrics_listen = \"{LISTEN}\"\n\n{}{}",
        entry(&first, &db_source()),
        entry(&second, &db_source())
    );
    fs::write(&path, text).unwrap();
    // Another command holds the first interface, so its first attach waits there.
    let lock_path = inst.state_dir.join(format!("{first}.lock"));
    let lock = fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    lock.lock().unwrap();
    let mut agent = Agent::start(&inst, ns, &path, &[]).unwrap();
    agent
        .wait_for(&["event=attached", &format!("iface={second} ")])
        .unwrap();
    assert!(
        wait_until(LINE_WAIT, Duration::ZERO, || agent.has_open(&lock_path)),
        "never: the agent reached the lock"
    );
    let asked = std::time::Instant::now();
    let (status, log) = agent.stop().unwrap();
    let took = asked.elapsed();
    assert!(status.success(), "{status}\n{}", log.join("\n"));
    assert!(
        log.iter().any(|l| l.contains("event=stopping")),
        "{}",
        log.join("\n")
    );
    // LOCK_WAIT is 30 s: a stop that waited for the lock would take that long.
    assert!(took < Duration::from_secs(20), "the stop took {took:?}");
    assert!(
        !log.iter()
            .any(|l| l.contains("event=attached") && l.contains(&format!("iface={first} "))),
        "{}",
        log.join("\n")
    );
    drop(lock);
    assert_eq!(inst.attached(), std::slice::from_ref(&second));
    inst.ok(Some(ns), &["detach", "--iface", &second]).unwrap();
}

/// A download that stalls (a real loopback server that sends headers and then nothing) holds
/// back only its own interface: the other is attached, a SIGHUP is handled, a filter lost
/// with its interface is put back from its known-good copy, and SIGTERM ends the agent at
/// once, all while the download still hangs.
#[test]
fn a_stalled_download_holds_back_no_other_interface_nor_signals_nor_repairs() {
    let pair = VethPair::new("agstall").unwrap();
    let inst = Instance::new();
    let ns = &pair.receiver;
    let local = pair.receiver_if.clone();
    let slow = format!("{local}s");
    ns.add_veth(&slow).unwrap();
    let server = integration_tests::http::Stall::start_in(ns).unwrap();
    fs::create_dir_all(&inst.state_dir).unwrap();
    let path = inst.state_dir.join("agent.toml");
    // Limits far beyond the test: the download hangs for as long as the test runs.
    let text = format!(
        "metrics_listen = \"{LISTEN}\"\ndownload_timeout = \"1h\"\ndownload_stall = \"30m\"\n\n{}{}",
        entry(&slow, &format!("url = \"{}\"", server.url("/db.mmdb"))),
        entry(&local, &db_source())
    );
    fs::write(&path, text).unwrap();
    let mut agent = Agent::start(&inst, ns, &path, &[]).unwrap();
    agent
        .wait_for(&["event=reconciled", &format!("iface={local} "), "ready=1"])
        .unwrap();
    assert!(
        wait_until(LINE_WAIT, Duration::ZERO, || {
            server.requests.load(std::sync::atomic::Ordering::Acquire) > 0
        }),
        "never: the slow download started"
    );
    agent.signal(libc::SIGHUP);
    agent.wait_for(&["event=reloaded"]).unwrap();
    agent
        .wait_for(&[
            "event=reconciled",
            &format!("iface={local} "),
            "trigger=reload",
        ])
        .unwrap();
    // The filtered interface is deleted and re-created (a network restart).
    ns.ip(&["link", "del", &local]).unwrap();
    agent
        .wait_for(&["event=filter_lost", &format!("iface={local} "), "is gone"])
        .unwrap();
    ns.add_veth(&local).unwrap();
    agent
        .wait_for(&["event=restored", &format!("iface={local} ")])
        .unwrap();
    agent
        .wait_for(&[
            "event=reconciled",
            &format!("iface={local} "),
            "trigger=repair",
        ])
        .unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&inst.ok(Some(ns), &["status", "--json"]).unwrap()).unwrap();
    assert_eq!(status["interfaces"][0]["iface"], local.as_str(), "{status}");
    assert_eq!(status["interfaces"][0]["condition"], "attached", "{status}");
    let (code, body) = get(ns, LISTEN, "/healthz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains(&format!("{slow}: not reconciled yet"))
            && !body.contains(&format!("{local}:")),
        "{body}"
    );
    assert!(server.requests.load(std::sync::atomic::Ordering::Acquire) >= 1);
    let asked = std::time::Instant::now();
    let (status, log) = agent.stop().unwrap();
    let took = asked.elapsed();
    assert!(status.success(), "{status}\n{}", log.join("\n"));
    assert!(took < Duration::from_secs(20), "the stop took {took:?}");
    assert!(
        !log.iter()
            .any(|l| l.contains(&format!("iface={slow} ")) && l.contains("event=attached")),
        "{}",
        log.join("\n")
    );
    assert_eq!(inst.attached(), std::slice::from_ref(&local));
    inst.ok(Some(ns), &["detach", "--iface", &local]).unwrap();
}

/// A data server under a private CA (real HTTPS on the namespace's loopback): without its CA
/// the download is refused before any request and the pass fails saying why; a reload naming
/// a CA file without a certificate is a config_error that changes nothing; one naming the CA
/// (relative to the configuration file) attaches the filter from the download.
#[test]
fn a_private_ca_is_trusted_through_ca_file_and_a_bad_one_is_refused_at_reload() {
    let pair = VethPair::new("agca").unwrap();
    let inst = Instance::new();
    let (iface, ns) = (pair.receiver_if.clone(), &pair.receiver);
    let db = fs::read(fixture("maxmind/GeoLite2-Country-Test.mmdb")).unwrap();
    let server = integration_tests::http::Server::start_tls_in(ns, move |_| {
        integration_tests::http::Reply::ok(db.clone())
    })
    .unwrap();
    fs::create_dir_all(&inst.state_dir).unwrap();
    let _ = server.ca().unwrap().write_pem(&inst.state_dir);
    fs::write(inst.state_dir.join("no-certificate.pem"), "# empty\n").unwrap();
    let path = inst.state_dir.join("agent.toml");
    let source = format!("url = \"{}\"", server.url("/GeoLite2-Country-Test.mmdb"));
    let write = |top: &str| {
        let text = format!(
            "metrics_listen = \"{LISTEN}\"\n{top}\n{}",
            entry(&iface, &source)
        );
        fs::write(&path, text).unwrap();
    };
    write("");
    let mut agent = Agent::start(&inst, ns, &path, &[]).unwrap();
    agent
        .wait_for(&[
            "event=reconcile_failed",
            &format!("iface={iface} "),
            "certificate is not trusted (invalid peer certificate: UnknownIssuer)",
        ])
        .unwrap();
    assert_eq!(server.requests(), 0);
    assert!(inst.attached().is_empty());

    write("ca_file = \"no-certificate.pem\"");
    agent.signal(libc::SIGHUP);
    agent
        .wait_for(&[
            "event=config_error",
            "ca_file: the CA file",
            "holds no certificate",
            "keeping the running configuration",
        ])
        .unwrap();
    write("ca_file = \"ca.pem\"");
    agent.signal(libc::SIGHUP);
    agent.wait_for(&["event=reloaded"]).unwrap();
    agent
        .wait_for(&["event=attached", &format!("iface={iface}")])
        .unwrap();
    assert_eq!(server.requests(), 1);
    assert_eq!(inst.attached(), std::slice::from_ref(&iface));
    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{}", log.join("\n"));
    inst.ok(Some(ns), &["detach", "--iface", &iface]).unwrap();
}

/// An interface renamed away and a new one created under the configured name: the filter
/// follows the name. Meanwhile the interface is not ready, even with the status record gone
/// (readiness comes from the kernel's link, not from a record's absence).
#[test]
fn a_filter_renamed_away_follows_its_name_and_readiness_comes_from_the_kernel() {
    let (_pair, inst, mut agent) = ready_agent("agrename");
    let (iface, ns) = (_pair.receiver_if.clone(), &_pair.receiver);
    fs::remove_file(inst.state_dir.join(format!("{iface}.json"))).unwrap();
    let away = format!("{iface}x");
    ns.ip(&["link", "set", &iface, "down"]).unwrap();
    ns.ip(&["link", "set", &iface, "name", &away]).unwrap();
    agent
        .wait_for(&[
            "event=filter_lost",
            &format!("iface={iface} "),
            &format!("now named {away}"),
        ])
        .unwrap();
    let (code, body) = get(ns, LISTEN, "/healthz").unwrap();
    assert_eq!(code, 503, "{body}");
    let (_, text) = get(ns, LISTEN, "/metrics").unwrap();
    assert_eq!(ready(&text, &iface), Some(0));
    ns.add_veth(&iface).unwrap();
    agent
        .wait_for(&["event=moved_off", &format!("iface={iface} ")])
        .unwrap();
    agent
        .wait_for(&[
            "event=reconciled",
            &format!("iface={iface} "),
            "trigger=repair",
            "ready=1",
        ])
        .unwrap();
    assert_eq!(
        get(ns, LISTEN, "/healthz").unwrap(),
        (200, "ready\n".into())
    );
    // The program is on the new interface, and off the renamed one.
    let xdp_on = |name: &str| ns.ip(&["link", "show", name]).unwrap().contains("xdp");
    assert!(xdp_on(&iface) && !xdp_on(&away));
    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{}", log.join("\n"));
    inst.ok(Some(ns), &["detach", "--iface", &iface]).unwrap();
}

/// A pass that failed (a refused policy) and then a detach by hand: the watch sees it at its
/// next check (5 s), not at the retry minutes later.
#[test]
fn a_detach_by_hand_after_a_failed_pass_is_seen_at_the_next_check() {
    let (pair, inst, mut agent) = ready_agent("agfailed");
    let (iface, ns) = (pair.receiver_if.clone(), &pair.receiver);
    config(&inst, &iface, "GB\", \"ZW", false, "");
    agent.signal(libc::SIGHUP);
    agent
        .wait_for(&[
            "event=reconcile_failed",
            &format!("iface={iface} "),
            "reason=refused",
        ])
        .unwrap();
    inst.ok(Some(ns), &["detach", "--iface", &iface]).unwrap();
    agent
        .wait_for(&["event=filter_lost", &format!("iface={iface} ")])
        .unwrap();
    agent
        .wait_for(&["event=attached", &format!("iface={iface} ")])
        .unwrap();
    assert_eq!(inst.attached(), std::slice::from_ref(&iface));
    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{}", log.join("\n"));
}

/// A damaged current known-good copy: the restore at start falls back to the previous one, and
/// judges its data by the configured policy.
#[test]
fn at_start_a_damaged_current_copy_falls_back_to_the_previous_one() {
    let pair = VethPair::new("agdamage").unwrap();
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    let ns = &pair.receiver;
    inst.attach_test_db(ns, &iface, &["--deny", "GB"]).unwrap();
    let db = fixture("maxmind/GeoLite2-Country-Test.mmdb");
    inst.ok(
        Some(ns),
        &[
            "update",
            "--iface",
            &iface,
            "--db",
            db.to_str().unwrap(),
            "--reset-policy",
            "--deny",
            "SE",
        ],
    )
    .unwrap();
    inst.ok(Some(ns), &["detach", "--iface", &iface]).unwrap();
    let copies = inst.lib_dir().join(&iface);
    fs::remove_file(copies.join("detached")).unwrap();
    let current = copies.join("current.rgnf");
    let mut bytes = fs::read(&current).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(&current, bytes).unwrap();
    // The configuration now says JP: the restored data is judged by it, not by the policy
    // the copy was written under (deny GB).
    let gone = inst.state_dir.join("not-downloaded-yet.mmdb");
    let path = config(&inst, &iface, "JP", false, gone.to_str().unwrap());
    let mut agent = Agent::start(&inst, ns, &path, &[]).unwrap();
    agent
        .wait_for(&[
            "event=restore_skipped",
            &format!("iface={iface} "),
            "current.rgnf",
        ])
        .unwrap();
    let restored = agent
        .wait_for(&["event=restored", &format!("iface={iface} ")])
        .unwrap();
    assert!(
        restored.contains("previous.rgnf") && restored.contains("policy=configured"),
        "{restored}"
    );
    assert_eq!(inst.attached(), std::slice::from_ref(&iface));
    let status = inst.ok(Some(ns), &["status"]).unwrap();
    assert!(status.contains("deny JP"), "{status}");
    let (status, _) = agent.stop().unwrap();
    assert!(status.success());
    inst.ok(Some(ns), &["detach", "--iface", &iface]).unwrap();
}

/// Sets the agent's soft limit on open files (the hard one stays: raising it back would need
/// CAP_SYS_RESOURCE); returns the old soft limit.
fn limit_files(pid: u32, soft: libc::rlim_t) -> libc::rlim_t {
    limit(pid, libc::RLIMIT_NOFILE, soft)
}

/// Sets the soft limit `resource` of `pid`; returns the old one.
fn limit(pid: u32, resource: libc::__rlimit_resource_t, soft: libc::rlim_t) -> libc::rlim_t {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: prlimit(2) on our own child, with valid pointers (or null) to rlimit values.
    let rc = unsafe { libc::prlimit(pid, resource, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: as above.
    let rc = unsafe { libc::prlimit(pid, resource, &new, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    old.rlim_cur
}

#[test]
fn out_of_file_descriptors_the_metrics_server_backs_off_complains_once_and_recovers() {
    let (pair, _inst, mut agent) = ready_agent("agfds");
    let ns = &pair.receiver;
    // The listener binds beside the first pass: its line may come before or after.
    if agent.lines_with("event=metrics_listening").is_empty() {
        agent.wait_for(&["event=metrics_listening"]).unwrap();
    }
    // Room for two more descriptors, then clients enough to run out.
    let open_now = fs::read_dir(format!("/proc/{}/fd", agent.pid()))
        .unwrap()
        .count() as u64;
    let old = limit_files(agent.pid(), open_now + 2);
    let clients = ns
        .enter(|| {
            (0..8)
                .map(|_| std::net::TcpStream::connect(LISTEN).unwrap())
                .collect::<Vec<_>>()
        })
        .unwrap();
    agent
        .wait_for(&["event=metrics_accept_failed", "Too many open files"])
        .unwrap();
    // An observation window, not a synchronisation: two seconds out of descriptors, in which a
    // server that retried without pause or complained on every retry would log tens of lines.
    std::thread::sleep(Duration::from_secs(2));
    drop(clients);
    limit_files(agent.pid(), old);
    let (code, _) = get(ns, LISTEN, "/healthz").unwrap();
    assert_eq!(code, 200);
    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{status}");
    let complaints = log
        .iter()
        .filter(|l| l.contains("event=metrics_accept_failed"))
        .count();
    assert_eq!(complaints, 1, "{}", log.join("\n"));
}

#[test]
fn at_start_the_agent_restores_the_known_good_filter_before_it_fetches_data() {
    let pair = VethPair::new("agboot").unwrap();
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    let ns = &pair.receiver;
    inst.attach_test_db(ns, &iface, &["--deny", "GB"]).unwrap();
    // A reboot: the pins are gone, the known-good copy in the lib directory stays. (Detach,
    // then drop the mark it leaves that the attachment was ended on purpose.)
    inst.ok(Some(ns), &["detach", "--iface", &iface]).unwrap();
    assert!(inst.attached().is_empty());
    fs::remove_file(inst.lib_dir().join(&iface).join("detached")).unwrap();
    // And the data source is unreachable.
    let gone = inst.state_dir.join("not-downloaded-yet.mmdb");
    let path = config(&inst, &iface, "GB", false, gone.to_str().unwrap());
    let mut agent = Agent::start(&inst, ns, &path, &[]).unwrap();
    agent
        .wait_for(&["event=restored", &format!("iface={iface}")])
        .unwrap();
    agent
        .wait_for(&["event=reconcile_failed", &format!("iface={iface}")])
        .unwrap();
    assert_eq!(inst.attached(), std::slice::from_ref(&iface));
    let status = inst.ok(Some(ns), &["status"]).unwrap();
    assert!(status.contains("deny GB"), "{status}");
    let (code, body) = get(ns, LISTEN, "/healthz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("not-downloaded-yet.mmdb"), "{body}");
    let (_, text) = get(ns, LISTEN, "/metrics").unwrap();
    let on = |name: &str| series(&text, name, &format!("interface=\"{iface}\""));
    assert_eq!(on("regionfilter_refresh_failures_total"), Some(1));
    assert_eq!(on("regionfilter_interface_ready"), Some(0));
    // Restored but never refreshed, it is watched all the same: lost with its interface, it is
    // put back when the interface returns.
    ns.ip(&["link", "del", &iface]).unwrap();
    agent
        .wait_for(&["event=filter_lost", &format!("iface={iface} ")])
        .unwrap();
    ns.add_veth(&iface).unwrap();
    agent
        .wait_for(&["event=restored", &format!("iface={iface} ")])
        .unwrap();
    let (status, _) = agent.stop().unwrap();
    assert!(status.success());
    assert_eq!(inst.attached(), [iface]);
}

#[test]
fn a_filter_detached_on_purpose_is_not_restored_but_attached_as_configured() {
    let pair = VethPair::new("agdet").unwrap();
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    let ns = &pair.receiver;
    inst.attach_test_db(ns, &iface, &["--deny", "GB"]).unwrap();
    inst.ok(Some(ns), &["detach", "--iface", &iface]).unwrap();
    // The configuration asks for another policy; the old attachment's copy must not come back.
    let path = config(&inst, &iface, "SE", false, "");
    let mut agent = Agent::start(&inst, ns, &path, &[]).unwrap();
    agent
        .wait_for(&["event=reconciled", "trigger=start", "ready=1"])
        .unwrap();
    assert!(
        agent.lines_with("event=restored").is_empty(),
        "{:?}",
        agent.log
    );
    assert_eq!(
        agent.lines_with("event=attached").len(),
        1,
        "{:?}",
        agent.log
    );
    let status = inst.ok(Some(ns), &["status"]).unwrap();
    assert!(
        status.contains("deny SE") && !status.contains("deny GB"),
        "{status}"
    );
    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{}", log.join("\n"));
    // A new attachment drops the mark: after the next reboot, its copy is restored again.
    assert!(!inst.lib_dir().join(&iface).join("detached").exists());
}

#[test]
fn a_bad_config_is_refused_before_anything_starts() {
    let inst = Instance::new();
    fs::create_dir_all(&inst.state_dir).unwrap();
    // The example in contrib/ (and the README) is a good one once its database exists:
    // `--check` also opens the local data files.
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/agent.toml");
    let err = inst
        .fails(
            None,
            &["agent", "--config", example.to_str().unwrap(), "--check"],
        )
        .unwrap();
    assert!(
        err.contains("cannot read /var/lib/GeoIP/GeoLite2-Country.mmdb"),
        "{err}"
    );
    let db = fixture("maxmind/GeoLite2-Country-Test.mmdb");
    let text = fs::read_to_string(&example)
        .unwrap()
        .replace("/var/lib/GeoIP/GeoLite2-Country.mmdb", db.to_str().unwrap());
    let copy = inst.state_dir.join("example.toml");
    fs::write(&copy, text).unwrap();
    let out = inst
        .ok(
            None,
            &["agent", "--config", copy.to_str().unwrap(), "--check"],
        )
        .unwrap();
    assert!(out.ends_with("example.toml: ok, 1 interface\n"), "{out}");
    fs::create_dir_all(&inst.state_dir).unwrap();
    let path = inst.state_dir.join("agent.toml");
    for (text, expected) in [
        (
            "[[interface]]\nname = \"eth0\"\ndb = [\"a.mmdb\"]\npolicy = { deny = [\"XX\"] }\n",
            "unknown country code \"XX\"",
        ),
        (
            "[[interface]]\nname = \"eth0\"\npolicy = { deny = [\"GB\"] }\n",
            "give exactly one of db, url, artifact, artifact_url or release_url",
        ),
        (
            "[[interface]]\nname = \"../etc\"\ndb = [\"a.mmdb\"]\npolicy = { deny = [\"GB\"] }\n",
            "../etc",
        ),
        ("refresh = \"1s\"\n[[interface]]\nname = \"eth0\"\n", "give at least 1m"),
        (
            "[[interface]]\nname = \"eth0\"\nurl = \"http://example.org/x.mmdb\"\npolicy = { deny = [\"GB\"] }\n",
            "only https:// URLs",
        ),
        ("metrics_listen = \"localhost\"\n", "give an address and port"),
        (
            "[[interface]]\nname = \"eth0\"\ndb = [\"a.mmdb\"]\n[interface.policy]\ndney = [\"GB\"]\n",
            "unknown field `dney`",
        ),
        ("refresh = \"500000000000y\"\n", "longer than a year"),
    ] {
        fs::write(&path, text).unwrap();
        for args in [&["--check"][..], &[]] {
            let mut all = vec!["agent", "--config", path.to_str().unwrap()];
            all.extend_from_slice(args);
            let err = inst.fails(None, &all).unwrap();
            assert!(err.starts_with("error: agent config"), "{text}: {err}");
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}

#[test]
fn the_unit_files_pass_systemd_analyze_verify() {
    let dir = tempfile::Builder::new()
        .prefix("rfunits")
        .tempdir()
        .unwrap();
    let binary = integration_tests::cli::binary();
    let contrib = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("contrib");
    let mut units = Vec::new();
    for name in [
        "regionfilter-agent.service",
        "regionfilter-update.service",
        "regionfilter-update.timer",
    ] {
        // Only the binary's path changes: verify requires the executable to exist.
        let text = fs::read_to_string(contrib.join(name))
            .unwrap()
            .replace("/usr/local/bin/regionfilter", binary.to_str().unwrap());
        fs::write(dir.path().join(name), text).unwrap();
        units.push(dir.path().join(name));
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    drop(dir);
    assert!(out.status.success(), "{stderr}");
    // verify only warns about some mistakes: none may be about our units.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("regionfilter"))
        .collect();
    assert!(ours.is_empty(), "{stderr}");
}

/// A real Prometheus server (Debian's package) in the namespace scrapes the agent over
/// loopback every second; its HTTP API must return the exact count of packets sent.
#[test]
fn a_real_prometheus_scrapes_the_agent_and_reads_the_exact_counts() {
    let (pair, inst, agent) = ready_agent("agprom");
    pair.add_source(GB_V4.parse().unwrap()).unwrap();
    let (iface, ns) = (pair.receiver_if.clone(), &pair.receiver);
    let rx = Receiver::bind(ns).unwrap();
    let dst: IpAddr = RECEIVER_V4.parse().unwrap();
    traffic::send(&pair.sender, GB_V4.parse().unwrap(), dst, GB_V4, COUNT).unwrap();
    inst.wait_for_stats(&iface, WAIT, |s| {
        integration_tests::cli::country_packets(s, Some("GB"), "dropped") >= COUNT as u64
    })
    .unwrap();
    drop(rx);

    // promtool on what the agent serves.
    let (_, text) = get(ns, LISTEN, "/metrics").unwrap();
    promtool_check(&text).unwrap();

    let dir = inst.state_dir.join("prometheus");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: regionfilter\n    \
             static_configs:\n      - targets: ['{LISTEN}']\n"
        ),
    )
    .unwrap();
    let api = "127.0.0.1:9090";
    let server = Killed(
        ns.command("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={api}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus (cargo xtask setup installs Debian's prometheus package)"),
    );
    let query = format!(
        "/api/v1/query?query=regionfilter_packets_total%7Binterface%3D%22{iface}%22%2Ccountry%3D%22GB%22%2Cverdict%3D%22dropped%22%7D"
    );
    // Prometheus starts, then scrapes on its own schedule: ask until it has a sample.
    let mut last = String::new();
    let mut value = None;
    wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        if let Ok((200, body)) = get(ns, api, &query) {
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            if let Some(v) = json["data"]["result"][0]["value"][1].as_str() {
                value = Some(v.to_owned());
                return true;
            }
            last = body;
        }
        false
    });
    drop(server);
    assert_eq!(
        value,
        Some(COUNT.to_string()),
        "Prometheus' last answer: {last}"
    );
    let _ = agent.stop().unwrap();
}

#[test]
fn a_filter_lost_with_its_interface_is_put_back_when_the_interface_returns() {
    let (pair, inst, mut agent) = ready_agent("aglost");
    let (iface, ns) = (pair.receiver_if.clone(), &pair.receiver);
    // The interface goes: the agent notices at its next check, and cannot attach to nothing.
    ns.ip(&["link", "del", &iface]).unwrap();
    agent
        .wait_for(&["event=filter_lost", &format!("iface={iface}"), "is gone"])
        .unwrap();
    agent
        .wait_for(&["event=reconciled", "trigger=repair", "ready=0"])
        .unwrap();
    let (code, body) = get(ns, LISTEN, "/healthz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains(&format!("{iface}: ")), "{body}");
    // It comes back (a network restart, a hotplug): filtered again at the next check, not at
    // the next refresh a day later.
    ns.add_veth(&iface).unwrap();
    agent
        .wait_for(&["event=reconciled", "trigger=repair", "ready=1"])
        .unwrap();
    assert_eq!(
        get(ns, LISTEN, "/healthz").unwrap(),
        (200, "ready\n".into())
    );
    let status: serde_json::Value =
        serde_json::from_str(&inst.ok(Some(ns), &["status", "--json"]).unwrap()).unwrap();
    assert_eq!(status["interfaces"][0]["condition"], "attached", "{status}");
    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{}", log.join("\n"));
}

/// A child process killed (and reaped) when the test ends, also on failure.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The unit's `CapabilityBoundingSet` is all regionfilter needs: attach, status, update,
/// explain and detach run under exactly that set (no CAP_SYS_ADMIN).
#[test]
fn the_units_capability_set_is_enough_for_every_verb() {
    let unit = fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../contrib/regionfilter-agent.service"),
    )
    .unwrap();
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit names its capabilities")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let bounding = format!("--bounding-set=-all,{}", caps.join(","));
    let pair = VethPair::new("agcaps").unwrap();
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    let db = fixture("maxmind/GeoLite2-Country-Test.mmdb");
    let run = |args: &[&str]| {
        let wrapper = ["setpriv", bounding.as_str(), "--inh-caps=-all"];
        let out = inst
            .command_under(Some(&pair.receiver), &wrapper, args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?} under {bounding}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&[
        "attach",
        "--iface",
        &iface,
        "--db",
        db.to_str().unwrap(),
        "--mode",
        "skb",
        "--deny",
        "GB",
    ]);
    assert!(run(&["status"]).contains("deny GB"));
    run(&["update", "--iface", &iface, "--deny", "GB,SE"]);
    assert!(run(&["explain", "--iface", &iface, "81.2.69.160"]).contains("kernel on"));
    run(&["detach", "--iface", &iface]);
    assert!(inst.attached().is_empty());
}

/// The known-good copy cannot be written (here a file stands where its directory goes, as a
/// full or read-only lib directory would fail): the agent says so, and the interface is not
/// ready until a later pass writes the copy.
#[test]
fn a_known_good_copy_that_cannot_be_written_is_logged_and_keeps_the_interface_not_ready() {
    let pair = VethPair::new("agnocopy").unwrap();
    let inst = Instance::new();
    let (iface, ns) = (pair.receiver_if.clone(), &pair.receiver);
    fs::create_dir_all(inst.lib_dir()).unwrap();
    let blocker = inst.lib_dir().join(&iface);
    fs::write(&blocker, b"not a directory").unwrap();
    fs::create_dir_all(&inst.state_dir).unwrap();
    let path = inst.state_dir.join("agent.toml");
    fs::write(
        &path,
        format!(
            "metrics_listen = \"{LISTEN}\"\nretry = \"1s\"\n\n{}",
            entry(&iface, &db_source())
        ),
    )
    .unwrap();
    let mut agent = Agent::start(&inst, ns, &path, &[]).unwrap();
    agent
        .wait_for(&["event=incomplete", &format!("iface={iface} "), "known-good"])
        .unwrap();
    let (code, body) = get(ns, LISTEN, "/healthz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("known-good"), "{body}");
    fs::remove_file(&blocker).unwrap();
    agent
        .wait_for(&["event=reconciled", &format!("iface={iface} "), "ready=1"])
        .unwrap();
    assert!(blocker.join("current.rgnf").exists());
    assert_eq!(
        get(ns, LISTEN, "/healthz").unwrap(),
        (200, "ready\n".into())
    );
    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{}", log.join("\n"));
    inst.ok(Some(ns), &["detach", "--iface", &iface]).unwrap();
}

/// Under a low address-space limit an attach would die of a failed allocation (the full-world
/// tables aborted the process at 128 MiB): attach refuses with the limit named and nothing
/// attached, and the agent refuses to start (it could only die at its first attach).
#[test]
fn a_low_address_space_limit_is_refused_with_its_name_not_an_abort() {
    let pair = VethPair::new("agaslimit").unwrap();
    let inst = Instance::new();
    let (iface, ns) = (pair.receiver_if.clone(), &pair.receiver);
    let low = ["prlimit", "--as=268435456"];
    let db = fixture("maxmind/GeoLite2-Country-Test.mmdb");
    let out = inst
        .command_under(
            Some(ns),
            &low,
            &[
                "attach",
                "--iface",
                &iface,
                "--mode",
                "skb",
                "--db",
                db.to_str().unwrap(),
                "--deny",
                "GB",
            ],
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("address-space limit of at least 512 MiB") && text.contains("has 256 MiB"),
        "{text}"
    );
    assert!(inst.attached().is_empty());
    let path = config(&inst, &iface, "GB", false, "");
    let out = inst
        .command_under(
            Some(ns),
            &low,
            &["agent", "--config", path.to_str().unwrap()],
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("regionfilter agent needs an address-space limit"),
        "{text}"
    );
    assert!(inst.attached().is_empty());
}
