//! Runs the real `regionfilter` binary with pin and state directories private to one test.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use crate::netns::{unique_name, NetNs};

/// Path of the binary: `$REGIONFILTER_BIN`, else the workspace's debug build (in
/// `$CARGO_TARGET_DIR` when cargo was given one, as `cargo test` passes it on).
#[must_use]
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("REGIONFILTER_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| fixture("../target"), |dir| fixture("..").join(dir));
    let path = target.join("debug/regionfilter");
    assert!(
        path.exists(),
        "{} missing: run the tests with `cargo xtask test`",
        path.display()
    );
    path
}

/// The workspace's fixture directory.
#[must_use]
pub fn fixture(relative: &str) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace");
    workspace.join("fixtures").join(relative)
}

/// A private pin root and state directory; removed on drop after detaching what is left.
pub struct Instance {
    pub pin_root: PathBuf,
    /// Inside a temporary directory of its own, and absent until a command (or the test)
    /// creates it, as on a fresh host.
    pub state_dir: PathBuf,
    /// The state directory's parent; removed on drop.
    _scratch: tempfile::TempDir,
}

impl Instance {
    #[must_use]
    pub fn new() -> Self {
        let name = unique_name("rftest");
        let scratch = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir()
            .expect("a temporary directory");
        Self {
            pin_root: PathBuf::from("/sys/fs/bpf").join(&name),
            state_dir: scratch.path().join("state"),
            _scratch: scratch,
        }
    }

    /// Known-good artifacts, inside the state directory so drop removes them too.
    #[must_use]
    pub fn lib_dir(&self) -> PathBuf {
        self.state_dir.join("lib")
    }

    /// `regionfilter ARGS` run inside `ns` (or the current namespace).
    #[must_use]
    pub fn command(&self, ns: Option<&NetNs>, args: &[&str]) -> Command {
        self.command_under(ns, &[], args)
    }

    /// `WRAPPER... regionfilter ARGS` (e.g. `setpriv --bounding-set=...`) inside `ns`.
    #[must_use]
    pub fn command_under(&self, ns: Option<&NetNs>, wrapper: &[&str], args: &[&str]) -> Command {
        let program: std::ffi::OsString = wrapper
            .first()
            .map_or_else(|| binary().into(), |w| (*w).into());
        let mut cmd = match ns {
            Some(ns) => ns.command(&program),
            None => Command::new(&program),
        };
        if !wrapper.is_empty() {
            cmd.args(&wrapper[1..]).arg(binary());
        }
        // The lock-out guard reads the caller's SSH session: tests set it explicitly.
        cmd.env_remove("SSH_CONNECTION")
            .env_remove("SSH_CLIENT")
            .env("REGIONFILTER_PIN_ROOT", &self.pin_root)
            .env("REGIONFILTER_STATE_DIR", &self.state_dir)
            .env("REGIONFILTER_LIB_DIR", self.lib_dir())
            .args(args);
        cmd
    }

    pub fn output(&self, ns: Option<&NetNs>, args: &[&str]) -> Result<Output> {
        let mut cmd = self.command(ns, args);
        cmd.output().with_context(|| format!("cannot run {cmd:?}"))
    }

    /// Runs with `input` on standard input.
    pub fn output_with_stdin(
        &self,
        ns: Option<&NetNs>,
        args: &[&str],
        input: &str,
    ) -> Result<Output> {
        use std::io::Write as _;
        let mut cmd = self.command(ns, args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("cannot run {cmd:?}"))?;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())?;
        Ok(child.wait_with_output()?)
    }

    /// Runs; returns the exit code and stdout followed by stderr.
    pub fn output_text(&self, ns: Option<&NetNs>, args: &[&str]) -> (i32, String) {
        let out = self.output(ns, args).expect("run regionfilter");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, ns: Option<&NetNs>, args: &[&str]) -> Result<String> {
        let out = self.output(ns, args)?;
        if !out.status.success() {
            bail!(
                "regionfilter {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `regionfilter attach --iface IFACE --db <MaxMind's test database> --mode skb POLICY...`
    /// inside `ns`, required to succeed; returns stdout.
    pub fn attach_test_db(&self, ns: &NetNs, iface: &str, policy: &[&str]) -> Result<String> {
        let mut args = vec![
            "attach",
            "--iface",
            iface,
            "--db",
            crate::consts::TEST_DB.as_str(),
            "--mode",
            "skb",
        ];
        args.extend_from_slice(policy);
        self.ok(Some(ns), &args)
    }

    /// Runs and requires failure; returns stderr.
    pub fn fails(&self, ns: Option<&NetNs>, args: &[&str]) -> Result<String> {
        let out = self.output(ns, args)?;
        if out.status.success() {
            bail!(
                "regionfilter {} succeeded but should have failed",
                args.join(" ")
            );
        }
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// `stats --json` for one interface.
    pub fn stats(&self, iface: &str) -> Result<serde_json::Value> {
        let out = self.ok(None, &["stats", "--iface", iface, "--json"])?;
        let json: serde_json::Value = serde_json::from_str(&out)?;
        Ok(json["interfaces"][0].clone())
    }

    /// Polls `stats` until `done` holds (the kernel counts asynchronously to the sender).
    pub fn wait_for_stats(
        &self,
        iface: &str,
        timeout: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value> {
        let mut stats = Ok(serde_json::Value::Null);
        crate::wait::wait_until(timeout, Duration::from_millis(20), || {
            stats = self.stats(iface);
            stats.as_ref().map_or(true, &done)
        });
        stats
    }

    /// Every pin directory still present under this instance's root.
    #[must_use]
    pub fn attached(&self) -> Vec<String> {
        std::fs::read_dir(&self.pin_root)
            .map(|dir| {
                dir.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Default for Instance {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Pins keep programs attached after the test: remove them whatever happened.
        let _ = std::fs::remove_dir_all(&self.pin_root);
        // `_scratch` removes the state directory.
    }
}

/// Counter of one country in `stats --json` output: (passed packets, dropped packets).
#[must_use]
pub fn country_counts(stats: &serde_json::Value, code: Option<&str>) -> (u64, u64) {
    (
        country_packets(stats, code, "passed"),
        country_packets(stats, code, "dropped"),
    )
}

/// Packets of one country's `verdict` (`passed`, `dropped`, `would_drop`) in `stats --json`
/// output; 0 when the country had no traffic.
#[must_use]
pub fn country_packets(stats: &serde_json::Value, code: Option<&str>, verdict: &str) -> u64 {
    stats["countries"]
        .as_array()
        .and_then(|entries| entries.iter().find(|c| c["country"].as_str() == code))
        .and_then(|c| c[verdict]["packets"].as_u64())
        .unwrap_or(0)
}
