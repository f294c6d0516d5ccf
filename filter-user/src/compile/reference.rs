//! The reference model of the whole verdict: a frame in, the counter slot and action the XDP
//! program gives it out. It parses as the program does (Ethernet, VLAN tags, IPv4, IPv6 and
//! its extension headers, ICMP errors, transport ports and flags) and decides from the policy
//! and the compiled data directly, by the precedence the README states, not from the kernel
//! tables: `explain` and the self-test use it, and the differential test compares it with the
//! kernel on a million frames.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use filter_common::{
    country_slot, would_drop_slot, Nat64Prefixes, CLASS_EXCEPTION_DROP, CLASS_EXCEPTION_PASS,
    CLASS_LOCAL, MAX_EXT_HEADERS, ROW_FIRST_SERVICE, ROW_MAIN, ROW_OUT_OF_SCOPE, ROW_STRICT,
    SLOT_FRAGMENT_PASS, SLOT_ICMP_ERROR_PASS, SLOT_MALFORMED_DROP, SLOT_MALFORMED_PASS,
    SLOT_NDP_PASS, SLOT_NON_IP, SLOT_OUT_OF_SCOPE, SLOT_TCP_NOT_SYN, SLOT_UNDECLARED_NAT64_DROP,
    UNKNOWN_COUNTRY,
};
use ipnet::IpNet;

use crate::{
    compile::paint::local_networks,
    compile::RegionSet,
    model::cidr_index::CidrIndex,
    model::country::Country,
    model::policy::{judged_with, Action, IcmpErrors, Judged, Mode, Policy, Tcp},
    model::scope::{PortRange, Proto, Scope},
};

use filter_common::wire::{
    ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, ICMPV6_NDP_FIRST, ICMPV6_NDP_LAST,
    IPPROTO_AH, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS, IPPROTO_ICMP, IPPROTO_ICMPV6,
    IPPROTO_ROUTING, IPPROTO_TCP, IPPROTO_UDP, IPV6_HOP_LIMIT_OFFSET, MAX_VLAN_TAGS, NDP_HOP_LIMIT,
};
pub use filter_common::wire::{TCP_ACK, TCP_SYN};

/// A frame as the program sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet {
    /// Not IPv4 or IPv6.
    NonIp,
    /// Truncated or malformed link or IP headers.
    Malformed,
    Ip {
        /// The source address as the frame carries it; the model reads the IPv4 address an
        /// IPv6 source embeds under the policy's NAT64 prefixes ([`Policy::judged`]).
        src: IpAddr,
        icmp_error: bool,
        /// Neighbour discovery (ICMPv6 133-137, complete header) with hop limit 255.
        ndp: bool,
        transport: Transport,
    },
}

/// The transport header, as far as the program reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP with its destination port and flags; `None` when the 14 bytes up to the flags are
    /// not all in the frame.
    Tcp(Option<(u16, u8)>),
    /// UDP with its destination port; `None` when truncated.
    Udp(Option<u16>),
    /// A protocol without ports (ICMP, ESP, GRE, ...).
    Portless,
    /// A non-first fragment.
    Fragment,
    /// IPv6 extension headers truncated or more than `MAX_EXT_HEADERS`.
    Unknown,
}

/// Parses a frame; `raw_ip` for links without a link-layer header (tun).
#[must_use]
pub fn parse(frame: &[u8], raw_ip: bool) -> Packet {
    let be16 = |at: usize| {
        frame
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (proto, offset) = if raw_ip {
        if frame.len() < 20 {
            return Packet::Malformed;
        }
        match frame[0] >> 4 {
            4 => (ETH_P_IP, 0),
            6 => (ETH_P_IPV6, 0),
            _ => return Packet::Malformed,
        }
    } else {
        let Some(mut proto) = be16(ETH_HLEN - 2) else {
            return Packet::Malformed;
        };
        let mut offset = ETH_HLEN;
        for _ in 0..MAX_VLAN_TAGS {
            if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
                break;
            }
            let Some(next) = be16(offset + 2) else {
                return Packet::Malformed;
            };
            proto = next;
            offset += 4;
        }
        (proto, offset)
    };
    match proto {
        ETH_P_IP => ipv4(frame, offset),
        ETH_P_IPV6 => ipv6(frame, offset),
        ETH_P_8021Q | ETH_P_8021AD => Packet::Malformed,
        _ => Packet::NonIp,
    }
}

