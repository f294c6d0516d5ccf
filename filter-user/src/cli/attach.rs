//! `regionfilter attach`: fill the maps, attach the program, pin everything.

use std::{
    ffi::CString,
    fs,
    path::{Path, PathBuf},
};

use super::inputs::{warn_uncovered, DataArgs, PolicyArgs};
use crate::{
    known_good::KnownGood,
    maps::{FilterMaps, Lookup},
    privileges, program, selftest,
    state::{unix_now, AttachState, Layout, LINK_PIN, PROGRAM_PIN},
    swap::{self, Staged},
};
use anyhow::{bail, Context as _, Result};
use aya::programs::{links::FdLink, ProgramError, XdpMode};

#[derive(Debug, clap::Args)]
#[command(group = super::inputs::data_required())]
pub struct AttachArgs {
    /// Interface whose incoming traffic is filtered.
    #[arg(long, value_name = "IF")]
    pub iface: String,
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
    let policy = args.policy.to_policy()?;
    let ifindex = interface_index(&args.iface)?;
    let pin_dir = layout.pin_dir(&args.iface);
    if pin_dir.exists() {
        bail!(
            "regionfilter is already attached to {iface} (pins in {dir}); use `regionfilter update --iface {iface}` to change data or policy, or `regionfilter detach --iface {iface}` first",
            iface = args.iface,
            dir = pin_dir.display()
        );
    }
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
    let sources = loaded.regions.sources.clone();
    let artifact_path = loaded.artifact.map(|(path, _)| path);
    let staged = Staged::new(loaded.regions, policy, args.lookup)?;
    let samples = selftest::samples(staged.regions(), &staged.policy);
    require_bpffs(&layout.pin_root)?;

    // Remove whatever this attach pinned if any later step fails.
    let guard = PinDirGuard::create(&pin_dir)?;
    let mut ebpf = program::load_object(args.lookup)?;
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
        .map_err(|e| explain_attach_error(e, &args.iface, args.mode))?;
    let link: FdLink = xdp
        .take_link(link_id)?
        .try_into()
        .context("the kernel attached through netlink, not a BPF link; regionfilter needs Linux 5.9 or later")?;
    link.pin(pin_dir.join(LINK_PIN))
        .context("cannot pin the XDP link")?;
    guard.keep();

    let known_good = KnownGood::new(&layout.lib_dir, &args.iface);
    if let Err(e) = known_good
        .stage(&staged.artifact)
        .and_then(|()| known_good.commit())
    {
        log::warn!("attached, but cannot keep the known-good copy for rollback: {e:#}");
    }
    let state = AttachState {
        iface: args.iface.clone(),
        ifindex,
        mode: args.mode.name().to_owned(),
        lookup: args.lookup,
        content_hash: staged.content_hash().to_owned(),
        policy: staged.policy.clone(),
        sources,
        artifact: artifact_path,
        prefixes_v4: staged.prefixes.v4.len(),
        prefixes_v6: staged.prefixes.v6.len(),
        attached_at: unix_now(),
        updated_at: None,
    };
    state.save(&layout.state_file(&args.iface))?;
    let from: Vec<String> = state
        .sources
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    println!(
        "attached to {} ({} mode, {} lookup): {}; {} IPv4 and {} IPv6 prefixes from {}",
        args.iface,
        state.mode,
        state.lookup.name(),
        state.policy.summary(),
        state.prefixes_v4,
        state.prefixes_v6,
        from.join(", ")
    );
    Ok(())
}

pub(crate) fn interface_index(iface: &str) -> Result<u32> {
    let name = CString::new(iface).with_context(|| format!("bad interface name {iface:?}"))?;
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        bail!("no interface named {iface} in this network namespace (see `ip link`)");
    }
    Ok(index)
}

fn explain_attach_error(err: ProgramError, iface: &str, mode: AttachMode) -> anyhow::Error {
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

/// bpffs magic number (`BPF_FS_MAGIC` in linux/magic.h).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Pins only survive on a bpffs; refuse early with the mount command otherwise.
fn require_bpffs(pin_root: &Path) -> Result<()> {
    let mut dir = pin_root;
    while !dir.exists() {
        dir = dir.parent().unwrap_or(Path::new("/"));
    }
    let path = CString::new(dir.as_os_str().as_encoded_bytes())?;
    // SAFETY: statfs fills the zeroed struct it is given.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated and fs is a valid out pointer.
    if unsafe { libc::statfs(path.as_ptr(), &mut fs) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot stat {}", dir.display()));
    }
    #[allow(clippy::unnecessary_cast)] // f_type's integer type differs between libc targets.
    if fs.f_type as i64 != BPF_FS_MAGIC {
        bail!(
            "{} is not on a BPF filesystem: mount one with `mount -t bpf bpf /sys/fs/bpf`",
            pin_root.display()
        );
    }
    Ok(())
}

/// Owns a new pin directory until the attach succeeds; removes it and its pins otherwise.
struct PinDirGuard {
    dir: PathBuf,
    armed: bool,
}

impl PinDirGuard {
    fn create(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir)
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
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
