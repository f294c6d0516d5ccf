//! Work around the build: `cargo xtask setup | test | demo | image | lint | docs | bench | fleet | fuzz`.
//!
//! xtask itself builds with stable Rust alone (see [`graph`]): it installs the eBPF toolchain,
//! then starts whatever needs the built filter as a separate cargo command.

mod fuzz;
mod graph;
mod image;
mod layers;
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
    /// Set up, lint, build the container image, then run every test: unit, BPF_PROG_TEST_RUN,
    /// network-namespace and container tests (root).
    Test,
    /// Set up, then show the filter dropping two countries' packets between two namespaces and
    /// switching to another policy with `update`.
    Demo,
    /// Set up, then build the container image offline with podman: a static binary on an
    /// empty base (deploy/image/Containerfile), written to target/image/ as an OCI archive.
    Image,
    /// The layer guard, rustfmt check, clippy -D warnings on the userspace crates and the eBPF
    /// crate, and a check that the man pages and completions in contrib/ and the exit table in
    /// docs/updates.md match the code.
    Lint,
    /// Regenerate the man pages and shell completions in contrib/ from the CLI definition, and
    /// the exit table in docs/updates.md from `ops::exit::Exit`.
    Docs,
    /// Set up, then measure per-packet, end-to-end and control-plane costs on the full-world
    /// database and regenerate BENCHMARKS.md (a few minutes; never part of `test`).
    Bench {
        /// Run one part only and print it, leaving BENCHMARKS.md alone.
        #[arg(long, value_parser = ["kernel", "policy", "e2e", "control"])]
        only: Option<String>,
    },
    /// Set up, then simulate a fleet following one signed release channel: agents in their
    /// own namespaces polling one loopback HTTPS release server through a staged rollout, two
    /// attacks and a rollback; writes docs/fleet-simulation.md (a minute or two; never part
    /// of `test`).
    Fleet {
        /// Nodes (namespaces with an agent each).
        #[arg(long, default_value_t = 30)]
        nodes: usize,
        /// Each agent's release_poll, in seconds.
        #[arg(long, default_value_t = 2)]
        poll: u64,
    },
    /// Set up the eBPF toolchain, then run each cargo-fuzz target (nightly; installs cargo-fuzz
    /// if missing) for a bounded time; fails if any finds a crash. `test` replays the corpus.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Run this target only (a file stem in fuzz/fuzz_targets/).
        #[arg(long)]
        target: Option<String>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Task::Setup => setup::run(),
        Task::Test => {
            graph::check_xtask_builds_on_stable()?;
            setup::run()?;
            lint()?;
            build_cli()?;
            let image = build_image_beside_tests()?;
            test_and_summarise(&image)
        }
        Task::Demo => {
            setup::run()?;
            build_cli()?;
            cargo(&[
                "run",
                "--quiet",
                "-p",
                "integration-tests",
                "--bin",
                "regionfilter-demo",
            ])
        }
        Task::Image => {
            setup::run()?;
            image::build(image::Output::Terminal).map(drop)
        }
        Task::Lint => lint(),
        Task::Docs => docs(),
        Task::Bench { only } => {
            setup::run()?;
            build_cli()?;
            bench(only.as_deref())
        }
        Task::Fleet { nodes, poll } => {
            setup::run()?;
            build_cli()?;
            fleet(nodes, poll)
        }
        Task::Fuzz { seconds, target } => {
            setup::ebpf_toolchain()?;
            fuzz::run(seconds, target.as_deref())
        }
    }
}

/// Runs the release benchmark binary, which prints the report and writes BENCHMARKS.md (or,
/// with `only`, prints that part).
fn bench(only: Option<&str>) -> Result<()> {
    let out = workspace_root().join("BENCHMARKS.md");
    let mut command = Command::new(cargo_path());
    command
        .args([
            "run",
            "--release",
            "-p",
            "integration-tests",
            "--bin",
            "regionfilter-bench",
            "--",
            "--out",
        ])
        .arg(&out)
        .env("REGIONFILTER_WORLD_DATA", setup::world_data_dir());
    if let Some(part) = only {
        command.args(["--only", part]);
    }
    let status = command.status().context("cannot run the benchmark")?;
    if !status.success() {
        bail!("the benchmark failed");
    }
    Ok(())
}

