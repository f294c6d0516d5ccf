//! Loading the embedded XDP object into the kernel.

use anyhow::{Context as _, Result};
use aya::{programs::Xdp, Ebpf};
use filter_common::PROGRAM_NAME;

/// The compiled XDP object, embedded at build time by `build.rs`.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/regionfilter"));

/// Creates the object's maps in the kernel (the program itself is loaded by [`load_xdp`]).
pub fn load_object() -> Result<Ebpf> {
    raise_memlock();
    Ebpf::load(EBPF_OBJECT).context("cannot create the filter's BPF maps")
}

/// Verifies and loads the XDP program of `ebpf`.
pub fn load_xdp(ebpf: &mut Ebpf) -> Result<&mut Xdp> {
    let program: &mut Xdp = ebpf
        .program_mut(PROGRAM_NAME)
        .context("XDP program missing from the embedded object")?
        .try_into()
        .context("embedded program is not an XDP program")?;
    program
        .load()
        .context("the kernel refused the XDP program")?;
    Ok(program)
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; newer ones account them to the memory
/// cgroup and ignore it, so failing to raise it (no CAP_SYS_RESOURCE) is harmless.
fn raise_memlock() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit only reads the struct passed by reference.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    if ret != 0 {
        log::debug!(
            "could not raise RLIMIT_MEMLOCK: {}",
            std::io::Error::last_os_error()
        );
    }
}
