//! Fails early, in one line, when the process cannot load XDP programs, or has too little
//! address space to build the tables (an allocation that fails aborts the process: the agent
//! would die mid-attach instead of logging a failure).

use anyhow::{bail, Result};

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Effective capability mask of this process, from /proc/self/status.
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Loading and attaching needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN.
pub fn require_bpf_admin(verb: &str) -> Result<()> {
    let Some(caps) = effective_caps() else {
        return Ok(()); // Cannot tell: let the kernel decide.
    };
    let has = |cap: u32| caps & (1 << cap) != 0;
    if !(has(CAP_BPF) || has(CAP_SYS_ADMIN)) || !has(CAP_NET_ADMIN) {
        bail!("regionfilter {verb} needs root (CAP_BPF and CAP_NET_ADMIN): run it with sudo");
    }
    Ok(())
}

/// The address space `attach` and `update` ask for: a full-world database needed about
/// 200 MiB here (measured with `prlimit --as`); the rest is headroom for the agent's threads.
pub const MIN_ADDRESS_SPACE: u64 = 512 << 20;

/// Refuses, before anything is read or allocated, when `RLIMIT_AS` is below
/// [`MIN_ADDRESS_SPACE`].
pub fn require_address_space(verb: &str) -> Result<()> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::As);
    match limit.current {
        Some(soft) if soft < MIN_ADDRESS_SPACE => bail!(
            "regionfilter {verb} needs an address-space limit of at least {} MiB to build the \
             filter's tables, and this process has {} MiB (RLIMIT_AS: `ulimit -v`, systemd's \
             LimitAS=): raise it; nothing was changed",
            MIN_ADDRESS_SPACE >> 20,
            soft >> 20
        ),
        _ => Ok(()),
    }
}
