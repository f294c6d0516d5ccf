//! Attach: fill the maps, self-test them, attach the program, pin everything.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};
use aya::programs::{links::FdLink, ProgramError, XdpMode};
use serde::Deserialize;

use super::{
    data_spec::{warn_uncovered, DataSpec},
    error::OpError,
    known_good::KnownGood,
    lock::IfaceLock,
    lockout::{self, LockOut},
    privileges,
};
use crate::{
    kernel::{
        maps::FilterMaps,
        netdev,
        pins::{self, PinState, LINK_PIN, PROGRAM_PIN},
        placement, program, selftest,
        swap::{self, Staged},
    },
    model::{
        iface::{IfaceName, LinkLayer},
        lookup::Lookup,
        policy::Policy,
    },
    state::{AttachState, Layout},
    sys::time::unix_now,
};

/// How the program runs on the interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// In the driver (fastest).
    #[default]
    Native,
    /// In the generic path: works on any interface.
    Skb,
}

impl AttachMode {
    fn xdp(self) -> XdpMode {
        match self {
            Self::Native => XdpMode::Driver,
            Self::Skb => XdpMode::Skb,
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Skb => "skb",
        }
    }
}

/// What to attach where.
pub struct AttachRequest<'a> {
    pub iface: &'a IfaceName,
    /// Read only after the cheap checks (interface, bpffs, not attached yet) pass.
    pub data: &'a DataSpec,
    /// `None`: the policy the artifact carries.
    pub policy: Option<Policy>,
    pub mode: AttachMode,
    pub lookup: Lookup,
    /// How long to wait for another command on the same interface.
    pub wait: Duration,
    /// Attach even if the lock-out guard objects.
    pub force: bool,
}

/// A filter now attached and pinned.
pub struct Attached {
    /// The record `status` reads (written unless a warning says otherwise).
    pub state: AttachState,
    /// Stale pins removed first, if any.
    pub note: Option<String>,
    /// Record keeping that failed after the attach; the filter runs whatever they say.
    pub warnings: Vec<String>,
}

pub fn attach(layout: &Layout, request: &AttachRequest<'_>) -> Result<Attached, OpError> {
    run(layout, request).map_err(OpError::from)
}

fn run(layout: &Layout, request: &AttachRequest<'_>) -> Result<Attached> {
    privileges::require_bpf_admin("attach", true)?;
    privileges::require_address_space("attach")?;
    let iface = request.iface;
    let ifindex = netdev::index(iface)?;
    let layer = netdev::link_layer(iface)?;
    pins::require_bpffs(&layout.pin_root)?;
    let pin_dir = layout.pin_dir(iface);
    refuse_if_attached(layout, iface, &pin_dir)?;
    // Everything that can be refused is checked before anything is touched.
    let prepared = prepare(request)?;

    // One command per interface from here on: a concurrent attach, detach or update waits.
    let _lock = IfaceLock::acquire(&layout.lock_file(iface), request.wait)?;
    refuse_if_attached(layout, iface, &pin_dir)?;
    let note = clear_stale(iface, &pin_dir)?;
    // Remove whatever this attach pinned if any later step fails.
    let guard = PinDirGuard::create(&layout.pin_root, &pin_dir)?;
    let mut ebpf = program::load_object(request.lookup, layer)?;
    let mut maps = FilterMaps::take(&mut ebpf, Some(&pin_dir))?;
    // The maps are complete and self-tested before the program sees its first packet.
    swap::install(&mut maps, &prepared.staged, request.lookup, |half| {
        selftest::check_pinned(&pin_dir, half, &prepared.samples)
    })?;
    let xdp = program::load_xdp(&mut ebpf)?;
    xdp.pin(pin_dir.join(PROGRAM_PIN))
        .context("cannot pin the XDP program")?;
    let link_id = xdp
        .attach_to_if_index(ifindex, request.mode.xdp())
        .map_err(|e| explain_attach_error(e, iface, request.mode))?;
    let link: FdLink = xdp
        .take_link(link_id)?
        .try_into()
        .context("the kernel attached through netlink, not a BPF link; regionfilter needs Linux 5.9 or later")?;
    // The link is pinned last: a directory without it is an attach that did not finish.
    link.pin(pin_dir.join(LINK_PIN))
        .context("cannot pin the XDP link")?;
    guard.keep();

    // Attached and pinned: from here on nothing may turn this into a failure.
    let (state, warnings) = keep_records(layout, request, prepared, ifindex, layer);
    Ok(Attached {
        state,
        note,
        warnings,
    })
}

