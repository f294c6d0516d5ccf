//! `regionfilter explain`: where an address's verdict comes from.

use std::net::IpAddr;

use anyhow::Result;

use super::{
    inputs::{DataArgs, PolicyArgs},
    status::describe_source,
};
use crate::{
    compile::RegionSet,
    model::{Class, Model, Packet, Rule, Transport, Why, TCP_SYN},
    policy::{action_name, Action, Mode, Policy},
    scope::{mode_name, ports_text, PortRange, Proto, Scope},
};

#[derive(Debug, clap::Args)]
#[command(group = super::inputs::data_required())]
pub struct ExplainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// The destination port to judge for (e.g. tcp/443): picks the service or scope rule; a
    /// TCP port is judged as a connection attempt. Without it, every rule's verdict is shown.
    #[arg(long, value_name = "PROTO/PORT", value_parser = single_port)]
    pub port: Option<PortRange>,
    /// Source addresses to explain.
    #[arg(required = true, value_name = "ADDR")]
    pub addrs: Vec<IpAddr>,
}

pub fn run(args: &ExplainArgs) -> Result<()> {
    let policy = args.policy.to_policy()?;
    let loaded = args.data.load()?;
    let policy = loaded.policy_or_artifacts(policy);
    for &given in &args.addrs {
        // The XDP program judges a source that embeds an IPv4 address (mapped, compatible,
        // 6to4, Teredo, NAT64) by that address: so does explain, with the same function.
        let addr = crate::policy::as_judged(given);
        let found = loaded.regions.lookup(addr);
        let place = match found {
            Some((start, end, country, source)) => format!(
                "{country} ({name}), range {start}-{end}, kernel prefix {prefix}, from {from}",
                name = country.name().unwrap_or("code unknown to regionfilter"),
                prefix = loaded
                    .regions
                    .kernel_prefix(addr)
                    .map_or_else(String::new, |p| p.to_string()),
                from = describe_source(source),
            ),
            None => "in no country".to_owned(),
        };
        let verdict = policy.as_ref().map_or_else(
            || "no policy given".to_owned(),
            |p| verdict_text(&loaded.regions, p, addr, args.port),
        );
        if addr == given {
            println!("{addr}: {place}; verdict: {verdict}");
        } else {
            println!("{given} (carries IPv4 {addr}, judged as it): {place}; verdict: {verdict}");
        }
    }
    Ok(())
}

/// `--port`: one destination port, not a range.
fn single_port(text: &str) -> Result<PortRange, String> {
    let port: PortRange = text
        .parse()
        .map_err(|e: crate::scope::ScopeError| e.to_string())?;
    if port.first != port.last {
        return Err("give one port, e.g. tcp/443, not a range".to_owned());
    }
    Ok(port)
}

/// The verdict for a packet to `port`, or, without one, for each rule of the policy.
fn verdict_text(
    regions: &RegionSet,
    policy: &Policy,
    addr: IpAddr,
    port: Option<PortRange>,
) -> String {
    let model = Model::new(regions, policy);
    let packet = |transport| Packet::Ip {
        src: addr,
        icmp_error: false,
        transport,
    };
    if let Some(range) = port {
        let transport = match range.proto {
            Proto::Tcp => Transport::Tcp(Some((range.first, TCP_SYN))),
            Proto::Udp => Transport::Udp(Some(range.first)),
        };
        let decision = model.judge(&packet(transport));
        return match decision.why {
            Why::OutOfScope => format!("pass ({range} is out of the policy's scope)"),
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
    let class = model.class(addr);
    let mut parts = Vec::new();
    for (row, mode, countries) in policy.rules() {
        let action = policy.row_action(row, class.entry());
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
        parts.push(judged(
            policy,
            action,
            &format!("{label}{}", why(class, mode, countries)),
        ));
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
    &'p std::collections::BTreeSet<crate::country::Country>,
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
    countries: &std::collections::BTreeSet<crate::country::Country>,
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