fn ipv4(frame: &[u8], offset: usize) -> Packet {
    let Some(header) = frame.get(offset..offset + 20) else {
        return Packet::Malformed;
    };
    if header[0] >> 4 != 4 || header[0] & 0x0f < 5 {
        return Packet::Malformed;
    }
    let src = IpAddr::V4(Ipv4Addr::new(
        header[12], header[13], header[14], header[15],
    ));
    if u16::from_be_bytes([header[6], header[7]]) & 0x1fff != 0 {
        return Packet::Ip {
            src,
            icmp_error: false,
            ndp: false,
            transport: Transport::Fragment,
        };
    }
    let at = offset + usize::from(header[0] & 0x0f) * 4;
    let proto = header[9];
    let icmp_error = proto == IPPROTO_ICMP
        && frame
            .get(at..at + 4)
            .is_some_and(|icmp| matches!(icmp[0], 3 | 11 | 12));
    Packet::Ip {
        src,
        icmp_error,
        ndp: false,
        transport: transport(frame, proto, at),
    }
}

fn ipv6(frame: &[u8], offset: usize) -> Packet {
    let Some(header) = frame.get(offset..offset + 40) else {
        return Packet::Malformed;
    };
    if header[0] >> 4 != 6 {
        return Packet::Malformed;
    }
    let src: [u8; 16] = header[8..24].try_into().expect("16 bytes");
    let mut next = header[6];
    let mut at = offset + 40;
    let mut found = None;
    for _ in 0..MAX_EXT_HEADERS {
        let ext = frame.get(at..at + 8);
        match (next, ext) {
            (
                IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT,
                None,
            ) => {
                found = Some(Transport::Unknown);
                break;
            }
            (IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS, Some(ext)) => {
                next = ext[0];
                at += (usize::from(ext[1]) + 1) * 8;
            }
            (IPPROTO_AH, Some(ext)) => {
                next = ext[0];
                at += (usize::from(ext[1]) + 2) * 4;
            }
            (IPPROTO_FRAGMENT, Some(ext)) => {
                if u16::from_be_bytes([ext[2], ext[3]]) & 0xfff8 != 0 {
                    found = Some(Transport::Fragment);
                    break;
                }
                next = ext[0];
                at += 8;
            }
            _ => {
                found = Some(transport(frame, next, at));
                break;
            }
        }
    }
    // Six extension headers walked: what follows must be the transport header.
    let transport = found.unwrap_or_else(|| match next {
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT => {
            Transport::Unknown
        }
        _ => transport(frame, next, at),
    });
    let icmp_type = (next == IPPROTO_ICMPV6
        && !matches!(transport, Transport::Fragment | Transport::Unknown))
    .then(|| frame.get(at..at + 4).map(|icmp| icmp[0]))
    .flatten();
    let icmp_error = icmp_type.is_some_and(|t| matches!(t, 1..=4));
    let ndp = header[IPV6_HOP_LIMIT_OFFSET] == NDP_HOP_LIMIT
        && icmp_type.is_some_and(|t| (ICMPV6_NDP_FIRST..=ICMPV6_NDP_LAST).contains(&t));
    Packet::Ip {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        icmp_error,
        ndp,
        transport,
    }
}

fn transport(frame: &[u8], proto: u8, at: usize) -> Transport {
    match proto {
        IPPROTO_TCP => Transport::Tcp(
            frame
                .get(at..at + 14)
                .map(|h| (u16::from_be_bytes([h[2], h[3]]), h[13])),
        ),
        IPPROTO_UDP => Transport::Udp(
            frame
                .get(at..at + 4)
                .map(|h| u16::from_be_bytes([h[2], h[3]])),
        ),
        _ => Transport::Portless,
    }
}

/// What a source address is, by precedence: always-pass CIDRs, always-drop CIDRs, local
/// space, then its country in the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    AllowCidr(IpNet),
    DenyCidr(IpNet),
    Local(IpNet),
    Country(Country),
    Unknown,
}

