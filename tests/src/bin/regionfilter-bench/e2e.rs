//! End to end over veth: the same denied prefixes in regionfilter (native XDP), an nftables
//! `netdev` ingress chain with an interval set, and iptables `raw` PREROUTING with an
//! `ipset hash:net`. Every packet is one the filter must drop.
//!
//! The sender is `bench_send`, run with BPF_PROG_TEST_RUN in live-frames mode in the sender's
//! namespace (as `xdp-trafficgen` does): each frame gets the next of 65,536 random sources inside
//! the denied prefixes and is redirected into the veth, arriving at the receiver as a raw frame,
//! the way a NIC hands frames to its driver. The receiver's NAPI runs threaded, pinned to the
//! other CPU than the sender, so the receive path (XDP, or skb + GRO + netfilter) has a CPU of
//! its own and its CPU time is measured on its own.

use std::{
    fmt::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use aya::{
    maps::{Array, MapData},
    programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp},
};
use filter_common::{maps as names, BENCH_ADDRS_ENTRIES, BENCH_SEND_IFINDEX};
use filter_user::{kernel::maps::FilterMaps, kernel::program, model::lookup::Lookup};
use integration_tests::{cli::Instance, frame, netns::VethPair};
use ipnet::IpNet;

use crate::Measured;

/// Frames the sender offers per run, and runs per filter (the row shows median, min and max).
const PACKETS: u32 = 4_000_000;
const RUNS: usize = 5;
/// A run is sent in slices, and stops after a slice that ends past the limit.
const SLICES: u32 = 8;
const SEND_LIMIT: Duration = Duration::from_secs(30);
/// Frames per live-frames batch (the kernel's default).
const BATCH: u32 = 64;
const SENDER_CPU: usize = 0;
const RECEIVER_CPU: usize = 1;

pub struct Row {
    pub family: Family,
    pub name: &'static str,
    /// Packets the filter dropped per second of sending.
    pub pps: Measured,
    /// CPU time of the receiver's NAPI thread per dropped packet, in ns.
    pub receive_ns: Measured,
    /// Share of offered frames the filter saw and dropped (the rest overflowed the veth ring).
    pub delivered: f64,
    /// Share of the run the receiver's CPU was busy.
    pub receiver_busy: f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        }
    }
}

/// Runs all three filters on one veth pair, for IPv4 and then IPv6 sources; `deny` are the
/// prefixes each must drop, `countries` the same as a regionfilter deny list, `db` the
/// database regionfilter loads them from.
pub fn run(
    db: &str,
    countries: &str,
    deny: &[IpNet],
    rng: &mut impl FnMut() -> u64,
) -> Result<Vec<Row>> {
    let pair = VethPair::new("bench").context("namespaces")?;
    // GRO gives the receiving veth NAPI (and so a ring the sender's redirect can fill) without
    // an XDP program; threaded NAPI moves the receive path off the sender's CPU.
    ns_sh(
        &pair,
        &format!(
            "ethtool -K {0} gro on && echo 1 > /sys/class/net/{0}/threaded",
            pair.receiver_if
        ),
    )?;
    let mut rows = Vec::new();
    for family in [Family::V4, Family::V6] {
        let deny: Vec<IpNet> = deny
            .iter()
            .filter(|net| family_of(net) == family)
            .copied()
            .collect();
        let mut sender = Sender::new(&pair, family, &deny, rng)?;
        for filter in [Filter::Regionfilter, Filter::Nftables, Filter::Ipset] {
            let inst = Instance::new();
            filter.install(&pair, &inst, db, countries, family, &deny)?;
            let result = measure(filter, family, &pair, &inst, &mut sender);
            filter.remove(&pair, &inst, family);
            rows.push(result?);
        }
    }
    Ok(rows)
}

fn family_of(net: &IpNet) -> Family {
    match net {
        IpNet::V4(_) => Family::V4,
        IpNet::V6(_) => Family::V6,
    }
}

