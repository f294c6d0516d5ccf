//! "On a production edge": real sockets across a veth pair with the filter attached to the
//! receiver's end. The host's own connections to a denied peer keep working under a port
//! scope or `--tcp syn`; neighbour discovery works under `--unknown drop`; two services judge
//! their ports by different countries.

use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket},
    time::Duration,
};

use integration_tests::{
    cli::Instance,
    consts::{GB_V4, SE_V4},
    netns::{VethPair, RECEIVER_V4},
};

/// How long a connection attempt that the filter drops is given before it counts as refused.
const DROPPED_AFTER: Duration = Duration::from_secs(1);
const CONNECTED_WITHIN: Duration = Duration::from_secs(10);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn stats_line(inst: &Instance, iface: &str, key: &str) -> u64 {
    inst.stats(iface).unwrap()[key]["packets"]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in stats"))
}

/// A TCP connection from the sender namespace, from source `src`, to the receiver's `port`.
/// The source is chosen by the route, so std's connect picks it.
fn connect_from(
    pair: &VethPair,
    src: &str,
    port: u16,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    pair.sender
        .ip(&[
            "route",
            "replace",
            "198.51.100.0/24",
            "dev",
            &pair.sender_if,
            "src",
            src,
        ])
        .expect("pick the source address");
    pair.sender
        .enter(|| TcpStream::connect_timeout(&SocketAddr::new(ip(RECEIVER_V4), port), timeout))
        .expect("enter the sender namespace")
}

#[test]
fn the_hosts_own_connections_to_a_denied_peer_work_under_a_port_scope_or_tcp_syn() {
    let pair = VethPair::new("scope").unwrap();
    pair.add_source(ip(GB_V4)).unwrap();
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    let ns = Some(&pair.receiver);
    // The denied peer runs a server; the host runs the service the scope protects.
    let peer = pair
        .sender
        .enter(|| TcpListener::bind((GB_V4, 7000)))
        .unwrap()
        .unwrap();
    let _service = pair
        .receiver
        .enter(|| TcpListener::bind((RECEIVER_V4, 8443)))
        .unwrap()
        .unwrap();
    let out = inst
        .attach_test_db(
            &pair.receiver,
            &iface,
            &["--deny", "GB", "--ports", "tcp/8443"],
        )
        .unwrap();
    assert!(
        out.contains("deny GB;") && out.contains("scope ports tcp/8443"),
        "{out}"
    );

    let talk_to_peer = |what: &str| {
        let mut conn = pair
            .receiver
            .enter(|| {
                TcpStream::connect_timeout(&SocketAddr::new(ip(GB_V4), 7000), CONNECTED_WITHIN)
            })
            .unwrap()
            .unwrap_or_else(|e| panic!("{what}: the host's connection to GB failed: {e}"));
        let (mut accepted, _) = peer.accept().unwrap();
        accepted.write_all(b"reply").unwrap();
        conn.set_read_timeout(Some(CONNECTED_WITHIN)).unwrap();
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"reply", "{what}");
    };
    talk_to_peer("port scope");
    // The scoped service stays closed to GB.
    let refused = connect_from(&pair, GB_V4, 8443, DROPPED_AFTER);
    assert!(refused.is_err(), "GB reached the scoped service");
    assert!(stats_line(&inst, &iface, "out_of_scope") > 0);

    // A connection the host itself opened to GB stays open across the switch to whole-host
    // filtering with `--tcp syn`: its replies are not connection attempts, so the lock-out
    // guard has nothing to refuse. Without `--tcp syn` they would be dropped: refused.
    let held = pair
        .receiver
        .enter(|| TcpStream::connect_timeout(&SocketAddr::new(ip(GB_V4), 7000), CONNECTED_WITHIN))
        .unwrap()
        .unwrap();
    let _held_peer = peer.accept().unwrap();
    let (code, out) = inst.output_text(ns, &["update", "--iface", &iface, "--ports", "all"]);
    assert_eq!(code, 10, "{out}");
    assert!(
        out.contains(&format!(
            "{GB_V4} (established TCP connection from {RECEIVER_V4}:"
        )),
        "{out}"
    );
    // Whole-host filtering that judges only connection attempts: the same holds.
    let out = inst
        .ok(
            ns,
            &[
                "update", "--iface", &iface, "--ports", "all", "--tcp", "syn",
            ],
        )
        .unwrap();
    assert!(
        out.contains("scope whole host") && out.contains("tcp syn"),
        "{out}"
    );
    talk_to_peer("tcp syn");
    let refused = connect_from(&pair, GB_V4, 8443, DROPPED_AFTER);
    assert!(refused.is_err(), "GB connected under --tcp syn");
    drop(held);
    assert!(stats_line(&inst, &iface, "tcp_not_syn_passed") > 0);
}

