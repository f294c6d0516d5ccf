//! A tun device inside a namespace: packets written to its descriptor arrive on the device as
//! if a VPN peer had sent them, with no Ethernet header, which is what raw-IP links look like
//! to the filter.

use std::{
    fs::File,
    io::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd as _,
};

use anyhow::{bail, Context as _, Result};

use crate::netns::{unique_name, NetNs};

/// A persistent tun device in `ns` and a descriptor attached to it.
pub struct Tun {
    pub name: String,
    file: File,
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

impl Tun {
    /// Creates the device in `ns` with `v4/24` and `v6/64`, up, as the namespace's default
    /// route (so reverse-path checks accept any source).
    pub fn new(ns: &NetNs, v4: Ipv4Addr, v6: Ipv6Addr) -> Result<Self> {
        let name = unique_name("rftun");
        ns.ip(&["tuntap", "add", "dev", &name, "mode", "tun"])?;
        ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", &name])?;
        ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", &name, "nodad"])?;
        ns.ip(&["link", "set", &name, "up"])?;
        ns.ip(&["route", "add", "default", "dev", &name])?;
        ns.ip(&["-6", "route", "add", "default", "dev", &name])?;
        // The descriptor must be opened inside the namespace to find the device there.
        let file = ns.enter(|| open(&name))??;
        Ok(Self { name, file })
    }

    /// Writes one IP packet into the device (it arrives as received traffic).
    pub fn inject(&mut self, packet: &[u8]) -> Result<()> {
        self.file
            .write_all(packet)
            .with_context(|| format!("cannot write into {}", self.name))
    }
}

fn open(name: &str) -> Result<File> {
    let file = File::options()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .context("cannot open /dev/net/tun")?;
    // SAFETY: an all-zero ifreq is valid; TUNSETIFF reads the name and flags we set.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = IFF_TUN | IFF_NO_PI;
    // SAFETY: TUNSETIFF on the descriptor we own with a valid ifreq.
    if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req) } != 0 {
        return Err(std::io::Error::last_os_error()).context("TUNSETIFF");
    }
    Ok(file)
}

/// A UDP datagram from `src` to `dst:port` as a raw IP packet with valid checksums (IPv4
/// header; UDP over IPv6, where the checksum is mandatory).
pub fn udp_packet(src: IpAddr, dst: IpAddr, port: u16, payload: &[u8]) -> Result<Vec<u8>> {
    let udp_len = u16::try_from(8 + payload.len())?;
    let mut udp = Vec::with_capacity(usize::from(udp_len));
    udp.extend_from_slice(&40000u16.to_be_bytes());
    udp.extend_from_slice(&port.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut p = vec![0x45, 0];
            p.extend_from_slice(&(20 + udp_len).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            let sum = checksum(&[&p]);
            p[10..12].copy_from_slice(&sum.to_be_bytes());
            p.extend_from_slice(&udp); // UDP checksum 0: none, allowed over IPv4.
            Ok(p)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&u32::from(udp_len).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 17]);
            let sum = checksum(&[&pseudo, &udp]);
            udp[6..8].copy_from_slice(&sum.to_be_bytes());
            let mut p = vec![0x60, 0, 0, 0];
            p.extend_from_slice(&udp_len.to_be_bytes());
            p.extend_from_slice(&[17, 64]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&udp);
            Ok(p)
        }
        _ => bail!("{src} and {dst} are of different families"),
    }
}

/// The Internet checksum over the concatenation of `parts` (each of even length but the last).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    match !(sum as u16) {
        0 => 0xffff,
        s => s,
    }
}
