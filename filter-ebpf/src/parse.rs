//! Finding the source address of a frame: Ethernet, up to two VLAN tags (or no link-layer
//! header on raw-IP links), IPv4 or IPv6.

use core::mem::size_of;

use aya_ebpf::programs::XdpContext;
use filter_common::embedded_ipv4;

pub const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
/// Outer (802.1ad) plus inner (802.1Q) tag; a third tag is treated as malformed.
const MAX_VLAN_TAGS: usize = 2;
/// Where the source address sits in a frame without VLAN tags (the benchmark rewrites it there).
pub const IPV4_SRC_OFFSET: usize = ETH_HLEN + 12;
pub const IPV6_SRC_OFFSET: usize = ETH_HLEN + 8;

/// What the filter judges a frame by.
pub enum Source {
    V4([u8; 4]),
    V6([u8; 16]),
    /// An ICMP or ICMPv6 error message (destination unreachable, packet too big, time
    /// exceeded, parameter problem) from this source: passed unless the policy judges them.
    IcmpErrorV4([u8; 4]),
    IcmpErrorV6([u8; 16]),
    /// Truncated or malformed Ethernet/VLAN/IP headers.
    Malformed,
    /// Not IPv4 or IPv6 (ARP, LLDP, ...).
    NonIp,
}

/// Non-zero when the interface's frames start with the IP header (tun, WireGuard, ip tunnels):
/// set by userspace at load time from the link type, read-only, so the verifier keeps only the
/// parser the interface needs.
#[unsafe(no_mangle)]
static RAW_IP: u32 = 0;

/// Reads the source address of a frame.
#[inline(always)]
pub fn source(ctx: &XdpContext) -> Source {
    // SAFETY: a plain read of a load-time constant.
    let raw_ip = unsafe { core::ptr::read_volatile(&RAW_IP) } != 0;
    let (proto, offset) = if raw_ip {
        // No link-layer header: the version nibble says which IP it is. A raw-IP link carries
        // nothing else, so any other nibble is malformed.
        // (Checked as the 20 bytes every IP header has: a one-byte check lets LLVM turn
        // `data + 1 > end` into `data >= end`, which the verifier cannot use.)
        let Some(first) = bounded::<IPV4_HLEN>(ctx, 0) else {
            return Source::Malformed;
        };
        match first.read::<u8>(0) >> 4 {
            4 => (ETH_P_IP, 0),
            6 => (ETH_P_IPV6, 0),
            _ => return Source::Malformed,
        }
    } else {
        match ethernet(ctx) {
            Some(found) => found,
            None => return Source::Malformed,
        }
    };
    match proto {
        ETH_P_IP => {
            // A full fixed header must be present; the source address sits at byte 12. One
            // bounds check covers every field read, so the compiler cannot fold separate checks
            // into paths the verifier cannot follow.
            let Some(header) = bounded::<IPV4_HLEN>(ctx, offset) else {
                return Source::Malformed;
            };
            let (vihl, src) = (header.read::<u8>(0), header.read::<[u8; 4]>(12));
            if vihl >> 4 != 4 || vihl & 0x0f < 5 {
                return Source::Malformed;
            }
            // Only a first (or unfragmented) datagram carries the ICMP header.
            let first = u16::from_be_bytes(header.read::<[u8; 2]>(6)) & IP_OFFSET_MASK == 0;
            if header.read::<u8>(9) == IPPROTO_ICMP && first {
                let icmp = offset + usize::from(vihl & 0x0f) * 4;
                if let Some(icmp) = bounded::<ICMP_HLEN>(ctx, icmp) {
                    if matches!(icmp.read::<u8>(0), 3 | 11 | 12) {
                        return Source::IcmpErrorV4(src);
                    }
                }
            }
            Source::V4(src)
        }
        ETH_P_IPV6 => {
            // A full fixed header must be present; the source address sits at byte 8.
            let Some(header) = bounded::<IPV6_HLEN>(ctx, offset) else {
                return Source::Malformed;
            };
            let (version, src) = (header.read::<u8>(0), header.read::<[u8; 16]>(8));
            if version >> 4 != 6 {
                return Source::Malformed;
            }
            let icmp_error = icmpv6_error(ctx, header.read::<u8>(6), offset + IPV6_HLEN);
            // A source that embeds an IPv4 address (mapped, compatible, 6to4, Teredo, NAT64) is
            // judged by that address, and counted under its country: the IPv6 data leaves those
            // ranges out, and as unknown IPv6 space they would pass a deny-list.
            match (embedded_ipv4(&src), icmp_error) {
                (Some(v4), false) => Source::V4(v4),
                (Some(v4), true) => Source::IcmpErrorV4(v4),
                (None, false) => Source::V6(src),
                (None, true) => Source::IcmpErrorV6(src),
            }
        }
        ETH_P_8021Q | ETH_P_8021AD => Source::Malformed,
        _ => Source::NonIp,
    }
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

/// Whether the IPv6 payload starting at `at` with next header `next` is an ICMPv6 error
/// (types 1-4), after walking up to [`MAX_EXT_HEADERS`] extension headers. A non-first fragment
/// has no ICMPv6 header to read, so it is not one.
#[inline(always)]
fn icmpv6_error(ctx: &XdpContext, mut next: u8, mut at: usize) -> bool {
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let Some(ext) = bounded::<8>(ctx, at) else {
                    return false;
                };
                next = ext.read::<u8>(0);
                at += (usize::from(ext.read::<u8>(1)) + 1) * 8;
            }
            IPPROTO_FRAGMENT => {
                let Some(ext) = bounded::<8>(ctx, at) else {
                    return false;
                };
                if u16::from_be_bytes(ext.read::<[u8; 2]>(2)) & 0xfff8 != 0 {
                    return false;
                }
                next = ext.read::<u8>(0);
                at += 8;
            }
            _ => break,
        }
    }
    if next != IPPROTO_ICMPV6 {
        return false;
    }
    bounded::<ICMP_HLEN>(ctx, at).is_some_and(|icmp| matches!(icmp.read::<u8>(0), 1..=4))
}

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_DSTOPTS: u8 = 60;
const IPPROTO_ICMPV6: u8 = 58;
/// Fragment offset bits of the IPv4 flags/offset field.
const IP_OFFSET_MASK: u16 = 0x1fff;
/// Type, code and checksum: an ICMP header's first four bytes, all the filter reads.
const ICMP_HLEN: usize = 4;
/// IPv6 extension headers walked before giving up on finding an ICMPv6 header.
const MAX_EXT_HEADERS: usize = 4;

const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;

/// `N` bytes of the frame known to be inside its linear part.
struct Bounded<const N: usize> {
    start: usize,
}

impl<const N: usize> Bounded<N> {
    /// Reads a `T` at `at` within the checked bytes.
    #[inline(always)]
    fn read<T: Copy>(&self, at: usize) -> T {
        const { assert!(size_of::<T>() <= N) };
        debug_assert!(at + size_of::<T>() <= N);
        // SAFETY: `bounded` checked that start..start + N lies before data_end, and callers
        // read inside those N bytes; packet data has no alignment.
        unsafe { ((self.start + at) as *const T).read_unaligned() }
    }
}

/// The `N` bytes at `offset`, if the linear part holds all of them.
#[inline(always)]
fn bounded<const N: usize>(ctx: &XdpContext, offset: usize) -> Option<Bounded<N>> {
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