impl Class {
    /// The kernel table entry of this class.
    #[must_use]
    pub fn entry(self) -> u16 {
        match self {
            Self::AllowCidr(_) => CLASS_EXCEPTION_PASS,
            Self::DenyCidr(_) => CLASS_EXCEPTION_DROP,
            Self::Local(_) => CLASS_LOCAL,
            Self::Country(c) => c.index(),
            Self::Unknown => UNKNOWN_COUNTRY,
        }
    }
}

/// Which rule judged a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The main rule (the whole host, or `--ports`).
    Main,
    /// A service of the policy file, by name.
    Service(String),
    /// The strictest of all rules: the packet's ports could not be read under a scope.
    Strict,
}

/// Why a packet got its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    NonIp,
    Malformed,
    IcmpError,
    /// Neighbour discovery with hop limit 255: from the link itself.
    NeighbourDiscovery,
    /// An IPv6 source in `64:ff9b:1::/48` outside every declared NAT64 prefix.
    UndeclaredNat64,
    OutOfScope,
    Fragment,
    TcpNotSyn,
    Judged {
        rule: Rule,
        class: Class,
    },
}

/// The program's verdict on one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub slot: u32,
    /// What happens to the packet (a dry run passes everything).
    pub action: Action,
    /// What the policy says (`Drop` during a dry run means "would drop").
    pub verdict: Action,
    pub why: Why,
}

/// The policy and data the verdict comes from.
pub struct Model<'a> {
    pub regions: &'a RegionSet,
    pub policy: &'a Policy,
    /// The always-pass, always-drop and local CIDRs, indexed: a scan of the exceptions for
    /// every judged address made the self-test quadratic in their number.
    allow: CidrIndex,
    deny: CidrIndex,
    local: CidrIndex,
    /// The policy's rules, listed once rather than for every packet.
    rules: Vec<(u8, Mode, &'a BTreeSet<Country>)>,
    /// The declared NAT64 prefixes as the kernel holds them.
    nat64: Nat64Prefixes,
}

impl<'a> Model<'a> {
    #[must_use]
    pub fn new(regions: &'a RegionSet, policy: &'a Policy) -> Self {
        Self {
            regions,
            policy,
            allow: CidrIndex::new(&policy.allow_cidrs),
            deny: CidrIndex::new(&policy.deny_cidrs),
            local: CidrIndex::new(&local_networks()),
            rules: policy.rules(),
            nat64: policy.nat64_table(),
        }
    }

    /// What a source is judged as: itself, the IPv4 address it embeds, or an undeclared
    /// NAT64 source ([`filter_common::embedded_ipv4`], the function the program runs).
    #[must_use]
    pub fn judged(&self, src: IpAddr) -> Judged {
        judged_with(src, &self.nat64)
    }

    /// The class of a judged address (see [`crate::model::policy::as_judged`]).
    #[must_use]
    pub fn class(&self, addr: IpAddr) -> Class {
        if let Some(net) = self.allow.longest(addr) {
            return Class::AllowCidr(net);
        }
        if let Some(net) = self.deny.longest(addr) {
            return Class::DenyCidr(net);
        }
        if let Some(net) = self.local.longest(addr) {
            return Class::Local(net);
        }
        self.regions
            .country_of(addr)
            .map_or(Class::Unknown, Class::Country)
    }

    /// Parses and judges a frame.
    #[must_use]
    pub fn judge_frame(&self, frame: &[u8], raw_ip: bool) -> Decision {
        self.judge(&parse(frame, raw_ip))
    }

    /// The slot and action the program gives `packet`.
    #[must_use]
    pub fn judge(&self, packet: &Packet) -> Decision {
        let (slot, verdict, why) = self.decide(packet);
        if verdict == Action::Drop && self.policy.dry_run {
            return Decision {
                slot: would_drop_slot(slot),
                action: Action::Pass,
                verdict,
                why,
            };
        }
        Decision {
            slot,
            action: verdict,
            verdict,
            why,
        }
    }

