//! The health gate's Prometheus rules: `promtool check rules` accepts
//! `contrib/prometheus/regionfilter-rules.yml`, and their unit tests in
//! `tests/promtool/regionfilter-rules.test.yml` pass under `promtool test rules`. No kernel
//! needed; promtool is Debian's prometheus package, which `cargo xtask setup` installs.

use std::{path::Path, process::Command};

/// `promtool ARGS FILE` (FILE relative to the repository root) must succeed; on failure the
/// test prints what promtool said.
fn promtool(args: &[&str], file: &str) {
    // This crate is `<repo>/tests`.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the repository");
    let path = repo.join(file);
    let out = Command::new("promtool")
        .args(args)
        .arg(&path)
        .output()
        .expect("promtool (cargo xtask setup installs Debian's prometheus package)");
    assert!(
        out.status.success(),
        "promtool {} {} failed ({}):\n{}{}",
        args.join(" "),
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_health_gate_rules_pass_promtool_check() {
    promtool(
        &["check", "rules"],
        "contrib/prometheus/regionfilter-rules.yml",
    );
}

#[test]
fn the_health_gate_rules_pass_their_unit_tests() {
    promtool(
        &["test", "rules"],
        "tests/promtool/regionfilter-rules.test.yml",
    );
}
