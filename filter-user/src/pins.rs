//! An interface's pin directory: what state it is in, and removing exactly the pins
//! regionfilter itself created there, nothing else.
//!
//! `attach` pins the maps first, the program next and the link last, so a directory without
//! the link pin is an attach that never finished (killed, or failed without cleaning up).

use std::{
    fs, io,
    os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
};

use anyhow::{bail, Context as _, Result};
use aya::programs::links::PinnedLink;
use filter_common::{maps, BENCH_MAPS};

/// Name of the pinned XDP link inside an interface's pin directory.
pub const LINK_PIN: &str = "link";
/// Name of the pinned XDP program (tests and tools can BPF_PROG_TEST_RUN the live program).
pub const PROGRAM_PIN: &str = "program";

/// Every name regionfilter pins in an interface's directory.
pub fn owned_names() -> impl Iterator<Item = &'static str> {
    maps::all()
        .filter(|name| !BENCH_MAPS.contains(name) && *name != maps::BENCH_CURSOR)
        .chain([PROGRAM_PIN, LINK_PIN])
}

/// What an interface's pin directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinState {
    /// No directory: not attached.
    Absent,
    /// Maps (and maybe the program) but no link, or nothing yet: an attach that did not finish.
    Incomplete,
    /// A directory holding entries, none of them regionfilter's: not ours, left alone.
    Foreign,
    /// The link is pinned and holds the program on the interface with this index.
    Attached { ifindex: u32 },
    /// The link is pinned but its interface is gone (deleted, or deleted and re-created under
    /// the same name): it filters nothing.
    Gone,
}

impl PinState {
    /// Left behind and filtering nothing: the next `attach` or `detach` removes it.
    #[must_use]
    pub fn is_stale(self) -> bool {
        matches!(self, Self::Incomplete | Self::Gone)
    }
}

/// Reads the state of the pin directory `dir`.
pub fn inspect(dir: &Path) -> Result<PinState> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(PinState::Absent),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        Ok(meta) if !meta.is_dir() => {
            bail!("{} is not a directory", dir.display())
        }
        Ok(_) => {}
    }
    let link = dir.join(LINK_PIN);
    if !link.exists() {
        let mut entries =
            fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
        let names: Vec<String> = entries
            .by_ref()
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        let ours = names.iter().any(|n| owned_names().any(|o| o == n));
        return Ok(if names.is_empty() || ours {
            PinState::Incomplete
        } else {
            PinState::Foreign
        });
    }
    Ok(match link_ifindex(&link)? {
        0 => PinState::Gone,
        ifindex => PinState::Attached { ifindex },
    })
}

/// What [`remove_owned`] did.
#[derive(Debug, Default)]
pub struct Removed {
    /// The pinned link was released, taking the program off its interface.
    pub detached: bool,
    /// Pins removed.
    pub removed: usize,
    /// Entries that are not regionfilter's, left where they were.
    pub left: Vec<String>,
    /// Removals that failed after the link was released (the program is off the interface
    /// whatever these say).
    pub failed: Vec<String>,
}

/// Removes the pins regionfilter creates, by name, from `dir`, after checking that `dir` is a
/// real directory on a BPF filesystem that holds regionfilter's pins; then the directory
/// itself if nothing else is in it. Anything else there is left alone and reported.
pub fn remove_owned(dir: &Path) -> Result<Removed> {
    let meta =
        fs::symlink_metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if !meta.is_dir() {
        bail!(
            "{} is not a directory; regionfilter left it alone",
            dir.display()
        );
    }
    require_bpffs(dir)?;
    let entries: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    let is_owned = |name: &str| owned_names().any(|n| n == name);
    if !entries.is_empty() && !entries.iter().any(|e| is_owned(e)) {
        bail!(
            "{} holds no regionfilter pins ({}); regionfilter left it alone",
            dir.display(),
            entries.join(", ")
        );
    }
    let mut removed = Removed::default();
    let link = dir.join(LINK_PIN);
    if entries.iter().any(|e| e == LINK_PIN) {
        // Unpin, then close the last reference ourselves: the program is off the interface when
        // this returns, not later from a kernel work queue.
        let pinned = PinnedLink::from_pin(&link)
            .with_context(|| format!("cannot open pinned link {}", link.display()))?;
        drop(
            pinned
                .unpin()
                .with_context(|| format!("cannot unpin {}", link.display()))?,
        );
        removed.detached = true;
        removed.removed += 1;
    }
    for name in entries.iter().filter(|e| *e != LINK_PIN) {
        if is_owned(name) {
            match fs::remove_file(dir.join(name)) {
                Ok(()) => removed.removed += 1,
                Err(e) => removed.failed.push(format!("{name}: {e}")),
            }
        } else {
            removed.left.push(name.clone());
        }
    }
    if removed.left.is_empty() && removed.failed.is_empty() {
        if let Err(e) = fs::remove_dir(dir) {
            removed.failed.push(format!("{}: {e}", dir.display()));
        }
    }
    Ok(removed)
}

