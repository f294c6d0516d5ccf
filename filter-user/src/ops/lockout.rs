//! The lock-out guard: before `attach` or `update` changes anything, find the peers the new
//! policy would cut off on the target interface — the client of the caller's own SSH session
//! and the peer of every established TCP connection to one of the interface's addresses — and
//! refuse unless `--force`.

use std::{
    collections::BTreeMap,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use crate::{
    compile::RegionSet,
    model::iface::IfaceName,
    model::policy::{Action, Policy},
    model::reference::{Model, Packet, Transport, TCP_ACK, TCP_SYN},
    ops::guards::Refusal,
};

/// Exit code of the refusal (also in the README).
pub const EXIT_LOCKOUT: u8 = 10;

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
    let local = interface_addresses(iface);
    // Peer, the local port, and whether the peer opened the connection.
    let mut peers: BTreeMap<(IpAddr, u16, bool), String> = BTreeMap::new();
    if let Some((client, server, port)) = ssh_session() {
        // Only a session that reaches this interface (or one whose server address is unknown).
        if server.is_none_or(|s| local.contains(&s)) {
            peers.insert((client, port, true), "your SSH session".to_owned());
        }
    }
    let sockets = tcp_sockets();
    // Connections on a local port with a listening socket were opened by their peers.
    let listening: std::collections::BTreeSet<u16> = sockets
        .iter()
        .filter(|s| s.state == TCP_LISTEN)
        .map(|s| s.port)
        .collect();
    let established = sockets.iter().filter(|s| s.state == TCP_ESTABLISHED);
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
                format!("established TCP connection to {local_addr}:{port}")
            } else {
                format!("established TCP connection from {local_addr}:{port}")
            };
            peers.entry((peer, port, inbound)).or_insert(how);
        }
    }
    let drops = |policy: &Policy, regions: &RegionSet, peer: IpAddr, port: u16, inbound: bool| {
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
        Model::new(regions, policy).judge(&packet).action == Action::Drop
    };
    peers
        .into_iter()
        .filter(|&((peer, port, inbound), _)| {
            drops(policy, regions, peer, port, inbound)
                && !current.is_some_and(|(p, r)| drops(p, r, peer, port, inbound))
        })
        .map(|((peer, _, _), how)| CutOff { peer, how })
        .collect()
}

/// `SSH_CONNECTION` (`client port server port`), else `SSH_CLIENT` (`client port port`):
/// the client, the server address if known, and the server port (22 when unreadable).
fn ssh_session() -> Option<(IpAddr, Option<IpAddr>, u16)> {
    if let Ok(text) = std::env::var("SSH_CONNECTION") {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let client = fields.first()?.parse().ok()?;
        let server = fields.get(2).and_then(|s| s.parse().ok());
        let port = fields.get(3).and_then(|p| p.parse().ok()).unwrap_or(22);
        return Some((client, server, port));
    }
    let text = std::env::var("SSH_CLIENT").ok()?;
    let fields: Vec<&str> = text.split_whitespace().collect();
    let port = fields.get(2).and_then(|p| p.parse().ok()).unwrap_or(22);
    Some((fields.first()?.parse().ok()?, None, port))
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
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
