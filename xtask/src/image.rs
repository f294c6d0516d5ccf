//! `cargo xtask image`: the container image, built offline by podman from
//! `deploy/image/Containerfile`.
//!
//! podman, because one Debian package both builds the image (`podman build`, buildah inside)
//! and runs it in the container tests, from one storage; the Containerfile stays portable to
//! any OCI builder. The storage is private to this build (`target/image/storage`) and the
//! result is written out as an OCI archive, which `podman load` or `skopeo copy` take.

use std::{
    collections::{BTreeSet, VecDeque},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, ensure, Context as _, Result};

use crate::{
    setup::{status, STATIC_TARGET},
    workspace_root,
};

/// The cargo profile of the image's binary: release, stripped (Cargo.toml).
const PROFILE: &str = "image";
/// The Containerfile, and the licence files copied beside the binary.
const CONTAINERFILE: &str = "deploy/image/Containerfile";
const LICENSES: [&str; 2] = ["LICENSE-MIT", "LICENSE-APACHE"];
/// podman's settings for this machine (ulimits, cgroups, runtime), shared with the tests.
pub const PODMAN_CONF: &str = "tests/podman/containers.conf";

/// Where the static build's compiler output goes.
#[derive(Clone, Copy)]
pub enum Output {
    Terminal,
    /// Into `target/image/build.log`, shown only if the build fails: `cargo xtask test`
    /// builds the image while the tests compile, and their output would interleave.
    Log,
}

/// Builds the static binary and the image, writes the OCI archive (the one archive in
/// target/image/, which the tests load) and prints the sizes; the archive's path.
pub fn build(output: Output) -> Result<PathBuf> {
    let root = workspace_root();
    let dir = root.join("target/image");
    let meta = metadata(&root)?;
    let cli = meta
        .packages
        .iter()
        .find(|p| p.name.as_str() == "filter-user")
        .context("no filter-user package in the workspace")?;
    let version = cli.version.to_string();
    let binary = static_binary(&dir, output)?;

    let context = dir.join("context");
    recreate(&context)?;
    copy(&binary, &context.join("regionfilter"))?;
    for license in LICENSES {
        copy(&root.join(license), &context.join(license))?;
    }
    std::fs::write(context.join("THIRD-PARTY"), third_party(&meta)?)
        .context("cannot write THIRD-PARTY")?;

    // A fresh storage each time: the build is one COPY, and no old image piles up in it.
    recreate(&dir.join("storage"))?;
    let name = format!("localhost/regionfilter:{version}");
    let (revision, epoch) = source_revision(&root);
    let labels = [
        ("org.opencontainers.image.version", version.clone()),
        ("org.opencontainers.image.revision", revision),
        (
            "org.opencontainers.image.source",
            cli.repository.clone().unwrap_or_default(),
        ),
    ];
    let mut build = podman(&dir);
    build
        .args(["build", "--quiet", "--pull=never", "--timestamp", &epoch])
        .args(["--file"])
        .arg(root.join(CONTAINERFILE))
        .args(["--tag", &name]);
    for (key, value) in &labels {
        build.args(["--label", &format!("{key}={value}")]);
    }
    status(build.arg(&context))?;

    let archive = dir.join(format!("regionfilter-{version}.oci.tar"));
    for old in std::fs::read_dir(&dir)?.filter_map(|e| e.ok().map(|e| e.path())) {
        if old.to_string_lossy().ends_with(".oci.tar") {
            std::fs::remove_file(&old)
                .with_context(|| format!("cannot remove {}", old.display()))?;
        }
    }
    status(
        podman(&dir)
            .args(["save", "--quiet", "--format", "oci-archive", "--output"])
            .arg(&archive)
            .arg(&name),
    )?;

    let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!(
        "xtask image: {name}: binary {} ({STATIC_TARGET}, static), archive {}",
        mib(size(&binary)),
        mib(size(&archive)),
    );
    println!("xtask image: {}", archive.display());
    println!(
        "xtask image: load it with `podman load -i {}`",
        archive.strip_prefix(&root).unwrap_or(&archive).display()
    );
    Ok(archive)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `podman` with the shared settings and this build's private storage.
fn podman(dir: &Path) -> Command {
    let mut command = Command::new("podman");
    command
        .env("CONTAINERS_CONF", workspace_root().join(PODMAN_CONF))
        .arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args(["--storage-driver", "vfs"]);
    command
}

/// `cargo build` of the binary, static, for [`STATIC_TARGET`]; returns its path. Its own
/// target directory, so it can run beside another cargo build (the eBPF object still comes
/// from the shared cache in target/ebpf-cache).
fn static_binary(dir: &Path, output: Output) -> Result<PathBuf> {
    let target_dir = dir.join("cargo");
    let mut command = Command::new(crate::cargo_path());
    command
        .args(["build", "--locked", "--profile", PROFILE, "--target"])
        .args([STATIC_TARGET, "-p", "filter-user", "--bin", "regionfilter"])
        .arg("--target-dir")
        .arg(&target_dir);
    let log = dir.join("build.log");
    if let Output::Log = output {
        std::fs::create_dir_all(dir)?;
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        command.stdout(file.try_clone()?).stderr(file);
    }
    let status = command.status().context("cannot run cargo build")?;
    if !status.success() {
        if let Output::Log = output {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        bail!("the static build failed (log: {})", log.display());
    }
    let binary = target_dir
        .join(STATIC_TARGET)
        .join(PROFILE)
        .join("regionfilter");
    ensure!(binary.exists(), "{} was not built", binary.display());
    Ok(binary)
}

/// The revision label (`-dirty` with uncommitted changes) and the commit's time, which
/// becomes the image's creation time so that rebuilding a commit gives the same image.
fn source_revision(root: &Path) -> (String, String) {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "HEAD"]) else {
        return ("unknown".into(), "0".into());
    };
    // Untracked files count: a new source file changes the build (target/ is ignored).
    let dirty = git(&["status", "--porcelain"]).is_none_or(|changes| !changes.is_empty());
    let epoch = git(&["log", "-1", "--format=%ct"]).unwrap_or_else(|| "0".into());
    (if dirty { format!("{head}-dirty") } else { head }, epoch)
}

