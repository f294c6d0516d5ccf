//! The real CLI attaches the filter to a veth end inside a namespace; real UDP packets from
//! addresses of several countries cross the pair. Native and SKB mode.

use std::{net::IpAddr, time::Duration};

use integration_tests::{
    cli::{country_counts, country_packets, fixture, Instance},
    consts::{CH_V6, GB_V4, JP_V6, SE_V4, TEST_DB, WAIT},
    netns::{VethPair, RECEIVER_V4, RECEIVER_V6},
    traffic::{self, Receiver},
    wait::wait_until,
};

const COUNT: usize = 20;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn dst(src: &str) -> IpAddr {
    if ip(src).is_ipv4() {
        ip(RECEIVER_V4)
    } else {
        ip(RECEIVER_V6)
    }
}

fn setup(tag: &str) -> VethPair {
    let pair = VethPair::new(tag).expect("create namespaces and veth pair");
    for src in [GB_V4, SE_V4, JP_V6, CH_V6] {
        pair.add_source(ip(src)).expect("add source address");
    }
    pair
}

/// `attach --iface IFACE --db DB POLICY...`
fn attach_args<'a>(iface: &'a str, policy: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["attach", "--iface", iface, "--db", TEST_DB.as_str()];
    args.extend_from_slice(policy);
    args
}

/// Sends the blocked sources first, then the allowed ones; returns arrivals per source.
fn exchange(
    pair: &VethPair,
    blocked: &[&str],
    allowed: &[&str],
) -> std::collections::BTreeMap<String, usize> {
    let rx = Receiver::bind(&pair.receiver).expect("bind receiver");
    for src in blocked.iter().chain(allowed) {
        traffic::send(&pair.sender, ip(src), dst(src), src, COUNT).expect("send");
    }
    rx.receive_until(WAIT, |got| {
        allowed
            .iter()
            .all(|a| got.get(*a).copied().unwrap_or(0) >= COUNT)
    })
}

fn deny_list_drops_only_denied_countries(mode: &str) {
    let pair = setup(mode);
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    let out = inst
        .ok(
            Some(&pair.receiver),
            &attach_args(&iface, &["--deny", "GB,JP", "--mode", mode]),
        )
        .expect("attach");
    assert!(
        out.contains(&format!("attached to {iface} ({mode} mode, fast lookup)")),
        "{out}"
    );
    let link = pair.receiver.ip(&["-d", "link", "show", &iface]).unwrap();
    // iproute2 flags the attach mode on the link line: `xdp` (driver) or `xdpgeneric` (skb).
    let flag = if mode == "native" {
        " xdp "
    } else {
        " xdpgeneric "
    };
    assert!(
        link.contains(flag) && link.contains("prog/xdp"),
        "expected{flag}in {link}"
    );

    let got = exchange(&pair, &[GB_V4, JP_V6], &[SE_V4, CH_V6]);
    assert_eq!(got.get(SE_V4), Some(&COUNT), "{got:?}");
    assert_eq!(got.get(CH_V6), Some(&COUNT), "{got:?}");
    assert_eq!(got.get(GB_V4), None, "denied IPv4 packets arrived: {got:?}");
    assert_eq!(got.get(JP_V6), None, "denied IPv6 packets arrived: {got:?}");

    let stats = inst
        .wait_for_stats(&iface, WAIT, |s| {
            country_counts(s, Some("GB")).1 >= COUNT as u64
                && country_counts(s, Some("JP")).1 >= COUNT as u64
        })
        .unwrap();
    assert_eq!(
        country_counts(&stats, Some("GB")),
        (0, COUNT as u64),
        "{stats}"
    );
    assert_eq!(
        country_counts(&stats, Some("JP")),
        (0, COUNT as u64),
        "{stats}"
    );
    assert!(
        country_counts(&stats, Some("SE")).0 >= COUNT as u64,
        "{stats}"
    );
    assert!(
        country_counts(&stats, Some("CH")).0 >= COUNT as u64,
        "{stats}"
    );
    // Most drops first.
    let first = stats["countries"][0]["country"].as_str().unwrap();
    assert!(first == "GB" || first == "JP", "{stats}");

    let out = inst
        .ok(Some(&pair.receiver), &["detach", "--iface", &iface])
        .expect("detach");
    assert!(out.contains("detached"), "{out}");
    assert!(
        inst.attached().is_empty(),
        "pins left: {:?}",
        inst.attached()
    );
    let link = pair.receiver.ip(&["link", "show", &iface]).unwrap();
    assert!(!link.contains("prog/xdp"), "program still attached: {link}");
    let got = exchange(&pair, &[], &[GB_V4, JP_V6]);
    assert_eq!(
        got.get(GB_V4),
        Some(&COUNT),
        "connectivity not back after detach: {got:?}"
    );
    assert_eq!(
        got.get(JP_V6),
        Some(&COUNT),
        "connectivity not back after detach: {got:?}"
    );
}

