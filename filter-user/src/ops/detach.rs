//! Detach: take the program off an interface, then remove its pins and record.

use std::{fs, time::Duration};

use anyhow::Result;

use super::{error::OpError, known_good::KnownGood, lock::IfaceLock, privileges};
use crate::{
    kernel::{
        pins::{self, PinState},
        placement::{self, Placement},
    },
    model::iface::IfaceName,
    state::Layout,
};

/// What was removed.
pub enum Detached {
    /// The program was on the interface and is off it now.
    Detached {
        /// Where the program really was, when the interface was renamed (`Some(name)`) or
        /// moved to another network namespace (`None`) since the attach.
        moved: Option<(u32, Option<String>)>,
        warnings: Vec<String>,
    },
    /// The interface was gone, so nothing was filtering; its pins are removed.
    Gone { warnings: Vec<String> },
    /// An attach that did not finish; its pins are removed.
    Unfinished { warnings: Vec<String> },
}

impl Detached {
    #[must_use]
    pub fn warnings(&self) -> &[String] {
        match self {
            Self::Detached { warnings, .. }
            | Self::Gone { warnings }
            | Self::Unfinished { warnings } => warnings,
        }
    }
}

pub fn detach(layout: &Layout, iface: &IfaceName, wait: Duration) -> Result<Detached, OpError> {
    run(layout, iface, wait).map_err(OpError::from)
}

fn run(layout: &Layout, iface: &IfaceName, wait: Duration) -> Result<Detached> {
    privileges::require_bpf_admin("detach", false)?;
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
    let _lock = IfaceLock::acquire(&layout.lock_file(iface), wait)?;
    let found = pins::inspect(&pin_dir)?;
    if found == PinState::Absent {
        return Err(not_attached());
    }
    // Read before the pins go: where the program really is, if not on the named interface.
    let moved = match found {
        PinState::Attached { ifindex } => match placement::recorded(layout, iface, ifindex) {
            Placement::Moved { ifindex, now } => Some((ifindex, now)),
            _ => None,
        },
        _ => None,
    };
    let removed = pins::remove_owned(&pin_dir)?;
    // The program is off the interface now: what follows is cleanup, reported but not fatal.
    let mut warnings = Vec::new();
    let state_file = layout.state_file(iface);
    if let Err(e) = fs::remove_file(&state_file) {
        if e.kind() != std::io::ErrorKind::NotFound {
            warnings.push(format!(
                "cannot remove the status record {}: {e}",
                state_file.display()
            ));
        }
    }
    if let Err(e) = KnownGood::new(&layout.lib_dir, iface).mark_detached() {
        warnings.push(format!(
            "cannot mark the known-good copy as detached ({e:#}); the agent would restore it"
        ));
    }
    if !removed.failed.is_empty() {
        warnings.push(format!(
            "could not remove every pin in {} ({}); the next detach or attach removes them",
            pin_dir.display(),
            removed.failed.join("; ")
        ));
    }
    if !removed.left.is_empty() {
        warnings.push(format!(
            "left {} in place: {} (not created by regionfilter)",
            pin_dir.display(),
            removed.left.join(", ")
        ));
    }
    Ok(match found {
        PinState::Attached { .. } => Detached::Detached { moved, warnings },
        PinState::Gone => Detached::Gone { warnings },
        _ => Detached::Unfinished { warnings },
    })
}
