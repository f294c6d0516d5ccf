//! Finding the source address of a frame: Ethernet, up to two VLAN tags, IPv4 or IPv6.

use core::mem::size_of;

use aya_ebpf::programs::XdpContext;

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
    /// Truncated or malformed Ethernet/VLAN/IP headers.
    Malformed,
    /// Not IPv4 or IPv6 (ARP, LLDP, ...).
    NonIp,
}

/// Reads the source address of a frame.
#[inline(always)]
pub fn source(ctx: &XdpContext) -> Source {
    let Some(mut proto) = read_be16(ctx, ETH_HLEN - 2) else {
        return Source::Malformed;
    };
    let mut offset = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        let Some(inner) = read_be16(ctx, offset + 2) else {
            return Source::Malformed;
        };
        proto = inner;
        offset += VLAN_HLEN;
    }
    match proto {
        ETH_P_IP => {
            // A full fixed header must be present; the source address sits at byte 12.
            let (Some(vihl), Some(src), Some(_)) = (
                read::<u8>(ctx, offset),
                read::<[u8; 4]>(ctx, offset + 12),
                read::<[u8; 4]>(ctx, offset + 16),
            ) else {
                return Source::Malformed;
            };
            if vihl >> 4 != 4 || vihl & 0x0f < 5 {
                return Source::Malformed;
            }
            Source::V4(src)
        }
        ETH_P_IPV6 => {
            // A full fixed header must be present; the source address sits at byte 8.
            let (Some(version), Some(src), Some(_)) = (
                read::<u8>(ctx, offset),
                read::<[u8; 16]>(ctx, offset + 8),
                read::<[u8; 16]>(ctx, offset + 24),
            ) else {
                return Source::Malformed;
            };
            if version >> 4 != 6 {
                return Source::Malformed;
            }
            // An IPv4-mapped source (::ffff:a.b.c.d) is an IPv4 host: judge it as one, since the
            // IPv6 data leaves that range out.
            match ipv4_mapped(&src) {
                Some(v4) => Source::V4(v4),
                None => Source::V6(src),
            }
        }
        ETH_P_8021Q | ETH_P_8021AD => Source::Malformed,
        _ => Source::NonIp,
    }
}

/// The IPv4 address inside `::ffff:a.b.c.d`.
#[inline(always)]
fn ipv4_mapped(src: &[u8; 16]) -> Option<[u8; 4]> {
    const PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
    if src[..12] != PREFIX {
        return None;
    }
    Some([src[12], src[13], src[14], src[15]])
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
