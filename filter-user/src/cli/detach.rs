//! `regionfilter detach`: take the program off an interface, then remove its pins and record.

use std::{fs, time::Duration};

use anyhow::Result;

use crate::{
    kernel::pins::{self, PinState},
    kernel::placement::{self, Placement},
    model::iface::IfaceName,
    ops::lock::IfaceLock,
    ops::privileges,
    ops::state::Layout,
};

#[derive(Debug, clap::Args)]
pub struct DetachArgs {
    /// Interface to stop filtering.
    #[arg(long, value_name = "IF")]
    pub iface: IfaceName,
    /// How long to wait for another command on the same interface to finish (at most 24h).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = super::inputs::wait_duration)]
    pub wait: Duration,
}

pub fn run(layout: &Layout, args: &DetachArgs) -> Result<()> {
    privileges::require_bpf_admin("detach")?;
    let iface = &args.iface;
    let pin_dir = layout.pin_dir(iface);
    let not_attached = || {
        anyhow::anyhow!(
            "regionfilter is not attached to {iface} (no pins in {}); `regionfilter status` lists attached interfaces",
            pin_dir.display()
        )
    };
    // Checked before the lock too, so a refusal creates no lock file; again under the lock.
    if pins::inspect(&pin_dir)? == PinState::Absent {
        return Err(not_attached());
    }
    let _lock = IfaceLock::acquire(&layout.lock_file(iface), args.wait)?;
    let found = pins::inspect(&pin_dir)?;
    if found == PinState::Absent {
        return Err(not_attached());
    }
    // Said before the pins go: where the program really is, if not on the named interface.
    let moved = match found {
        PinState::Attached { ifindex } => match placement::recorded(layout, iface, ifindex) {
            Placement::Moved { ifindex, now } => Some((ifindex, now)),
            _ => None,
        },
        _ => None,
    };
    let removed = pins::remove_owned(&pin_dir)?;
    // The program is off the interface now: what follows is cleanup, reported but not fatal.
    let state_file = layout.state_file(iface);
    if let Err(e) = fs::remove_file(&state_file) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!(
                "warning: cannot remove the status record {}: {e}",
                state_file.display()
            );
        }
    }
    if !removed.failed.is_empty() {
        eprintln!(
            "warning: could not remove every pin in {} ({}); the next detach or attach removes them",
            pin_dir.display(),
            removed.failed.join("; ")
        );
    }
    if !removed.left.is_empty() {
        eprintln!(
            "warning: left {} in place: {} (not created by regionfilter)",
            pin_dir.display(),
            removed.left.join(", ")
        );
    }
    match found {
        PinState::Attached { .. } => match moved {
            Some((ifindex, Some(now))) => println!(
                "detached from interface index {ifindex}, now named {now} (attached as {iface})"
            ),
            Some((ifindex, None)) => println!(
                "detached from interface index {ifindex}, now in another network namespace (attached as {iface})"
            ),
            None => println!("detached from {iface}"),
        },
        PinState::Gone => println!(
            "removed the pins of {iface}: its interface was gone (deleted or re-created), so nothing was filtering"
        ),
        _ => println!("removed the pins of an attach to {iface} that did not finish"),
    }
    Ok(())
}
