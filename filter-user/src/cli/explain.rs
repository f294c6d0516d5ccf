//! `regionfilter explain`: where an address's verdict comes from, reasoned from data files or,
//! with `--iface`, from what is attached, beside the verdict of the attached program itself.

use std::{io::IsTerminal as _, net::IpAddr};

use anyhow::{anyhow, bail, Context as _, Result};

use super::status::describe_source;
use crate::cli::args::{DataArgs, PolicyArgs};
use crate::{
    compile::reference::{Class, Model, Packet, Rule, Transport, Why, TCP_SYN},
    compile::{
        paint::{self, Entries},
        RegionSet,
    },
    kernel::selftest,
    kernel::slots::Slot,
    model::iface::IfaceName,
    model::policy::{action_name, judged_with, Action, Judged, Mode, Policy},
    model::scope::{mode_name, ports_text, PortRange, Proto, Scope},
    ops::explain::LiveFilter,
    state::Layout,
};

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("data").args(["db", "artifact", "iface"]).required(true).multiple(true))]
pub struct ExplainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Answer from the filter attached to this interface: its known-good data and policy give
    /// the reasoning, and the attached program itself, run on the live maps, gives the
    /// kernel's verdict beside it. Exits 1 if the two disagree.
    #[arg(long, value_name = "IF", conflicts_with_all = [
        "db", "artifact", "file", "allow", "deny", "allow_cidr", "deny_cidr", "unknown",
        "malformed", "icmp_errors", "dry_run", "ports", "local", "tcp", "samples",
        "nat64_prefix", "country_field", "format", "prefer",
    ])]
    pub iface: Option<IfaceName>,
    /// The destination port to judge for (e.g. tcp/443): picks the service or scope rule; a
    /// TCP port is judged as a connection attempt. Without it, every rule's verdict is shown.
    #[arg(long, value_name = "PROTO/PORT", value_parser = single_port)]
    pub port: Option<PortRange>,
    /// Source addresses to explain; without any, they are read from standard input
    /// (whitespace-separated).
    #[arg(value_name = "ADDR")]
    pub addrs: Vec<IpAddr>,
}

pub fn run(layout: &Layout, args: &ExplainArgs) -> Result<()> {
    let addrs = addresses(&args.addrs)?;
    if let Some(iface) = &args.iface {
        return live(layout, iface, &addrs, args.port);
    }
    let policy = args.policy.spec().to_policy()?;
    let loaded = args.data.spec().load()?;
    let policy = loaded.policy_or_artifacts(policy);
    let model = policy.as_ref().map(|p| Model::new(&loaded.regions, p));
    let painted = paint::entries(&loaded.regions, policy.as_ref());
    for given in addrs {
        println!(
            "{}",
            explain_one(&loaded.regions, &painted, model.as_ref(), given, args.port)
        );
    }
    Ok(())
}

