//! `regionfilter watch`: the dropped (and would-drop) packets the program samples into its
//! ring buffer, printed as they come, one line each.

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use rustix::event::{poll, PollFd, PollFlags, Timespec};

use crate::{
    model::iface::IfaceName,
    ops::samples::{describe, Opened, SampleLine, SampleRing},
    state::Layout,
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

pub fn run(layout: &Layout, args: &WatchArgs) -> Result<()> {
    let ifaces = match &args.iface {
        Some(iface) => vec![iface.clone()],
        None => layout.pinned_interfaces()?,
    };
    let mut rings = Vec::new();
    for iface in ifaces {
        let mut ring = match SampleRing::open(layout, &iface)? {
            Opened::Ring(ring) => *ring,
            Opened::Gone => {
                let gone = format!(
                    "the interface {iface} is gone (deleted or re-created after the attach): \
                     nothing filters it, so no samples come"
                );
                if args.iface.is_some() {
                    bail!("{gone}; `regionfilter detach --iface {iface}` removes its pins");
                }
                eprintln!("note: {gone}");
                continue;
            }
            Opened::NotAttached if args.iface.is_some() => bail!(
                "regionfilter is not attached to {iface}; `regionfilter status` lists attached interfaces"
            ),
            Opened::NotAttached => continue,
        };
        if ring.per_sec == 0 {
            eprintln!(
                "note: drop sampling is off on {iface}: `regionfilter update --iface {iface} --samples 20` turns it on"
            );
        }
        // A drain reports every sample lost since the attach; a live view, those from now on.
        if args.drain {
            ring.count_from_attach();
        }
        rings.push(ring);
    }
    if rings.is_empty() {
        bail!("regionfilter is not attached to any interface");
    }
    let mut printed = 0u64;
    let done = |printed: u64| args.count.is_some_and(|n| printed >= n);
    // Samples queued before now are old news for a live view.
    if !args.drain {
        for ring in &mut rings {
            ring.skip_queued();
        }
    }
    loop {
        for ring in &mut rings {
            // Samples the kernel had no room for since the last look: said, not hidden.
            let lost = ring.newly_lost();
            if lost > 0 {
                eprintln!(
                    "note: {}: {lost} drop samples lost (the ring was full: this reader did not keep up)",
                    ring.iface
                );
            }
            while let Some(sample) = ring.next_sample() {
                if done(printed) {
                    return Ok(());
                }
                let Some(sample) = sample else {
                    continue;
                };
                let line = describe(&ring.iface, &sample);
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
        // A filter detached (or whose interface went) meanwhile sends nothing more: say so,
        // and stop when none is left rather than wait for ever.
        let before = rings.len();
        rings.retain(|ring| {
            let live = ring.still_sending(layout);
            if !live {
                eprintln!(
                    "note: {} was detached or its interface went: no more samples from it",
                    ring.iface
                );
            }
            live
        });
        if rings.is_empty() && before > 0 {
            bail!("every filter watched was detached");
        }
        let mut fds: Vec<PollFd<'_>> = rings
            .iter()
            .map(|ring| PollFd::new(ring, PollFlags::IN))
            .collect();
        let timeout = Timespec::try_from(Duration::from_secs(1)).expect("one second");
        poll(&mut fds, Some(&timeout)).context("cannot wait for drop samples")?;
    }
}

/// `TIME IF SOURCE WHY VERDICT [PROTO/PORT] LENGTH bytes`.
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