    fn decide(&self, packet: &Packet) -> (u32, Action, Why) {
        let p = self.policy;
        let (src, icmp_error, ndp, transport) = match *packet {
            Packet::NonIp => return (SLOT_NON_IP, Action::Pass, Why::NonIp),
            Packet::Malformed => {
                return match p.malformed {
                    Action::Drop => (SLOT_MALFORMED_DROP, Action::Drop, Why::Malformed),
                    Action::Pass => (SLOT_MALFORMED_PASS, Action::Pass, Why::Malformed),
                }
            }
            Packet::Ip {
                src,
                icmp_error,
                ndp,
                transport,
            } => (src, icmp_error, ndp, transport),
        };
        if icmp_error && p.icmp_errors == IcmpErrors::Pass {
            return (SLOT_ICMP_ERROR_PASS, Action::Pass, Why::IcmpError);
        }
        if ndp {
            return (SLOT_NDP_PASS, Action::Pass, Why::NeighbourDiscovery);
        }
        let row = match self.row(transport) {
            Ok(row) => row,
            Err((slot, why)) => return (slot, Action::Pass, why),
        };
        let src = match self.judged(src) {
            Judged::Addr(addr) => addr,
            Judged::UndeclaredNat64 => {
                return (
                    SLOT_UNDECLARED_NAT64_DROP,
                    Action::Drop,
                    Why::UndeclaredNat64,
                )
            }
        };
        let class = self.class(src);
        let entry = class.entry();
        let action = Policy::row_action_of(&self.rules, row, |mode, countries| {
            p.rule_action(mode, countries, entry)
        });
        let rule = match row {
            ROW_STRICT => Rule::Strict,
            ROW_MAIN => Rule::Main,
            service => match &p.scope {
                Scope::Services { services, .. } => Rule::Service(
                    services[usize::from(service - ROW_FIRST_SERVICE)]
                        .name
                        .clone(),
                ),
                Scope::Host | Scope::Ports(_) => unreachable!("only services have service rows"),
            },
        };
        (
            country_slot(entry, action.kernel()),
            action,
            Why::Judged { rule, class },
        )
    }

    /// The policy row that judges a packet with this transport, or why it passes unjudged.
    fn row(&self, transport: Transport) -> Result<u8, (u32, Why)> {
        let scope = self.policy.scope != Scope::Host;
        let syn_only = self.policy.tcp == Tcp::Syn;
        if !scope && !syn_only {
            return Ok(ROW_MAIN);
        }
        let unparsed = if scope { ROW_STRICT } else { ROW_MAIN };
        let row = match transport {
            Transport::Fragment => return Err((SLOT_FRAGMENT_PASS, Why::Fragment)),
            Transport::Unknown | Transport::Tcp(None) | Transport::Udp(None) => unparsed,
            Transport::Tcp(Some((port, flags))) => {
                if syn_only && flags & (TCP_SYN | TCP_ACK) != TCP_SYN {
                    return Err((SLOT_TCP_NOT_SYN, Why::TcpNotSyn));
                }
                if !scope {
                    return Ok(ROW_MAIN);
                }
                self.port_row(Some((Proto::Tcp, port)))
            }
            _ if !scope => ROW_MAIN,
            Transport::Udp(Some(port)) => self.port_row(Some((Proto::Udp, port))),
            Transport::Portless => self.port_row(None),
        };
        if row == ROW_OUT_OF_SCOPE {
            return Err((SLOT_OUT_OF_SCOPE, Why::OutOfScope));
        }
        Ok(row)
    }

