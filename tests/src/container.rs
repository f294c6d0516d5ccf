//! podman with a storage private to one test, the image `cargo xtask image` built loaded
//! into it, and agents run the way the DaemonSet runs its pod.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::Mutex,
    time::Duration,
};

use anyhow::{ensure, Context as _, Result};

use crate::{
    cli::{fixture, Instance},
    netns::{unique_name, NetNs},
    wait::wait_until,
};

/// Where the agent listens inside a test namespace (the pod listens on the node's 9877).
pub const LISTEN: &str = "127.0.0.1:9877";
/// The capabilities the DaemonSet keeps (deploy/base/daemonset.yaml).
pub const CAPABILITIES: &str = "CAP_BPF,CAP_NET_ADMIN,CAP_PERFMON";
/// How long an agent may take to become ready, or a container to stop.
pub const CONTAINER_WAIT: Duration = Duration::from_secs(60);

/// The OCI archive `cargo xtask image` wrote: `$REGIONFILTER_IMAGE` (`cargo xtask test` sets
/// it), else the one in the workspace's target/image/.
fn built_image() -> Result<PathBuf> {
    if let Some(archive) = std::env::var_os("REGIONFILTER_IMAGE") {
        return Ok(PathBuf::from(archive));
    }
    let dir = fixture("../target/image");
    let mut archives: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(".oci.tar"))
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        archives.len() == 1,
        "{} holds {} image archives, not one: run `cargo xtask image` (or `cargo xtask test`, which builds it)",
        dir.display(),
        archives.len()
    );
    Ok(archives.remove(0))
}

/// What a test may change in how the pod runs; the default is the DaemonSet's.
pub struct PodSettings {
    pub capabilities: &'static str,
    pub seccomp_unconfined: bool,
}

impl Default for PodSettings {
    fn default() -> Self {
        Self {
            capabilities: CAPABILITIES,
            seccomp_unconfined: true,
        }
    }
}

/// A podman storage of one test's own; every container it started is removed on drop.
pub struct Podman {
    dir: tempfile::TempDir,
    started: Mutex<Vec<String>>,
    /// The image of `cargo xtask image`, loaded.
    pub image: String,
}

impl Podman {
    /// A private storage with the built image loaded.
    pub fn new() -> Result<Self> {
        let archive = built_image()?;
        let mut podman = Self {
            dir: tempfile::Builder::new().prefix("rfpodman-").tempdir()?,
            started: Mutex::new(Vec::new()),
            image: String::new(),
        };
        let loaded = podman.ok(&["load", "--quiet", "--input", path_str(&archive)?])?;
        podman.image = loaded
            .lines()
            .find_map(|l| l.strip_prefix("Loaded image: "))
            .with_context(|| format!("podman load named no image: {loaded}"))?
            .trim()
            .to_owned();
        Ok(podman)
    }

