//! Drop samples: what the program writes into its ring buffer, decoded into what `watch` and
//! the agent print.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, BorrowedFd},
};

use anyhow::Result;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use filter_common::{Counter, DropSample};
use serde::Serialize;

use crate::{
    kernel::maps::FilterMaps,
    kernel::pins::{self, PinState},
    kernel::slots::{EntryClass, Slot, Verdict},
    model::iface::IfaceName,
    state::Layout,
};

/// What opening an interface's drop samples found.
pub enum Opened {
    Ring(Box<SampleRing>),
    /// The interface the filter was attached to is gone: nothing filters it, no samples come.
    Gone,
    /// No filter (or an attach that did not finish).
    NotAttached,
}

/// One filter's drop-sample ring, opened for reading, with the counter of samples the kernel
/// had no room for.
pub struct SampleRing {
    pub iface: IfaceName,
    /// Samples per second and CPU the active half allows; 0: sampling is off.
    pub per_sec: u32,
    ring: RingBuf<MapData>,
    counters: PerCpuArray<MapData, Counter>,
    lost_seen: u64,
}

impl SampleRing {
    /// Opens the ring of `iface`'s attached filter.
    pub fn open(layout: &Layout, iface: &IfaceName) -> Result<Opened> {
        let dir = layout.pin_dir(iface);
        match pins::inspect(&dir)? {
            PinState::Attached { .. } => {}
            PinState::Gone => return Ok(Opened::Gone),
            _ => return Ok(Opened::NotAttached),
        }
        let maps = FilterMaps::open_pinned(&dir)?;
        let per_sec = maps.active_settings()?.samples_per_sec;
        let mut ring = Self {
            iface: iface.clone(),
            per_sec,
            ring: maps.samples,
            counters: maps.counters,
            lost_seen: 0,
        };
        ring.lost_seen = ring.lost_total();
        Ok(Opened::Ring(Box::new(ring)))
    }

    /// The next sample waiting: `None` when the ring is empty, `Some(None)` for a record this
    /// build cannot read.
    pub fn next_sample(&mut self) -> Option<Option<DropSample>> {
        self.ring.next().map(|item| decode(&item))
    }

    /// Drops every sample waiting (old news for a live view).
    pub fn skip_queued(&mut self) {
        while self.ring.next().is_some() {}
    }

    /// Samples lost to a full ring since the filter was attached (0 when unreadable).
    pub fn lost_total(&self) -> u64 {
        self.counters
            .get(&filter_common::SLOT_SAMPLES_LOST, 0)
            .map(|per_cpu| per_cpu.iter().map(|c| c.packets).sum())
            .unwrap_or(0)
    }

    /// Samples lost since the last call (or since the ring was opened, or since the attach
    /// after [`Self::count_from_attach`]).
    pub fn newly_lost(&mut self) -> u64 {
        let now = self.lost_total();
        let new = now.saturating_sub(self.lost_seen);
        self.lost_seen = self.lost_seen.max(now);
        new
    }

    /// Counts lost samples from the attach, not from the opening.
    pub fn count_from_attach(&mut self) {
        self.lost_seen = 0;
    }

    /// Whether the filter can still send samples: not detached, its interface not gone.
    #[must_use]
    pub fn still_sending(&self, layout: &Layout) -> bool {
        !matches!(
            pins::inspect(&layout.pin_dir(&self.iface)),
            Ok(PinState::Absent | PinState::Gone)
        )
    }
}

impl AsFd for SampleRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }
}

/// One sample as `watch --json` prints it.
#[derive(Debug, Serialize)]
pub struct SampleLine {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub interface: IfaceName,
    pub source: IpAddr,
    /// The source's country; `null` when the reason is not the country.
    pub country: Option<String>,
    /// `country`, `unknown` (in no country), `exception` (always-drop CIDR), `local`,
    /// `malformed`, `undeclared_nat64` (in 64:ff9b:1::/48 outside every declared prefix).
    pub reason: &'static str,
    /// `dropped` or `would_drop` (a dry run).
    pub verdict: &'static str,
    /// `tcp`, `udp`, `icmp`, a protocol number, or null.
    pub protocol: Option<String>,
    pub dport: Option<u16>,
    pub length: u32,
}

/// A ring buffer item as a sample; `None` if it is too short.
#[must_use]
pub fn decode(bytes: &[u8]) -> Option<DropSample> {
    if bytes.len() < size_of::<DropSample>() {
        return None;
    }
    // SAFETY: `DropSample` is plain integers; the length was checked; unaligned read.
    Some(unsafe { bytes.as_ptr().cast::<DropSample>().read_unaligned() })
}

/// Wall-clock time of a CLOCK_MONOTONIC timestamp.
fn wall_time(monotonic_ns: u64) -> String {
    let now = |clock| {
        let t = rustix::time::clock_gettime(clock);
        i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
    };
    let mono = now(rustix::time::ClockId::Monotonic);
    let real = now(rustix::time::ClockId::Realtime);
    let at = real - (mono - i128::from(monotonic_ns));
    let secs = u64::try_from(at / 1_000_000_000).unwrap_or(0);
    let millis = (at % 1_000_000_000) / 1_000_000;
    let date = crate::sys::time::date(secs);
    // `date` ends in `Z`; put the milliseconds before it.
    format!("{}.{millis:03}Z", date.trim_end_matches('Z'))
}

/// The sample in words: reason, country, protocol, wall-clock time.
#[must_use]
pub fn describe(iface: &IfaceName, s: &DropSample) -> SampleLine {
    let source = if s.family == 4 {
        IpAddr::V4(Ipv4Addr::new(s.addr[0], s.addr[1], s.addr[2], s.addr[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(s.addr))
    };
    let (reason, country, verdict) = match Slot::of(s.slot) {
        Slot::Entry { class, verdict } => match class {
            EntryClass::Country(c) => ("country", Some(c.code()), verdict),
            EntryClass::Unknown => ("unknown", None, verdict),
            EntryClass::DenyCidr | EntryClass::AllowCidr => ("exception", None, verdict),
            EntryClass::Local => ("local", None, verdict),
        },
        Slot::Malformed(verdict) => ("malformed", None, verdict),
        Slot::UndeclaredNat64(verdict) => ("undeclared_nat64", None, verdict),
        _ => ("other", None, Verdict::Dropped),
    };
    let protocol = match s.proto {
        0 => None,
        6 => Some("tcp".to_owned()),
        17 => Some("udp".to_owned()),
        1 | 58 => Some("icmp".to_owned()),
        n => Some(n.to_string()),
    };
    SampleLine {
        time: wall_time(s.time_ns),
        interface: iface.clone(),
        source,
        country,
        reason,
        verdict: match verdict {
            Verdict::WouldDrop => "would_drop",
            Verdict::Dropped | Verdict::Passed => "dropped",
        },
        protocol,
        dport: (s.dport != 0).then_some(s.dport),
        length: s.length,
    }
}
