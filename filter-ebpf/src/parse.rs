//! Finding the source address of a frame and where its transport header is: Ethernet, up to
//! two VLAN tags (or no link-layer header on raw-IP links), IPv4 or IPv6 with its extension
//! headers.

use core::mem::size_of;

use aya_ebpf::programs::XdpContext;
pub use filter_common::wire::{ETH_HLEN, ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, IPPROTO_UDP};
use filter_common::{
    embedded_ipv4,
    wire::{
        ETH_P_8021AD, ETH_P_8021Q, ICMPV6_NDP_FIRST, ICMPV6_NDP_LAST, IPPROTO_AH, IPPROTO_DSTOPTS,
        IPPROTO_FRAGMENT, IPPROTO_HOPOPTS, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_ROUTING,
        IPV6_HOP_LIMIT_OFFSET, MAX_VLAN_TAGS, NDP_HOP_LIMIT, VLAN_HLEN,
    },
    Embedding, Nat64Prefixes,
};

/// Where the source address sits in a frame without VLAN tags (the benchmark rewrites it there).
pub const IPV4_SRC_OFFSET: usize = ETH_HLEN + 12;
pub const IPV6_SRC_OFFSET: usize = ETH_HLEN + 8;

/// What the filter judges a frame by. A plain struct with every field always written (as
/// [`Transport`]): the verifier refuses reads of registers LLVM left uninitialised for an
/// enum payload the taken path does not use.
#[derive(Clone, Copy)]
pub struct Source {
    pub kind: SourceKind,
    /// An ICMP or ICMPv6 error message (destination unreachable, packet too big, time
    /// exceeded, parameter problem) from this source: passed unless the policy judges them.
    pub icmp_error: bool,
    /// A neighbour discovery message (ICMPv6 133-137, complete header) with hop limit 255:
    /// it comes from the link itself, so it passes whatever its source.
    pub ndp: bool,
    /// The address judged; IPv4 in the first four bytes, the rest zero.
    pub addr: [u8; 16],
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    V4,
    V6,
    /// An IPv6 source in `64:ff9b:1::/48` outside every declared translator prefix: its IPv4
    /// address cannot be read ([`Embedding::UndeclaredNat64`]).
    UndeclaredNat64,
    /// Truncated or malformed Ethernet/VLAN/IP headers.
    Malformed,
    /// Not IPv4 or IPv6 (ARP, LLDP, ...).
    NonIp,
}

impl Source {
    const MALFORMED: Self = Self {
        kind: SourceKind::Malformed,
        icmp_error: false,
        ndp: false,
        addr: [0; 16],
    };
    const NON_IP: Self = Self {
        kind: SourceKind::NonIp,
        icmp_error: false,
        ndp: false,
        addr: [0; 16],
    };

    #[inline(always)]
    fn v4(a: [u8; 4], icmp_error: bool) -> Self {
        let mut addr = [0; 16];
        addr[..4].copy_from_slice(&a);
        Self {
            kind: SourceKind::V4,
            icmp_error,
            ndp: false,
            addr,
        }
    }

    #[inline(always)]
    fn v6(addr: [u8; 16], icmp_error: bool, ndp: bool) -> Self {
        Self {
            kind: SourceKind::V6,
            icmp_error,
            ndp,
            addr,
        }
    }

    /// A source that embeds an IPv4 address (mapped, compatible, 6to4, Teredo, NAT64 under
    /// the well-known or a declared prefix) is judged by that address, and counted under its
    /// country: the IPv6 data leaves those ranges out, and as unknown IPv6 space they would
    /// pass a deny-list. Done once the half is known, because the declared NAT64 prefixes are
    /// part of its policy.
    #[inline(always)]
    pub fn resolve_embedding(&mut self, nat64: &Nat64Prefixes) {
        if self.kind != SourceKind::V6 {
            return;
        }
        match embedded_ipv4(&self.addr, nat64) {
            Embedding::Ipv4(v4) => {
                self.kind = SourceKind::V4;
                self.addr = [0; 16];
                self.addr[..4].copy_from_slice(&v4);
            }
            Embedding::UndeclaredNat64 => self.kind = SourceKind::UndeclaredNat64,
            Embedding::None => {}
        }
    }

