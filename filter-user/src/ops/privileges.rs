//! Fails early, in one line, when the process cannot load XDP programs, or has too little
//! address space to build the tables (an allocation that fails aborts the process: the agent
//! would die mid-attach instead of logging a failure).

use anyhow::{bail, Result};

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability mask of this process, from /proc/self/status.
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// The capabilities `verb` needs that the mask `caps` lacks, by name. Attaching needs
/// CAP_BPF and CAP_NET_ADMIN; loading a program also CAP_PERFMON, without which the verifier
/// refuses its pointer arithmetic (CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON).
fn missing(caps: u64, loads_programs: bool) -> Vec<&'static str> {
    let has = |cap: u32| caps & (1 << cap) != 0;
    let admin = has(CAP_SYS_ADMIN);
    let mut lacks = Vec::new();
    if !(has(CAP_BPF) || admin) {
        lacks.push("CAP_BPF");
    }
    if !has(CAP_NET_ADMIN) {
        lacks.push("CAP_NET_ADMIN");
    }
    if loads_programs && !(has(CAP_PERFMON) || admin) {
        lacks.push("CAP_PERFMON");
    }
    lacks
}

/// Refuses, in one line naming what is missing, when this process lacks a capability `verb`
/// needs; `loads_programs` for the verbs that load the XDP program (all but `detach`).
pub fn require_bpf_admin(verb: &str, loads_programs: bool) -> Result<()> {
    let Some(caps) = effective_caps() else {
        return Ok(()); // Cannot tell: let the kernel decide.
    };
    let lacks = missing(caps, loads_programs);
    if !lacks.is_empty() {
        let needs = if loads_programs {
            "CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"
        } else {
            "CAP_BPF and CAP_NET_ADMIN"
        };
        bail!(
            "regionfilter {verb} needs {needs} and lacks {}: run it as root (sudo), or grant them to its unit or container",
            lacks.join(", ")
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_exactly_the_missing_capabilities() {
        let mask = |caps: &[u32]| caps.iter().fold(0u64, |m, c| m | 1 << c);
        assert_eq!(
            missing(0, true),
            ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"]
        );
        assert_eq!(missing(0, false), ["CAP_BPF", "CAP_NET_ADMIN"]);
        let unit = mask(&[CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON]);
        assert!(missing(unit, true).is_empty());
        assert_eq!(
            missing(mask(&[CAP_BPF, CAP_NET_ADMIN]), true),
            ["CAP_PERFMON"]
        );
        assert!(missing(mask(&[CAP_BPF, CAP_NET_ADMIN]), false).is_empty());
        assert!(missing(mask(&[CAP_SYS_ADMIN, CAP_NET_ADMIN]), true).is_empty());
    }
}