fn fleet(nodes: usize, poll: u64) -> Result<()> {
    let out = workspace_root().join("docs/fleet-simulation.md");
    let status = Command::new(cargo_path())
        .args([
            "run",
            "--quiet",
            "-p",
            "integration-tests",
            "--bin",
            "regionfilter-fleet",
            "--",
            "--nodes",
            &nodes.to_string(),
            "--poll",
            &poll.to_string(),
            "--out",
        ])
        .arg(&out)
        .env("REGIONFILTER_WORLD_DATA", setup::world_data_dir())
        .status()
        .context("cannot run the fleet simulation")?;
    if !status.success() {
        bail!("the fleet simulation failed");
    }
    Ok(())
}

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ is inside the workspace")
        .to_owned()
}

/// The debug `regionfilter` binary the namespace tests and the demo drive, built with the
/// same packages as `cargo test` runs: built alone, filter-user's dependencies get other
/// features (cargo unifies them per build) and are compiled twice.
fn build_cli() -> Result<()> {
    cargo_on_host_crates(&["build"], &[])
}

/// Builds the image (for `container::`) while the tests compile: two builds on two cores fill
/// each other's serial stretches (links, build scripts). Returns the image archive.
fn build_image_beside_tests() -> Result<std::path::PathBuf> {
    println!("xtask test: building the image beside the tests (log: target/image/build.log)");
    let image = std::thread::spawn(|| image::build(image::Output::Log));
    let tests = cargo_on_host_crates(&["test", "--no-run"], &[]);
    let image = image
        .join()
        .map_err(|_| anyhow::anyhow!("the image build panicked"))?;
    tests?;
    image
}

/// Runs the tests, echoing their output, and closes with one `N passed, M failed` line summed
/// over every test binary (cargo's own last line is only the last binary's).
fn test_and_summarise(image: &std::path::Path) -> Result<()> {
    use std::io::{BufRead as _, BufReader};
    let args: Vec<&str> = std::iter::once("test")
        .chain(HOST_CRATES.iter().flat_map(|c| ["-p", *c]))
        .collect();
    let mut child = Command::new(cargo_path())
        .args(&args)
        .env("REGIONFILTER_WORLD_DATA", setup::world_data_dir())
        .env("REGIONFILTER_IMAGE", image)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run cargo test")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in BufReader::new(child.stdout.take().context("no stdout")?).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            passed += count_before(rest, " passed");
            failed += count_before(rest, " failed");
        }
    }
    let status = child.wait()?;
    println!("regionfilter tests: {passed} passed, {failed} failed");
    if !status.success() || failed > 0 {
        bail!("tests failed");
    }
    Ok(())
}