/// The addresses given, or those on standard input.
fn addresses(given: &[IpAddr]) -> Result<Vec<IpAddr>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("give the addresses to explain, or pipe them in (one or more per line)");
    }
    let text = std::io::read_to_string(stdin).context("cannot read addresses from stdin")?;
    let addrs = text
        .split_whitespace()
        .enumerate()
        .map(|(i, word)| {
            word.parse::<IpAddr>().map_err(|_| {
                // A long junk word is shown by its start, not echoed whole.
                let start: String = word.chars().take(60).collect();
                let cut = if start.len() < word.len() { "..." } else { "" };
                anyhow!(
                    "word {} on stdin, {start:?}{cut}, is not an IP address; nothing was explained",
                    i + 1
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if addrs.is_empty() {
        bail!("no addresses on stdin");
    }
    Ok(addrs)
}

/// Explains each address from the attached filter's known-good data and policy, and runs the
/// attached program on the live maps (the active half) for a frame from it: a UDP datagram to
/// port 53, or a packet to `--port`. Fails, after printing every line, if they disagree.
fn live(
    layout: &Layout,
    iface: &IfaceName,
    addrs: &[IpAddr],
    port: Option<PortRange>,
) -> Result<()> {
    let LiveFilter {
        artifact,
        policy,
        mut program,
    } = LiveFilter::open(layout, iface)?;
    let model = Model::new(&artifact.regions, &policy);
    let painted = paint::entries(&artifact.regions, Some(&policy));
    let packets = probes(&policy, port);
    let mut disagree = 0;
    for &given in addrs {
        let mut line = explain_one(&artifact.regions, &painted, Some(&model), given, port);
        let mut agrees = true;
        for (i, &packet) in packets.iter().enumerate() {
            let frame = selftest::frame_to(given, packet);
            let (slot, action) = program.judge(&frame)?;
            let want = model.judge_frame(&frame, false);
            let kernel = format!(
                "{} ({})",
                action.map_or("aborted", action_name),
                Slot::of(slot)
            );
            let lead = if i == 0 {
                format!("; kernel on {iface} for ")
            } else {
                ", for ".to_owned()
            };
            line.push_str(&format!("{lead}{}/{}: {kernel}", packet.0.name(), packet.1));
            if slot != want.slot || action != Some(want.action) {
                agrees = false;
                line.push_str(&format!(
                    "; DISAGREES with the model: {} ({})",
                    action_name(want.action),
                    Slot::of(want.slot)
                ));
            }
        }
        if !agrees {
            disagree += 1;
        }
        println!("{line}");
    }
    if disagree > 0 {
        bail!(
            "the attached program and the model disagree on {disagree} of {} addresses",
            addrs.len()
        );
    }
    Ok(())
}

/// The packets the attached program judges for each address: to `--port`, or else a UDP
/// datagram to port 53 and one to the first port of each range the policy scopes or each
/// service, so every rule's row in the kernel is asked, not only the one port 53 falls in.
fn probes(policy: &Policy, port: Option<PortRange>) -> Vec<(Proto, u16)> {
    if let Some(p) = port {
        return vec![(p.proto, p.first)];
    }
    let mut packets = vec![(Proto::Udp, 53)];
    let ranges: Vec<&PortRange> = match &policy.scope {
        Scope::Host => Vec::new(),
        Scope::Ports(ranges) => ranges.iter().take(1).collect(),
        Scope::Services { services, .. } => {
            services.iter().filter_map(|s| s.ports.first()).collect()
        }
    };
    for r in ranges {
        if !packets.contains(&(r.proto, r.first)) {
            packets.push((r.proto, r.first));
        }
    }
    // And one to a port no rule names, so the top-level rule (or the out-of-scope pass) is
    // asked too: udp/53 may itself be a service's port.
    let scoped = policy.scope.port_ranges();
    let named = |&(proto, port): &(Proto, u16)| {
        scoped
            .iter()
            .any(|r| r.proto == proto && (r.first..=r.last).contains(&port))
    };
    if !scoped.is_empty() && packets.iter().all(named) {
        let free = [Proto::Udp, Proto::Tcp]
            .into_iter()
            .flat_map(|proto| (1..=u16::MAX).map(move |port| (proto, port)))
            .find(|packet| !named(packet));
        packets.extend(free);
    }
    packets
}

/// One line of reasoning for `given`.
fn explain_one(
    regions: &RegionSet,
    painted: &Entries,
    model: Option<&Model<'_>>,
    given: IpAddr,
    port: Option<PortRange>,
) -> String {
    // The XDP program judges a source that embeds an IPv4 address (mapped, compatible,
    // 6to4, Teredo, NAT64) by that address: so does explain, with the same function and the
    // policy's declared NAT64 prefixes.
    let judged = model.map_or_else(
        || judged_with(given, &filter_common::Nat64Prefixes::default()),
        |m| m.judged(given),
    );
    let addr = match judged {
        Judged::Addr(addr) => addr,
        Judged::UndeclaredNat64 => {
            let verdict = model.map_or_else(
                || "no policy given".to_owned(),
                |m| verdict_text(m, given, port),
            );
            return format!(
                "{given} (in the NAT64 local-use prefix 64:ff9b:1::/48 but in no declared \
                 --nat64-prefix, so the IPv4 address it carries cannot be read): verdict: {verdict}"
            );
        }
    };
    let found = regions.lookup(addr);
    let place = match found {
        Some((start, end, country, source)) => format!(
            "{country} ({name}), range {start}-{end}, kernel prefix {prefix}, from {from}",
            name = country.name().unwrap_or("code unknown to regionfilter"),
            // The kernel's own prefix: an exception or local space may split the data's.
            prefix = painted
                .prefix_of(addr)
                .map_or_else(String::new, |p| p.to_string()),
            from = describe_source(source),
        ),
        None => "in no country".to_owned(),
    };
    let verdict = model.map_or_else(
        || "no policy given".to_owned(),
        |m| verdict_text(m, given, port),
    );
    if addr == given {
        format!("{addr}: {place}; verdict: {verdict}")
    } else {
        format!("{given} (carries IPv4 {addr}, judged as it): {place}; verdict: {verdict}")
    }
}

/// `--port`: one destination port, not a range.
fn single_port(text: &str) -> Result<PortRange, String> {
    let port: PortRange = text
        .parse()
        .map_err(|e: crate::model::scope::ScopeError| e.to_string())?;
    if port.first != port.last {
        return Err("give one port, e.g. tcp/443, not a range".to_owned());
    }
    Ok(port)
}

/// The verdict for a packet from `given` to `port`, or, without one, for each rule of the
/// policy.
fn verdict_text(model: &Model<'_>, given: IpAddr, port: Option<PortRange>) -> String {
    let policy = model.policy;
    let packet = |transport| Packet::Ip {
        src: given,
        icmp_error: false,
        ndp: false,
        transport,
    };
    const UNDECLARED: &str = "undeclared NAT64 source: declare its translator's prefix with \
                              --nat64-prefix to judge it by its IPv4 address";
    if let Some(range) = port {
        let transport = match range.proto {
            Proto::Tcp => Transport::Tcp(Some((range.first, TCP_SYN))),
            Proto::Udp => Transport::Udp(Some(range.first)),
        };
        let decision = model.judge(&packet(transport));
        return match decision.why {
            Why::OutOfScope => format!("pass ({range} is out of the policy's scope)"),
            Why::UndeclaredNat64 => judged(policy, decision.verdict, UNDECLARED),
            Why::Judged { rule, class } => {
                let (label, (mode, countries)) = match &rule {
                    Rule::Service(name) => (format!("service {name}: "), rule_list(policy, name)),
                    Rule::Main | Rule::Strict => (String::new(), (policy.mode, &policy.countries)),
                };
                judged(
                    policy,
                    decision.verdict,
                    &format!("{label}{}", why(class, mode, countries)),
                )
            }
            other => format!("pass ({other:?})"),
        };
    }
    let class = match model.judged(given) {
        Judged::Addr(addr) => Some(model.class(addr)),
        Judged::UndeclaredNat64 => None,
    };
    let mut parts = Vec::new();
    for (row, mode, countries) in policy.rules() {
        let label = match &policy.scope {
            Scope::Host => String::new(),
            Scope::Ports(ports) => format!("{}: ", ports_text(ports)),
            Scope::Services { services, .. } => {
                match services.get(usize::from(row).wrapping_sub(2)) {
                    Some(s) if row >= 2 => {
                        format!("service {} ({}): ", s.name, ports_text(&s.ports))
                    }
                    _ => "other traffic: ".to_owned(),
                }
            }
        };
        // Every rule that judges drops an undeclared NAT64 source.
        let (action, reason) = match class {
            Some(class) => (
                policy.row_action(row, class.entry()),
                why(class, mode, countries),
            ),
            None => (Action::Drop, UNDECLARED.to_owned()),
        };
        parts.push(judged(policy, action, &format!("{label}{reason}")));
    }
    if matches!(
        policy.scope,
        Scope::Ports(_)
            | Scope::Services {
                other_judged: false,
                ..
            }
    ) {
        parts.push("other traffic: pass (out of scope)".to_owned());
    }
    parts.join("; ")
}

/// The list of the service named `name`, else the main rule's.
fn rule_list<'p>(
    policy: &'p Policy,
    name: &str,
) -> (
    Mode,
    &'p std::collections::BTreeSet<crate::model::country::Country>,
) {
    if let Scope::Services { services, .. } = &policy.scope {
        if let Some(s) = services.iter().find(|s| s.name == name) {
            return (s.mode, &s.countries);
        }
    }
    (policy.mode, &policy.countries)
}

fn judged(policy: &Policy, action: Action, why: &str) -> String {
    match action {
        Action::Drop if policy.dry_run => format!("would drop ({why}; dry run: passed)"),
        _ => format!("{} ({why})", action_name(action)),
    }
}

fn why(
    class: Class,
    mode: Mode,
    countries: &std::collections::BTreeSet<crate::model::country::Country>,
) -> String {
    match class {
        Class::AllowCidr(net) => format!("always-pass CIDR {net}"),
        Class::DenyCidr(net) => format!("always-drop CIDR {net}"),
        Class::Local(net) => format!("local space {net}"),
        Class::Unknown => "unknown space".to_owned(),
        Class::Country(c) => format!(
            "{} the {} list",
            if countries.contains(&c) {
                "on"
            } else {
                "not on"
            },
            mode_name(mode)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With udp/53 inside a service, the probes used to ask only the services' rows: a wrong
    /// top-level row went unseen.
    #[test]
    fn live_probes_ask_the_top_level_rule_when_services_cover_udp_53() {
        let file: crate::model::policy_file::PolicyFile = toml::from_str(
            "deny = [\"GB\"]\n[[service]]\nname = \"dns\"\nports = [\"udp/1-100\"]\ndeny = [\"SE\"]\n",
        )
        .unwrap();
        let policy = crate::ops::policy_spec::PolicySpec::default()
            .with_file(file)
            .unwrap();
        assert_eq!(
            probes(&policy, None),
            [(Proto::Udp, 53), (Proto::Udp, 1), (Proto::Udp, 101)]
        );
    }

    /// An exception splits the data's prefix in the kernel: explain names the kernel's prefix
    /// (it used to print the data's, 81.2.69.160/27, which the kernel does not hold).
    #[test]
    fn the_kernel_prefix_is_the_one_an_exception_split_off() {
        let data = DataArgs {
            db: vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fixtures/maxmind/GeoLite2-Country-Test.mmdb")],
            ..DataArgs::default()
        };
        let regions = data.spec().load().unwrap().regions;
        let policy = PolicyArgs {
            deny: Some("GB".to_owned()),
            allow_cidr: vec!["81.2.69.128/26".parse().unwrap()],
            ..PolicyArgs::default()
        }
        .spec()
        .to_policy()
        .unwrap()
        .unwrap();
        let model = Model::new(&regions, &policy);
        let painted = paint::entries(&regions, Some(&policy));
        let addr: IpAddr = "81.2.69.160".parse().unwrap();
        let line = explain_one(&regions, &painted, Some(&model), addr, None);
        assert!(line.contains("kernel prefix 81.2.69.128/26,"), "{line}");
        let line = explain_one(&regions, &paint::entries(&regions, None), None, addr, None);
        assert!(line.contains("kernel prefix 81.2.69.160/27,"), "{line}");
    }
}