    /// `podman ARGS` on this storage, with the shared settings (tests/podman/containers.conf).
    #[must_use]
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("podman");
        command
            .env(
                "CONTAINERS_CONF",
                fixture("../tests/podman/containers.conf"),
            )
            .arg("--root")
            .arg(self.dir.path().join("storage"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        command
    }

    pub fn output(&self, args: &[&str]) -> Result<Output> {
        let mut command = self.command(args);
        command
            .output()
            .with_context(|| format!("cannot run {command:?}"))
    }

    /// Runs `podman ARGS`; its standard output, or an error with both outputs.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.output(args)?;
        ensure!(
            out.status.success(),
            "podman {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// A second image: the loaded one with `LABEL key=value` added, tagged `tag`.
    pub fn derive(&self, tag: &str, label: &str) -> Result<String> {
        let context = self.dir.path().join(format!("context-{tag}"));
        std::fs::create_dir_all(&context)?;
        std::fs::write(
            context.join("Containerfile"),
            format!("FROM {}\nLABEL {label}\n", self.image),
        )?;
        let name = format!("localhost/regionfilter:{tag}");
        self.ok(&[
            "build",
            "--quiet",
            "--pull=never",
            "--tag",
            &name,
            path_str(&context)?,
        ])?;
        Ok(name)
    }

    /// Starts `image` detached as the DaemonSet's pod runs it: in `ns` (for the host's
    /// network namespace), with only the three capabilities, a read-only root, no privilege
    /// escalation, bpffs and the instance's state and lib directories bind-mounted where the
    /// pod mounts the host's, and `config_dir` as /etc/regionfilter. Returns its name.
    pub fn start_agent(
        &self,
        image: &str,
        ns: &NetNs,
        inst: &Instance,
        config_dir: &Path,
    ) -> Result<String> {
        self.start_agent_with(image, ns, inst, config_dir, &PodSettings::default())
    }

    /// [`Podman::start_agent`] with other capabilities or seccomp than the pod's.
    pub fn start_agent_with(
        &self,
        image: &str,
        ns: &NetNs,
        inst: &Instance,
        config_dir: &Path,
        settings: &PodSettings,
    ) -> Result<String> {
        let name = unique_name("rfagent");
        let seccomp = if settings.seccomp_unconfined {
            "seccomp=unconfined"
        } else {
            // podman's default profile, as a runtime's RuntimeDefault.
            "seccomp=/usr/share/containers/seccomp.json"
        };
        std::fs::create_dir_all(inst.lib_dir())?;
        let network = format!("ns:{}", ns.path().display());
        // bpffs as the pod mounts it: HostToContainer propagation is rslave.
        let mounts = [
            ("/sys/fs/bpf".into(), "/sys/fs/bpf:rslave"),
            (inst.state_dir.clone(), "/run/regionfilter"),
            (inst.lib_dir(), "/var/lib/regionfilter"),
        ];
        let mut args: Vec<String> = [
            "run",
            "--detach",
            "--name",
            &name,
            "--network",
            &network,
            "--cap-drop",
            "all",
            "--cap-add",
            settings.capabilities,
            // As the DaemonSet: runtimes' default profiles allow bpf(2) only with
            // CAP_SYS_ADMIN (docs/container.md).
            "--security-opt",
            seccomp,
            "--security-opt",
            "apparmor=unconfined",
            "--security-opt",
            "no-new-privileges",
            // readOnlyRootFilesystem: no writable /run, /tmp or /var/tmp either, which
            // podman's --read-only would otherwise add.
            "--read-only",
            "--read-only-tmpfs=false",
            "--env",
            &format!("REGIONFILTER_PIN_ROOT={}", inst.pin_root.display()),
            "--env",
            "REGIONFILTER_NODE=node-1",
        ]
        .map(String::from)
        .into();
        for (host, inside) in mounts {
            args.extend(["--volume".into(), format!("{}:{inside}", host.display())]);
        }
        args.extend([
            "--volume".into(),
            format!("{}:/etc/regionfilter:ro", config_dir.display()),
            image.into(),
        ]);
        self.started.lock().unwrap().push(name.clone());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&args)?;
        Ok(name)
    }

    /// The container's log so far (the agent logs to standard error).
    pub fn logs(&self, name: &str) -> Result<String> {
        let out = self.output(&["logs", name])?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// Polls the log until a line holds every one of `parts`; that line.
    pub fn wait_for_line(&self, name: &str, parts: &[&str]) -> Result<String> {
        let mut found = None;
        let mut log = String::new();
        wait_until(CONTAINER_WAIT, Duration::from_millis(50), || {
            log = self.logs(name).unwrap_or_default();
            found = log
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
                .map(str::to_owned);
            found.is_some()
        });
        found.with_context(|| format!("no line with {parts:?} from {name}; its log:\n{log}"))
    }

    /// `podman stop`: SIGTERM, then waits for the container to exit; its exit code.
    pub fn stop(&self, name: &str) -> Result<i32> {
        self.ok(&["stop", "--time", "60", name])?;
        self.exit_code(name)
    }

    /// The host PID of the container's process (the agent): signals sent to it straight
    /// from the test land at once, without a `podman kill` process in between.
    pub fn pid(&self, name: &str) -> Result<i32> {
        let pid = self.ok(&["inspect", "--format", "{{.State.Pid}}", name])?;
        pid.parse()
            .with_context(|| format!("podman inspect printed pid {pid:?}"))
    }

    /// Waits for the container to exit; its exit code.
    pub fn exit_code(&self, name: &str) -> Result<i32> {
        let code = self.ok(&["wait", name])?;
        code.parse()
            .with_context(|| format!("podman wait printed {code:?}"))
    }

    /// Every path in `image` (files, directories, links), relative to its root, sorted.
    pub fn image_paths(&self, image: &str) -> Result<Vec<String>> {
        let root = PathBuf::from(self.ok(&["image", "mount", image])?);
        let mut paths = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() && !path.is_symlink() {
                    dirs.push(path.clone());
                }
                let relative = path.strip_prefix(&root)?.display().to_string();
                paths.push(relative);
            }
        }
        self.ok(&["image", "unmount", image])?;
        paths.sort();
        Ok(paths)
    }

    /// `podman image inspect` as JSON.
    pub fn inspect(&self, image: &str) -> Result<serde_json::Value> {
        let text = self.ok(&["image", "inspect", image])?;
        let json: serde_json::Value = serde_json::from_str(&text)?;
        Ok(json[0].clone())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for name in self.started.lock().unwrap().iter() {
            let _ = self.output(&["rm", "--force", "--time", "0", name]);
        }
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}
