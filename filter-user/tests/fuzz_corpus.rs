//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) and every input that once crashed
//! a target (`fuzz/regressions/<target>/`) through the target bodies, so `cargo xtask test`
//! catches a parser that panics again without nightly or cargo-fuzz.

use std::{
    fs,
    panic::{catch_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
};

use filter_user::fuzz_targets::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files in `dir`, sorted; none when it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `target` on every file, returning one line per file that made it panic.
fn replay(target: fn(&[u8]), files: &[PathBuf]) -> Vec<String> {
    let mut failures = Vec::new();
    for file in files {
        let bytes = fs::read(file).expect("readable corpus file");
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&bytes))) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failures.push(format!("{}: {message}", file.display()));
        }
    }
    failures
}

#[test]
fn every_corpus_and_regression_input_is_handled_without_a_panic() {
    let mut failures = Vec::new();
    for (name, target) in TARGETS {
        let corpus = inputs(&fuzz_dir().join("corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{name}/ is empty or missing: every target needs seed inputs"
        );
        let regressions = inputs(&fuzz_dir().join("regressions").join(name));
        failures.extend(replay(*target, &corpus));
        failures.extend(replay(*target, &regressions));
    }
    assert!(
        failures.is_empty(),
        "{} input(s) made a fuzz target panic:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_corpus_directory_and_target_file_belongs_to_a_target() {
    let known: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    for dir in ["corpus", "regressions"] {
        for entry in inputs_and_dirs(&fuzz_dir().join(dir)) {
            let name = entry.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                known.contains(&name.as_str()),
                "fuzz/{dir}/{name} names no target in filter_user::fuzz_targets::TARGETS"
            );
        }
    }
    let mut files: Vec<String> = inputs(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<String> = known.iter().map(|n| (*n).to_owned()).collect();
    expected.sort();
    assert_eq!(files, expected, "fuzz/fuzz_targets/*.rs and TARGETS differ");
}

fn inputs_and_dirs(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.expect("readable entry").path()).collect())
        .unwrap_or_default()
}
