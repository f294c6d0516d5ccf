//! Guard: xtask must build with stable Rust alone, because it is what installs the eBPF
//! toolchain. Nothing in its build graph (normal and build dependencies) may be a crate whose
//! build needs nightly, `rust-src`, `bpf-linker` or the eBPF object.

use std::{
    collections::{BTreeSet, HashMap},
    process::Command,
};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

/// Crates whose build needs the eBPF toolchain: the eBPF crate itself, aya-build, and every
/// crate with a build dependency on aya-build (its build script compiles the eBPF object).
fn needs_ebpf_toolchain(package: &Value) -> bool {
    let name = package["name"].as_str().unwrap_or_default();
    name == "filter-ebpf"
        || name == "aya-build"
        || package["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["name"] == "aya-build" && d["kind"] == "build")
}

/// The crates in `root`'s normal and build dependency closure that need the eBPF toolchain,
/// each with the path by which `root` reaches it.
pub fn ebpf_crates_reached(metadata: &Value, root: &str) -> Result<Vec<String>> {
    let packages: HashMap<&str, &Value> = metadata["packages"]
        .as_array()
        .context("cargo metadata has no packages")?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let name_of = |id: &str| {
        packages
            .get(id)
            .and_then(|p| p["name"].as_str())
            .unwrap_or(id)
            .to_owned()
    };
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .context("cargo metadata has no resolve graph")?
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let root_id = packages
        .iter()
        .find(|(_, p)| p["name"] == root)
        .map(|(id, _)| *id)
        .with_context(|| format!("no package {root} in the workspace"))?;
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    let mut stack = vec![(root_id, root.to_owned())];
    while let Some((id, path)) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if id != root_id && packages.get(id).is_some_and(|p| needs_ebpf_toolchain(p)) {
            found.push(path.clone());
        }
        let deps = nodes.get(id).and_then(|n| n["deps"].as_array());
        for dep in deps.into_iter().flatten() {
            // A dev-dependency is not built for `cargo xtask`; normal (null) and build are.
            let built = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if let (true, Some(dep_id)) = (built, dep["pkg"].as_str()) {
                stack.push((dep_id, format!("{path} -> {}", name_of(dep_id))));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Fails with the offending paths if xtask's build graph reaches an eBPF-toolchain crate.
pub fn check_xtask_builds_on_stable() -> Result<()> {
    let out = Command::new(super::cargo_path())
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(super::workspace_root())
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let metadata: Value =
        serde_json::from_slice(&out.stdout).context("cargo metadata printed no JSON")?;
    let reached = ebpf_crates_reached(&metadata, "xtask")?;
    if !reached.is_empty() {
        bail!(
            "xtask's build graph reaches crates whose build needs the eBPF toolchain (nightly, \
             rust-src, bpf-linker), so `cargo xtask` could never run on a fresh machine to \
             install them:\n  {}\nRun what needs the built filter as a separate cargo command \
             started by xtask after setup (as `demo` and `bench` do).",
            reached.join("\n  ")
        );
    }
    println!("xtask: build graph ok: xtask builds with stable Rust alone");
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn package(name: &str, build_deps: &[&str]) -> Value {
        let deps: Vec<Value> = build_deps
            .iter()
            .map(|d| json!({"name": d, "kind": "build"}))
            .collect();
        json!({"id": name, "name": name, "dependencies": deps})
    }

    fn node(id: &str, deps: &[(&str, Option<&str>)]) -> Value {
        let deps: Vec<Value> = deps
            .iter()
            .map(|(pkg, kind)| json!({"pkg": pkg, "dep_kinds": [{"kind": kind}]}))
            .collect();
        json!({"id": id, "deps": deps})
    }

    #[test]
    fn finds_a_crate_with_an_ebpf_build_script_through_any_path() {
        let metadata = json!({
            "packages": [
                package("xtask", &[]), package("kit", &[]),
                package("filter-user", &["aya-build"]), package("aya-build", &[]),
                package("criterion", &[]),
            ],
            "resolve": {"nodes": [
                node("xtask", &[("kit", None), ("criterion", Some("dev"))]),
                node("kit", &[("filter-user", None)]),
                node("filter-user", &[("aya-build", Some("build"))]),
                node("aya-build", &[]), node("criterion", &[]),
            ]},
        });
        assert_eq!(
            ebpf_crates_reached(&metadata, "xtask").unwrap(),
            [
                "xtask -> kit -> filter-user",
                "xtask -> kit -> filter-user -> aya-build"
            ]
        );
    }

    #[test]
    fn dev_dependencies_are_not_part_of_the_build_graph() {
        let metadata = json!({
            "packages": [package("xtask", &[]), package("filter-user", &["aya-build"])],
            "resolve": {"nodes": [
                node("xtask", &[("filter-user", Some("dev"))]), node("filter-user", &[]),
            ]},
        });
        assert!(ebpf_crates_reached(&metadata, "xtask").unwrap().is_empty());
    }

    /// The real workspace: the guard `cargo xtask test` also runs before anything else.
    #[test]
    fn xtask_builds_with_stable_rust_alone() {
        check_xtask_builds_on_stable().unwrap();
    }
}
