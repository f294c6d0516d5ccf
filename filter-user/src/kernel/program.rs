//! Loading the embedded XDP object into the kernel.

use std::path::Path;

use anyhow::{Context as _, Result};
use aya::{programs::Xdp, Btf, Ebpf, EbpfLoader};
use filter_common::{maps, BENCH_MAPS, PROGRAM_NAME, RAW_IP, SELFTEST_HALF, SELFTEST_PROGRAM};

use crate::{model::iface::LinkLayer, model::lookup::Lookup};

/// The compiled XDP object, embedded at build time by `build.rs`.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/regionfilter"));

/// A loader that sizes the maps for `lookup`: the benchmark maps, and the fast tables under
/// `Lookup::Lpm`, shrink to one entry so they cost no memory.
#[must_use]
pub fn loader(lookup: Lookup) -> EbpfLoader<'static> {
    raise_memlock();
    let mut loader = EbpfLoader::new();
    loader.btf(KERNEL_BTF.as_ref());
    for name in BENCH_MAPS {
        loader.map_max_entries(name, 1);
    }
    if lookup == Lookup::Lpm {
        for half in &maps::HALF {
            for name in half.tables() {
                loader.map_max_entries(name, 1);
            }
        }
    }
    loader
}

/// The kernel's BTF, parsed once per process: every object load needs it, and parsing it is
/// most of the cost of loading the self-test program.
static KERNEL_BTF: std::sync::LazyLock<Option<Btf>> =
    std::sync::LazyLock::new(|| Btf::from_sys_fs().ok());

/// Creates the object's maps in the kernel (the program itself is loaded by [`load_xdp`]),
/// for an interface whose frames start as `layer` says. The setting is a read-only global, so
/// the verifier drops the parser the link does not use.
pub fn load_object(lookup: Lookup, layer: LinkLayer) -> Result<Ebpf> {
    let raw_ip = layer.raw_ip_flag();
    loader(lookup)
        .override_global(RAW_IP, &raw_ip, true)
        .load(EBPF_OBJECT)
        .map_err(|e| {
            let hint = if permission_denied(&e) {
                // The capabilities were checked before: what refuses is a seccomp profile
                // or an LSM, which is what a container runtime's default profile does.
                " (bpf(2) refused although the capabilities are present: in a container, \
                 its seccomp profile must allow bpf(2); see docs/container.md)"
            } else {
                ""
            };
            anyhow::Error::new(e).context(format!("cannot create the filter's BPF maps{hint}"))
        })
}

/// Whether an `EPERM` from the kernel is somewhere in `err`'s chain.
fn permission_denied(err: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(err), |e| e.source()).any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::EPERM))
    })
}

/// Verifies and loads the XDP program of `ebpf`.
pub fn load_xdp(ebpf: &mut Ebpf) -> Result<&mut Xdp> {
    load_named(ebpf, PROGRAM_NAME)
}

/// Verifies and loads one program of the object by name.
pub fn load_named<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let program: &mut Xdp = ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} missing from the embedded object"))?
        .try_into()
        .with_context(|| format!("embedded program {name} is not an XDP program"))?;
    program
        .load()
        .with_context(|| format!("the kernel refused the XDP program {name}"))?;
    Ok(program)
}

/// A second instance of the object whose maps are the ones pinned under `pin_dir`, with only
/// the self-test program loaded, judging by `half`.
pub fn load_selftest(pin_dir: &Path, half: usize) -> Result<Ebpf> {
    let half = u32::try_from(half).expect("0 or 1");
    let paths: Vec<(&str, std::path::PathBuf)> = maps::all()
        .filter(|name| !BENCH_MAPS.contains(name) && *name != maps::BENCH_CURSOR)
        .map(|name| (name, pin_dir.join(name)))
        .collect();
    for (_, path) in &paths {
        // A missing pin would make the loader create (and pin) a fresh, empty map.
        if !path.exists() {
            anyhow::bail!(
                "pinned map {} is missing: detach and attach again",
                path.display()
            );
        }
    }
    let mut loader = loader(Lookup::Fast);
    for (name, path) in &paths {
        loader.map_pin_path(name, path.as_path());
    }
    loader.override_global(SELFTEST_HALF, &half, true);
    let mut ebpf = loader
        .load(EBPF_OBJECT)
        .context("cannot open the pinned maps for the self-test")?;
    load_named(&mut ebpf, SELFTEST_PROGRAM)?;
    Ok(ebpf)
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; newer ones account them to the memory
/// cgroup and ignore it, so failing to raise it (no CAP_SYS_RESOURCE) is harmless.
fn raise_memlock() {
    let unlimited = rustix::process::Rlimit {
        current: None,
        maximum: None,
    };
    if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::Memlock, unlimited) {
        log::debug!("could not raise RLIMIT_MEMLOCK: {e}");
    }
}