/// bpffs magic number (`BPF_FS_MAGIC` in linux/magic.h).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Pins only survive on a bpffs, and only a bpffs holds regionfilter's pins: refuse anything
/// else. A path that does not exist yet is judged by its nearest existing parent.
pub fn require_bpffs(path: &Path) -> Result<()> {
    let mut dir = path;
    while !dir.exists() {
        dir = dir.parent().unwrap_or(Path::new("/"));
    }
    let fs = rustix::fs::statfs(dir).with_context(|| format!("cannot stat {}", dir.display()))?;
    #[allow(clippy::unnecessary_cast, clippy::cast_lossless)] // f_type's type differs by target.
    if fs.f_type as i64 != BPF_FS_MAGIC {
        bail!(
            "{} is not on a BPF filesystem: mount one with `mount -t bpf bpf /sys/fs/bpf`",
            path.display()
        );
    }
    Ok(())
}

/// The interface index an XDP link is attached to; 0 once its device is gone. aya's
/// `LinkInfo` does not expose it, so this asks the kernel directly (`BPF_OBJ_GET`, then
/// `BPF_OBJ_GET_INFO_BY_FD`).
pub fn link_ifindex(pin: &Path) -> Result<u32> {
    let fd = obj_get(pin).with_context(|| format!("cannot open pinned link {}", pin.display()))?;
    // struct bpf_link_info { __u32 type; __u32 id; __u32 prog_id; union { ... } }: the union
    // holds 64-bit members, so it (and xdp.ifindex) starts at byte 16.
    let mut info = [0u32; 16];
    let mut attr = BpfAttr::default();
    attr.words[0] = fd.as_fd().as_raw_fd() as u32;
    attr.words[1] = std::mem::size_of_val(&info) as u32;
    let info_ptr = info.as_mut_ptr() as u64;
    attr.words[2] = info_ptr as u32;
    attr.words[3] = (info_ptr >> 32) as u32;
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)
        .with_context(|| format!("cannot read the link pinned at {}", pin.display()))?;
    const BPF_LINK_TYPE_XDP: u32 = 6;
    if info[0] != BPF_LINK_TYPE_XDP {
        bail!("{} is not an XDP link", pin.display());
    }
    Ok(info[4])
}

const BPF_OBJ_GET: u32 = 7;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;

/// `union bpf_attr`, as much of it as the two commands above use (the kernel wants the rest
/// zeroed).
#[repr(C, align(8))]
#[derive(Default)]
struct BpfAttr {
    words: [u32; 16],
}

fn bpf(cmd: u32, attr: &mut BpfAttr) -> io::Result<libc::c_long> {
    // SAFETY: attr is a valid, zero-padded bpf_attr of the size passed; the pointers inside it
    // (path, info buffer) outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            std::mem::size_of::<BpfAttr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn obj_get(pin: &Path) -> io::Result<OwnedFd> {
    let path = std::ffi::CString::new(pin.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = BpfAttr::default();
    let ptr = path.as_ptr() as u64;
    attr.words[0] = ptr as u32;
    attr.words[1] = (ptr >> 32) as u32;
    let fd = bpf(BPF_OBJ_GET, &mut attr)?;
    // SAFETY: BPF_OBJ_GET returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