    /// The IPv4 address of a `V4` source.
    #[inline(always)]
    pub fn v4_addr(&self) -> [u8; 4] {
        [self.addr[0], self.addr[1], self.addr[2], self.addr[3]]
    }
}

/// The transport header of an IP packet, as far as the filter reads it. A plain struct, every
/// field always written: an enum with a payload lets LLVM move an uninitialised payload
/// register around, which the verifier refuses. The fields are read where the header is found,
/// so its offset dies there: states that reached it through different extension headers then
/// look alike to the verifier, which prunes them instead of checking the judge once per path.
#[derive(Clone, Copy)]
pub struct Transport {
    pub kind: TransportKind,
    /// The IP protocol, for [`TransportKind::At`].
    pub proto: u8,
    /// Whether the bytes read below are in the frame: TCP up to its flags (14), UDP or ICMP
    /// their first four.
    pub complete: bool,
    /// TCP or UDP destination port.
    pub dport: u16,
    /// TCP flags; the type of an ICMP or ICMPv6 message.
    pub flags: u8,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// The transport header was found (an unfragmented packet or a first fragment).
    At,
    /// A non-first fragment: it carries no transport header.
    Fragment,
    /// IPv6 extension headers that are truncated or more than [`MAX_EXT_HEADERS`], or no IP.
    Unknown,
}

impl Transport {
    pub const UNKNOWN: Self = Self::of(TransportKind::Unknown, 0);
    const FRAGMENT: Self = Self::of(TransportKind::Fragment, 0);

    const fn of(kind: TransportKind, proto: u8) -> Self {
        Self {
            kind,
            proto,
            complete: false,
            dport: 0,
            flags: 0,
        }
    }

    /// Reads the header of protocol `proto` at byte `at`.
    #[inline(always)]
    fn at(ctx: &XdpContext, proto: u8, at: usize) -> Self {
        let mut t = Self::of(TransportKind::At, proto);
        match proto {
            IPPROTO_TCP => {
                if let Some(tcp) = bounded::<TCP_READ>(ctx, at) {
                    t.complete = true;
                    t.dport = u16::from_be_bytes(tcp.read::<[u8; 2]>(2));
                    t.flags = tcp.read::<u8>(13);
                }
            }
            IPPROTO_UDP => {
                if let Some(udp) = bounded::<4>(ctx, at) {
                    t.complete = true;
                    t.dport = u16::from_be_bytes(udp.read::<[u8; 2]>(2));
                }
            }
            IPPROTO_ICMP | IPPROTO_ICMPV6 => {
                if let Some(icmp) = bounded::<ICMP_HLEN>(ctx, at) {
                    t.complete = true;
                    t.flags = icmp.read::<u8>(0);
                }
            }
            _ => t.complete = true,
        }
        t
    }
}

/// Non-zero when the interface's frames start with the IP header (tun, WireGuard, ip tunnels):
/// set by userspace at load time from the link type, read-only, so the verifier keeps only the
/// parser the interface needs.
#[unsafe(no_mangle)]
static RAW_IP: u32 = 0;