fn measure(
    filter: Filter,
    family: Family,
    pair: &VethPair,
    inst: &Instance,
    sender: &mut Sender,
) -> Result<Row> {
    let napi = napi_thread(&pair.receiver_if)?;
    pin(napi, RECEIVER_CPU)?;
    let (mut pps, mut receive_ns, mut delivered, mut busy) = (vec![], vec![], 0.0, 0.0);
    for _ in 0..RUNS {
        let dropped_before = filter.dropped(pair, inst, family)?;
        let cpu_before = runtime_ns(napi)?;
        let seconds = sender.send(pair)?;
        let dropped = filter.dropped(pair, inst, family)? - dropped_before;
        let cpu = runtime_ns(napi)? - cpu_before;
        if dropped == 0 {
            bail!("{}: the filter dropped nothing", filter.name());
        }
        pps.push(dropped as f64 / seconds);
        receive_ns.push(cpu as f64 / dropped as f64);
        delivered += dropped as f64 / f64::from(PACKETS) / RUNS as f64;
        busy += cpu as f64 / 1e9 / seconds / RUNS as f64;
        eprintln!(
            "e2e {} {}: {dropped} of {PACKETS} dropped in {seconds:.2} s, receiver {:.0} ns/packet",
            family.name(),
            filter.name(),
            cpu as f64 / dropped as f64
        );
    }
    Ok(Row {
        family,
        name: filter.name(),
        pps: Measured::of(pps),
        receive_ns: Measured::of(receive_ns),
        delivered,
        receiver_busy: busy,
    })
}

pub fn table(rows: &[Row], deny: &[IpNet]) -> Result<String> {
    let v4 = deny.iter().filter(|n| family_of(n) == Family::V4).count();
    let v6 = deny.len() - v4;
    let mut out = String::new();
    writeln!(out, "Method. Each filter drops the same {v4} IPv4 and {v6} IPv6 prefixes. The sender is `bench_send`, an XDP program run with BPF_PROG_TEST_RUN in live-frames mode in the sender's namespace (the method of `xdp-trafficgen`): it gives each minimum-size UDP frame (60 bytes IPv4, 62 bytes IPv6) the next of 65,536 random sources inside the denied prefixes, fixes the IPv4 checksum and redirects it into the veth, so the receiver gets raw frames the way a driver does. The receiving veth runs threaded NAPI pinned to CPU {RECEIVER_CPU}; the sender is pinned to CPU {SENDER_CPU}. GRO is on for all three. Each run offers {PACKETS} frames as fast as one CPU can send them; frames the receiver cannot take overflow the veth ring and are lost before any filter. pps = packets the filter dropped / sending time. Receive CPU = run time of the receiver's NAPI thread per dropped packet (veth receive + the filter). Each cell: median of {RUNS} runs (min-max).\n")?;
    writeln!(
        out,
        "| family | filter | dropped pps | vs regionfilter | receive CPU per packet | vs regionfilter | offered frames that reached the filter | receiver CPU busy |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|")?;
    for row in rows {
        // The regionfilter row of the same family is the base.
        let base = rows.iter().find(|r| r.family == row.family).unwrap_or(row);
        let (base_pps, base_ns) = (base.pps.median, base.receive_ns.median);
        writeln!(
            out,
            "| {} | {} | {} | {:.2}x | {} | {:.1}x | {:.0}% | {:.0}% |",
            row.family.name(),
            row.name,
            row.pps.range(|v| format!("{:.2}M", v / 1e6)),
            row.pps.median / base_pps,
            row.receive_ns.range(|v| format!("{v:.0} ns")),
            row.receive_ns.median / base_ns,
            row.delivered * 100.0,
            row.receiver_busy * 100.0,
        )?;
    }
    Ok(out)
}

/// The `bench_send` program, loaded with its own (small) maps and the sources to cycle through.
struct Sender {
    ebpf: aya::Ebpf,
    frame: Vec<u8>,
}