#[test]
fn deny_list_native_mode() {
    deny_list_drops_only_denied_countries("native");
}

#[test]
fn deny_list_skb_mode() {
    deny_list_drops_only_denied_countries("skb");
}

#[test]
fn allow_list_with_exception_and_jumbo_mtu_in_native_mode() {
    let pair = setup("jumbo");
    pair.set_mtu(9000).unwrap();
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    inst.ok(
        Some(&pair.receiver),
        &attach_args(
            &iface,
            &[
                "--allow",
                "SE",
                "--allow-cidr",
                &format!("{CH_V6}/128"),
                "--mode",
                "native",
            ],
        ),
    )
    .expect("native attach on MTU 9000 needs a frags-aware program");
    let got = exchange(&pair, &[GB_V4, JP_V6], &[SE_V4, CH_V6]);
    assert_eq!(got.get(SE_V4), Some(&COUNT), "{got:?}");
    assert_eq!(
        got.get(CH_V6),
        Some(&COUNT),
        "exception did not pass: {got:?}"
    );
    assert_eq!(got.get(GB_V4), None, "{got:?}");
    assert_eq!(got.get(JP_V6), None, "{got:?}");
    let stats = inst
        .wait_for_stats(&iface, WAIT, |s| {
            s["exception_passed"]["packets"].as_u64() >= Some(COUNT as u64)
        })
        .unwrap();
    assert!(
        stats["exception_passed"]["packets"].as_u64() >= Some(COUNT as u64),
        "{stats}"
    );
}

#[test]
fn second_attach_and_bad_input_are_refused_and_leave_the_filter_running() {
    let pair = setup("refuse");
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    let ns = Some(&pair.receiver);
    inst.ok(ns, &attach_args(&iface, &["--deny", "GB", "--mode", "skb"]))
        .unwrap();

    let err = inst
        .fails(ns, &attach_args(&iface, &["--deny", "SE"]))
        .unwrap();
    assert!(
        err.contains("already attached") && err.contains("detach"),
        "{err}"
    );
    let err = inst
        .fails(ns, &attach_args("nosuchif0", &["--deny", "SE"]))
        .unwrap();
    assert!(err.contains("no interface named nosuchif0"), "{err}");
    let err = inst
        .fails(ns, &attach_args(&iface, &["--deny", "UK"]))
        .unwrap();
    assert!(err.contains("did you mean GB"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    let err = inst
        .fails(None, &["detach", "--iface", "nosuchif0"])
        .unwrap();
    assert!(err.contains("not attached"), "{err}");
    assert_eq!(
        inst.attached(),
        vec![iface.clone()],
        "a refused command changed the pins"
    );

    // The first filter still judges by its own policy.
    let got = exchange(&pair, &[GB_V4], &[SE_V4]);
    assert_eq!(got.get(GB_V4), None, "{got:?}");
    assert_eq!(got.get(SE_V4), Some(&COUNT), "{got:?}");

    let status = inst.ok(None, &["status", "--json"]).unwrap();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["interfaces"][0]["iface"], iface.as_str());
    assert_eq!(status["interfaces"][0]["mode"], "skb");
    assert_eq!(status["interfaces"][0]["policy"]["countries"][0], "GB");
    assert_eq!(
        status["interfaces"][0]["sources"][0]["database_type"],
        "GeoLite2-Country"
    );
}

#[test]
fn corrupt_database_is_refused_before_anything_is_pinned() {
    let pair = VethPair::new("corrupt").unwrap();
    let inst = Instance::new();
    let broken = fixture("maxmind/MaxMind-DB-test-broken-pointers-24.mmdb")
        .display()
        .to_string();
    let err = inst
        .fails(
            Some(&pair.receiver),
            &[
                "attach",
                "--iface",
                &pair.receiver_if,
                "--db",
                &broken,
                "--deny",
                "GB",
            ],
        )
        .unwrap();
    assert!(
        err.contains("corrupt") && err.contains("broken-pointers"),
        "{err}"
    );
    assert!(inst.attached().is_empty());
    let link = pair
        .receiver
        .ip(&["link", "show", &pair.receiver_if])
        .unwrap();
    assert!(!link.contains("prog/xdp"), "{link}");
}

#[test]
fn without_privileges_one_clear_line() {
    let inst = Instance::new();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
    ])
    .arg(integration_tests::cli::binary())
    .args(attach_args("lo", &["--deny", "GB"]))
    .env("REGIONFILTER_PIN_ROOT", &inst.pin_root)
    .env("REGIONFILTER_STATE_DIR", &inst.state_dir);
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "error: regionfilter attach needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON and lacks CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON: run it as root (sudo), or grant them to its unit or container"
    );
}

