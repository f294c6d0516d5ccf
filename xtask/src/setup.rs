//! Installs what building and testing need, skipping whatever is already in place.
//!
//! Every step says what it found or did; the slow ones (a Rust component, bpf-linker, Debian
//! packages, the test database) say how long they took, so a fresh machine's first run is
//! explained line by line.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, ensure, Context as _, Result};
use base64::Engine as _;
use sha2::{Digest as _, Sha512};

/// Debian packages the tests, demo and benchmarks use.
const DEBIAN_PACKAGES: &[&str] = &[
    "iproute2",
    "util-linux",
    "bpftool",
    "xdp-tools",
    "nftables",
    "ipset",
    "iptables",
    "ethtool",
    "mmdb-bin",
    // The signed-release tests check interoperation with the minisign CLI.
    "minisign",
    // promtool checks the Prometheus exposition; the agent test scrapes with the real server.
    "prometheus",
    // systemd-analyze verifies the unit files in contrib/.
    "systemd",
    // pip installs kubernetes-validate, which checks deploy/ offline.
    "python3-pip",
    // `cargo xtask image` builds and the container tests run the image. runc, not crun:
    // Debian 12's crun refuses hosts whose cgroups are in hybrid mode.
    "podman",
    "runc",
    // The static binary's C parts (ring) are compiled with musl's gcc wrapper.
    "musl-tools",
    // ISO 3166-2 subdivision codes: the lint checks filter-user's table against it.
    "iso-codes",
];

/// The target of the static binary the container image holds.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";

/// The offline Kubernetes schema validator for deploy/ (PyPI), pinned.
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