impl Sender {
    fn new(
        pair: &VethPair,
        family: Family,
        deny: &[IpNet],
        rng: &mut impl FnMut() -> u64,
    ) -> Result<Self> {
        let ifindex = ifindex(pair)?;
        let mut ebpf = program::loader(Lookup::Lpm)
            .map_max_entries(names::BENCH_ADDRS, BENCH_ADDRS_ENTRIES)
            .override_global(BENCH_SEND_IFINDEX, &ifindex, true)
            .load(filter_user::EBPF_OBJECT)?;
        program::load_named(&mut ebpf, "bench_send")?;
        let mut addrs: Array<&mut MapData, [u8; 16]> = ebpf
            .map_mut(names::BENCH_ADDRS)
            .context("bench map")?
            .try_into()?;
        for i in 0..BENCH_ADDRS_ENTRIES {
            let mut bytes = [0u8; 16];
            match deny[(rng() % deny.len() as u64) as usize] {
                IpNet::V4(net) => {
                    let host = (rng() >> 32) as u32 & !u32::from(net.netmask());
                    bytes[..4].copy_from_slice(&(u32::from(net.network()) | host).to_be_bytes());
                }
                IpNet::V6(net) => {
                    let host =
                        (u128::from(rng()) << 64 | u128::from(rng())) & !u128::from(net.netmask());
                    bytes = (u128::from(net.network()) | host).to_be_bytes();
                }
            }
            addrs.set(i, bytes, 0)?;
        }
        // Minimum-size frames (60 bytes for IPv4); the IPv4 checksum is set by the program.
        let mut frame = match family {
            Family::V4 => frame::ipv4(&[], Ipv4Addr::UNSPECIFIED, 18),
            Family::V6 => frame::ipv6(&[], Ipv6Addr::UNSPECIFIED, 0),
        };
        let mac = pair.receiver.mac(&pair.receiver_if)?;
        for (byte, hex) in frame.iter_mut().zip(mac.split(':')) {
            *byte = u8::from_str_radix(hex, 16).context("MAC address")?;
        }
        Ok(Self { ebpf, frame })
    }

    /// Sends `PACKETS` frames from a thread inside the sender's namespace, pinned to
    /// `SENDER_CPU`; returns the seconds it took.
    fn send(&mut self, pair: &VethPair) -> Result<f64> {
        let program: &mut Xdp = self
            .ebpf
            .program_mut("bench_send")
            .context("bench_send")?
            .try_into()?;
        let frame = &self.frame;
        pair.sender.enter(move || -> Result<f64> {
            pin(0, SENDER_CPU)?;
            // In slices, so a pathologically slow run stops at SEND_LIMIT, not at PACKETS.
            let started = Instant::now();
            for _ in 0..SLICES {
                program.test_run(TestRunOptions {
                    data_in: Some(frame),
                    repeat: PACKETS / SLICES,
                    attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
                    ..TestRunOptions::new()
                })?;
                if started.elapsed() > SEND_LIMIT {
                    bail!("sending took over {SEND_LIMIT:?}; stopped");
                }
            }
            Ok(started.elapsed().as_secs_f64())
        })?
    }
}

fn ifindex(pair: &VethPair) -> Result<u32> {
    let out = pair.sender.ip(&["-j", "link", "show", &pair.sender_if])?;
    let json: serde_json::Value = serde_json::from_str(&out)?;
    json[0]["ifindex"]
        .as_u64()
        .and_then(|i| u32::try_from(i).ok())
        .context("no ifindex in `ip -j link show`")
}

/// The kernel thread running the receiver's NAPI (`napi/IFACE-ID`).
fn napi_thread(iface: &str) -> Result<i32> {
    let prefix = format!("napi/{iface}-");
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(&prefix) {
            return Ok(pid);
        }
    }
    bail!("no threaded NAPI thread for {iface}")
}

/// Pins thread `tid` (0: the calling thread) to one CPU.
fn pin(tid: i32, cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET and sched_setaffinity only touch the set passed.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(tid, std::mem::size_of_val(&set), &set) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot pin {tid} to CPU {cpu}"));
        }
    }
    Ok(())
}

/// Time thread `tid` has run on a CPU, in ns (first field of its schedstat).
fn runtime_ns(tid: i32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/schedstat"))?;
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .context("unreadable schedstat")
}

/// Runs a shell command in the receiver's namespace with its own /sys (`ip netns exec`), for
/// the per-device sysfs files.
fn ns_sh(pair: &VethPair, script: &str) -> Result<()> {
    integration_tests::netns::run(std::process::Command::new("ip").args([
        "netns",
        "exec",
        pair.receiver.name(),
        "sh",
        "-c",
        script,
    ]))
    .map(drop)
}

#[derive(Clone, Copy)]
enum Filter {
    Regionfilter,
    Nftables,
    Ipset,
}