/// The number just before `label` in `ok. 13 passed; 0 failed; ...`.
fn count_before(text: &str, label: &str) -> u64 {
    text.split(';')
        .find_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .strip_suffix(label)
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn cargo_path() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Where the generated man pages and completions live (`man/`, `completions/`).
const CONTRIB: &str = "contrib";

/// The page that holds the exit-status table, between [`EXIT_TABLE_START`] and
/// [`EXIT_TABLE_END`].
const EXIT_TABLE_PAGE: &str = "docs/updates.md";
const EXIT_TABLE_START: &str = "<!-- exit-table:start -->\n";
const EXIT_TABLE_END: &str = "<!-- exit-table:end -->";

/// Debian's iso-codes (installed by setup) and the subdivision table taken from it.
const ISO_3166_2_SOURCE: &str = "/usr/share/iso-codes/json/iso_3166-2.json";
const ISO_3166_2_TABLE: &str = "filter-user/src/model/iso3166_2.tsv";

/// The installed iso-codes package's version, which heads the table.
fn iso_codes_version() -> Result<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "iso-codes"])
        .output()
        .context("cannot run dpkg-query")?;
    if !out.status.success() || out.stdout.is_empty() {
        bail!("Debian's iso-codes is not installed (`cargo xtask setup` installs it)");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `# iso-codes VERSION`, then `CODE<TAB>NAME` per ISO 3166-2 subdivision, sorted by code,
/// from iso-codes' JSON; `version` is the installed package's ([`iso_codes_version`]).
fn iso_3166_2_table(version: &str) -> Result<String> {
    let text = std::fs::read_to_string(ISO_3166_2_SOURCE).with_context(|| {
        format!("cannot read {ISO_3166_2_SOURCE}: install Debian's iso-codes (`cargo xtask setup`)")
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{ISO_3166_2_SOURCE} is not JSON"))?;
    let mut rows: Vec<(String, String)> = json["3166-2"]
        .as_array()
        .with_context(|| format!("{ISO_3166_2_SOURCE} has no \"3166-2\" list"))?
        .iter()
        .map(|entry| {
            let field = |name: &str| entry[name].as_str().unwrap_or_default().to_owned();
            (field("code"), field("name"))
        })
        .collect();
    rows.sort();
    if rows
        .iter()
        .any(|(code, name)| code.is_empty() || name.is_empty() || name.contains(['\t', '\n']))
    {
        bail!("{ISO_3166_2_SOURCE} has an entry without a code or name");
    }
    let body: String = rows
        .iter()
        .map(|(code, name)| format!("{code}\t{name}\n"))
        .collect();
    Ok(format!("# iso-codes {version}\n{body}"))
}

/// Regenerates everything the docs take from the code: the man pages and completions in
/// contrib/ (files the generator no longer writes are removed: those directories hold only
/// generated files), the exit-status table in docs/updates.md, and the subdivision table
/// from iso-codes.
fn docs() -> Result<()> {
    let root = workspace_root();
    std::fs::write(
        root.join(ISO_3166_2_TABLE),
        iso_3166_2_table(&iso_codes_version()?)?,
    )
    .with_context(|| format!("cannot write {ISO_3166_2_TABLE}"))?;
    let scratch = root.join("target/docs-gen");
    generate_docs(&scratch)?;
    for sub in ["man", "completions"] {
        let (from, to) = (scratch.join(sub), root.join(CONTRIB).join(sub));
        std::fs::create_dir_all(&to).with_context(|| format!("cannot create {}", to.display()))?;
        let generated = file_names(&from)?;
        for stale in file_names(&to)?.iter().filter(|f| !generated.contains(f)) {
            std::fs::remove_file(to.join(stale))
                .with_context(|| format!("cannot remove {}/{stale}", to.display()))?;
        }
        for file in &generated {
            std::fs::copy(from.join(file), to.join(file))
                .with_context(|| format!("cannot copy {file} into {}", to.display()))?;
        }
    }
    let page = root.join(EXIT_TABLE_PAGE);
    let text = std::fs::read_to_string(&page)
        .with_context(|| format!("cannot read {}", page.display()))?;
    let table = std::fs::read_to_string(scratch.join("exit-table.md"))
        .context("the docs generator wrote no exit-table.md")?;
    let spliced = splice_exit_table(&text, &table).with_context(|| EXIT_TABLE_PAGE)?;
    if spliced != text {
        std::fs::write(&page, spliced)
            .with_context(|| format!("cannot write {}", page.display()))?;
    }
    Ok(())
}

/// Runs the generator (the regionfilter-docs bin of the test kit, which links filter-user):
/// `man/`, `completions/` and `exit-table.md` under `dir`, emptied first.
fn generate_docs(dir: &std::path::Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    cargo(&[
        "run",
        "--quiet",
        "-p",
        "integration-tests",
        "--bin",
        "regionfilter-docs",
        "--",
        &dir.display().to_string(),
    ])
}

/// The names of the files in `dir`, sorted; none when it does not exist.
fn file_names(dir: &std::path::Path) -> Result<Vec<String>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    for entry in entries {
        files.push(entry?.file_name().to_string_lossy().into_owned());
    }
    files.sort();
    Ok(files)
}

/// `text` with the block between the exit-table markers replaced by `table`.
fn splice_exit_table(text: &str, table: &str) -> Result<String> {
    let Some(start) = text.find(EXIT_TABLE_START) else {
        bail!("no `{}` marker", EXIT_TABLE_START.trim_end());
    };
    let body = start + EXIT_TABLE_START.len();
    let Some(length) = text[body..].find(EXIT_TABLE_END) else {
        bail!(
            "no `{EXIT_TABLE_END}` after `{}`",
            EXIT_TABLE_START.trim_end()
        );
    };
    if text[body + length..].contains(EXIT_TABLE_START) {
        bail!("more than one exit table");
    }
    Ok(format!(
        "{}{table}{}",
        &text[..body],
        &text[body + length..]
    ))
}

/// Fails if the committed man pages, completions, exit table or subdivision table differ from
/// what the code (or iso-codes) generates now.
fn check_docs() -> Result<()> {
    let root = workspace_root();
    let table = std::fs::read_to_string(root.join(ISO_3166_2_TABLE))
        .with_context(|| format!("cannot read {ISO_3166_2_TABLE}"))?;
    // Only the release the table was taken from is compared: another Debian release's
    // iso-codes is news to act on, not a broken build.
    let version = iso_codes_version()?;
    let installed = format!("# iso-codes {version}\n");
    if !table.starts_with(&installed) {
        println!(
            "xtask lint: {ISO_3166_2_TABLE} is from {}, this machine has {}: not compared (`cargo xtask docs` takes this machine's)",
            table.lines().next().unwrap_or_default().trim_start_matches("# "),
            installed.trim().trim_start_matches("# ")
        );
    } else if table != iso_3166_2_table(&version)? {
        bail!("{ISO_3166_2_TABLE} differs from {ISO_3166_2_SOURCE}: run `cargo xtask docs` and commit the result");
    }
    let scratch = root.join("target/docs-check");
    generate_docs(&scratch)?;
    let stale = docs_diff(&scratch, &root.join(CONTRIB))?;
    if let Some(file) = stale {
        bail!("contrib/ is stale ({file} differs from the CLI's definition): run `cargo xtask docs` and commit the result");
    }
    let text = std::fs::read_to_string(root.join(EXIT_TABLE_PAGE))
        .with_context(|| format!("cannot read {EXIT_TABLE_PAGE}"))?;
    let table = std::fs::read_to_string(scratch.join("exit-table.md"))
        .context("the docs generator wrote no exit-table.md")?;
    if splice_exit_table(&text, &table).with_context(|| EXIT_TABLE_PAGE)? != text {
        bail!("{EXIT_TABLE_PAGE}'s exit table differs from filter_user::ops::exit::Exit: run `cargo xtask docs` and commit the result");
    }
    Ok(())
}

/// The first generated file that is missing, extra or different under `committed`.
fn docs_diff(generated: &std::path::Path, committed: &std::path::Path) -> Result<Option<String>> {
    let list = |root: &std::path::Path| -> Result<Vec<String>> {
        let mut files = Vec::new();
        for sub in ["man", "completions"] {
            for name in file_names(&root.join(sub))? {
                files.push(format!("{sub}/{name}"));
            }
        }
        files.sort();
        Ok(files)
    };
    let (new, old) = (list(generated)?, list(committed)?);
    if let Some(extra) = new
        .iter()
        .chain(&old)
        .find(|f| !new.contains(f) || !old.contains(f))
    {
        return Ok(Some(extra.clone()));
    }
    for file in &new {
        if std::fs::read(generated.join(file))? != std::fs::read(committed.join(file))? {
            return Ok(Some(file.clone()));
        }
    }
    Ok(None)
}

fn lint() -> Result<()> {
    check_layers()?;
    cargo(&["fmt", "--all", "--check"])?;
    cargo_on_host_crates(&["clippy", "--all-targets"], &["--", "-D", "warnings"])?;
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
    check_docs()
}

/// Fails on any module of filter-user that uses a layer above its own (see `layers.rs`).
fn check_layers() -> Result<()> {
    let upward = layers::upward_uses(std::path::Path::new("filter-user/src"))?;
    if upward.is_empty() {
        return Ok(());
    }
    for use_ in &upward {
        eprintln!("filter-user/src/{use_}");
    }
    bail!(
        "{} upward use(s) across filter-user's layers ({}, lowest first): move the code to its layer (ARCHITECTURE.md)",
        upward.len(),
        layers::LAYERS.join(" < ")
    )
}

/// Every crate that builds for the host; filter-ebpf only builds for the BPF target.
const HOST_CRATES: [&str; 4] = ["filter-common", "filter-user", "integration-tests", "xtask"];

/// `cargo ARGS -p CRATE... TRAILING` over [`HOST_CRATES`].
fn cargo_on_host_crates(args: &[&str], trailing: &[&str]) -> Result<()> {
    let packages = HOST_CRATES.iter().flat_map(|c| ["-p", c]);
    let all: Vec<&str> = args
        .iter()
        .copied()
        .chain(packages)
        .chain(trailing.iter().copied())
        .collect();
    cargo(&all)
}

fn cargo(args: &[&str]) -> Result<()> {
    let status = Command::new(cargo_path())
        .args(args)
        .status()
        .with_context(|| format!("cannot run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{count_before, docs_diff, splice_exit_table};

    #[test]
    fn the_exit_table_is_replaced_between_its_markers_only() {
        let page = "# Updates\n\nbefore\n<!-- exit-table:start -->\n| old |\n<!-- exit-table:end -->\n\nafter\n";
        let table = "| exit | meaning |\n|---|---|\n| 0 | ok |\n";
        let new = splice_exit_table(page, table).unwrap();
        assert_eq!(
            new,
            "# Updates\n\nbefore\n<!-- exit-table:start -->\n| exit | meaning |\n|---|---|\n| 0 | ok |\n<!-- exit-table:end -->\n\nafter\n"
        );
        // Up to date: splicing again changes nothing, which is what the check compares.
        assert_eq!(splice_exit_table(&new, table).unwrap(), new);
        assert!(splice_exit_table("no markers\n", table).is_err());
        assert!(splice_exit_table("<!-- exit-table:start -->\n| x |\n", table).is_err());
        let twice = format!("{new}{new}");
        assert!(splice_exit_table(&twice, table).is_err());
    }

    #[test]
    fn stale_docs_are_found_by_name() {
        let root = std::env::temp_dir().join(format!("xtask-docs-{}", std::process::id()));
        let (new, old) = (root.join("new"), root.join("old"));
        for dir in [&new, &old] {
            std::fs::create_dir_all(dir.join("man")).unwrap();
            std::fs::write(dir.join("man/regionfilter.1"), "same").unwrap();
        }
        assert_eq!(docs_diff(&new, &old).unwrap(), None);
        std::fs::write(new.join("man/regionfilter.1"), "changed").unwrap();
        assert_eq!(
            docs_diff(&new, &old).unwrap().as_deref(),
            Some("man/regionfilter.1")
        );
        std::fs::write(new.join("man/regionfilter.1"), "same").unwrap();
        std::fs::write(new.join("man/regionfilter-new.1"), "new verb").unwrap();
        assert_eq!(
            docs_diff(&new, &old).unwrap().as_deref(),
            Some("man/regionfilter-new.1")
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn reads_counts_from_cargo_summary_lines() {
        let ok =
            "ok. 13 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.87s";
        assert_eq!(count_before(ok, " passed"), 13);
        assert_eq!(count_before(ok, " failed"), 0);
        let bad = "FAILED. 5 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out";
        assert_eq!(count_before(bad, " passed"), 5);
        assert_eq!(count_before(bad, " failed"), 1);
    }
}