pub fn run() -> Result<()> {
    let started = Instant::now();
    step("nightly rust-src", rust_src)?;
    step("bpf-linker", bpf_linker)?;
    step("static target", static_target)?;
    step("Debian packages", debian_packages)?;
    step("npm", npm)?;
    step("kubernetes-validate", kubernetes_validate)?;
    step("full-world test database", world_data)?;
    step("BPF filesystem", bpffs)?;
    println!(
        "xtask setup: ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Only what building filter-user needs (nightly rust-src, bpf-linker), for `cargo xtask fuzz`.
pub fn ebpf_toolchain() -> Result<()> {
    step("nightly rust-src", rust_src)?;
    step("bpf-linker", bpf_linker)
}

/// What one setup step found: already there, or installed just now.
enum Outcome {
    Present(String),
    Installed(String),
}

/// Runs one step and prints one line for it; installs are timed.
fn step(name: &str, run: fn() -> Result<Outcome>) -> Result<()> {
    let started = Instant::now();
    match run().with_context(|| format!("setup step \"{name}\" failed"))? {
        Outcome::Present(what) => println!("xtask setup: {name}: present ({what})"),
        Outcome::Installed(what) => println!(
            "xtask setup: {name}: installed {what} in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
    }
    Ok(())
}

/// Announces a slow action before it starts, so a long silence has a reason on screen.
fn doing(name: &str, what: &str) {
    println!("xtask setup: {name}: {what}");
}

/// A real full-world country database (GeoLite2 Country as repackaged by ip-location-db on npm)
/// in two formats, for the tests and benchmarks only: regionfilter never needs it at run time.
/// Pinned by version and npm's SHA-512 integrity so every run tests the same bytes.
const WORLD_VERSION: &str = "2.3.2026061719";
const WORLD_PACKAGES: &[(&str, &str, &[&str])] = &[
    (
        "@ip-location-db/geolite2-country-mmdb",
        "sha512-YBvBmva+4plNbIcoJqPvwosn0/g+ueGT1+n39fkVy/tk1vye/TEfXSpX3hReWKiWNzlxO5Qd0jTqU3qhwTD88g==",
        &["geolite2-country.mmdb", "GEOLITE2_LICENSE", "GEOLITE2_EULA"],
    ),
    (
        "@ip-location-db/geolite2-country",
        "sha512-ik7n01bM4kfbD0LiMEO2oKK4CPINQbB/BaE72kRK1719EZVlriy1iO0KI/S7yazCbAuOHyTPP2Kgy6K3mG2AaA==",
        &["geolite2-country-ipv4.csv", "geolite2-country-ipv6.csv"],
    ),
];

/// Where [`world_data`] puts the full-world database; tests read it from `REGIONFILTER_WORLD_DATA`.
pub fn world_data_dir() -> PathBuf {
    cache_dir().join(format!(
        "world-{}",
        WORLD_VERSION.rsplit('.').next().unwrap_or(WORLD_VERSION)
    ))
}

fn cache_dir() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    Path::new(&home).join(".cache/regionfilter")
}

/// Fetches each package with `npm pack NAME@VERSION` (npm checks the tarball against the
/// registry's integrity), then checks it again against the integrity pinned here and unpacks
/// only the named files.
fn world_data() -> Result<Outcome> {
    let dir = world_data_dir();
    let mut fetched = Vec::new();
    for (name, integrity, files) in WORLD_PACKAGES {
        if files.iter().all(|f| dir.join(f).exists()) {
            continue;
        }
        let spec = format!("{name}@{WORLD_VERSION}");
        doing("full-world test database", &format!("npm pack {spec}"));
        let staging = dir.join("npm-pack");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        let json = output(
            Command::new("npm")
                .args([
                    "pack",
                    &spec,
                    "--json",
                    "--ignore-scripts",
                    "--pack-destination",
                ])
                .arg(&staging)
                .current_dir(&staging),
        )?;
        let tarball = staging.join(npm_pack_filename(&json, integrity)?);
        let digest = Sha512::digest(
            std::fs::read(&tarball)
                .with_context(|| format!("cannot read {}", tarball.display()))?,
        );
        let actual = format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        ensure!(
            actual == *integrity,
            "{spec}: the tarball's integrity is {actual}, not the pinned {integrity}"
        );
        let members: Vec<String> = files.iter().map(|f| format!("package/{f}")).collect();
        status(
            Command::new("tar")
                .arg("-xzf")
                .arg(&tarball)
                .arg("-C")
                .arg(&dir)
                .arg("--strip-components=1")
                .args(&members),
        )?;
        std::fs::remove_dir_all(&staging)?;
        fetched.push(spec);
    }
    Ok(if fetched.is_empty() {
        Outcome::Present(dir.display().to_string())
    } else {
        Outcome::Installed(format!("{} into {}", fetched.join(", "), dir.display()))
    })
}

/// The tarball name from `npm pack --json`, after checking npm's own integrity field too.
fn npm_pack_filename(json: &str, pinned: &str) -> Result<String> {
    let parsed: serde_json::Value =
        serde_json::from_str(json).context("npm pack --json printed no JSON")?;
    let entry = parsed
        .get(0)
        .context("npm pack --json printed an empty list")?;
    let integrity = entry["integrity"]
        .as_str()
        .context("npm pack --json gave no integrity")?;
    ensure!(
        integrity == pinned,
        "npm reports integrity {integrity}, not the pinned {pinned}"
    );
    entry["filename"]
        .as_str()
        .map(str::to_owned)
        .context("npm pack --json gave no filename")
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs `cmd`; an error naming it unless it exits 0.
pub fn status(cmd: &mut Command) -> Result<()> {
    let st = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed");
    }
    Ok(())
}

/// What `program --version` prints, if it runs and exits 0 (one run tells both).
fn version_of(program: &str) -> Option<String> {
    let out = Command::new(program)
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// True when `program ARGS` runs and exits 0.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn nightly_sysroot() -> Result<PathBuf> {
    output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .map(PathBuf::from)
        .context("the nightly toolchain is needed to build the eBPF program")
}

/// `-Z build-std=core` needs the standard library sources.
fn rust_src() -> Result<Outcome> {
    let src = nightly_sysroot()?.join("lib/rustlib/src/rust/library/core");
    if src.exists() {
        return Ok(Outcome::Present(src.display().to_string()));
    }
    doing(
        "nightly rust-src",
        "rustup component add rust-src --toolchain nightly",
    );
    status(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))?;
    Ok(Outcome::Installed("rust-src".into()))
}

/// The musl standard library for the default toolchain, for the image's static binary.
fn static_target() -> Result<Outcome> {
    let sysroot = output(Command::new("rustc").args(["--print", "sysroot"]))?;
    let lib = Path::new(&sysroot).join("lib/rustlib").join(STATIC_TARGET);
    if lib.exists() {
        return Ok(Outcome::Present(lib.display().to_string()));
    }
    doing(
        "static target",
        &format!("rustup target add {STATIC_TARGET}"),
    );
    status(Command::new("rustup").args(["target", "add", STATIC_TARGET]))?;
    Ok(Outcome::Installed(STATIC_TARGET.into()))
}

/// bpf-linker must link against the same LLVM major as nightly's rustc; no system LLVM of that
/// version exists, so it is built against the libLLVM that ships inside the nightly toolchain.
fn bpf_linker() -> Result<Outcome> {
    if let Some(version) = version_of("bpf-linker") {
        return Ok(Outcome::Present(version));
    }
    let sysroot = nightly_sysroot()?;
    let verbose = output(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let llvm_major = verbose
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("rustc +nightly -vV printed no LLVM version")?
        .to_owned();
    let lib = sysroot.join("lib");
    let libllvm = std::fs::read_dir(&lib)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with("libLLVM.so."))
        .with_context(|| format!("no libLLVM.so.* in {}", lib.display()))?;
    let prefix = cache_dir().join("llvm-prefix");
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib)?;
    for name in ["libLLVM.so", libllvm.as_str()] {
        let link = prefix_lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(lib.join(&libllvm), &link)
            .with_context(|| format!("cannot link {}", link.display()))?;
    }
    doing(
        "bpf-linker",
        &format!("cargo install bpf-linker against nightly's LLVM {llvm_major} (about a minute)"),
    );
    status(Command::new("cargo").env("LLVM_PREFIX", &prefix).args([
        "install",
        "bpf-linker",
        "--no-default-features",
        "--features",
        &format!("llvm-{llvm_major}"),
    ]))?;
    ensure!(
        version_of("bpf-linker").is_some(),
        "bpf-linker was installed but does not run from PATH: add ~/.cargo/bin to PATH"
    );
    Ok(Outcome::Installed(format!(
        "bpf-linker (LLVM {llvm_major})"
    )))
}

