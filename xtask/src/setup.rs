//! Installs what building and testing need, skipping whatever is already in place.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _, Result};

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
    "curl",
];

pub fn run() -> Result<()> {
    rust_src()?;
    bpf_linker()?;
    debian_packages()?;
    world_data()?;
    bpffs()
}

/// A real full-world country database (GeoLite2 Country as repackaged by ip-location-db on npm)
/// in two formats, for the tests and benchmarks only: regionfilter never needs it at run time.
/// Pinned by version and SHA-512 so every run tests the same bytes.
const WORLD_PACKAGES: &[(&str, &str, &[&str])] = &[
    (
        "https://registry.npmjs.org/@ip-location-db/geolite2-country-mmdb/-/geolite2-country-mmdb-2.3.2026061719.tgz",
        "601bc19af6bee2994d6c872826a3efc28b27d3f83eb9e193d7e9f7f5f915cbfb64d6fc9efd311f5d2a57de145e58a8963739713b941dd234ea537aa1c130fcf2",
        &["geolite2-country.mmdb", "GEOLITE2_LICENSE", "GEOLITE2_EULA"],
    ),
    (
        "https://registry.npmjs.org/@ip-location-db/geolite2-country/-/geolite2-country-2.3.2026061719.tgz",
        "8a4ee7d356cce247db0f42e23043b6a0a2b808f20d41b07f05a13bda444ad7bd7d119565ae2cb588ed0a23f4bbc9acc26c0b8e1f24cf3f62a0cba2b7986d8068",
        &["geolite2-country-ipv4.csv", "geolite2-country-ipv6.csv"],
    ),
];

/// Where [`world_data`] puts the full-world database; tests read it from `REGIONFILTER_WORLD_DATA`.
pub fn world_data_dir() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    Path::new(&home).join(".cache/regionfilter/world-2026061719")
}

fn world_data() -> Result<()> {
    let dir = world_data_dir();
    for (url, sha512, files) in WORLD_PACKAGES {
        if files.iter().all(|f| dir.join(f).exists()) {
            continue;
        }
        std::fs::create_dir_all(&dir)?;
        let tarball = dir.join("download.tgz");
        println!("xtask: fetching {url}");
        status(
            Command::new("curl")
                .args(["-sSfL", "--retry", "3", "-o"])
                .arg(&tarball)
                .arg(url),
        )?;
        let check = format!("{sha512}  {}\n", tarball.display());
        let mut child = Command::new("sha512sum")
            .args(["--check", "--quiet", "-"])
            .stdin(Stdio::piped())
            .spawn()?;
        std::io::Write::write_all(child.stdin.as_mut().context("no stdin")?, check.as_bytes())?;
        if !child.wait()?.success() {
            let _ = std::fs::remove_file(&tarball);
            bail!("{url} does not have the pinned SHA-512");
        }
        let members: Vec<String> = files.iter().map(|f| format!("package/{f}")).collect();
        status(
            Command::new("tar")
                .args(["-xzf"])
                .arg(&tarball)
                .arg("-C")
                .arg(&dir)
                .args(["--strip-components=1"])
                .args(&members),
        )?;
        std::fs::remove_file(&tarball)?;
    }
    Ok(())
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

fn status(cmd: &mut Command) -> Result<()> {
    let st = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed");
    }
    Ok(())
}

fn nightly_sysroot() -> Result<PathBuf> {
    output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .map(PathBuf::from)
        .context("the nightly toolchain is needed to build the eBPF program")
}

/// `-Z build-std=core` needs the standard library sources.
fn rust_src() -> Result<()> {
    let src = nightly_sysroot()?.join("lib/rustlib/src/rust/library/core");
    if src.exists() {
        return Ok(());
    }
    status(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// bpf-linker must link against the same LLVM major as nightly's rustc; no system LLVM of that
/// version exists, so it is built against the libLLVM that ships inside the nightly toolchain.
fn bpf_linker() -> Result<()> {
    if Command::new("bpf-linker")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return Ok(());
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
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let prefix = Path::new(&home).join(".cache/regionfilter/llvm-prefix");
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib)?;
    for name in ["libLLVM.so", libllvm.as_str()] {
        let link = prefix_lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(lib.join(&libllvm), &link)
            .with_context(|| format!("cannot link {}", link.display()))?;
    }
    println!("xtask: building bpf-linker against nightly's LLVM {llvm_major} (about a minute)");
    status(Command::new("cargo").env("LLVM_PREFIX", &prefix).args([
        "install",
        "bpf-linker",
        "--no-default-features",
        "--features",
        &format!("llvm-{llvm_major}"),
    ]))
}

fn debian_packages() -> Result<()> {
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
        return Ok(());
    }
    println!("xtask: installing {}", missing.join(" "));
    status(Command::new("apt-get").arg("update").stdout(Stdio::null()))?;
    status(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Pins need a BPF filesystem at /sys/fs/bpf.
fn bpffs() -> Result<()> {
    if Command::new("mountpoint")
        .args(["-q", "/sys/fs/bpf"])
        .status()
        .is_ok_and(|s| s.success())
    {
        return Ok(());
    }
    status(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))
}
