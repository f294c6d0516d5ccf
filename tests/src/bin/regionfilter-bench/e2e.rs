//! End to end over veth: the same denied prefixes in regionfilter (native XDP), an nftables
//! `netdev` ingress chain with an interval set, and iptables `raw` PREROUTING with an
//! `ipset hash:net`; trafgen in the sender namespace offers the same randomised-source load to
//! each; every packet is one the filter must drop.

use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use filter_user::maps::FilterMaps;
use integration_tests::{cli::Instance, netns::VethPair};
use ipnet::Ipv4Net;

/// Packets trafgen sends per run, and distinct sources it cycles through.
const PACKETS: u64 = 2_000_000;
const SOURCES: usize = 4096;
/// Upper bound on one run; trafgen normally finishes far sooner.
const RUN_LIMIT: Duration = Duration::from_secs(60);

pub struct Row {
    pub name: &'static str,
    pub dropped: u64,
    pub seconds: f64,
    pub cpu_seconds: f64,
}

impl Row {
    pub fn pps(&self) -> f64 {
        self.dropped as f64 / self.seconds
    }
}

/// Runs all three filters; `deny` are the prefixes each must drop, `countries` the same as a
/// regionfilter deny list, `db` the database regionfilter loads them from.
pub fn run(
    db: &str,
    countries: &str,
    deny: &[Ipv4Net],
    rng: &mut impl FnMut() -> u64,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for filter in [Filter::Regionfilter, Filter::Nftables, Filter::Ipset] {
        let pair = VethPair::new("bench").context("namespaces")?;
        let receiver_mac = pair.receiver.mac(&pair.receiver_if)?;
        let config = trafgen_config(&receiver_mac, deny, rng);
        let conf_path = std::env::temp_dir().join(format!("rf-trafgen-{}.cfg", std::process::id()));
        std::fs::write(&conf_path, config)?;
        let inst = Instance::new();
        filter.install(&pair, &inst, db, countries, deny)?;
        let cpu_before = cpu_seconds()?;
        let started = Instant::now();
        let status = Command::new("timeout")
            .arg(RUN_LIMIT.as_secs().to_string())
            .args([
                "nsenter",
                &format!("--net={}", pair.sender.path().display()),
                "trafgen",
                "--dev",
                &pair.sender_if,
                "--conf",
            ])
            .arg(&conf_path)
            .args(["--cpus", "1", "-n", &PACKETS.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("cannot run trafgen")?;
        let seconds = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds()? - cpu_before;
        let _ = std::fs::remove_file(&conf_path);
        if !status.success() {
            bail!("trafgen failed ({status})");
        }
        let dropped = filter.dropped(&pair, &inst)?;
        filter.remove(&pair, &inst);
        eprintln!(
            "e2e {}: {dropped} dropped in {seconds:.2} s, {cpu:.2} CPU-s",
            filter.name()
        );
        rows.push(Row {
            name: filter.name(),
            dropped,
            seconds,
            cpu_seconds: cpu,
        });
    }
    Ok(rows)
}

pub fn table(rows: &[Row], prefixes: usize) -> Result<String> {
    let mut out = String::new();
    writeln!(out, "Each filter drops the same {prefixes} IPv4 prefixes; trafgen sends {PACKETS} UDP frames from {SOURCES} sources inside them, one CPU, as fast as it can. pps = packets the filter dropped / wall time; CPU = all CPU time on the machine during the run (trafgen included) per million packets.\n")?;
    writeln!(
        out,
        "| filter | dropped | pps | vs regionfilter | CPU-s per million packets |"
    )?;
    writeln!(out, "|---|---|---|---|---|")?;
    let base = rows.first().map_or(1.0, Row::pps);
    for row in rows {
        writeln!(
            out,
            "| {} | {} | {:.0} | {:.2}x | {:.2} |",
            row.name,
            row.dropped,
            row.pps(),
            row.pps() / base,
            row.cpu_seconds / (row.dropped.max(1) as f64 / 1e6)
        )?;
    }
    Ok(out)
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
        deny: &[Ipv4Net],
    ) -> Result<()> {
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
                let mut rules = String::from(
                    "table netdev rfbench {\n set deny4 { type ipv4_addr; flags interval; elements = { ",
                );
                let elements: Vec<String> = deny.iter().map(ToString::to_string).collect();
                rules.push_str(&elements.join(", "));
                write!(rules, " }} }}\n chain ingress {{ type filter hook ingress device \"{iface}\" priority -500; ip saddr @deny4 counter drop;\n }}\n}}\n")?;
                pipe(pair, &["nft", "-f", "-"], &rules)?;
            }
            Self::Ipset => {
                let mut restore = String::from(
                    "create rfdeny hash:net family inet hashsize 65536 maxelem 2000000\n",
                );
                for net in deny {
                    writeln!(restore, "add rfdeny {net}")?;
                }
                pipe(pair, &["ipset", "restore"], &restore)?;
                ns(
                    pair,
                    &[
                        "iptables",
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

    fn dropped(self, pair: &VethPair, inst: &Instance) -> Result<u64> {
        match self {
            Self::Regionfilter => {
                let maps = FilterMaps::open_pinned(&inst.pin_root.join(&pair.receiver_if))?;
                let totals = maps.counter_totals()?;
                Ok(totals
                    .iter()
                    .enumerate()
                    .filter(|(slot, _)| {
                        *slot % 2 == 1 && (*slot as u32) < filter_common::SLOT_NON_IP
                    })
                    .map(|(_, c)| c.packets)
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
                let text = ns(pair, &["iptables", "-t", "raw", "-nvxL", "PREROUTING"])?;
                text.lines()
                    .find(|l| l.contains("match-set rfdeny"))
                    .and_then(|l| l.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .context("no iptables counter")
            }
        }
    }

    fn remove(self, pair: &VethPair, inst: &Instance) {
        let _ = match self {
            Self::Regionfilter => inst
                .ok(
                    Some(&pair.receiver),
                    &["detach", "--iface", &pair.receiver_if],
                )
                .map(drop),
            Self::Nftables => ns(pair, &["nft", "delete", "table", "netdev", "rfbench"]).map(drop),
            Self::Ipset => ns(pair, &["iptables", "-t", "raw", "-F", "PREROUTING"])
                .and_then(|_| ns(pair, &["ipset", "destroy", "rfdeny"]))
                .map(drop),
        };
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

/// Busy CPU time of the whole machine (everything but idle and iowait), in seconds.
fn cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .context("empty /proc/stat")?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(busy / hz)
}

/// A trafgen configuration: `SOURCES` UDP/IPv4 frames to the receiver's MAC, each from a random
/// address inside a random denied prefix, with a valid IP checksum (netfilter checks it).
fn trafgen_config(receiver_mac: &str, deny: &[Ipv4Net], rng: &mut impl FnMut() -> u64) -> String {
    let mac: Vec<String> = receiver_mac.split(':').map(|b| format!("0x{b}")).collect();
    let mut out = String::new();
    for _ in 0..SOURCES {
        let net = deny[(rng() % deny.len() as u64) as usize];
        let host = (rng() >> 32) as u32 & !u32::from(net.netmask());
        let src = Ipv4Addr::from(u32::from(net.network()) | host).octets();
        let _ = writeln!(
            out,
            "{{ {}, 0x02,0,0,0,0,0x09, 0x08,0x00, 0x45,0x00,0x00,0x1c, 0x00,0x00,0x40,0x00,0x40,0x11, csumip(14, 33), {},{},{},{}, 198,51,100,1, 0x30,0x39,0x00,0x35,0x00,0x08,0x00,0x00 }}",
            mac.join(","),
            src[0], src[1], src[2], src[3]
        );
    }
    out
}