/// The interface index of `name` in `ns` (for link-local scope ids).
fn ifindex(ns: &integration_tests::netns::NetNs, name: &str) -> u32 {
    let out = ns.ip(&["-j", "link", "show", name]).unwrap();
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    u32::try_from(json[0]["ifindex"].as_u64().unwrap()).unwrap()
}

#[test]
fn neighbour_discovery_works_under_unknown_drop() {
    let pair = VethPair::new("ndp").unwrap();
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    // Link-local addresses only, without duplicate address detection, and no static
    // neighbour entries: each side must discover the other.
    pair.sender
        .ip(&["addr", "add", "fe80::5/64", "dev", &pair.sender_if, "nodad"])
        .unwrap();
    pair.receiver
        .ip(&["addr", "add", "fe80::7/64", "dev", &iface, "nodad"])
        .unwrap();
    let receiver_index = ifindex(&pair.receiver, &iface);
    let sender_index = ifindex(&pair.sender, &pair.sender_if);
    inst.attach_test_db(
        &pair.receiver,
        &iface,
        &["--allow", "SE", "--unknown", "drop"],
    )
    .unwrap();
    let server = pair
        .receiver
        .enter(|| {
            UdpSocket::bind(SocketAddrV6::new(
                "fe80::7".parse().unwrap(),
                9000,
                0,
                receiver_index,
            ))
        })
        .unwrap()
        .unwrap();
    server.set_read_timeout(Some(CONNECTED_WITHIN)).unwrap();
    let client = pair
        .sender
        .enter(|| {
            UdpSocket::bind(SocketAddrV6::new(
                "fe80::5".parse().unwrap(),
                0,
                0,
                sender_index,
            ))
        })
        .unwrap()
        .unwrap();
    client.set_read_timeout(Some(CONNECTED_WITHIN)).unwrap();
    client
        .send_to(
            b"ping",
            SocketAddrV6::new("fe80::7".parse().unwrap(), 9000, 0, sender_index),
        )
        .unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = server
        .recv_from(&mut buf)
        .expect("the request from fe80::5 arrived");
    assert_eq!(&buf[..n], b"ping");
    // The reply needs the receiver to resolve fe80::5: its solicitation's answer comes from
    // a link-local source, which the filter must pass.
    server.send_to(b"pong", from).unwrap();
    let (n, _) = client
        .recv_from(&mut buf)
        .expect("the reply arrived: NDP worked");
    assert_eq!(&buf[..n], b"pong");
    assert!(stats_line(&inst, &iface, "local_passed") > 0);
}

#[test]
fn two_services_judge_their_ports_by_different_countries() {
    let pair = VethPair::new("svc").unwrap();
    pair.add_source(ip(GB_V4)).unwrap();
    pair.add_source(ip(SE_V4)).unwrap();
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    let policy = inst.lib_dir().join("services.toml");
    std::fs::create_dir_all(inst.lib_dir()).unwrap();
    std::fs::write(
        &policy,
        "[[service]]\nname = \"api\"\nports = [\"tcp/8001\"]\nallow = [\"GB\"]\n\n\
         [[service]]\nname = \"admin\"\nports = [\"tcp/8002\"]\nallow = [\"SE\"]\n",
    )
    .unwrap();
    let _listeners: Vec<TcpListener> = [8001, 8002]
        .map(|port| {
            pair.receiver
                .enter(|| TcpListener::bind((RECEIVER_V4, port)))
                .unwrap()
                .unwrap()
        })
        .into();
    let out = inst
        .attach_test_db(
            &pair.receiver,
            &iface,
            &["--policy", policy.to_str().unwrap()],
        )
        .unwrap();
    assert!(
        out.contains("services [api tcp/8001 allow GB; admin tcp/8002 allow SE]"),
        "{out}"
    );
    assert!(
        connect_from(&pair, GB_V4, 8001, CONNECTED_WITHIN).is_ok(),
        "GB -> api"
    );
    assert!(
        connect_from(&pair, SE_V4, 8002, CONNECTED_WITHIN).is_ok(),
        "SE -> admin"
    );
    assert!(
        connect_from(&pair, GB_V4, 8002, DROPPED_AFTER).is_err(),
        "GB -> admin"
    );
    assert!(
        connect_from(&pair, SE_V4, 8001, DROPPED_AFTER).is_err(),
        "SE -> api"
    );
}

