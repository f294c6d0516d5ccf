//! The lock-out guard: before `attach` or `update` changes anything, find the peers the new
//! policy would cut off on the target interface — the client of the caller's own SSH session
//! and the peer of every established TCP connection to one of the interface's addresses — and
//! refuse unless `--force`. Also the warning for a port scope that overlaps the host's
//! ephemeral ports, whose replies it would judge.

use std::{
    collections::BTreeMap,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use crate::{
    compile::reference::{Model, Packet, Transport, TCP_ACK, TCP_SYN},
    compile::RegionSet,
    model::iface::IfaceName,
    model::policy::{Action, Policy},
    model::scope::{self, Scope},
    ops::guards::Refusal,
};

/// One peer the new policy would drop, and how we know of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CutOff {
    pub peer: IpAddr,
    pub how: String,
}

/// The new policy would cut off these peers.
#[derive(Debug, thiserror::Error)]
pub struct LockOut {
    pub iface: IfaceName,
    pub peers: Vec<CutOff>,
    /// What `update`'s guards refused as well: `--force` would override these too, so the
    /// message names them.
    pub also: Vec<Refusal>,
}

impl fmt::Display for LockOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self
            .peers
            .iter()
            .map(|c| format!("{} ({})", c.peer, c.how))
            .collect();
        write!(
            f,
            "refused, nothing changed: the new policy would drop {} on {}: {}; let them through \
             with --allow-cidr (on update it replaces the list in force: repeat the CIDRs to keep)",
            if self.peers.len() == 1 {
                "a peer you are connected to"
            } else {
                "peers you are connected to"
            },
            self.iface,
            list.join(", ")
        )?;
        if !self.also.is_empty() {
            let also: Vec<String> = self.also.iter().map(ToString::to_string).collect();
            write!(f, "; the guards refuse it too: {}", also.join("; "))?;
        }
        Ok(())
    }
}

/// Peers of the caller and of the interface's established TCP connections that `policy`
/// would drop with `regions`, and that the policy now in force (`current`, on an update) does
/// not already drop: a refusal is about what the change cuts off.
#[must_use]
pub fn check(
    iface: &IfaceName,
    policy: &Policy,
    regions: &RegionSet,
    current: Option<(&Policy, &RegionSet)>,
) -> Vec<CutOff> {
    let ssh = ssh_session(
        std::env::var("SSH_CONNECTION").ok().as_deref(),
        std::env::var("SSH_CLIENT").ok().as_deref(),
    );
    let seen = Seen {
        local: interface_addresses(iface),
        ssh,
        sockets: tcp_sockets(),
    };
    cut_off(&seen, policy, regions, current)
}

/// What the guard found on the host: the interface's addresses, the caller's SSH session and
/// the namespace's TCP sockets.
#[derive(Clone, Debug, Default)]
struct Seen {
    local: Vec<IpAddr>,
    ssh: Option<SshSession>,
    sockets: Vec<TcpSocket>,
}

/// [`check`] on what was found.
fn cut_off(
    seen: &Seen,
    policy: &Policy,
    regions: &RegionSet,
    current: Option<(&Policy, &RegionSet)>,
) -> Vec<CutOff> {
    let local = &seen.local;
    // Peer, the local port, and whether the peer opened the connection.
    let mut peers: BTreeMap<(IpAddr, u16, bool), String> = BTreeMap::new();
    if let Some(SshSession {
        client,
        server,
        port,
    }) = seen.ssh
    {
        // Only a session that reaches this interface (or one whose server address is unknown).
        if server.is_none_or(|s| local.contains(&s)) {
            peers.insert((client, port, true), "your SSH session".to_owned());
        }
    }
    // Connections on a local port with a listening socket were opened by their peers.
    let listening: std::collections::BTreeSet<u16> = seen
        .sockets
        .iter()
        .filter(|s| s.state == TCP_LISTEN)
        .map(|s| s.port)
        .collect();
    let established = seen.sockets.iter().filter(|s| s.state == TCP_ESTABLISHED);
    for &TcpSocket {
        local: local_addr,
        port,
        remote: peer,
        ..
    } in established
    {
        if local.contains(&local_addr) {
            let inbound = listening.contains(&port);
            let how = if inbound {
                format!(
                    "established TCP connection to {}",
                    socket_text(local_addr, port)
                )
            } else {
                format!(
                    "established TCP connection from {}",
                    socket_text(local_addr, port)
                )
            };
            peers.entry((peer, port, inbound)).or_insert(how);
        }
    }
    let drops = |model: &Model<'_>, peer: IpAddr, port: u16, inbound: bool| {
        // A peer that connected to us is judged as its next connection attempt to the same
        // port: under `tcp syn` the open connection survives, but a dropped reconnect is still
        // a lock-out. A connection the host opened is judged by the peer's replies to it.
        let segment = if inbound { TCP_SYN } else { TCP_ACK };
        let packet = Packet::Ip {
            src: peer,
            icmp_error: false,
            ndp: false,
            transport: Transport::Tcp(Some((port, segment))),
        };
        model.judge(&packet).action == Action::Drop
    };
    let new = Model::new(regions, policy);
    let in_force = current.map(|(p, r)| Model::new(r, p));
    peers
        .into_iter()
        .filter(|&((peer, port, inbound), _)| {
            drops(&new, peer, port, inbound)
                && !in_force
                    .as_ref()
                    .is_some_and(|m| drops(m, peer, port, inbound))
        })
        .map(|((peer, _, _), how)| CutOff { peer, how })
        .collect()
}