/// What an attach installs, compiled and checked before anything is touched.
struct Prepared {
    staged: Staged,
    samples: Vec<selftest::Sample>,
    sources: Vec<crate::data::SourceInfo>,
    artifact: Option<PathBuf>,
}

/// Loads the data, settles the policy, compiles the tables and runs the lock-out check.
fn prepare(request: &AttachRequest<'_>) -> Result<Prepared> {
    let loaded = request.data.load()?;
    let Some(policy) = loaded.policy_or_artifacts(request.policy.clone()) else {
        match loaded.artifact {
            Some(_) => {
                bail!("the artifact carries no policy: give --allow or --deny (or --policy FILE)")
            }
            None => bail!("give --allow or --deny (or --policy FILE)"),
        }
    };
    warn_uncovered(&policy, &loaded.regions);
    super::lockout::warn_ephemeral(&policy.scope);
    let sources = loaded.regions.sources.clone();
    let artifact = loaded.artifact.map(|(path, _)| path);
    let staged = Staged::new(loaded.regions, policy, request.lookup)?;
    let samples = selftest::samples(staged.regions(), &staged.policy);
    let cut_off = lockout::check(request.iface, &staged.policy, staged.regions(), None);
    if !cut_off.is_empty() && !request.force {
        return Err(LockOut {
            iface: request.iface.clone(),
            peers: cut_off,
            also: Vec::new(),
        }
        .into());
    }
    Ok(Prepared {
        staged,
        samples,
        sources,
        artifact,
    })
}

/// Removes what an earlier attach that did not finish (or a filter whose interface is gone)
/// left in `pin_dir`, only regionfilter's own entries; says what was removed.
fn clear_stale(iface: &IfaceName, pin_dir: &Path) -> Result<Option<String>> {
    let found = pins::inspect(pin_dir)?;
    if found == PinState::Foreign {
        bail!(
            "{} exists and holds entries regionfilter did not create; it was left alone: \
             remove or move it, then attach again",
            pin_dir.display()
        );
    }
    if !found.is_stale() {
        return Ok(None);
    }
    let removed = pins::remove_owned(pin_dir)?;
    if !removed.left.is_empty() || !removed.failed.is_empty() {
        bail!(
            "{} holds entries regionfilter could not remove ({}); remove them, then attach again",
            pin_dir.display(),
            [removed.left, removed.failed].concat().join(", ")
        );
    }
    Ok(Some(stale_note(iface, found, pin_dir)))
}

/// The known-good copy and the status record of a filter now attached. Their failures are
/// warnings: the filter is live whatever they say.
fn keep_records(
    layout: &Layout,
    request: &AttachRequest<'_>,
    prepared: Prepared,
    ifindex: u32,
    layer: LinkLayer,
) -> (AttachState, Vec<String>) {
    let iface = request.iface;
    let staged = prepared.staged;
    let mut warnings = Vec::new();
    let known_good = KnownGood::new(&layout.lib_dir, iface);
    if let Err(e) = known_good.start(&staged.artifact) {
        warnings.push(format!(
            "attached, but cannot keep the known-good copy for rollback and policy-only updates: {e:#}"
        ));
    }
    let state = AttachState {
        iface: iface.clone(),
        ifindex,
        netns: netdev::netns_id(),
        mode: request.mode.name().to_owned(),
        link_layer: layer,
        lookup: request.lookup,
        content_hash: staged.content_hash().to_owned(),
        policy: staged.policy.clone(),
        sources: prepared.sources,
        artifact: prepared.artifact,
        prefixes_v4: staged.data_prefixes().0,
        prefixes_v6: staged.data_prefixes().1,
        attached_at: unix_now(),
        updated_at: None,
    };
    let state_file = layout.state_file(iface);
    if let Err(e) = state.save(&state_file) {
        warnings.push(format!(
            "attached, but cannot write the status record {}: {e:#}; `status` shows what the kernel holds",
            state_file.display()
        ));
    }
    (state, warnings)
}