/// Reads the source address of a frame and where its transport header is.
#[inline(always)]
pub fn packet(ctx: &XdpContext) -> (Source, Transport) {
    // SAFETY: a plain read of a load-time constant.
    let raw_ip = unsafe { core::ptr::read_volatile(&RAW_IP) } != 0;
    let (proto, offset) = if raw_ip {
        // No link-layer header: the version nibble says which IP it is. A raw-IP link carries
        // nothing else, so any other nibble is malformed.
        // (Checked as the 20 bytes every IP header has: a one-byte check lets LLVM turn
        // `data + 1 > end` into `data >= end`, which the verifier cannot use.)
        let Some(first) = bounded::<IPV4_HLEN>(ctx, 0) else {
            return (Source::MALFORMED, Transport::UNKNOWN);
        };
        match first.read::<u8>(0) >> 4 {
            4 => (ETH_P_IP, 0),
            6 => (ETH_P_IPV6, 0),
            _ => return (Source::MALFORMED, Transport::UNKNOWN),
        }
    } else {
        match ethernet(ctx) {
            Some(found) => found,
            None => return (Source::MALFORMED, Transport::UNKNOWN),
        }
    };
    match proto {
        ETH_P_IP => ipv4(ctx, offset),
        ETH_P_IPV6 => ipv6(ctx, offset),
        ETH_P_8021Q | ETH_P_8021AD => (Source::MALFORMED, Transport::UNKNOWN),
        _ => (Source::NON_IP, Transport::UNKNOWN),
    }
}

#[inline(always)]
fn ipv4(ctx: &XdpContext, offset: usize) -> (Source, Transport) {
    // A full fixed header must be present; the source address sits at byte 12. One bounds
    // check covers every field read, so the compiler cannot fold separate checks into paths
    // the verifier cannot follow.
    let Some(header) = bounded::<IPV4_HLEN>(ctx, offset) else {
        return (Source::MALFORMED, Transport::UNKNOWN);
    };
    let (vihl, src) = (header.read::<u8>(0), header.read::<[u8; 4]>(12));
    if vihl >> 4 != 4 || vihl & 0x0f < 5 {
        return (Source::MALFORMED, Transport::UNKNOWN);
    }
    // Only a first (or unfragmented) datagram carries the transport header.
    if u16::from_be_bytes(header.read::<[u8; 2]>(6)) & IP_OFFSET_MASK != 0 {
        return (Source::v4(src, false), Transport::FRAGMENT);
    }
    let proto = header.read::<u8>(9);
    let transport = Transport::at(ctx, proto, offset + usize::from(vihl & 0x0f) * 4);
    let icmp_error =
        proto == IPPROTO_ICMP && transport.complete && matches!(transport.flags, 3 | 11 | 12);
    (Source::v4(src, icmp_error), transport)
}

#[inline(always)]
fn ipv6(ctx: &XdpContext, offset: usize) -> (Source, Transport) {
    // A full fixed header must be present; the source address sits at byte 8.
    let Some(header) = bounded::<IPV6_HLEN>(ctx, offset) else {
        return (Source::MALFORMED, Transport::UNKNOWN);
    };
    let (version, src) = (header.read::<u8>(0), header.read::<[u8; 16]>(8));
    if version >> 4 != 6 {
        return (Source::MALFORMED, Transport::UNKNOWN);
    }
    let hop_limit = header.read::<u8>(IPV6_HOP_LIMIT_OFFSET);
    let transport = ipv6_transport(ctx, header.read::<u8>(6), offset + IPV6_HLEN);
    let icmpv6 = transport.kind == TransportKind::At
        && transport.proto == IPPROTO_ICMPV6
        && transport.complete;
    let icmp_error = icmpv6 && matches!(transport.flags, 1..=4);
    let ndp = icmpv6
        && hop_limit == NDP_HOP_LIMIT
        && (ICMPV6_NDP_FIRST..=ICMPV6_NDP_LAST).contains(&transport.flags);
    // The embedded IPv4 address is read once the half is known (`resolve_embedding`).
    (Source::v6(src, icmp_error, ndp), transport)
}

/// The EtherType after the Ethernet header and up to two VLAN tags, and where the next header
/// starts; `None` when the headers are truncated.
#[inline(always)]
fn ethernet(ctx: &XdpContext) -> Option<(u16, usize)> {
    let mut proto = read_be16(ctx, ETH_HLEN - 2)?;
    let mut offset = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        proto = read_be16(ctx, offset + 2)?;
        offset += VLAN_HLEN;
    }
    Some((proto, offset))
}