#[test]
fn native_mode_on_a_driver_without_it_says_to_use_skb() {
    // Loopback has no native XDP; a fresh namespace gives one nobody else uses.
    let ns = integration_tests::netns::NetNs::new("rflo").unwrap();
    let inst = Instance::new();
    let err = inst
        .fails(Some(&ns), &attach_args("lo", &["--deny", "GB"]))
        .unwrap();
    assert!(
        err.contains("does not support native XDP: attach with --mode skb"),
        "{err}"
    );
    assert!(
        inst.attached().is_empty(),
        "pins left: {:?}",
        inst.attached()
    );
    inst.ok(
        Some(&ns),
        &attach_args("lo", &["--deny", "GB", "--mode", "skb"]),
    )
    .expect("skb mode works where native does not");
}

#[test]
fn compiled_artifact_with_a_policy_file_attaches_as_built() {
    let pair = setup("artifact");
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    let dir = tempfile::Builder::new().prefix("rfart").tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    // A user group mixing a code and a continent: GB and every Asian country (JP among them).
    std::fs::write(
        &policy,
        "deny = [\"blocked\"]\n[groups]\nblocked = [\"GB\", \"asia\"]\n",
    )
    .unwrap();
    let artifact = dir.path().join("filter.rfa");
    let (policy, artifact) = (policy.to_str().unwrap(), artifact.to_str().unwrap());
    inst.ok(
        None,
        &[
            "compile",
            "--db",
            TEST_DB.as_str(),
            "--policy",
            policy,
            "--out",
            artifact,
        ],
    )
    .expect("compile");
    let out = inst
        .ok(
            Some(&pair.receiver),
            &[
                "attach",
                "--iface",
                &iface,
                "--artifact",
                artifact,
                "--mode",
                "skb",
            ],
        )
        .expect("attach the artifact");
    dir.close().unwrap();
    assert!(
        out.contains("deny ") && out.contains(",GB,") && out.contains(",JP,"),
        "{out}"
    );

    let got = exchange(&pair, &[GB_V4, JP_V6], &[SE_V4, CH_V6]);
    assert_eq!(got.get(GB_V4), None, "{got:?}");
    assert_eq!(got.get(JP_V6), None, "{got:?}");
    assert_eq!(got.get(SE_V4), Some(&COUNT), "{got:?}");
    assert_eq!(got.get(CH_V6), Some(&COUNT), "{got:?}");

    let status = inst.ok(None, &["status", "--json"]).unwrap();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["interfaces"][0]["artifact"], artifact);
    assert_eq!(
        status["interfaces"][0]["content_hash"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
}

/// Real packets from IPv6 sources that carry a denied IPv4 address (6to4, Teredo, NAT64) are
/// dropped and counted under that country; the same forms of an allowed address arrive.
#[test]
fn ipv6_sources_that_embed_a_denied_ipv4_address_are_dropped() {
    let pair = VethPair::new("embed").unwrap();
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    // GB_V4 is 81.2.69.160 (0x5102:45a0), SE_V4 89.160.20.130 (0x59a0:1482).
    const GB_6TO4: &str = "2002:5102:45a0::1";
    const GB_TEREDO: &str = "2001:0:4136:e378:8000:f227:aefd:ba5f";
    const GB_NAT64: &str = "64:ff9b::5102:45a0";
    const SE_6TO4: &str = "2002:59a0:1482::1";
    for src in [GB_6TO4, GB_TEREDO, GB_NAT64, SE_6TO4] {
        pair.add_source(ip(src)).unwrap();
    }
    inst.ok(
        Some(&pair.receiver),
        &attach_args(&iface, &["--deny", "GB", "--mode", "skb"]),
    )
    .unwrap();
    let got = exchange(&pair, &[GB_6TO4, GB_TEREDO, GB_NAT64], &[SE_6TO4]);
    assert_eq!(got.get(SE_6TO4), Some(&COUNT), "{got:?}");
    for denied in [GB_6TO4, GB_TEREDO, GB_NAT64] {
        assert_eq!(got.get(denied), None, "{denied} arrived: {got:?}");
    }
    let stats = inst
        .wait_for_stats(&iface, WAIT, |s| {
            country_counts(s, Some("GB")).1 >= 3 * COUNT as u64
        })
        .unwrap();
    assert_eq!(
        country_counts(&stats, Some("GB")),
        (0, 3 * COUNT as u64),
        "{stats}"
    );
    assert_eq!(
        country_counts(&stats, Some("SE")).0,
        COUNT as u64,
        "{stats}"
    );
}

/// The lock-out guard: a policy that would drop the caller's SSH client, or the peer of an
/// established TCP connection to the interface, is refused (exit 10) with the peers listed,
/// nothing changes, and `--force` goes ahead.
#[test]
fn the_lockout_guard_refuses_to_cut_off_connected_peers() {
    let pair = VethPair::new("lockout").unwrap();
    pair.add_source(ip(GB_V4)).unwrap();
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    let ns = Some(&pair.receiver);
    let ssh = format!("{GB_V4} 40000 {RECEIVER_V4} 22");

    // An SSH session from a GB client to this interface: --deny GB would cut it.
    let out = inst
        .command(ns, &attach_args(&iface, &["--deny", "GB", "--mode", "skb"]))
        .env("SSH_CONNECTION", &ssh)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(10), "{err}");
    assert!(
        err.contains(&format!("{GB_V4} (your SSH session)")) && err.contains("--force"),
        "{err}"
    );
    assert!(inst.attached().is_empty(), "a refused attach left pins");
    // A session to another address of the host is not this interface's business.
    let elsewhere = format!("{GB_V4} 40000 192.0.2.77 22");
    let out = inst
        .command(ns, &attach_args(&iface, &["--deny", "SE", "--mode", "skb"]))
        .env("SSH_CONNECTION", &elsewhere)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // An established TCP connection from the GB source to the receiver.
    let listener = pair
        .receiver
        .enter(|| std::net::TcpListener::bind((RECEIVER_V4, 2222)))
        .unwrap()
        .unwrap();
    let client = pair
        .sender
        .enter(|| std::net::TcpStream::connect((RECEIVER_V4, 2222)))
        .unwrap()
        .unwrap();
    let (_server, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), ip(GB_V4));
    // A scope that leaves the connection's port out cuts nothing.
    let (code, out) = inst.output_text(
        ns,
        &[
            "update", "--iface", &iface, "--deny", "GB", "--ports", "tcp/443",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let before = inst.ok(None, &["status", "--json"]).unwrap();
    let (code, out) = inst.output_text(ns, &["update", "--iface", &iface, "--ports", "all"]);
    assert_eq!(code, 10, "{out}");
    assert!(
        out.contains(&format!(
            "{GB_V4} (established TCP connection to {RECEIVER_V4}:2222)"
        )),
        "{out}"
    );
    assert_eq!(inst.ok(None, &["status", "--json"]).unwrap(), before);
    // Refused by a guard as well: the one refusal names both, since --force overrides both.
    let (code, out) = inst.output_text(
        ns,
        &[
            "update", "--iface", &iface, "--ports", "all", "--deny", "GB,ZW",
        ],
    );
    assert_eq!(code, 10, "{out}");
    assert!(
        out.contains("the guards refuse it too: the policy names ZW")
            && out.trim_end().ends_with("; override with --force"),
        "{out}"
    );
    assert_eq!(inst.ok(None, &["status", "--json"]).unwrap(), before);
    let (code, out) = inst.output_text(
        ns,
        &["update", "--iface", &iface, "--ports", "all", "--force"],
    );
    assert_eq!(code, 0, "{out}");
    drop(client);
}

/// The lock-out guard sees connections as the host has them: an IPv4 client of a dual-stack
/// listener (listed IPv4-mapped in /proc/net/tcp6), and a client on the interface's link-local
/// address, whom `--local drop` would cut off.
#[test]
fn the_lockout_guard_sees_dual_stack_and_link_local_connections() {
    use std::net::{SocketAddr, SocketAddrV6, TcpListener, TcpStream};
    const CONNECT_WITHIN: Duration = Duration::from_secs(5);
    let pair = VethPair::new("lockds").unwrap();
    pair.add_source(ip(GB_V4)).unwrap();
    let iface = pair.receiver_if.clone();
    // Link-local addresses without duplicate address detection, so they are usable at once.
    pair.receiver
        .ip(&["addr", "add", "fe80::7/64", "dev", &iface, "nodad"])
        .unwrap();
    pair.sender
        .ip(&["addr", "add", "fe80::5/64", "dev", &pair.sender_if, "nodad"])
        .unwrap();
    let inst = Instance::new();
    let ns = Some(&pair.receiver);
    // One dual-stack listener ([::], IPV6_V6ONLY off: the namespace's default) for both.
    let listener = pair
        .receiver
        .enter(|| TcpListener::bind("[::]:2222"))
        .unwrap()
        .unwrap();
    let v4_client = pair
        .sender
        .enter(|| TcpStream::connect_timeout(&(ip(RECEIVER_V4), 2222).into(), CONNECT_WITHIN))
        .unwrap()
        .unwrap();
    let (_v4_server, peer) = listener.accept().unwrap();
    assert_eq!(
        peer.ip(),
        ip(&format!("::ffff:{GB_V4}")),
        "the listener is dual-stack, so the kernel lists the connection in /proc/net/tcp6"
    );
    let out = inst
        .output(ns, &attach_args(&iface, &["--deny", "GB", "--mode", "skb"]))
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(10), "{err}");
    assert!(
        err.contains(&format!(
            "{GB_V4} (established TCP connection to {RECEIVER_V4}:2222)"
        )),
        "{err}"
    );
    assert!(inst.attached().is_empty(), "a refused attach left pins");

    // A client on the link-local address: under --local drop its reconnect would be dropped.
    let link: serde_json::Value = serde_json::from_str(
        &pair
            .sender
            .ip(&["-j", "link", "show", &pair.sender_if])
            .unwrap(),
    )
    .unwrap();
    let sender_index = u32::try_from(link[0]["ifindex"].as_u64().unwrap()).unwrap();
    let target = SocketAddr::V6(SocketAddrV6::new(
        "fe80::7".parse().unwrap(),
        2222,
        0,
        sender_index,
    ));
    let ll_client = pair
        .sender
        .enter(|| TcpStream::connect_timeout(&target, CONNECT_WITHIN))
        .unwrap()
        .unwrap();
    let (_ll_server, ll_peer) = listener.accept().unwrap();
    assert!(
        matches!(ll_peer.ip(), IpAddr::V6(a) if a.segments()[0] == 0xfe80),
        "{ll_peer}"
    );
    let local_drop = attach_args(
        &iface,
        &["--deny", "SE", "--local", "drop", "--mode", "skb"],
    );
    let out = inst.output(ns, &local_drop).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(10), "{err}");
    assert!(
        err.contains(&format!(
            "{} (established TCP connection to [fe80::7]:2222)",
            ll_peer.ip()
        )) && !err.contains(GB_V4),
        "{err}"
    );
    assert!(inst.attached().is_empty(), "a refused attach left pins");
    // `--local pass` (the default) cuts neither.
    let out = inst
        .output(ns, &attach_args(&iface, &["--deny", "SE", "--mode", "skb"]))
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    drop((v4_client, ll_client));
}

