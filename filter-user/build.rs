//! Builds the XDP program for `bpfel-unknown-none` so the `regionfilter` binary embeds it.
use std::path::PathBuf;

use anyhow::Context as _;
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .context("filter-user has no parent directory")?;
    let ebpf_dir = workspace.join("filter-ebpf");
    // The object also depends on the shared types; aya-build only watches the eBPF crate.
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("filter-common/src").display()
    );
    aya_build::build_ebpf(
        [Package {
            name: "filter-ebpf",
            root_dir: ebpf_dir.to_str().context("non-UTF-8 workspace path")?,
            ..Default::default()
        }],
        Toolchain::default(),
    )
}
