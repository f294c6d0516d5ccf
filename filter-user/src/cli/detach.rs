//! `regionfilter detach`: remove the program from an interface, then its pins and record.

use std::fs;

use anyhow::{bail, Context as _, Result};
use aya::programs::links::PinnedLink;

use crate::{
    privileges,
    state::{Layout, LINK_PIN},
};

#[derive(Debug, clap::Args)]
pub struct DetachArgs {
    /// Interface to stop filtering.
    #[arg(long, value_name = "IF")]
    pub iface: String,
}

pub fn run(layout: &Layout, args: &DetachArgs) -> Result<()> {
    privileges::require_bpf_admin("detach")?;
    let pin_dir = layout.pin_dir(&args.iface);
    if !pin_dir.exists() {
        bail!(
            "regionfilter is not attached to {} (no pins in {}); `regionfilter status` lists attached interfaces",
            args.iface,
            pin_dir.display()
        );
    }
    let link_pin = pin_dir.join(LINK_PIN);
    if link_pin.exists() {
        // Unpin, then close the last reference ourselves: the program is detached when this
        // returns, not later from a kernel work queue.
        let link = PinnedLink::from_pin(&link_pin)
            .with_context(|| format!("cannot open pinned link {}", link_pin.display()))?;
        let link = link
            .unpin()
            .with_context(|| format!("cannot unpin {}", link_pin.display()))?;
        drop(link);
    }
    fs::remove_dir_all(&pin_dir).with_context(|| format!("cannot remove {}", pin_dir.display()))?;
    let state_file = layout.state_file(&args.iface);
    if state_file.exists() {
        fs::remove_file(&state_file)
            .with_context(|| format!("cannot remove {}", state_file.display()))?;
    }
    println!("detached from {}", args.iface);
    Ok(())
}
