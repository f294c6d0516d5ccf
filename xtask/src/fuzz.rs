//! `cargo xtask fuzz`: runs each cargo-fuzz target in `fuzz/` for a bounded time, one after the
//! other, and fails if any of them finds a crash, a timeout or a leak.
//!
//! libFuzzer writes the inputs it finds new coverage with into the first corpus directory it is
//! given: that is `fuzz/target/corpus/<target>/` (ignored by git), seeded from the committed
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`, so a run never grows the repository.
//! Each target's output goes to `fuzz/target/logs/<target>.log`; one summary line per target is
//! printed.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, Context as _, Result};

/// How long one input may run before libFuzzer calls it a hang, in seconds.
const INPUT_TIMEOUT: u64 = 10;

pub fn run(seconds: u64, only: Option<&str>) -> Result<()> {
    let root = super::workspace_root();
    let fuzz = root.join("fuzz");
    let targets = targets(&fuzz)?;
    let chosen: Vec<&String> = match only {
        Some(name) if targets.iter().any(|t| t == name) => {
            targets.iter().filter(|t| *t == name).collect()
        }
        Some(name) => bail!("no fuzz target {name}; targets: {}", targets.join(", ")),
        None => targets.iter().collect(),
    };
    cargo_fuzz_installed()?;
    let logs = fuzz.join("target/logs");
    fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let mut failed = Vec::new();
    for target in chosen {
        let summary = run_target(&root, target, seconds, &logs.join(format!("{target}.log")))?;
        println!("xtask fuzz: {target}: {summary}");
        if !summary.ok {
            failed.push(target.as_str());
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzzing found problems in {}: each crash input is in fuzz/artifacts/<target>/; copy \
             it into fuzz/regressions/<target>/ (replayed by `cargo xtask test`), fix the parser \
             and add a unit test",
            failed.join(", ")
        );
    }
    Ok(())
}

/// Target names: the file stems in `fuzz/fuzz_targets/`.
fn targets(fuzz: &Path) -> Result<Vec<String>> {
    let dir = fuzz.join("fuzz_targets");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| p.file_stem()?.to_str().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

/// Installs cargo-fuzz from crates.io unless `cargo fuzz` already runs.
fn cargo_fuzz_installed() -> Result<()> {
    let present = Command::new(super::cargo_path())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!("xtask fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)");
    let started = Instant::now();
    let status = Command::new(super::cargo_path())
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("cannot run cargo install")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed");
    }
    println!(
        "xtask fuzz: installed cargo-fuzz in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What one target's run came to, from libFuzzer's closing lines.
struct Summary {
    ok: bool,
    runs: Option<u64>,
    coverage: Option<String>,
    seconds: f64,
    log: PathBuf,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let runs = self
            .runs
            .map_or("? runs".to_owned(), |r| format!("{r} runs"));
        let coverage = self.coverage.as_deref().unwrap_or("no coverage line");
        let verdict = if self.ok { "ok" } else { "FAILED" };
        write!(
            f,
            "{verdict}: {runs} in {:.0} s; {coverage}; log {}",
            self.seconds,
            self.log.display()
        )
    }
}

/// `cargo +nightly fuzz run TARGET WORK SEEDS... -- -max_total_time=N`, output into `log`.
fn run_target(root: &Path, target: &str, seconds: u64, log: &Path) -> Result<Summary> {
    let fuzz = root.join("fuzz");
    let work = fuzz.join("target/corpus").join(target);
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let mut corpora = vec![work];
    for seeds in ["corpus", "regressions"] {
        let dir = fuzz.join(seeds).join(target);
        if dir.is_dir() {
            corpora.push(dir);
        }
    }
    let out = fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    println!("xtask fuzz: {target}: building and running for {seconds} s");
    let started = Instant::now();
    // `rustup run nightly` rather than `cargo +nightly`: CARGO may name a toolchain's own cargo,
    // which does not understand `+toolchain`.
    let status = Command::new("rustup")
        .args(["run", "nightly", "cargo", "fuzz", "run", "--fuzz-dir"])
        .arg(&fuzz)
        .arg(target)
        .args(&corpora)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT}"))
        .arg("-print_final_stats=1")
        .current_dir(root)
        // The fuzz crate's instrumented builds live in its own fuzz/target, never the workspace's.
        .env_remove("CARGO_TARGET_DIR")
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .context("cannot run rustup (is nightly installed? `cargo xtask setup`)")?;
    let text = fs::read_to_string(log).unwrap_or_default();
    // `Done 123456 runs in 61 second(s)` after a clean run; the final stats after a crash too.
    let done = text.lines().find_map(|l| {
        let (runs, rest) = l.strip_prefix("Done ")?.split_once(" runs in ")?;
        let secs = rest.split_whitespace().next()?;
        Some((runs.parse().ok()?, secs.parse().ok()?))
    });
    let runs = done.map(|(runs, _)| runs).or_else(|| {
        text.lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .and_then(|n| n.trim().parse().ok())
    });
    let coverage = text
        .lines()
        .rev()
        .find(|l| l.contains(" cov: "))
        .and_then(|l| l.split_once(" cov: "))
        .map(|(_, rest)| {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // `cov: 1234 ft: 5678 corp: 90/12Kb ...`
            match fields[..] {
                [cov, "ft:", ft, "corp:", corp, ..] => {
                    format!("coverage {cov} edges, {ft} features, corpus {corp}")
                }
                _ => format!("cov: {rest}"),
            }
        });
    let summary = Summary {
        ok: status.success(),
        runs,
        coverage,
        seconds: done.map_or_else(
            || started.elapsed().as_secs_f64(),
            |(_, secs): (u64, f64)| secs,
        ),
        log: log.to_owned(),
    };
    if !summary.ok {
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        eprintln!("xtask fuzz: {target}: last lines of its log:");
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
    }
    Ok(summary)
}
