//! Reading Prometheus exposition text in tests: one series' value, and `promtool check
//! metrics` on the whole text.

use std::{
    io::Write as _,
    process::{Command, Stdio},
};

/// The value of the series `name{labels}` (labels exactly as written), if present.
#[must_use]
pub fn series(text: &str, name: &str, labels: &str) -> Option<u64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().expect("an integer value"))
}

/// `promtool check metrics` on `text`: `Err` with promtool's words when it objects.
pub fn promtool_check(text: &str) -> Result<(), String> {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (cargo xtask setup installs Debian's prometheus package)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}
