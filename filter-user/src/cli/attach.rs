//! `regionfilter attach`: fill the maps, attach the program, pin everything.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use super::inputs::{warn_uncovered, DataArgs, PolicyArgs};
use crate::{
    kernel::maps::{FilterMaps, Lookup},
    kernel::netdev::{self, LinkLayer},
    kernel::pins::{self, PinState, LINK_PIN, PROGRAM_PIN},
    kernel::placement,
    kernel::program,
    kernel::selftest,
    kernel::swap::{self, Staged},
    model::iface::IfaceName,
    ops::known_good::KnownGood,
    ops::lock::IfaceLock,
    ops::lockout::{self, LockOut},
    ops::privileges,
    ops::state::{unix_now, AttachState, Layout},
};
use anyhow::{bail, Context as _, Result};
use aya::programs::{links::FdLink, ProgramError, XdpMode};

#[derive(Debug, clap::Args)]
#[command(group = super::inputs::data_required())]
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
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = super::inputs::wait_duration)]
    pub wait: Duration,
    /// Attach even if the policy would drop the client of your SSH session or the peer of an
    /// established TCP connection to this interface (the lock-out guard).
    #[arg(long)]
    pub force: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    Native,
    Skb,
}

impl AttachMode {
    fn xdp(self) -> XdpMode {
        match self {
            Self::Native => XdpMode::Driver,
            Self::Skb => XdpMode::Skb,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Skb => "skb",
        }
    }
}