impl Attached {
    /// `attached to eth0 (native mode, fast lookup): deny CN; 10 IPv4 and 2 IPv6 prefixes from ...`
    #[must_use]
    pub fn summary(&self) -> String {
        let state = &self.state;
        let from: Vec<String> = state
            .sources
            .iter()
            .map(|s| s.path.display().to_string())
            .collect();
        format!(
            "attached to {} ({} mode, {} lookup{}): {}; {} IPv4 and {} IPv6 prefixes from {}",
            state.iface,
            state.mode,
            state.lookup.name(),
            match state.link_layer {
                LinkLayer::Ethernet => "",
                LinkLayer::RawIp => ", raw-IP link",
            },
            state.policy.full_summary(),
            state.prefixes_v4,
            state.prefixes_v6,
            from.join(", ")
        )
    }
}

fn refuse_if_attached(layout: &Layout, iface: &IfaceName, pin_dir: &Path) -> Result<()> {
    if let PinState::Attached { ifindex } = pins::inspect(pin_dir)? {
        if let Some(moved) = placement::recorded(layout, iface, ifindex).describe(iface) {
            bail!(
                "{moved}; its pins in {} still hold it: `regionfilter detach --iface {iface}` first",
                pin_dir.display()
            );
        }
        bail!(
            "regionfilter is already attached to {iface} (pins in {dir}); use `regionfilter update --iface {iface}` to change data or policy, or `regionfilter detach --iface {iface}` first",
            dir = pin_dir.display()
        );
    }
    Ok(())
}

/// One line for stale pins the attach removed first.
fn stale_note(iface: &IfaceName, state: PinState, pin_dir: &Path) -> String {
    match state {
        PinState::Gone => format!(
            "removed the pins in {} of a filter whose interface {iface} is gone (deleted or re-created)",
            pin_dir.display()
        ),
        _ => format!(
            "removed the pins in {} left by an attach to {iface} that did not finish",
            pin_dir.display()
        ),
    }
}

fn explain_attach_error(err: ProgramError, iface: &IfaceName, mode: AttachMode) -> anyhow::Error {
    use rustix::io::Errno;
    let errno = match &err {
        ProgramError::SyscallError(e) => e.io_error.raw_os_error().map(Errno::from_raw_os_error),
        _ => None,
    };
    let hint = match errno {
        Some(Errno::OPNOTSUPP | Errno::INVAL) if mode == AttachMode::Native => format!(
            "the driver of {iface} does not support native XDP: attach with --mode skb"
        ),
        Some(Errno::BUSY | Errno::EXIST) => format!(
            "{iface} already has an XDP program attached by another tool (see `ip link show {iface}`)"
        ),
        Some(Errno::RANGE) => format!("the MTU of {iface} is too large for XDP in this mode"),
        _ => format!("cannot attach to {iface} in {} mode", mode.name()),
    };
    anyhow::Error::new(err).context(hint)
}

/// Owns a new pin directory until the attach succeeds; removes its pins (only those) and the
/// directory otherwise.
struct PinDirGuard {
    dir: PathBuf,
    armed: bool,
}

impl PinDirGuard {
    /// Creates `dir` itself, so it is ours alone; the root may already exist.
    fn create(root: &Path, dir: &Path) -> Result<Self> {
        fs::create_dir_all(root)
            .with_context(|| format!("cannot create pin root {}", root.display()))?;
        fs::create_dir(dir)
            .with_context(|| format!("cannot create pin directory {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_owned(),
            armed: true,
        })
    }

    fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for PinDirGuard {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = pins::remove_owned(&self.dir) {
                log::warn!("cannot remove the pins of this failed attach: {e:#}");
            }
        }
    }
}
