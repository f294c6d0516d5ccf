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
    cli::{fixture, Instance},
    netns::{VethPair, RECEIVER_V4},
};

/// Sources inside the bundled MaxMind test database (see fixtures/README.md).
const GB_V4: &str = "81.2.69.160";
const SE_V4: &str = "89.160.20.130";
/// How long a connection attempt that the filter drops is given before it counts as refused.
const DROPPED_AFTER: Duration = Duration::from_secs(1);
const CONNECTED_WITHIN: Duration = Duration::from_secs(10);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn db() -> String {
    fixture("maxmind/GeoLite2-Country-Test.mmdb")
        .display()
        .to_string()
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
        .ok(
            ns,
            &[
                "attach",
                "--iface",
                &iface,
                "--db",
                &db(),
                "--mode",
                "skb",
                "--deny",
                "GB",
                "--ports",
                "tcp/8443",
            ],
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
    inst.ok(
        Some(&pair.receiver),
        &[
            "attach",
            "--iface",
            &iface,
            "--db",
            &db(),
            "--mode",
            "skb",
            "--allow",
            "SE",
            "--unknown",
            "drop",
        ],
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
        .ok(
            Some(&pair.receiver),
            &[
                "attach",
                "--iface",
                &iface,
                "--db",
                &db(),
                "--mode",
                "skb",
                "--policy",
                policy.to_str().unwrap(),
            ],
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
