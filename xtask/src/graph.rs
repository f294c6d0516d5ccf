//! Guard: xtask must build with stable Rust alone, because it is what installs the eBPF
//! toolchain. Nothing in its build graph (normal and build dependencies) may be a crate whose
//! build needs nightly, `rust-src`, `bpf-linker` or the eBPF object.

use std::collections::{BTreeSet, HashMap};

use anyhow::{bail, Context as _, Result};
use cargo_metadata::{DependencyKind, Metadata, MetadataCommand};

/// The workspace's build graph as the guard needs it: each package's name, whether its build
/// needs the eBPF toolchain, and the packages it builds (normal and build dependencies; a
/// dev-dependency is not built for `cargo xtask`).
#[derive(Debug, Default)]
pub struct Graph {
    pub packages: HashMap<String, Package>,
}

#[derive(Debug, Default)]
pub struct Package {
    pub name: String,
    pub needs_ebpf_toolchain: bool,
    pub builds: Vec<String>,
}

impl Graph {
    /// The graph of `cargo metadata`'s answer.
    pub fn of(metadata: &Metadata) -> Result<Self> {
        let resolve = metadata
            .resolve
            .as_ref()
            .context("cargo metadata has no resolve graph")?;
        let mut packages: HashMap<String, Package> = metadata
            .packages
            .iter()
            .map(|p| {
                // The eBPF crate itself, aya-build, and every crate with a build dependency on
                // aya-build (its build script compiles the eBPF object).
                let needs = p.name.as_str() == "filter-ebpf"
                    || p.name.as_str() == "aya-build"
                    || p.dependencies
                        .iter()
                        .any(|d| d.name == "aya-build" && d.kind == DependencyKind::Build);
                let package = Package {
                    name: p.name.to_string(),
                    needs_ebpf_toolchain: needs,
                    builds: Vec::new(),
                };
                (p.id.repr.clone(), package)
            })
            .collect();
        for node in &resolve.nodes {
            let Some(package) = packages.get_mut(&node.id.repr) else {
                continue;
            };
            package.builds = node
                .deps
                .iter()
                .filter(|d| {
                    d.dep_kinds
                        .iter()
                        .any(|k| matches!(k.kind, DependencyKind::Normal | DependencyKind::Build))
                })
                .map(|d| d.pkg.repr.clone())
                .collect();
        }
        Ok(Self { packages })
    }

    /// The crates in `root`'s normal and build dependency closure that need the eBPF
    /// toolchain, each with the path by which `root` reaches it.
    pub fn ebpf_crates_reached(&self, root: &str) -> Result<Vec<String>> {
        let name_of = |id: &str| {
            self.packages
                .get(id)
                .map_or_else(|| id.to_owned(), |p| p.name.clone())
        };
        let root_id = self
            .packages
            .iter()
            .find(|(_, p)| p.name == root)
            .map(|(id, _)| id.as_str())
            .with_context(|| format!("no package {root} in the workspace"))?;
        let mut seen = BTreeSet::new();
        let mut found = Vec::new();
        let mut stack = vec![(root_id, root.to_owned())];
        while let Some((id, path)) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            let Some(package) = self.packages.get(id) else {
                continue;
            };
            if id != root_id && package.needs_ebpf_toolchain {
                found.push(path.clone());
            }
            for dep in &package.builds {
                stack.push((dep.as_str(), format!("{path} -> {}", name_of(dep))));
            }
        }
        found.sort();
        Ok(found)
    }
}

/// Fails with the offending paths if xtask's build graph reaches an eBPF-toolchain crate.
pub fn check_xtask_builds_on_stable() -> Result<()> {
    let metadata = MetadataCommand::new()
        .cargo_path(super::cargo_path())
        .current_dir(super::workspace_root())
        .other_options(vec!["--locked".to_owned()])
        .exec()
        .context("cargo metadata failed")?;
    let reached = Graph::of(&metadata)?.ebpf_crates_reached("xtask")?;
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
    use super::*;

    /// A graph of packages named by their ids: `(name, needs the toolchain, builds)`.
    fn graph(packages: &[(&str, bool, &[&str])]) -> Graph {
        Graph {
            packages: packages
                .iter()
                .map(|(name, needs, builds)| {
                    let package = Package {
                        name: (*name).to_owned(),
                        needs_ebpf_toolchain: *needs,
                        builds: builds.iter().map(|b| (*b).to_owned()).collect(),
                    };
                    ((*name).to_owned(), package)
                })
                .collect(),
        }
    }

    #[test]
    fn finds_a_crate_with_an_ebpf_build_script_through_any_path() {
        let graph = graph(&[
            ("xtask", false, &["kit"]),
            ("kit", false, &["filter-user"]),
            ("filter-user", true, &["aya-build"]),
            ("aya-build", true, &[]),
            ("criterion", false, &[]),
        ]);
        assert_eq!(
            graph.ebpf_crates_reached("xtask").unwrap(),
            [
                "xtask -> kit -> filter-user",
                "xtask -> kit -> filter-user -> aya-build"
            ]
        );
    }

    #[test]
    fn dev_dependencies_are_not_part_of_the_build_graph() {
        // `Graph::of` leaves dev-dependencies out of `builds`, so filter-user is not reached.
        let graph = graph(&[("xtask", false, &[]), ("filter-user", true, &[])]);
        assert!(graph.ebpf_crates_reached("xtask").unwrap().is_empty());
    }

    /// The real workspace: the guard `cargo xtask test` also runs before anything else. Its
    /// graph really has filter-user as a dev-dependency of nothing xtask builds, and
    /// filter-user needs the toolchain.
    #[test]
    fn xtask_builds_with_stable_rust_alone() {
        check_xtask_builds_on_stable().unwrap();
        let metadata = MetadataCommand::new()
            .cargo_path(crate::cargo_path())
            .current_dir(crate::workspace_root())
            .exec()
            .unwrap();
        let graph = Graph::of(&metadata).unwrap();
        assert!(graph
            .packages
            .values()
            .any(|p| p.name == "filter-user" && p.needs_ebpf_toolchain));
        assert!(!graph
            .ebpf_crates_reached("integration-tests")
            .unwrap()
            .is_empty());
    }
}