/// `198.51.100.1:22`, `[fe80::1]:22`.
fn socket_text(addr: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(addr, port).to_string()
}

/// The caller's SSH session: the client, the server address if known, and the server port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SshSession {
    client: IpAddr,
    server: Option<IpAddr>,
    port: u16,
}

/// The session `SSH_CONNECTION` (`client port server port`) names, else `SSH_CLIENT`
/// (`client port port`); the server port is 22 when unreadable.
fn ssh_session(connection: Option<&str>, client: Option<&str>) -> Option<SshSession> {
    let from_connection = connection.and_then(|text| {
        let fields: Vec<&str> = text.split_whitespace().collect();
        Some(SshSession {
            client: host_address(fields.first()?)?,
            server: fields.get(2).and_then(|s| host_address(s)),
            port: fields.get(3).and_then(|p| p.parse().ok()).unwrap_or(22),
        })
    });
    from_connection.or_else(|| {
        let fields: Vec<&str> = client?.split_whitespace().collect();
        Some(SshSession {
            client: host_address(fields.first()?)?,
            server: None,
            port: fields.get(2).and_then(|p| p.parse().ok()).unwrap_or(22),
        })
    })
}

/// An address as OpenSSH writes it: a link-local one carries its zone (`fe80::1%eth0`), which
/// names the link but not the host and is dropped; an IPv4-mapped one is the IPv4 host.
fn host_address(text: &str) -> Option<IpAddr> {
    let addr = text.split_once('%').map_or(text, |(addr, _zone)| addr);
    addr.parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

/// The addresses of `iface` in this network namespace.
fn interface_addresses(iface: &IfaceName) -> Vec<IpAddr> {
    if_addrs::get_if_addrs()
        .map(|all| {
            all.into_iter()
                .filter(|a| a.name == iface.as_str())
                .map(|a| a.ip())
                .collect()
        })
        .unwrap_or_default()
}

/// `/proc/net/tcp` states.
const TCP_ESTABLISHED: u8 = 0x01;
const TCP_LISTEN: u8 = 0x0A;

/// One TCP socket of this network namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TcpSocket {
    local: IpAddr,
    port: u16,
    remote: IpAddr,
    state: u8,
}

/// Every TCP socket of this network namespace, IPv4 and IPv6.
fn tcp_sockets() -> Vec<TcpSocket> {
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        if let Ok(text) = std::fs::read_to_string(file) {
            out.extend(text.lines().skip(1).filter_map(|l| parse_tcp_line(l, v6)));
        }
    }
    out
}

/// One `/proc/net/tcp{,6}` line: `sl local:port remote:port st ...`.
fn parse_tcp_line(line: &str, v6: bool) -> Option<TcpSocket> {
    let mut fields = line.split_whitespace();
    let local = fields.nth(1)?;
    let remote = fields.next()?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    let addr = |field: &str| -> Option<IpAddr> {
        let hex = field.split(':').next()?;
        if v6 {
            // Four 32-bit words, each in host byte order.
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            // A dual-stack socket's IPv4 connection is listed here IPv4-mapped
            // (`::ffff:a.b.c.d`): it is that IPv4 host, on the interface's IPv4 address.
            Some(IpAddr::V6(Ipv6Addr::from(bytes)).to_canonical())
        } else {
            let word = u32::from_str_radix(hex, 16).ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(word.to_ne_bytes())))
        }
    };
    let port = u16::from_str_radix(local.split(':').nth(1)?, 16).ok()?;
    Some(TcpSocket {
        local: addr(local)?,
        port,
        remote: addr(remote)?,
        state,
    })
}

// The scope's own overlap with the host's ephemeral ports: read here, not in `model`, because
// it reads the host.