/// A router in a denied country tells the receiver that a path's MTU is 1280 (ICMPv6 packet too
/// big). By default the error passes and the kernel lowers the path MTU; with
/// `--icmp-errors judge` it is dropped like the rest of that country's traffic.
#[test]
fn packet_too_big_from_a_denied_router_still_lowers_the_path_mtu() {
    for (judge, lowered) in [(false, true), (true, false)] {
        let pair = setup(if judge { "ptbj" } else { "ptb" });
        let inst = Instance::new();
        let iface = pair.receiver_if.clone();
        let mut args = attach_args(&iface, &["--deny", "JP", "--mode", "skb"]);
        if judge {
            args.extend_from_slice(&["--icmp-errors", "judge"]);
        }
        inst.ok(Some(&pair.receiver), &args).unwrap();
        // A connected UDP socket on the receiver towards CH: the error must quote its flow.
        let socket = pair
            .receiver
            .enter(|| {
                let s = std::net::UdpSocket::bind((RECEIVER_V6, 0))?;
                s.connect((CH_V6, 9))?;
                Ok::<_, std::io::Error>(s)
            })
            .unwrap()
            .unwrap();
        let sport = socket.local_addr().unwrap().port();
        // The "router" (a JP address on the sender) sends packet-too-big, MTU 1280.
        let mut icmp = vec![2, 0, 0, 0];
        icmp.extend_from_slice(&1280u32.to_be_bytes());
        icmp.extend_from_slice(&[0x60, 0, 0, 0, 0, 8, 17, 64]);
        for addr in [RECEIVER_V6, CH_V6] {
            icmp.extend_from_slice(&addr.parse::<std::net::Ipv6Addr>().unwrap().octets());
        }
        icmp.extend_from_slice(&sport.to_be_bytes());
        icmp.extend_from_slice(&[0, 9, 0, 8, 0, 0]);
        pair.sender
            .enter(|| send_icmpv6(JP_V6, RECEIVER_V6, &icmp))
            .unwrap()
            .unwrap();
        let route = || pair.receiver.ip(&["-6", "route", "get", CH_V6]).unwrap();
        if lowered {
            wait_until(WAIT, Duration::from_millis(20), || {
                route().contains("mtu 1280")
            });
        }
        let stats = inst
            .wait_for_stats(&iface, WAIT, |s| {
                s["icmp_errors_passed"]["packets"].as_u64() >= Some(1)
                    || country_counts(s, Some("JP")).1 >= 1
            })
            .unwrap();
        assert_eq!(
            route().contains("mtu 1280"),
            lowered,
            "judge={judge}: {}",
            route()
        );
        if judge {
            assert_eq!(country_counts(&stats, Some("JP")).1, 1, "{stats}");
        } else {
            assert_eq!(stats["icmp_errors_passed"]["packets"], 1, "{stats}");
        }
    }
}

