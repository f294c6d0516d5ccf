//! Logs the drop samples of the agent's filters, at most `per_sec` lines a second; what the
//! limit holds back is counted and said once a second.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf};
use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::{
    log::{event, Level},
    Shared,
};
use crate::{
    kernel::{
        maps::FilterMaps,
        pins::{self, PinState},
    },
    model::iface::IfaceName,
    ops::samples::{decode, describe},
};

pub fn spawn(
    shared: Arc<Shared>,
    ifaces: Vec<IfaceName>,
    per_sec: u32,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || run(&shared, &ifaces, per_sec, &stop))
}

fn open(
    shared: &Shared,
    ifaces: &[IfaceName],
    skip_queued: bool,
) -> Vec<(IfaceName, RingBuf<MapData>)> {
    let mut rings = Vec::new();
    for iface in ifaces {
        let dir = shared.layout.pin_dir(iface);
        if !matches!(pins::inspect(&dir), Ok(PinState::Attached { .. })) {
            continue;
        }
        if let Ok(maps) = FilterMaps::open_pinned(&dir) {
            let mut ring = maps.samples;
            if skip_queued {
                while ring.next().is_some() {}
            }
            rings.push((iface.clone(), ring));
        }
    }
    rings
}

fn run(shared: &Shared, ifaces: &[IfaceName], per_sec: u32, stop: &AtomicBool) {
    let mut rings = Vec::new();
    let mut seen_pass = u64::MAX;
    let mut window = Instant::now();
    let (mut logged, mut held_back) = (0u32, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let pass = shared.pass.load(Ordering::Relaxed);
        if pass != seen_pass {
            // Samples queued before the agent started are old news; those of a filter
            // attached since are not.
            rings = open(shared, ifaces, seen_pass == u64::MAX);
            seen_pass = pass;
        }
        if window.elapsed() >= Duration::from_secs(1) {
            if held_back > 0 {
                event(
                    Level::Info,
                    "samples_held_back",
                    &[("count", &held_back), ("limit_per_sec", &per_sec)],
                );
            }
            window = Instant::now();
            (logged, held_back) = (0, 0);
        }
        for (iface, ring) in &mut rings {
            while let Some(item) = ring.next() {
                let Some(sample) = decode(&item) else {
                    continue;
                };
                if logged >= per_sec {
                    held_back += 1;
                    continue;
                }
                logged += 1;
                let s = describe(iface, &sample);
                let port = s.dport.map_or_else(String::new, |p| p.to_string());
                event(
                    Level::Info,
                    "drop_sample",
                    &[
                        ("iface", &s.interface),
                        ("source", &s.source),
                        ("country", &s.country.as_deref().unwrap_or("")),
                        ("reason", &s.reason),
                        ("verdict", &s.verdict),
                        ("protocol", &s.protocol.as_deref().unwrap_or("")),
                        ("dport", &port),
                        ("length", &s.length),
                        ("time", &s.time),
                    ],
                );
            }
        }
        // Wakes for new samples, and at least once a second for `stop` and the window.
        let mut fds: Vec<PollFd<'_>> = rings
            .iter()
            .map(|(_, ring)| PollFd::new(ring, PollFlags::IN))
            .collect();
        let timeout = Timespec::try_from(Duration::from_secs(1)).expect("one second");
        let _ = poll(&mut fds, Some(&timeout));
    }
}