/// The host's ephemeral port range, if readable.
#[must_use]
pub fn local_port_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
    Some((parts.next()??, parts.next()??))
}

/// Prints a warning when the scope overlaps the ephemeral range.
pub fn warn_ephemeral(scope: &Scope) {
    let Some(range) = local_port_range() else {
        return;
    };
    let hits = scope::ephemeral_overlap(scope, range);
    if !hits.is_empty() {
        log::warn!(
            "scoped ports {} overlap the host's ephemeral range {}-{} \
             (net.ipv4.ip_local_port_range): replies to the host's own connections arrive on \
             those ports and are judged by country",
            scope::ports_text(&hits),
            range.0,
            range.1
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::{
        compile::Span,
        data::SourceInfo,
        model::{country::Country, policy::Mode},
    };

    fn socket(local: &str, remote: &str, state: u8) -> Option<TcpSocket> {
        Some(TcpSocket {
            local: local.parse().unwrap(),
            port: 22,
            remote: remote.parse().unwrap(),
            state,
        })
    }

    #[test]
    fn proc_net_tcp_lines_are_read_in_host_byte_order() {
        // 198.51.100.1:22 <- 81.2.69.160:40000, established (x86: little-endian words).
        let v4 = "   0: 016433C6:0016 A0450251:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0";
        assert_eq!(
            parse_tcp_line(v4, false),
            socket("198.51.100.1", "81.2.69.160", TCP_ESTABLISHED)
        );
        // A listening socket is told apart: it is no connection to cut off.
        let listening = v4.replace(" 01 ", " 0A ");
        assert_eq!(
            parse_tcp_line(&listening, false),
            socket("198.51.100.1", "81.2.69.160", TCP_LISTEN)
        );
        // 2001:db8:ffff::1 <- 2001:218::1.
        let v6 = "   0: B80D01200000FFFF000000000100000:0016 18020120000000000000000001000000:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1 1";
        assert_eq!(
            parse_tcp_line(v6, true),
            None,
            "a malformed local address is skipped"
        );
        let v6 = "   0: B80D01200000FFFF0000000001000000:0016 18020120000000000000000001000000:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1 1";
        assert_eq!(
            parse_tcp_line(v6, true),
            socket("2001:db8:ffff::1", "2001:218::1", TCP_ESTABLISHED)
        );
    }

    // `/proc/net/tcp6` lines as an x86 kernel writes them (each 32-bit word in host byte order):
    // a dual-stack listener on [::]:2222, an IPv4 client 81.2.69.160 connected to it at
    // 198.51.100.1, and a link-local client fe80::5 connected at fe80::7.
    const TCP6_LISTEN: &str = "   0: 00000000000000000000000000000000:08AE 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31877 1 0000000000000000 100 0 0 10 0";
    const TCP6_MAPPED: &str = "   1: 0000000000000000FFFF0000016433C6:08AE 0000000000000000FFFF0000A0450251:A8C2 01 00000000:00000000 00:00000000 00000000     0        0 31880 1 0000000000000000 20 4 30 10 -1";
    const TCP6_LINK_LOCAL: &str = "   2: 000080FE000000000000000007000000:08AE 000080FE000000000000000005000000:B5A0 01 00000000:00000000 00:00000000 00000000     0        0 31883 1 0000000000000000 20 4 30 10 -1";

    #[test]
    fn ipv4_mapped_sockets_of_a_dual_stack_listener_are_ipv4_hosts() {
        let mapped = parse_tcp_line(TCP6_MAPPED, true).unwrap();
        assert_eq!(mapped.local, "198.51.100.1".parse::<IpAddr>().unwrap());
        assert_eq!(mapped.remote, "81.2.69.160".parse::<IpAddr>().unwrap());
        assert_eq!((mapped.port, mapped.state), (2222, TCP_ESTABLISHED));
        let listening = parse_tcp_line(TCP6_LISTEN, true).unwrap();
        assert_eq!(listening.local, "::".parse::<IpAddr>().unwrap());
        assert_eq!((listening.port, listening.state), (2222, TCP_LISTEN));
    }

    #[test]
    fn link_local_sockets_are_read() {
        let socket = parse_tcp_line(TCP6_LINK_LOCAL, true).unwrap();
        assert_eq!(socket.local, "fe80::7".parse::<IpAddr>().unwrap());
        assert_eq!(socket.remote, "fe80::5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ssh_connection_and_ssh_client_are_read_as_openssh_writes_them() {
        let session = |client: &str, server: Option<&str>, port| SshSession {
            client: client.parse().unwrap(),
            server: server.map(|s| s.parse().unwrap()),
            port,
        };
        let read = ssh_session;
        assert_eq!(
            read(Some("81.2.69.160 52000 198.51.100.1 22"), None),
            Some(session("81.2.69.160", Some("198.51.100.1"), 22))
        );
        // A link-local session: OpenSSH writes the zone after both addresses.
        assert_eq!(
            read(Some("fe80::1%eth0 52000 fe80::2%eth0 2222"), None),
            Some(session("fe80::1", Some("fe80::2"), 2222))
        );
        assert_eq!(
            read(Some("fe80::1%2 52000 fe80::2%2 22"), None),
            Some(session("fe80::1", Some("fe80::2"), 22))
        );
        // An IPv4-mapped client is the IPv4 host.
        assert_eq!(
            read(
                Some("::ffff:81.2.69.160 52000 ::ffff:198.51.100.1 22"),
                None
            ),
            Some(session("81.2.69.160", Some("198.51.100.1"), 22))
        );
        // SSH_CLIENT: client, client port, server port.
        assert_eq!(
            read(None, Some("fe80::1%eth0 52000 22")),
            Some(session("fe80::1", None, 22))
        );
        // An unreadable SSH_CONNECTION falls back to SSH_CLIENT rather than to nothing.
        assert_eq!(
            read(Some("garbage"), Some("81.2.69.160 52000 22")),
            Some(session("81.2.69.160", None, 22))
        );
        assert_eq!(read(Some(""), None), None);
        assert_eq!(read(None, None), None);
    }

    /// The test database's GB network 81.2.69.0/24 alone.
    fn gb_only() -> RegionSet {
        RegionSet {
            sources: vec![SourceInfo::default()],
            v4: vec![Span {
                start: u32::from(Ipv4Addr::new(81, 2, 69, 0)),
                end: u32::from(Ipv4Addr::new(81, 2, 69, 255)),
                country: Country::parse("GB").unwrap(),
                source: 0,
            }],
            v6: vec![],
        }
    }

    fn deny(codes: &[&str]) -> Policy {
        let countries: BTreeSet<Country> =
            codes.iter().map(|c| Country::parse(c).unwrap()).collect();
        Policy::new(Mode::Deny, countries)
    }

    fn peers(cut: &[CutOff]) -> Vec<String> {
        cut.iter()
            .map(|c| format!("{} ({})", c.peer, c.how))
            .collect()
    }

    #[test]
    fn an_ipv4_client_of_a_dual_stack_listener_is_judged_as_the_ipv4_peer() {
        let seen = Seen {
            local: vec!["198.51.100.1".parse().unwrap(), "fe80::7".parse().unwrap()],
            ssh: None,
            sockets: [TCP6_LISTEN, TCP6_MAPPED]
                .iter()
                .filter_map(|l| parse_tcp_line(l, true))
                .collect(),
        };
        let regions = gb_only();
        assert_eq!(
            peers(&cut_off(&seen, &deny(&["GB"]), &regions, None)),
            ["81.2.69.160 (established TCP connection to 198.51.100.1:2222)"]
        );
        assert!(cut_off(&seen, &deny(&["SE"]), &regions, None).is_empty());
    }

    #[test]
    fn link_local_peers_are_cut_off_when_the_policy_drops_local_space() {
        let seen = Seen {
            local: vec!["198.51.100.1".parse().unwrap(), "fe80::7".parse().unwrap()],
            ssh: ssh_session(Some("fe80::9%eth0 52000 fe80::7%eth0 22"), None),
            sockets: [TCP6_LISTEN, TCP6_LINK_LOCAL]
                .iter()
                .filter_map(|l| parse_tcp_line(l, true))
                .collect(),
        };
        let regions = gb_only();
        let mut local_drop = deny(&["GB"]);
        local_drop.local = Action::Drop;
        assert_eq!(
            peers(&cut_off(&seen, &local_drop, &regions, None)),
            [
                "fe80::5 (established TCP connection to [fe80::7]:2222)",
                "fe80::9 (your SSH session)"
            ]
        );
        // `--local pass` (the default) keeps them; so does a policy in force that already drops them.
        assert!(cut_off(&seen, &deny(&["GB"]), &regions, None).is_empty());
        assert!(cut_off(&seen, &local_drop, &regions, Some((&local_drop, &regions))).is_empty());
        // An always-pass CIDR over link-local space lets them through.
        local_drop.allow_cidrs = vec!["fe80::/10".parse().unwrap()];
        assert!(cut_off(&seen, &local_drop, &regions, None).is_empty());
    }
}
