//! Work around the build: `cargo xtask setup | test | demo | lint`.

mod demo;
mod setup;

use std::process::Command;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install every prerequisite (skips what is already there).
    Setup,
    /// Set up, lint, then run every test: unit, BPF_PROG_TEST_RUN and network-namespace tests (root).
    Test,
    /// Set up, then show the filter dropping one country's packets between two namespaces.
    Demo,
    /// rustfmt check and clippy -D warnings on the userspace crates and the eBPF crate.
    Lint,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Task::Setup => setup::run(),
        Task::Test => {
            setup::run()?;
            lint()?;
            build_cli()?;
            cargo(&[
                "test",
                "-p",
                "filter-common",
                "-p",
                "filter-user",
                "-p",
                "integration-tests",
                "-p",
                "xtask",
            ])
        }
        Task::Demo => {
            setup::run()?;
            build_cli()?;
            demo::run()
        }
        Task::Lint => lint(),
    }
}

/// The debug `regionfilter` binary the namespace tests and the demo drive.
fn build_cli() -> Result<()> {
    cargo(&["build", "-p", "filter-user"])
}

fn lint() -> Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "-p",
        "filter-common",
        "-p",
        "filter-user",
        "-p",
        "integration-tests",
        "-p",
        "xtask",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    // The eBPF crate only builds for the BPF target, with nightly's build-std.
    let status = Command::new("rustup")
        .args([
            "run",
            "nightly",
            "cargo",
            "clippy",
            "-p",
            "filter-ebpf",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--",
            "-D",
            "warnings",
        ])
        .status()
        .context("cannot run rustup")?;
    if !status.success() {
        bail!("clippy found problems in filter-ebpf");
    }
    Ok(())
}

pub(crate) fn cargo(args: &[&str]) -> Result<()> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .status()
        .with_context(|| format!("cannot run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}