#[test]
fn explain_iface_answers_from_the_live_maps_and_fails_when_the_kernel_disagrees() {
    use aya::maps::{Array, MapData};
    use filter_common::{maps::HALF, PolicyRow, ACTION_PASS, ROW_MAIN};

    let pair = VethPair::new("explain").unwrap();
    let inst = Instance::new();
    let iface = pair.receiver_if.clone();
    let ns = Some(&pair.receiver);
    inst.attach_test_db(
        &pair.receiver,
        &iface,
        &["--deny", "GB", "--ports", "tcp/443"],
    )
    .unwrap();
    let out = inst
        .ok(
            ns,
            &[
                "explain", "--iface", &iface, "--port", "tcp/443", GB_V4, SE_V4, "fe80::1",
            ],
        )
        .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].contains(&format!("kernel on {iface} for tcp/443: drop (GB dropped)")),
        "{out}"
    );
    assert!(
        lines[1].contains("kernel on") && lines[1].ends_with("pass (SE passed)"),
        "{out}"
    );
    assert!(lines[2].ends_with("pass (local space passed)"), "{out}");
    // Addresses on stdin; without --port the packets are a UDP datagram to port 53, out of
    // scope, and one to the scope's tcp/443.
    let done = inst
        .output_with_stdin(ns, &["explain", "--iface", &iface], &format!("{GB_V4}\n"))
        .unwrap();
    let text = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success(), "{text}");
    assert!(
        text.contains("for udp/53: pass (out of scope passed)"),
        "{text}"
    );
    // A word that is no address: which one, shown by its start, and nothing explained.
    let done = inst
        .output_with_stdin(
            ns,
            &["explain", "--iface", &iface],
            &format!("{GB_V4}\nfoo{}\n", "x".repeat(10_000)),
        )
        .unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(1), "{err}");
    assert!(done.stdout.is_empty());
    assert!(
        err.starts_with("error: word 2 on stdin, \"fooxxx") && err.len() < 200,
        "{err}"
    );

    // Tamper with the live policy behind regionfilter's back: GB now passes in the kernel,
    // while the known-good data says drop. explain reports it and exits 1.
    let pin_dir = inst.pin_root.join(&iface);
    let active: Array<MapData, u32> = Array::try_from(
        aya::maps::Map::from_map_data(
            MapData::from_pin(pin_dir.join(filter_common::maps::ACTIVE)).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let half = active.get(&0, 0).unwrap() as usize;
    let mut rows: Array<MapData, PolicyRow> = Array::try_from(
        aya::maps::Map::from_map_data(MapData::from_pin(pin_dir.join(HALF[half].policy)).unwrap())
            .unwrap(),
    )
    .unwrap();
    let mut row = rows.get(&u32::from(ROW_MAIN), 0).unwrap();
    let gb = filter_user::model::country::Country::parse("GB")
        .unwrap()
        .index();
    row[usize::from(gb)] = ACTION_PASS;
    rows.set(u32::from(ROW_MAIN), row, 0).unwrap();
    let (code, out) = inst.output_text(
        ns,
        &[
            "explain", "--iface", &iface, "--port", "tcp/443", GB_V4, SE_V4,
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("pass (GB passed); DISAGREES with the model: drop (GB dropped)"),
        "{out}"
    );
    assert!(
        out.contains("error: the attached program and the model disagree on 1 of 2 addresses"),
        "{out}"
    );
    // Without --port the scoped rule is asked too (tcp/443 beside udp/53), so the tampered
    // row shows there as well.
    let (code, out) = inst.output_text(ns, &["explain", "--iface", &iface, GB_V4]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("kernel on {iface} for udp/53: pass (out of scope passed), for tcp/443: pass (GB passed); DISAGREES with the model: drop (GB dropped)")),
        "{out}"
    );

    // The interface goes: nothing filters it, so there is no kernel verdict to give.
    pair.receiver.ip(&["link", "del", &iface]).unwrap();
    let (code, out) = inst.output_text(ns, &["explain", "--iface", &iface, GB_V4]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "error: the interface {iface} is gone (deleted or re-created), so nothing filters it"
        )),
        "{out}"
    );
}