/// Walks up to [`MAX_EXT_HEADERS`] IPv6 extension headers from next header `next` at byte
/// `at` to the transport header.
#[inline(always)]
fn ipv6_transport(ctx: &XdpContext, mut next: u8, mut at: usize) -> Transport {
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let Some(ext) = bounded::<8>(ctx, at) else {
                    return Transport::UNKNOWN;
                };
                next = ext.read::<u8>(0);
                at += (usize::from(ext.read::<u8>(1)) + 1) * 8;
            }
            IPPROTO_AH => {
                let Some(ext) = bounded::<8>(ctx, at) else {
                    return Transport::UNKNOWN;
                };
                next = ext.read::<u8>(0);
                at += (usize::from(ext.read::<u8>(1)) + 2) * 4;
            }
            IPPROTO_FRAGMENT => {
                let Some(ext) = bounded::<8>(ctx, at) else {
                    return Transport::UNKNOWN;
                };
                if u16::from_be_bytes(ext.read::<[u8; 2]>(2)) & 0xfff8 != 0 {
                    return Transport::FRAGMENT;
                }
                next = ext.read::<u8>(0);
                at += 8;
            }
            _ => return Transport::at(ctx, next, at),
        }
    }
    // Six extension headers walked: what follows must be the transport header.
    match next {
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT => {
            Transport::UNKNOWN
        }
        _ => Transport::at(ctx, next, at),
    }
}

/// Fragment offset bits of the IPv4 flags/offset field.
const IP_OFFSET_MASK: u16 = 0x1fff;
/// TCP header bytes up to and including the flags.
const TCP_READ: usize = 14;
/// Type, code and checksum: an ICMP header's first four bytes, all the filter reads.
const ICMP_HLEN: usize = 4;
/// IPv6 extension headers walked before giving up on finding the transport header
/// (`filter_common::MAX_EXT_HEADERS`).
const MAX_EXT_HEADERS: usize = filter_common::MAX_EXT_HEADERS;

const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;

/// `N` bytes of the frame known to be inside its linear part.
pub struct Bounded<const N: usize> {
    start: usize,
}

impl<const N: usize> Bounded<N> {
    /// Reads a `T` at `at` within the checked bytes.
    #[inline(always)]
    pub fn read<T: Copy>(&self, at: usize) -> T {
        const { assert!(size_of::<T>() <= N) };
        debug_assert!(at + size_of::<T>() <= N);
        // SAFETY: `bounded` checked that start..start + N lies before data_end, and callers
        // read inside those N bytes; packet data has no alignment.
        unsafe { ((self.start + at) as *const T).read_unaligned() }
    }
}

/// The `N` bytes at `offset`, if the linear part holds all of them.
#[inline(always)]
pub fn bounded<const N: usize>(ctx: &XdpContext, offset: usize) -> Option<Bounded<N>> {
    let start = ctx.data() + offset;
    if start + N > ctx.data_end() {
        return None;
    }
    Some(Bounded { start })
}

/// Reads a `T` at `offset` from the start of the frame, if the linear part holds all of it.
#[inline(always)]
pub fn read<T: Copy>(ctx: &XdpContext, offset: usize) -> Option<T> {
    let start = ctx.data();
    if start + offset + size_of::<T>() > ctx.data_end() {
        return None;
    }
    // SAFETY: bounds checked against data_end just above; packet data has no alignment.
    Some(unsafe { ((start + offset) as *const T).read_unaligned() })
}

/// Writes a `T` at `offset`, if the linear part holds all of it.
#[inline(always)]
pub fn write<T: Copy>(ctx: &XdpContext, offset: usize, value: T) {
    let start = ctx.data();
    if start + offset + size_of::<T>() > ctx.data_end() {
        return;
    }
    // SAFETY: bounds checked against data_end just above; XDP packet data is writable.
    unsafe { ((start + offset) as *mut T).write_unaligned(value) }
}

#[inline(always)]
pub fn read_be16(ctx: &XdpContext, offset: usize) -> Option<u16> {
    read::<[u8; 2]>(ctx, offset).map(u16::from_be_bytes)
}
