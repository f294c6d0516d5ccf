//! Logs the drop samples of the agent's filters, at most `log_samples` lines a second; what
//! the limit holds back is counted and said once a second. It follows the configuration: the
//! interfaces and the limit are read again after every pass, and with a limit of 0 no ring is
//! held open, so `watch` gets every sample.

use std::{
    sync::{atomic::Ordering, Arc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::{
    log::{event, Level},
    Shared,
};
use crate::{
    model::iface::IfaceName,
    ops::samples::{describe, Opened, SampleRing},
};

/// Runs until the agent is stopping.
pub fn spawn(shared: Arc<Shared>) -> JoinHandle<()> {
    std::thread::spawn(move || run(&shared))
}

fn open(shared: &Shared, ifaces: &[IfaceName]) -> Vec<SampleRing> {
    ifaces
        .iter()
        .filter_map(|iface| match SampleRing::open(&shared.layout, iface) {
            Ok(Opened::Ring(ring)) => Some(*ring),
            _ => None,
        })
        .collect()
}

/// CLOCK_MONOTONIC now, in the kernel's sample time unit.
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

fn run(shared: &Shared) {
    // Samples queued before the agent started are old news.
    let started = monotonic_ns();
    let mut rings = Vec::new();
    let mut seen_pass = u64::MAX;
    let mut window = Instant::now();
    let (mut logged, mut held_back) = (0u32, 0u64);
    let mut per_sec = 0;
    while !shared.stopping.load(Ordering::Relaxed) {
        let pass = shared.pass.load(Ordering::Relaxed);
        if pass != seen_pass {
            per_sec = shared.log_samples.load(Ordering::Relaxed);
            let ifaces: Vec<IfaceName> = shared.snapshot().into_iter().map(|(i, _)| i).collect();
            rings = if per_sec == 0 {
                Vec::new()
            } else {
                open(shared, &ifaces)
            };
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
        for ring in &mut rings {
            while let Some(sample) = ring.next_sample() {
                let Some(sample) = sample.filter(|s| s.time_ns >= started) else {
                    continue;
                };
                if logged >= per_sec {
                    held_back += 1;
                    continue;
                }
                logged += 1;
                let s = describe(&ring.iface, &sample);
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
            .map(|ring| PollFd::new(ring, PollFlags::IN))
            .collect();
        let timeout = Timespec::try_from(Duration::from_secs(1)).expect("one second");
        let _ = poll(&mut fds, Some(&timeout));
    }
}