fn metadata(root: &Path) -> Result<cargo_metadata::Metadata> {
    cargo_metadata::MetadataCommand::new()
        .manifest_path(root.join("Cargo.toml"))
        .other_options(vec![
            "--locked".into(),
            "--filter-platform".into(),
            STATIC_TARGET.into(),
        ])
        .exec()
        .context("cargo metadata failed")
}

/// One line per crate compiled into the binary (filter-user's and the eBPF program's normal
/// dependencies, for the image's target): name, version, licence, repository.
fn third_party(meta: &cargo_metadata::Metadata) -> Result<String> {
    let resolve = meta
        .resolve
        .as_ref()
        .context("cargo metadata gave no graph")?;
    let by_name = |name: &str| {
        meta.packages
            .iter()
            .find(|p| p.name.as_str() == name)
            .map(|p| p.id.clone())
            .with_context(|| format!("no {name} in the workspace"))
    };
    let mut queue: VecDeque<_> = [by_name("filter-user")?, by_name("filter-ebpf")?].into();
    let mut seen = BTreeSet::new();
    while let Some(id) = queue.pop_front() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let node = resolve
            .nodes
            .iter()
            .find(|n| n.id == id)
            .context("a package missing from cargo metadata's graph")?;
        for dep in &node.deps {
            if dep
                .dep_kinds
                .iter()
                .any(|k| k.kind == cargo_metadata::DependencyKind::Normal)
            {
                queue.push_back(dep.pkg.clone());
            }
        }
    }
    let members: BTreeSet<_> = meta.workspace_members.iter().collect();
    let mut lines: Vec<String> = meta
        .packages
        .iter()
        .filter(|p| seen.contains(&p.id) && !members.contains(&p.id))
        .map(|p| {
            format!(
                "{} {}: {} {}",
                p.name,
                p.version,
                p.license.as_deref().unwrap_or("(no licence field)"),
                p.repository.as_deref().unwrap_or("")
            )
            .trim_end()
            .to_owned()
        })
        .collect();
    lines.sort();
    if lines.is_empty() {
        bail!("no third-party crates found: the dependency walk is broken");
    }
    Ok(format!(
        "Crates compiled into /usr/bin/regionfilter, with their licences (from Cargo.toml).\n\
         Their licence texts are in each crate's source at the version given.\n\n{}\n",
        lines.join("\n")
    ))
}

fn recreate(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}