impl Filter {
    fn name(self) -> &'static str {
        match self {
            Self::Regionfilter => "regionfilter (native XDP, fast lookup)",
            Self::Nftables => "nftables netdev ingress, interval set",
            Self::Ipset => "iptables raw PREROUTING + ipset hash:net",
        }
    }

    fn install(
        self,
        pair: &VethPair,
        inst: &Instance,
        db: &str,
        countries: &str,
        family: Family,
        deny: &[IpNet],
    ) -> Result<()> {
        let (nft_type, nft_match, ipset_family) = match family {
            Family::V4 => ("ipv4_addr", "ip", "inet"),
            Family::V6 => ("ipv6_addr", "ip6", "inet6"),
        };
        let iface = &pair.receiver_if;
        match self {
            Self::Regionfilter => {
                inst.ok(
                    Some(&pair.receiver),
                    &[
                        "attach", "--iface", iface, "--db", db, "--deny", countries, "--mode",
                        "native",
                    ],
                )?;
            }
            Self::Nftables => {
                let elements: Vec<String> = deny.iter().map(ToString::to_string).collect();
                let rules = format!(
                    "table netdev rfbench {{\n set deny {{ type {nft_type}; flags interval; elements = {{ {} }} }}\n chain ingress {{ type filter hook ingress device \"{iface}\" priority -500; {nft_match} saddr @deny counter drop;\n }}\n}}\n",
                    elements.join(", ")
                );
                pipe(pair, &["nft", "-f", "-"], &rules)?;
            }
            Self::Ipset => {
                let mut restore = format!(
                    "create rfdeny hash:net family {ipset_family} hashsize 65536 maxelem 2000000\n"
                );
                for net in deny {
                    writeln!(restore, "add rfdeny {net}")?;
                }
                pipe(pair, &["ipset", "restore"], &restore)?;
                ns(
                    pair,
                    &[
                        iptables(family),
                        "-t",
                        "raw",
                        "-A",
                        "PREROUTING",
                        "-m",
                        "set",
                        "--match-set",
                        "rfdeny",
                        "src",
                        "-j",
                        "DROP",
                    ],
                )?;
            }
        }
        Ok(())
    }

    fn dropped(self, pair: &VethPair, inst: &Instance, family: Family) -> Result<u64> {
        match self {
            Self::Regionfilter => {
                let maps = FilterMaps::open_pinned(&inst.pin_root.join(&pair.receiver_if))?;
                let totals = maps.counter_totals()?;
                // Every country's drop slot (the layout is filter_common's, not assumed here).
                Ok((0..filter_common::COUNTRY_SLOTS)
                    .map(|c| u16::try_from(c).expect("country index fits u16"))
                    .map(|c| {
                        let slot = filter_common::country_slot(c, filter_common::ACTION_DROP);
                        totals[slot as usize].packets
                    })
                    .sum())
            }
            Self::Nftables => {
                let json = ns(pair, &["nft", "-j", "list", "table", "netdev", "rfbench"])?;
                let value: serde_json::Value = serde_json::from_str(&json)?;
                let packets = value["nftables"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|item| item["rule"]["expr"].as_array())
                    .flatten()
                    .filter_map(|expr| expr["counter"]["packets"].as_u64())
                    .sum();
                Ok(packets)
            }
            Self::Ipset => {
                let text = ns(
                    pair,
                    &[iptables(family), "-t", "raw", "-nvxL", "PREROUTING"],
                )?;
                text.lines()
                    .find(|l| l.contains("match-set rfdeny"))
                    .and_then(|l| l.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .context("no iptables counter")
            }
        }
    }

    fn remove(self, pair: &VethPair, inst: &Instance, family: Family) {
        let _ = match self {
            Self::Regionfilter => inst
                .ok(
                    Some(&pair.receiver),
                    &["detach", "--iface", &pair.receiver_if],
                )
                .map(drop),
            Self::Nftables => ns(pair, &["nft", "delete", "table", "netdev", "rfbench"]).map(drop),
            Self::Ipset => ns(pair, &[iptables(family), "-t", "raw", "-F", "PREROUTING"])
                .and_then(|_| ns(pair, &["ipset", "destroy", "rfdeny"]))
                .map(drop),
        };
    }
}

fn iptables(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables",
        Family::V6 => "ip6tables",
    }
}

/// Runs a command in the receiver's namespace; returns stdout.
fn ns(pair: &VethPair, args: &[&str]) -> Result<String> {
    let out = pair.receiver.command(args[0]).args(&args[1..]).output()?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command in the receiver's namespace with `input` on stdin.
fn pipe(pair: &VethPair, args: &[&str], input: &str) -> Result<()> {
    use std::io::Write as _;
    let mut child = pair
        .receiver
        .command(args[0])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