fn apt_install(step: &str, packages: &[&str]) -> Result<()> {
    doing(step, &format!("apt-get install {}", packages.join(" ")));
    status(Command::new("apt-get").arg("update").stdout(Stdio::null()))?;
    status(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn debian_packages() -> Result<Outcome> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(Outcome::Present(format!(
            "{} packages",
            DEBIAN_PACKAGES.len()
        )));
    }
    apt_install("Debian packages", &missing)?;
    Ok(Outcome::Installed(missing.join(" ")))
}

/// `kubernetes-validate` from PyPI (no Debian package has it), into the system's Python:
/// outside a virtual environment pip needs `--break-system-packages`.
fn kubernetes_validate() -> Result<Outcome> {
    let pinned = KUBERNETES_VALIDATE.rsplit('=').next().unwrap_or_default();
    if let Some(version) = version_of("kubernetes-validate").filter(|v| v.contains(pinned)) {
        return Ok(Outcome::Present(version));
    }
    doing(
        "kubernetes-validate",
        &format!("pip install {KUBERNETES_VALIDATE}"),
    );
    status(Command::new("python3").args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--break-system-packages",
        "--root-user-action=ignore",
        KUBERNETES_VALIDATE,
    ]))?;
    Ok(Outcome::Installed(KUBERNETES_VALIDATE.into()))
}

/// The npm client fetches the test database. Any working `npm` will do (NodeSource's nodejs
/// ships its own); only a machine without one gets Debian's package.
fn npm() -> Result<Outcome> {
    if let Some(version) = version_of("npm") {
        return Ok(Outcome::Present(format!("npm {version}")));
    }
    apt_install("npm", &["npm"])?;
    Ok(Outcome::Installed("npm".into()))
}

/// Pins need a BPF filesystem at /sys/fs/bpf.
fn bpffs() -> Result<Outcome> {
    if runs("mountpoint", &["-q", "/sys/fs/bpf"]) {
        return Ok(Outcome::Present("/sys/fs/bpf".into()));
    }
    status(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))?;
    Ok(Outcome::Installed("a bpffs mount on /sys/fs/bpf".into()))
}

#[cfg(test)]
mod tests {
    use super::npm_pack_filename;

    #[test]
    fn npm_pack_output_must_carry_the_pinned_integrity() {
        let json = r#"[{"filename":"x-1.0.0.tgz","integrity":"sha512-AAA="}]"#;
        assert_eq!(
            npm_pack_filename(json, "sha512-AAA=").unwrap(),
            "x-1.0.0.tgz"
        );
        let err = npm_pack_filename(json, "sha512-BBB=").unwrap_err();
        assert!(err.to_string().contains("not the pinned"), "{err}");
        assert!(npm_pack_filename("[]", "sha512-AAA=").is_err());
    }
}