/// Sends one ICMPv6 message from `src` to `dst` on a raw socket (the kernel fills in the
/// checksum); runs inside the caller's namespace.
fn send_icmpv6(src: &str, dst: &str, message: &[u8]) -> std::io::Result<()> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    let sockaddr = |addr: &str| libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: 0,
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr {
            s6_addr: addr.parse::<std::net::Ipv6Addr>().unwrap().octets(),
        },
        sin6_scope_id: 0,
    };
    let len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns, with valid addresses.
    unsafe {
        let fd = libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let from = sockaddr(src);
        if libc::bind(fd.as_raw_fd(), std::ptr::from_ref(&from).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let to = sockaddr(dst);
        let sent = libc::sendto(
            fd.as_raw_fd(),
            message.as_ptr().cast(),
            message.len(),
            0,
            std::ptr::from_ref(&to).cast(),
            len,
        );
        if sent < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `--dry-run` passes every packet and counts the would-be drops; `update --enforce` switches
/// to enforcing in one step, keeping the data and the counters.
#[test]
fn a_dry_run_then_enforce() {
    let pair = setup("dry");
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    let ns = Some(&pair.receiver);
    let out = inst
        .ok(
            ns,
            &attach_args(&iface, &["--deny", "GB", "--mode", "skb", "--dry-run"]),
        )
        .unwrap();
    assert!(out.contains("DRY RUN of deny GB"), "{out}");
    let got = exchange(&pair, &[], &[GB_V4, SE_V4]);
    assert_eq!(got.get(GB_V4), Some(&COUNT), "the dry run dropped: {got:?}");
    let stats = inst
        .wait_for_stats(&iface, WAIT, |s| {
            country_packets(s, Some("GB"), "would_drop") >= COUNT as u64
        })
        .unwrap();
    let gb = |verdict| country_packets(&stats, Some("GB"), verdict);
    assert_eq!(gb("would_drop"), COUNT as u64, "{stats}");
    assert_eq!(gb("dropped"), 0, "{stats}");

    let (code, out) = inst.output_text(ns, &["update", "--iface", &iface, "--enforce"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("deny GB;") && out.contains("enforcing"),
        "{out}"
    );
    let got = exchange(&pair, &[GB_V4], &[SE_V4]);
    assert_eq!(got.get(GB_V4), None, "{got:?}");
    let stats = inst
        .wait_for_stats(&iface, WAIT, |s| {
            country_counts(s, Some("GB")).1 >= COUNT as u64
        })
        .unwrap();
    let gb = |verdict| country_packets(&stats, Some("GB"), verdict);
    assert_eq!(gb("dropped"), COUNT as u64, "{stats}");
    assert_eq!(gb("would_drop"), COUNT as u64, "counters kept: {stats}");
}

/// Neighbour discovery from a global address in a denied country: the receiver resolves an
/// on-link neighbour whose only address is in JP, which `--deny JP` refuses. The neighbour
/// advertisement comes from that global address with hop limit 255, so it passes (counted
/// as neighbour discovery) and the entry becomes REACHABLE; the neighbour's data is still
/// dropped.
#[test]
fn neighbour_discovery_from_a_denied_global_address_keeps_the_neighbour() {
    let pair = VethPair::new("ndp").unwrap();
    pair.add_source(ip(JP_V6)).unwrap();
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    inst.ok(
        Some(&pair.receiver),
        &attach_args(&iface, &["--deny", "JP", "--mode", "skb"]),
    )
    .unwrap();
    let neigh = || {
        pair.receiver
            .ip(&["-6", "neigh", "show", JP_V6, "dev", &iface])
            .unwrap()
    };
    // No entry to begin with; then one datagram towards the neighbour makes the receiver
    // solicit it (the receiver's default route is on the link).
    pair.receiver
        .ip(&["-6", "neigh", "flush", "dev", &iface])
        .unwrap();
    assert!(!neigh().contains("REACHABLE"), "{}", neigh());
    pair.receiver
        .enter(|| {
            let s = std::net::UdpSocket::bind((RECEIVER_V6, 0))?;
            s.send_to(b"probe", (JP_V6, 9))
        })
        .unwrap()
        .unwrap();
    wait_until(WAIT, Duration::from_millis(20), || {
        neigh().contains("REACHABLE")
    });
    assert!(
        neigh().contains("REACHABLE"),
        "the neighbour {JP_V6} was not resolved: {}",
        neigh()
    );
    let stats = inst
        .wait_for_stats(&iface, WAIT, |s| {
            s["ndp_passed"]["packets"].as_u64() >= Some(1)
        })
        .unwrap();
    assert!(
        stats["ndp_passed"]["packets"].as_u64() >= Some(1),
        "{stats}"
    );
    // The neighbour's own traffic is still judged: its datagrams do not arrive.
    let got = exchange(&pair, &[JP_V6], &[]);
    assert_eq!(got.get(JP_V6), None, "{got:?}");
    let stats = inst
        .wait_for_stats(&iface, WAIT, |s| {
            country_counts(s, Some("JP")).1 >= COUNT as u64
        })
        .unwrap();
    assert_eq!(
        country_counts(&stats, Some("JP")),
        (0, COUNT as u64),
        "{stats}"
    );
}
