//! `regionfilter explain`: where an address's verdict comes from.

use std::net::IpAddr;

use anyhow::Result;

use super::{
    inputs::{DataArgs, PolicyArgs},
    status::describe_source,
};
use crate::policy::{action_name, Mode, Policy, Reason};

#[derive(Debug, clap::Args)]
#[command(group = super::inputs::data_required())]
pub struct ExplainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
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
            |p| verdict_text(p, addr, found.map(|f| f.2)),
        );
        if addr == given {
            println!("{addr}: {place}; verdict: {verdict}");
        } else {
            println!("{given} (carries IPv4 {addr}, judged as it): {place}; verdict: {verdict}");
        }
    }
    Ok(())
}

fn verdict_text(policy: &Policy, addr: IpAddr, country: Option<crate::country::Country>) -> String {
    let (action, reason) = policy.verdict(addr, country);
    let why = match reason {
        Reason::AllowCidr(net) => format!("always-pass CIDR {net}"),
        Reason::DenyCidr(net) => format!("always-drop CIDR {net}"),
        Reason::Unknown => "unknown space".to_owned(),
        Reason::Country { listed } => match (policy.mode, listed) {
            (Mode::Allow, true) => "on the allow list",
            (Mode::Allow, false) => "not on the allow list",
            (Mode::Deny, true) => "on the deny list",
            (Mode::Deny, false) => "not on the deny list",
        }
        .to_owned(),
    };
    match action {
        crate::policy::Action::Drop if policy.dry_run => {
            format!("would drop ({why}; dry run: passed)")
        }
        _ => format!("{} ({why})", action_name(action)),
    }
}
