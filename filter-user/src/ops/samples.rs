//! Drop samples: what the program writes into its ring buffer, decoded into what `watch` and
//! the agent print.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use filter_common::DropSample;
use serde::Serialize;

use crate::{
    kernel::slots::{EntryClass, Slot, Verdict},
    model::iface::IfaceName,
};

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
