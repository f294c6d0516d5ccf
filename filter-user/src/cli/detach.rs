//! `regionfilter detach`: the options, and the lines that report [`ops::detach`].

use std::time::Duration;

use anyhow::Result;

use crate::{
    model::iface::IfaceName,
    ops::{self, detach::Detached},
    state::Layout,
};

#[derive(Debug, clap::Args)]
pub struct DetachArgs {
    /// Interface to stop filtering.
    #[arg(long, value_name = "IF")]
    pub iface: IfaceName,
    /// How long to wait for another command on the same interface to finish (at most 24h).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::cli::args::wait_duration)]
    pub wait: Duration,
}

pub fn run(layout: &Layout, args: &DetachArgs) -> Result<()> {
    let iface = &args.iface;
    let detached = ops::detach::detach(layout, iface, args.wait)?;
    for warning in detached.warnings() {
        eprintln!("warning: {warning}");
    }
    match detached {
        Detached::Detached { moved, .. } => match moved {
            Some((ifindex, Some(now))) => println!(
                "detached from interface index {ifindex}, now named {now} (attached as {iface})"
            ),
            Some((ifindex, None)) => println!(
                "detached from interface index {ifindex}, now in another network namespace (attached as {iface})"
            ),
            None => println!("detached from {iface}"),
        },
        Detached::Gone { .. } => println!(
            "removed the pins of {iface}: its interface was gone (deleted or re-created), so nothing was filtering"
        ),
        Detached::Unfinished { .. } => {
            println!("removed the pins of an attach to {iface} that did not finish");
        }
    }
    Ok(())
}
