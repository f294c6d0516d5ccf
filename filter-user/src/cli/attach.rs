//! `regionfilter attach`: the options, and the lines that report [`ops::attach`].

use std::time::Duration;

use anyhow::Result;

use crate::{
    cli::args::{DataArgs, PolicyArgs},
    model::iface::IfaceName,
    model::lookup::Lookup,
    ops::{
        self,
        attach::{AttachMode, AttachRequest},
    },
    state::Layout,
};

#[derive(Debug, clap::Args)]
#[command(group = crate::cli::args::data_required())]
pub struct AttachArgs {
    /// Interface whose incoming traffic is filtered (Ethernet or raw-IP: tun, WireGuard,
    /// ip tunnels).
    #[arg(long, value_name = "IF")]
    pub iface: IfaceName,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// native runs in the driver (fastest); skb works on any interface.
    #[arg(long, value_enum, default_value_t = AttachMode::Native)]
    pub mode: AttachMode,
    /// fast: compiled arrays, 112 MiB of kernel memory whatever the data; lpm: the plain tries,
    /// several times slower per packet, memory growing with the data (about 160 MiB for the
    /// full world, under 1 MiB for a short list).
    #[arg(long, value_enum, default_value_t = Lookup::Fast)]
    pub lookup: Lookup,
    /// How long to wait for another command on the same interface to finish (at most 24h).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::cli::args::wait_duration)]
    pub wait: Duration,
    /// Attach even if the policy would drop the client of your SSH session or the peer of an
    /// established TCP connection to this interface (the lock-out guard).
    #[arg(long)]
    pub force: bool,
}

pub fn run(layout: &Layout, args: &AttachArgs) -> Result<()> {
    let attached = ops::attach::attach(
        layout,
        &AttachRequest {
            iface: &args.iface,
            data: &args.data.spec(),
            policy: args.policy.spec().to_policy()?,
            mode: args.mode,
            lookup: args.lookup,
            wait: args.wait,
            force: args.force,
        },
    )?;
    if let Some(note) = &attached.note {
        eprintln!("note: {note}");
    }
    for warning in &attached.warnings {
        eprintln!("warning: {warning}");
    }
    println!("{}", attached.summary());
    Ok(())
}
