//! Hand-built Ethernet frames for BPF_PROG_TEST_RUN.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;

/// Ethernet header (and VLAN tags, outermost first) ending in `ethertype`.
#[must_use]
pub fn ethernet(vlan_tpids: &[u16], ethertype: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for (vid, tpid) in (100u16..).zip(vlan_tpids) {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes()); // TCI: priority 0, VLAN id
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// Appends an IPv4 header (no options) from `src` to the receiver, carrying `proto` and
/// `payload` bytes after it.
fn ipv4_header(f: &mut Vec<u8>, src: Ipv4Addr, proto: u8, payload: usize) {
    let total = u16::try_from(20 + payload).expect("payload fits one frame");
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&Ipv4Addr::new(198, 51, 100, 1).octets());
}

/// Appends an IPv6 header from `src` to the receiver, with next header `next` and `payload`
/// bytes after it.
fn ipv6_header(f: &mut Vec<u8>, src: Ipv6Addr, next: u8, payload: usize) {
    let len = u16::try_from(payload).expect("payload fits one frame");
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[next, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(
        &"2001:db8:ffff::1"
            .parse::<Ipv6Addr>()
            .expect("literal")
            .octets(),
    );
}

/// A UDP/IPv4 frame from `src`, with `payload` bytes of zeros.
#[must_use]
pub fn ipv4(vlan_tpids: &[u16], src: Ipv4Addr, payload: usize) -> Vec<u8> {
    let mut f = ethernet(vlan_tpids, ETH_P_IP);
    ipv4_header(&mut f, src, 17, 8 + payload);
    f.extend_from_slice(&udp(payload));
    f
}

/// A UDP/IPv6 frame from `src`.
#[must_use]
pub fn ipv6(vlan_tpids: &[u16], src: Ipv6Addr, payload: usize) -> Vec<u8> {
    let mut f = ethernet(vlan_tpids, ETH_P_IPV6);
    ipv6_header(&mut f, src, 17, 8 + payload);
    f.extend_from_slice(&udp(payload));
    f
}

/// An ICMP message of `icmp_type` from `src` (IPv4, no options), e.g. 3 for destination
/// unreachable, 8 for an echo request.
#[must_use]
pub fn icmpv4(src: Ipv4Addr, icmp_type: u8) -> Vec<u8> {
    let mut f = ethernet(&[], ETH_P_IP);
    // The ICMP header, then the start of the offending datagram an error quotes.
    ipv4_header(&mut f, src, 1, 4 + 24);
    f.extend_from_slice(&[icmp_type, 0, 0, 0]);
    f.resize(f.len() + 24, 0);
    f
}

/// An ICMPv6 message of `icmp_type` from `src`, after the extension headers `ext` (each an
/// 8-byte hop-by-hop, routing or destination-options header, or a first fragment header).
#[must_use]
pub fn icmpv6(src: Ipv6Addr, icmp_type: u8, ext: &[u8]) -> Vec<u8> {
    const ICMPV6: u8 = 58;
    let mut f = ethernet(&[], ETH_P_IPV6);
    let first = ext.first().copied().unwrap_or(ICMPV6);
    ipv6_header(&mut f, src, first, 8 * ext.len() + 4 + 36);
    for i in 0..ext.len() {
        let next = ext.get(i + 1).copied().unwrap_or(ICMPV6);
        f.extend_from_slice(&[next, 0, 0, 0, 0, 0, 0, 0]);
    }
    f.extend_from_slice(&[icmp_type, 0, 0, 0]);
    f.resize(f.len() + 36, 0);
    f
}

/// TCP flags.
pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;

/// A TCP header to `dport` with `flags` (20 bytes, no options).
#[must_use]
pub fn tcp(dport: u16, flags: u8) -> Vec<u8> {
    let mut t = vec![0x30, 0x39];
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

/// A UDP header to `dport` (8 bytes, no payload).
#[must_use]
pub fn udp_to(dport: u16) -> Vec<u8> {
    let mut u = vec![0x30, 0x39];
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&[0, 8, 0, 0]);
    u
}

/// An IPv4 frame from `src` carrying `proto` and `transport`; `fragment_offset` in 8-byte
/// units (non-zero: a non-first fragment).
#[must_use]
pub fn ipv4_with(src: Ipv4Addr, proto: u8, transport: &[u8], fragment_offset: u16) -> Vec<u8> {
    let mut f = ethernet(&[], ETH_P_IP);
    ipv4_header(&mut f, src, proto, transport.len());
    f[14 + 6..14 + 8].copy_from_slice(&fragment_offset.to_be_bytes());
    f.extend_from_slice(transport);
    f
}

/// An IPv6 frame from `src` carrying `proto` and `transport` after the extension headers
/// `ext` (each an 8-byte header of that type, a fragment header with offset 0).
#[must_use]
pub fn ipv6_with(src: Ipv6Addr, proto: u8, transport: &[u8], ext: &[u8]) -> Vec<u8> {
    let mut f = ethernet(&[], ETH_P_IPV6);
    let first = ext.first().copied().unwrap_or(proto);
    ipv6_header(&mut f, src, first, 8 * ext.len() + transport.len());
    for i in 0..ext.len() {
        let next = ext.get(i + 1).copied().unwrap_or(proto);
        f.extend_from_slice(&[next, 0, 0, 0, 0, 0, 0, 0]);
    }
    f.extend_from_slice(transport);
    f
}

/// An ARP request (a non-IP frame).
#[must_use]
pub fn arp() -> Vec<u8> {
    let mut f = ethernet(&[], ETH_P_ARP);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 198, 51, 100, 2]);
    f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 198, 51, 100, 1]);
    f
}

fn udp(payload: usize) -> Vec<u8> {
    let len = u16::try_from(8 + payload).expect("payload fits one frame");
    let mut u = vec![0x30, 0x39, 0x27, 0x0f];
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.resize(8 + payload, 0);
    u
}

/// Bytes before the end of the IP header in a frame built above with these tags.
#[must_use]
pub fn l3_end(vlan_tags: usize, ipv6: bool) -> usize {
    14 + 4 * vlan_tags + if ipv6 { 40 } else { 20 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_tags_sit_between_macs_and_ethertype() {
        let f = ethernet(&[ETH_P_8021AD, ETH_P_8021Q], ETH_P_IP);
        assert_eq!(f.len(), 14 + 8);
        assert_eq!(&f[12..14], &ETH_P_8021AD.to_be_bytes());
        assert_eq!(&f[16..18], &ETH_P_8021Q.to_be_bytes());
        assert_eq!(&f[20..22], &ETH_P_IP.to_be_bytes());
    }

    #[test]
    fn source_addresses_sit_where_the_parser_reads_them() {
        let f = ipv4(&[ETH_P_8021Q], Ipv4Addr::new(81, 2, 69, 160), 4);
        assert_eq!(&f[18 + 12..18 + 16], &[81, 2, 69, 160]);
        let src: Ipv6Addr = "2001:218::1".parse().unwrap();
        let f = ipv6(&[], src, 4);
        assert_eq!(&f[14 + 8..14 + 24], &src.octets());
        assert_eq!(f.len(), l3_end(0, true) + 8 + 4);
    }
}
