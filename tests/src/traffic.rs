//! Bounded UDP traffic across a [`VethPair`](crate::netns::VethPair), tagged by sender.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    time::Duration,
};

use anyhow::{Context as _, Result};

use crate::netns::NetNs;

/// Port the receiver listens on inside its namespace.
pub const PORT: u16 = 9999;

/// A UDP socket bound to `[::]:PORT` in the receiver namespace (IPv4 arrives v4-mapped).
pub struct Receiver {
    socket: UdpSocket,
}

impl Receiver {
    pub fn bind(ns: &NetNs) -> Result<Self> {
        let socket = ns
            .enter(|| UdpSocket::bind(("::", PORT)))?
            .context("cannot bind receiver")?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        // Room for every datagram a test sends (thousands in a stream), so a reader starved
        // of CPU on a loaded machine loses none: a missing datagram must mean the filter.
        let bytes: libc::c_int = 64 << 20;
        // SAFETY: SO_RCVBUFFORCE (root) reads one c_int from a live local.
        let set = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&raw const bytes).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(std::io::Error::last_os_error())
                .context("cannot enlarge the receive buffer");
        }
        Ok(Self { socket })
    }

    /// Reads datagrams until `done` holds for the per-tag counts or `timeout` passes; returns
    /// how many datagrams arrived per tag.
    pub fn receive_until(
        &self,
        timeout: Duration,
        done: impl Fn(&BTreeMap<String, usize>) -> bool,
    ) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        let mut buf = [0u8; 2048];
        // The socket's read timeout paces the polls.
        crate::wait::wait_until(timeout, Duration::ZERO, || {
            if done(&counts) {
                return true;
            }
            if let Ok((len, _)) = self.socket.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..len]);
                let tag = text.split('#').next().unwrap_or_default().to_owned();
                *counts.entry(tag).or_insert(0) += 1;
            }
            false
        });
        counts
    }
}

/// Sends `count` datagrams `TAG#i` from `src` to `dst:PORT` inside `ns`, from one CPU so the
/// receiving side sees them in order.
pub fn send(ns: &NetNs, src: IpAddr, dst: IpAddr, tag: &str, count: usize) -> Result<()> {
    ns.enter(|| -> Result<()> {
        pin_to_first_allowed_cpu();
        let socket = UdpSocket::bind(SocketAddr::new(src, 0))
            .with_context(|| format!("cannot bind {src}"))?;
        for i in 0..count {
            socket
                .send_to(format!("{tag}#{i}").as_bytes(), SocketAddr::new(dst, PORT))
                .with_context(|| format!("cannot send from {src} to {dst}"))?;
        }
        Ok(())
    })?
}

fn pin_to_first_allowed_cpu() {
    // SAFETY: sched_{get,set}affinity on the calling thread with a zeroed, then filled, cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return;
        }
        if let Some(cpu) = (0..libc::CPU_SETSIZE as usize).find(|&c| libc::CPU_ISSET(c, &set)) {
            libc::CPU_ZERO(&mut set);
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
        }
    }
}