pub fn run(layout: &Layout, args: &AttachArgs) -> Result<()> {
    privileges::require_bpf_admin("attach")?;
    let iface = &args.iface;
    let policy = args.policy.to_policy()?;
    let ifindex = netdev::index(iface)?;
    let layer = netdev::link_layer(iface)?;
    pins::require_bpffs(&layout.pin_root)?;
    let pin_dir = layout.pin_dir(iface);
    refuse_if_attached(layout, iface, &pin_dir)?;
    // Everything that can be refused is checked before anything is touched.
    let loaded = args.data.load()?;
    let Some(policy) = loaded.policy_or_artifacts(policy) else {
        match loaded.artifact {
            Some(_) => {
                bail!("the artifact carries no policy: give --allow or --deny (or --policy FILE)")
            }
            None => bail!("give --allow or --deny (or --policy FILE)"),
        }
    };
    warn_uncovered(&policy, &loaded.regions);
    crate::model::scope::warn_ephemeral(&policy.scope);
    let sources = loaded.regions.sources.clone();
    let artifact_path = loaded.artifact.map(|(path, _)| path);
    let staged = Staged::new(loaded.regions, policy, args.lookup)?;
    let samples = selftest::samples(staged.regions(), &staged.policy);
    let cut_off = lockout::check(iface, &staged.policy, staged.regions(), None);
    if !cut_off.is_empty() && !args.force {
        return Err(LockOut {
            iface: iface.clone(),
            peers: cut_off,
        }
        .into());
    }

    // One command per interface from here on: a concurrent attach, detach or update waits.
    let _lock = IfaceLock::acquire(&layout.lock_file(iface), args.wait)?;
    refuse_if_attached(layout, iface, &pin_dir)?;
    let found = pins::inspect(&pin_dir)?;
    if found == PinState::Foreign {
        bail!(
            "{} exists and holds entries regionfilter did not create; it was left alone: \
             remove or move it, then attach again",
            pin_dir.display()
        );
    }
    if found.is_stale() {
        let removed = pins::remove_owned(&pin_dir)?;
        if !removed.left.is_empty() || !removed.failed.is_empty() {
            bail!(
                "{} holds entries regionfilter could not remove ({}); remove them, then attach again",
                pin_dir.display(),
                [removed.left, removed.failed].concat().join(", ")
            );
        }
        eprintln!("{}", stale_note(iface, found, &pin_dir));
    }
    // Remove whatever this attach pinned if any later step fails.
    let guard = PinDirGuard::create(&layout.pin_root, &pin_dir)?;
    let mut ebpf = program::load_object(args.lookup, layer)?;
    let mut maps = FilterMaps::take(&mut ebpf, Some(&pin_dir))?;
    // The maps are complete and self-tested before the program sees its first packet.
    swap::install(&mut maps, &staged, args.lookup, |half| {
        selftest::check_pinned(&pin_dir, half, &samples)
    })?;
    let xdp = program::load_xdp(&mut ebpf)?;
    xdp.pin(pin_dir.join(PROGRAM_PIN))
        .context("cannot pin the XDP program")?;
    let link_id = xdp
        .attach_to_if_index(ifindex, args.mode.xdp())
        .map_err(|e| explain_attach_error(e, iface, args.mode))?;
    let link: FdLink = xdp
        .take_link(link_id)?
        .try_into()
        .context("the kernel attached through netlink, not a BPF link; regionfilter needs Linux 5.9 or later")?;
    // The link is pinned last: a directory without it is an attach that did not finish.
    link.pin(pin_dir.join(LINK_PIN))
        .context("cannot pin the XDP link")?;
    guard.keep();

    // Attached and pinned: from here on nothing may turn this into a failure.
    let known_good = KnownGood::new(&layout.lib_dir, iface);
    if let Err(e) = known_good.start(&staged.artifact) {
        eprintln!(
            "warning: attached, but cannot keep the known-good copy for rollback and policy-only updates: {e:#}"
        );
    }
    let state = AttachState {
        iface: iface.clone(),
        ifindex,
        netns: netdev::netns_id(),
        mode: args.mode.name().to_owned(),
        link_layer: layer,
        lookup: args.lookup,
        content_hash: staged.content_hash().to_owned(),
        policy: staged.policy.clone(),
        sources,
        artifact: artifact_path,
        prefixes_v4: staged.data_prefixes().0,
        prefixes_v6: staged.data_prefixes().1,
        attached_at: unix_now(),
        updated_at: None,
    };
    let state_file = layout.state_file(iface);
    if let Err(e) = state.save(&state_file) {
        eprintln!(
            "warning: attached, but cannot write the status record {}: {e:#}; `status` shows what the kernel holds",
            state_file.display()
        );
    }
    let from: Vec<String> = state
        .sources
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    println!(
        "attached to {} ({} mode, {} lookup{}): {}; {} IPv4 and {} IPv6 prefixes from {}",
        iface,
        state.mode,
        state.lookup.name(),
        match layer {
            LinkLayer::Ethernet => "",
            LinkLayer::RawIp => ", raw-IP link",
        },
        state.policy.full_summary(),
        state.prefixes_v4,
        state.prefixes_v6,
        from.join(", ")
    );
    Ok(())
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

/// One line for stale pins that `attach` or `detach` removed.
fn stale_note(iface: &IfaceName, state: PinState, pin_dir: &Path) -> String {
    match state {
        PinState::Gone => format!(
            "note: removed the pins in {} of a filter whose interface {iface} is gone (deleted or re-created)",
            pin_dir.display()
        ),
        _ => format!(
            "note: removed the pins in {} left by an attach to {iface} that did not finish",
            pin_dir.display()
        ),
    }
}

fn explain_attach_error(err: ProgramError, iface: &IfaceName, mode: AttachMode) -> anyhow::Error {
    let errno = match &err {
        ProgramError::SyscallError(e) => e.io_error.raw_os_error(),
        _ => None,
    };
    let hint = match errno {
        Some(libc::EOPNOTSUPP | libc::EINVAL) if mode == AttachMode::Native => format!(
            "the driver of {iface} does not support native XDP: attach with --mode skb"
        ),
        Some(libc::EBUSY | libc::EEXIST) => format!(
            "{iface} already has an XDP program attached by another tool (see `ip link show {iface}`)"
        ),
        Some(libc::ERANGE) => format!("the MTU of {iface} is too large for XDP in this mode"),
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
                eprintln!("warning: cannot remove the pins of this failed attach: {e:#}");
            }
        }
    }
}
