//! `regionfilter watch`: the dropped (and would-drop) packets the program samples into its
//! ring buffer, printed as they come, one line each.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};
use filter_common::DropSample;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use serde::Serialize;

use crate::{
    kernel::maps::FilterMaps,
    kernel::pins::{self, PinState},
    kernel::slots::{EntryClass, Slot, Verdict},
    model::iface::IfaceName,
    ops::state::Layout,
};

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Only this interface (default: every attached interface).
    #[arg(long, value_name = "IF")]
    pub iface: Option<IfaceName>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Stop after N samples.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Print the samples waiting in the ring buffer and exit, instead of skipping them and
    /// following new ones.
    #[arg(long)]
    pub drain: bool,
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
    /// `malformed`.
    pub reason: &'static str,
    /// `dropped` or `would_drop` (a dry run).
    pub verdict: &'static str,
    /// `tcp`, `udp`, `icmp`, a protocol number, or null.
    pub protocol: Option<String>,
    pub dport: Option<u16>,
    pub length: u32,
}

pub fn run(layout: &Layout, args: &WatchArgs) -> Result<()> {
    let ifaces = match &args.iface {
        Some(iface) => vec![iface.clone()],
        None => layout.pinned_interfaces()?,
    };
    let mut rings = Vec::new();
    for iface in ifaces {
        if !matches!(
            pins::inspect(&layout.pin_dir(&iface))?,
            PinState::Attached { .. }
        ) {
            if args.iface.is_some() {
                bail!("regionfilter is not attached to {iface}; `regionfilter status` lists attached interfaces");
            }
            continue;
        }
        let maps = FilterMaps::open_pinned(&layout.pin_dir(&iface))?;
        let rate = maps.halves[maps.active_half()?].settings()?.samples_per_sec;
        if rate == 0 {
            eprintln!(
                "note: drop sampling is off on {iface}: `regionfilter update --iface {iface} --samples 20` turns it on"
            );
        }
        rings.push((iface, maps.samples));
    }
    if rings.is_empty() {
        bail!("regionfilter is not attached to any interface");
    }
    let mut printed = 0u64;
    let done = |printed: u64| args.count.is_some_and(|n| printed >= n);
    // Samples queued before now are old news for a live view.
    if !args.drain {
        for (_, ring) in &mut rings {
            while ring.next().is_some() {}
        }
    }
    loop {
        for (iface, ring) in &mut rings {
            while let Some(item) = ring.next() {
                if done(printed) {
                    return Ok(());
                }
                let Some(sample) = decode(&item) else {
                    continue;
                };
                let line = describe(iface, &sample);
                if args.json {
                    println!("{}", serde_json::to_string(&line)?);
                } else {
                    println!("{}", text(&line));
                }
                printed += 1;
            }
        }
        if done(printed) || args.drain {
            return Ok(());
        }
        let mut fds: Vec<PollFd<'_>> = rings
            .iter()
            .map(|(_, ring)| PollFd::new(ring, PollFlags::IN))
            .collect();
        let timeout = Timespec::try_from(Duration::from_secs(1)).expect("one second");
        poll(&mut fds, Some(&timeout)).context("cannot wait for drop samples")?;
    }
}

fn decode(bytes: &[u8]) -> Option<DropSample> {
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
    let date = super::status::date(secs);
    // `date` ends in `Z`; put the milliseconds before it.
    format!("{}.{millis:03}Z", date.trim_end_matches('Z'))
}

fn describe(iface: &IfaceName, s: &DropSample) -> SampleLine {
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

fn text(l: &SampleLine) -> String {
    let why = match (l.reason, &l.country) {
        ("country", Some(c)) => c.clone(),
        (reason, _) => reason.to_owned(),
    };
    let to = match (&l.protocol, l.dport) {
        (Some(p), Some(port)) => format!(" {p}/{port}"),
        (Some(p), None) => format!(" {p}"),
        (None, _) => String::new(),
    };
    format!(
        "{} {} {} {why} {}{to} {} bytes",
        l.time,
        l.interface,
        l.source,
        l.verdict.replace('_', " "),
        l.length
    )
}