    /// The row for a destination port (`None`: a packet without ports), from the scope as
    /// the policy states it.
    #[must_use]
    pub fn port_row(&self, port: Option<(Proto, u16)>) -> u8 {
        let covers = |ranges: &[PortRange]| {
            port.is_some_and(|(proto, p)| {
                ranges
                    .iter()
                    .any(|r| r.proto == proto && (r.first..=r.last).contains(&p))
            })
        };
        match &self.policy.scope {
            Scope::Host => ROW_MAIN,
            Scope::Ports(ports) if covers(ports) => ROW_MAIN,
            Scope::Ports(_) => ROW_OUT_OF_SCOPE,
            Scope::Services {
                services,
                other_judged,
            } => (ROW_FIRST_SERVICE..)
                .zip(services)
                .find(|(_, s)| covers(&s.ports))
                .map_or(
                    if *other_judged {
                        ROW_MAIN
                    } else {
                        ROW_OUT_OF_SCOPE
                    },
                    |(row, _)| row,
                ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp(src: [u8; 4], dport: u16, flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
        f[14] = 0x45;
        f[23] = IPPROTO_TCP;
        f[26..30].copy_from_slice(&src);
        f[34 + 2..34 + 4].copy_from_slice(&dport.to_be_bytes());
        f[34 + 13] = flags;
        f
    }

    #[test]
    fn parses_ports_flags_fragments_and_truncation() {
        let f = ipv4_tcp([1, 2, 3, 4], 443, TCP_SYN);
        let Packet::Ip { transport, .. } = parse(&f, false) else {
            panic!()
        };
        assert_eq!(transport, Transport::Tcp(Some((443, TCP_SYN))));
        let Packet::Ip { transport, .. } = parse(&f[..14 + 20 + 13], false) else {
            panic!()
        };
        assert_eq!(transport, Transport::Tcp(None));
        let mut frag = f.clone();
        frag[14 + 7] = 1; // fragment offset 8
        let Packet::Ip { transport, .. } = parse(&frag, false) else {
            panic!()
        };
        assert_eq!(transport, Transport::Fragment);
        assert_eq!(parse(&f[..30], false), Packet::Malformed);
        assert_eq!(parse(&f[14..], true), parse(&f, false));
    }

    /// The class as it was found before the exceptions were indexed: a scan of each list.
    fn class_by_scan(model: &Model<'_>, addr: IpAddr) -> Class {
        let longest = |nets: &[IpNet]| {
            nets.iter()
                .filter(|n| n.contains(&addr))
                .max_by_key(|n| n.prefix_len())
                .copied()
        };
        if let Some(net) = longest(&model.policy.allow_cidrs) {
            return Class::AllowCidr(net);
        }
        if let Some(net) = longest(&model.policy.deny_cidrs) {
            return Class::DenyCidr(net);
        }
        if let Some(net) = longest(&local_networks()) {
            return Class::Local(net);
        }
        model
            .regions
            .country_of(addr)
            .map_or(Class::Unknown, Class::Country)
    }

    #[test]
    fn classes_from_the_index_are_those_of_a_scan() {
        let mut rng = crate::sys::testing::Rng(0x0c1a_55e5);
        // Overlapping exceptions around 10/8 (local space) and 11/8, both families.
        let net = |rng: &mut crate::sys::testing::Rng| -> IpNet {
            let r = rng.next();
            if r.is_multiple_of(4) {
                let addr = Ipv6Addr::from((0xfd00u128 << 112) | u128::from(r >> 8) << 64);
                IpNet::new(IpAddr::V6(addr), u8::try_from(r % 97).unwrap() + 7)
                    .unwrap()
                    .trunc()
            } else {
                let addr =
                    Ipv4Addr::from(0x0a00_0000 | (u32::try_from(r >> 40).unwrap() & 0x01ff_ffff));
                IpNet::new(IpAddr::V4(addr), u8::try_from(r % 25).unwrap() + 8)
                    .unwrap()
                    .trunc()
            }
        };
        let regions = RegionSet::default();
        for _ in 0..50 {
            let mut policy = Policy::new(Mode::Deny, BTreeSet::new());
            policy.allow_cidrs = (0..rng.next() % 20).map(|_| net(&mut rng)).collect();
            policy.deny_cidrs = (0..rng.next() % 20).map(|_| net(&mut rng)).collect();
            let model = Model::new(&regions, &policy);
            for _ in 0..500 {
                let probe = net(&mut rng);
                let addr = match probe {
                    IpNet::V4(n) => IpAddr::V4(n.broadcast()),
                    IpNet::V6(n) => IpAddr::V6(n.network()),
                };
                assert_eq!(model.class(addr), class_by_scan(&model, addr), "{addr}");
            }
        }
    }
}
