//! Facts about a network interface in the caller's network namespace: its index, and how its
//! frames start (which decides where the program finds the IP header).
//!
//! Both come from the kernel through a socket, not from /sys/class/net, which shows the
//! namespace that mounted /sys rather than the caller's.

use std::io;

use anyhow::{bail, Context as _, Result};

use crate::model::iface::{IfaceName, LinkLayer};

// ARPHRD_* link types from linux/if_arp.h.
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_RAWIP: u16 = 519;
const ARPHRD_TUNNEL: u16 = 768;
const ARPHRD_TUNNEL6: u16 = 769;
const ARPHRD_LOOPBACK: u16 = 772;
const ARPHRD_SIT: u16 = 776;
const ARPHRD_IPGRE: u16 = 778;
const ARPHRD_IP6GRE: u16 = 823;
const ARPHRD_NONE: u16 = 65534;

/// What the program can parse on a link of type `arphrd`; `None` for anything else.
///
/// Kernel tunnels (ipip, sit, ip6tnl, gre) are refused although they carry IP: their receive
/// paths leave the MAC header at the *outer* IP header, which is where generic XDP starts the
/// frame, so the program would judge the tunnel endpoint rather than the sender.
#[must_use]
pub fn layer_of(arphrd: u16) -> Option<LinkLayer> {
    match arphrd {
        ARPHRD_ETHER | ARPHRD_LOOPBACK => Some(LinkLayer::Ethernet),
        ARPHRD_NONE | ARPHRD_RAWIP => Some(LinkLayer::RawIp),
        _ => None,
    }
}

/// Why a link type is refused, for the error message.
fn refusal(arphrd: u16) -> &'static str {
    match arphrd {
        ARPHRD_TUNNEL | ARPHRD_TUNNEL6 | ARPHRD_SIT | ARPHRD_IPGRE | ARPHRD_IP6GRE => {
            "a kernel IP tunnel: XDP would see the outer (tunnel) header, so the filter would \
             judge the tunnel endpoint, not the sender"
        }
        _ => "frames without an Ethernet or IP header where the program looks",
    }
}

/// The index of `iface` in this network namespace.
pub fn index(iface: &IfaceName) -> Result<u32> {
    let socket = control_socket()?;
    match rustix::net::netdevice::name_to_index(&socket, iface.as_str()) {
        Ok(index) => Ok(index),
        Err(rustix::io::Errno::NODEV) => {
            bail!("no interface named {iface} in this network namespace (see `ip link`)")
        }
        Err(e) => Err(io::Error::from(e)).with_context(|| format!("cannot look up {iface}")),
    }
}

/// The name of the interface with index `index` in this network namespace, if there is one.
#[must_use]
pub fn name_of(index: u32) -> Option<String> {
    let socket = control_socket().ok()?;
    rustix::net::netdevice::index_to_name(&socket, index).ok()
}

/// Identity of the caller's network namespace (the inode of its nsfs file), so a record can
/// tell whether an interface name is to be looked up here.
#[must_use]
pub fn netns_id() -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/thread-self/ns/net")
        .ok()
        .map(|m| m.ino())
}

/// The link layer of `iface`; refuses link types whose frames the program cannot parse.
pub fn link_layer(iface: &IfaceName) -> Result<LinkLayer> {
    let arphrd = link_type(iface)?;
    layer_of(arphrd).with_context(|| {
        format!(
            "{iface} has link type {arphrd} (ARPHRD_*): {}; regionfilter filters Ethernet-shaped \
             links and raw-IP links without a link header (tun, WireGuard)",
            refusal(arphrd)
        )
    })
}

/// `SIOCGIFHWADDR`: the hardware address family is the link type.
fn link_type(iface: &IfaceName) -> Result<u16> {
    let socket = control_socket()?;
    // SAFETY: an all-zero ifreq is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(iface.as_str().bytes()) {
        *dst = src as libc::c_char; // IfaceName guarantees at most 15 bytes and no NUL.
    }
    // SAFETY: SIOCGIFHWADDR reads the name from and writes the address into the ifreq we own.
    let ret = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            // glibc's request argument is an unsigned long, musl's an int.
            libc::SIOCGIFHWADDR as _,
            &mut req,
        )
    };
    if ret != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENODEV) {
            bail!("no interface named {iface} in this network namespace (see `ip link`)");
        }
        return Err(err).with_context(|| format!("cannot read the link type of {iface}"));
    }
    // SAFETY: the kernel filled the hardware-address member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_hwaddr.sa_family })
}

fn control_socket() -> Result<std::os::fd::OwnedFd> {
    use rustix::net::{socket, AddressFamily, SocketType};
    socket(AddressFamily::INET, SocketType::DGRAM, None)
        .map_err(io::Error::from)
        .context("cannot open a socket to query interfaces")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_types_map_to_what_the_program_parses() {
        assert_eq!(layer_of(ARPHRD_ETHER), Some(LinkLayer::Ethernet));
        assert_eq!(layer_of(ARPHRD_LOOPBACK), Some(LinkLayer::Ethernet));
        for t in [ARPHRD_NONE, ARPHRD_RAWIP] {
            assert_eq!(layer_of(t), Some(LinkLayer::RawIp), "{t}");
        }
        // InfiniBand, CAN, IEEE 802.15.4: no IP header where the program would look; kernel
        // tunnels: the outer header is where XDP starts.
        for t in [
            32,
            280,
            804,
            ARPHRD_TUNNEL,
            ARPHRD_TUNNEL6,
            ARPHRD_SIT,
            ARPHRD_IPGRE,
        ] {
            assert_eq!(layer_of(t), None, "{t}");
        }
        assert!(refusal(ARPHRD_IP6GRE).contains("tunnel endpoint"));
    }

    #[test]
    fn loopback_is_found_and_is_ethernet_shaped() {
        let lo: IfaceName = "lo".parse().unwrap();
        assert_eq!(index(&lo).unwrap(), 1);
        assert_eq!(link_layer(&lo).unwrap(), LinkLayer::Ethernet);
        let missing: IfaceName = "rfnosuch0".parse().unwrap();
        assert!(index(&missing)
            .unwrap_err()
            .to_string()
            .starts_with("no interface named rfnosuch0"));
    }
}
