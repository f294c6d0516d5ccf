//! Builds the XDP program for `bpfel-unknown-none` so the `regionfilter` binary embeds it.
//!
//! The build (nightly, `-Z build-std=core`) takes a minute or more and would run once per
//! build-script output directory: `clippy`, `build`, `test` and `--release` each have their
//! own. So the object is kept in `target/ebpf-cache/KEY/`, where KEY hashes everything the
//! build reads (the eBPF and shared crates, the lock file, the nightly compiler and
//! bpf-linker versions, the target), and copied from there when it is already built.

use std::{
    fs,
    hash::{DefaultHasher, Hasher as _},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .context("filter-user has no parent directory")?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let ebpf_dir = workspace.join("filter-ebpf");
    // The object also depends on the shared types; aya-build only watches the eBPF crate.
    let common = workspace.join("filter-common");
    for watched in [&ebpf_dir, &common, &workspace.join("Cargo.lock")] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    let cache = workspace
        .join("target/ebpf-cache")
        .join(format!("{:016x}", key(workspace)?));
    if copy_objects(&cache, &out_dir).is_ok_and(|copied| copied > 0) {
        return Ok(());
    }
    aya_build::build_ebpf(
        [Package {
            name: "filter-ebpf",
            root_dir: ebpf_dir.to_str().context("non-UTF-8 workspace path")?,
            ..Default::default()
        }],
        Toolchain::default(),
    )?;
    // A cache that cannot be written only costs the next build its minute.
    let staging = cache.with_extension("partial");
    let _ = fs::remove_dir_all(&staging);
    if fs::create_dir_all(&staging).is_ok() && copy_objects(&out_dir, &staging).is_ok() {
        let _ = fs::rename(&staging, &cache);
    }
    Ok(())
}

/// Copies the regular files directly in `from` (the built objects) into `to`; how many.
fn copy_objects(from: &Path, to: &Path) -> std::io::Result<usize> {
    let mut copied = 0;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            fs::copy(entry.path(), to.join(entry.file_name()))?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// A hash of every input of the eBPF build.
fn key(workspace: &Path) -> anyhow::Result<u64> {
    let mut hasher = DefaultHasher::new();
    for dir in ["filter-ebpf", "filter-common"] {
        hash_tree(workspace, &workspace.join(dir), &mut hasher)?;
    }
    for file in ["Cargo.lock", "Cargo.toml"] {
        hasher.write(&fs::read(workspace.join(file))?);
    }
    for var in ["CARGO_CFG_TARGET_ENDIAN", "CARGO_CFG_TARGET_ARCH"] {
        hasher.write(std::env::var(var).unwrap_or_default().as_bytes());
    }
    // The toolchain aya-build uses, and the linker: either changing changes the object.
    for (program, args) in [
        ("rustup", &["run", "nightly", "rustc", "-vV"][..]),
        ("bpf-linker", &["--version"][..]),
    ] {
        let output = Command::new(program).args(args).output();
        hasher.write(&output.map(|o| o.stdout).unwrap_or_default());
    }
    Ok(hasher.finish())
}

/// Hashes the paths (from `root`, so clones and worktrees share a key) and contents of every
/// file under `dir` but build output, in order.
fn hash_tree(root: &Path, dir: &Path, hasher: &mut DefaultHasher) -> anyhow::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        if entry.file_name() == "target" {
            continue;
        }
        let relative = path.strip_prefix(root).unwrap_or(&path);
        hasher.write(relative.to_string_lossy().as_bytes());
        if entry.file_type()?.is_dir() {
            hash_tree(root, &path, hasher)?;
        } else {
            hasher.write(&fs::read(&path)?);
        }
    }
    Ok(())
}
