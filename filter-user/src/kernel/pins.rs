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
use aya::{
    maps::MapInfo,
    programs::{links::PinnedLink, ProgramInfo},
};
use filter_common::{maps, BENCH_MAPS, PROGRAM_NAME};

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

/// Whether `dir` holds a filter attached to a live interface (an unreadable directory counts
/// as not).
#[must_use]
pub fn attached(dir: &Path) -> bool {
    matches!(inspect(dir), Ok(PinState::Attached { .. }))
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
    if link.exists() {
        let Some(link) = our_link(&link)? else {
            return Ok(PinState::Foreign);
        };
        return Ok(match link.ifindex {
            0 => PinState::Gone,
            ifindex => PinState::Attached { ifindex },
        });
    }
    let names: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    let ours = names.iter().any(|n| is_ours(&dir.join(n), n));
    Ok(if names.is_empty() || ours {
        PinState::Incomplete
    } else {
        PinState::Foreign
    })
}

/// Whether the pin at `path`, named `name`, is one regionfilter created: the name is one of
/// its pin names and the kernel object behind it is what regionfilter pins under that name
/// (a map of that name, the `regionfilter` XDP program, or an XDP link running it). A name
/// alone proves nothing: another tool may use `COUNTERS` or `link` too.
#[must_use]
pub fn is_ours(path: &Path, name: &str) -> bool {
    if !owned_names().any(|n| n == name) {
        return false;
    }
    match name {
        LINK_PIN => matches!(our_link(path), Ok(Some(_))),
        PROGRAM_PIN => {
            ProgramInfo::from_pin(path).is_ok_and(|p| p.name_as_str() == Some(PROGRAM_NAME))
        }
        map => MapInfo::from_pin(path).is_ok_and(|m| m.name() == kernel_name(map)),
    }
}

/// The name the kernel keeps for an object named `name` (`BPF_OBJ_NAME_LEN` is 16 with the NUL).
fn kernel_name(name: &str) -> &[u8] {
    &name.as_bytes()[..name.len().min(15)]
}

/// An XDP link pinned at `path`, as the kernel describes it.
pub struct LinkPin {
    /// The interface it holds the program on; 0 once that interface is gone.
    pub ifindex: u32,
}

/// The link pinned at `path` if it is an XDP link running regionfilter's program; `None` for
/// any other object. The program is the one pinned beside the link: reading its info needs no
/// more than CAP_BPF, where walking every loaded program would need CAP_SYS_ADMIN.
fn our_link(path: &Path) -> Result<Option<LinkPin>> {
    let Some((prog_id, ifindex)) = xdp_link(path)? else {
        return Ok(None);
    };
    let is_ours = |p: &ProgramInfo| p.id() == prog_id && p.name_as_str() == Some(PROGRAM_NAME);
    let beside = path.with_file_name(PROGRAM_PIN);
    let ours = match ProgramInfo::from_pin(&beside) {
        Ok(program) => is_ours(&program),
        // No program pin (a directory another tool made): ask the kernel for every program.
        Err(_) => aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .any(|p| is_ours(&p)),
    };
    Ok(ours.then_some(LinkPin { ifindex }))
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
    // Asked of the kernel once per entry.
    let (ours, left): (Vec<String>, Vec<String>) = entries
        .into_iter()
        .partition(|name| is_ours(&dir.join(name), name));
    if ours.is_empty() && !left.is_empty() {
        bail!(
            "{} holds no regionfilter pins ({}); regionfilter left it alone",
            dir.display(),
            left.join(", ")
        );
    }
    let mut removed = Removed {
        left,
        ..Removed::default()
    };
    let link = dir.join(LINK_PIN);
    if ours.iter().any(|e| e == LINK_PIN) {
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
    for name in ours.iter().filter(|e| *e != LINK_PIN) {
        match fs::remove_file(dir.join(name)) {
            Ok(()) => removed.removed += 1,
            Err(e) => removed.failed.push(format!("{name}: {e}")),
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

/// The program id and interface index of the XDP link pinned at `pin` (the index is 0 once its
/// device is gone); `None` when the pin is some other kind of object. The kernel's fdinfo of
/// the object says what it is (`link_type:` only for links) and, for XDP links, the program and
/// interface; aya's `LinkInfo` exposes neither the kind nor the interface.
fn xdp_link(pin: &Path) -> Result<Option<(u32, u32)>> {
    let fd =
        obj_get(pin).with_context(|| format!("cannot open pinned object {}", pin.display()))?;
    let fdinfo = format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd());
    let text = fs::read_to_string(&fdinfo).with_context(|| format!("cannot read {fdinfo}"))?;
    Ok(xdp_link_from_fdinfo(&text))
}

/// `(prog_id, ifindex)` from the fdinfo text of an XDP link.
fn xdp_link_from_fdinfo(text: &str) -> Option<(u32, u32)> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
    };
    if field("link_type")? != "xdp" {
        return None;
    }
    let prog_id = field("prog_id")?.parse().ok()?;
    // Absent or 0 once the device is gone.
    let ifindex = field("ifindex").and_then(|i| i.parse().ok()).unwrap_or(0);
    Some((prog_id, ifindex))
}

const BPF_OBJ_GET: u32 = 7;

/// `union bpf_attr`, as much of it as `BPF_OBJ_GET` uses (the kernel wants the rest zeroed).
#[repr(C, align(8))]
#[derive(Default)]
struct BpfAttr {
    words: [u32; 16],
}

fn bpf(cmd: u32, attr: &mut BpfAttr) -> io::Result<libc::c_long> {
    // SAFETY: attr is a valid, zero-padded bpf_attr of the size passed; the path it points to
    // outlives the call.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_xdp_links_are_read_as_links() {
        let link = "link_type:\txdp\nlink_id:\t7\nprog_tag:\tab\nprog_id:\t42\nifindex:\t3\n";
        assert_eq!(xdp_link_from_fdinfo(link), Some((42, 3)));
        let gone = "link_type:\txdp\nlink_id:\t7\nprog_id:\t42\nifindex:\t0\n";
        assert_eq!(xdp_link_from_fdinfo(gone), Some((42, 0)));
        let tc = "link_type:\ttcx\nlink_id:\t7\nprog_id:\t42\nifindex:\t3\n";
        assert_eq!(xdp_link_from_fdinfo(tc), None);
        let map = "pos:\t0\nflags:\t02000002\nmap_type:\t6\nkey_size:\t4\n";
        assert_eq!(xdp_link_from_fdinfo(map), None);
    }
}
