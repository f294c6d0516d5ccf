//! Network namespaces and veth pairs that remove themselves on drop, even when a test fails.
//!
//! Traffic only ever flows between the two ends of a veth pair that both live in namespaces
//! created here, and neither namespace has a route anywhere else.

use std::{
    fs::File,
    net::IpAddr,
    os::fd::AsRawFd as _,
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    thread,
};

use anyhow::{bail, Context as _, Result};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process and call, e.g. `rf1234x3` (interface names max 15 bytes).
#[must_use]
pub fn unique_name(prefix: &str) -> String {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{id}", std::process::id() % 100_000)
}

/// Runs a command to completion and fails with its stderr when it fails.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct NetNs {
    name: String,
}

impl NetNs {
    pub fn new(prefix: &str) -> Result<Self> {
        let name = unique_name(prefix);
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's file, for `nsenter --net=` (unlike `ip netns exec`, it keeps bpffs pins visible).
    #[must_use]
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip -n NAME args...`
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A command that runs `program` inside this namespace.
    #[must_use]
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path().display()))
            .arg(program);
        cmd
    }

    /// Runs `f` on a thread that has entered this namespace; sockets it creates stay in it.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let file = File::open(self.path())
            .with_context(|| format!("cannot open {}", self.path().display()))?;
        thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: setns on a valid namespace fd changes only this thread's namespace.
                    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(std::io::Error::last_os_error()).context("setns");
                    }
                    Ok(f())
                })
                .join()
                .map_err(|_| anyhow::anyhow!("thread inside namespace panicked"))?
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace also destroys the veth ends inside it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Receiver address on the receiver's veth end (TEST-NET-2 / documentation prefix).
pub const RECEIVER_V4: &str = "198.51.100.1";
pub const RECEIVER_V6: &str = "2001:db8:ffff::1";

/// Two namespaces joined by a veth pair: the sender's end and the receiver's end, where the
/// filter is attached. Static neighbour entries, so no ARP or ND is needed (or filtered).
pub struct VethPair {
    // Field order: namespaces drop last, after nothing else needs them.
    pub sender_if: String,
    pub receiver_if: String,
    pub sender: NetNs,
    pub receiver: NetNs,
}

impl VethPair {
    pub fn new(tag: &str) -> Result<Self> {
        let sender = NetNs::new(&format!("rf{tag}s"))?;
        let receiver = NetNs::new(&format!("rf{tag}r"))?;
        let sender_if = unique_name("rfs");
        let receiver_if = unique_name("rfr");
        run(Command::new("ip").args([
            "link",
            "add",
            &sender_if,
            "netns",
            sender.name(),
            "type",
            "veth",
            "peer",
            "name",
            &receiver_if,
            "netns",
            receiver.name(),
        ]))?;
        let pair = Self {
            sender_if,
            receiver_if,
            sender,
            receiver,
        };
        let (s, r) = (&pair.sender_if, &pair.receiver_if);
        pair.sender.ip(&["link", "set", s, "up"])?;
        pair.receiver.ip(&["link", "set", r, "up"])?;
        pair.receiver
            .ip(&["addr", "add", &format!("{RECEIVER_V4}/24"), "dev", r])?;
        pair.receiver.ip(&[
            "addr",
            "add",
            &format!("{RECEIVER_V6}/64"),
            "dev",
            r,
            "nodad",
        ])?;
        // Replies and reverse-path checks stay on the veth: the namespace has no other interface.
        pair.receiver.ip(&["route", "add", "default", "dev", r])?;
        pair.receiver
            .ip(&["-6", "route", "add", "default", "dev", r])?;
        pair.sender
            .ip(&["route", "add", "198.51.100.0/24", "dev", s])?;
        pair.sender
            .ip(&["-6", "route", "add", "2001:db8:ffff::/64", "dev", s])?;
        let receiver_mac = pair.receiver.mac(r)?;
        for (family, addr) in [("-4", RECEIVER_V4), ("-6", RECEIVER_V6)] {
            pair.sender.ip(&[
                family,
                "neigh",
                "add",
                addr,
                "lladdr",
                &receiver_mac,
                "dev",
                s,
                "nud",
                "permanent",
            ])?;
        }
        Ok(pair)
    }

    /// Gives the sender a source address to send from.
    pub fn add_source(&self, addr: IpAddr) -> Result<()> {
        let (cidr, extra): (String, &[&str]) = match addr {
            IpAddr::V4(a) => (format!("{a}/32"), &[]),
            IpAddr::V6(a) => (format!("{a}/128"), &["nodad"]),
        };
        let mut args = vec!["addr", "add", &cidr, "dev", &self.sender_if];
        args.extend_from_slice(extra);
        self.sender.ip(&args).map(drop)
    }

    /// Sets the MTU of both ends.
    pub fn set_mtu(&self, mtu: u32) -> Result<()> {
        let mtu = mtu.to_string();
        self.sender
            .ip(&["link", "set", &self.sender_if, "mtu", &mtu])?;
        self.receiver
            .ip(&["link", "set", &self.receiver_if, "mtu", &mtu])
            .map(drop)
    }
}

impl NetNs {
    /// Adds a veth named `name`, up, whose peer (a unique name) stays in this namespace too:
    /// an interface to filter, or to re-create, that carries no traffic.
    pub fn add_veth(&self, name: &str) -> Result<()> {
        let peer = unique_name("rfq");
        self.ip(&["link", "add", name, "type", "veth", "peer", "name", &peer])?;
        self.ip(&["link", "set", name, "up"]).map(drop)
    }

    /// The MAC address of `iface` in this namespace.
    pub fn mac(&self, iface: &str) -> Result<String> {
        let out = self.ip(&["-j", "link", "show", iface])?;
        let json: serde_json::Value = serde_json::from_str(&out)?;
        json[0]["address"]
            .as_str()
            .map(str::to_owned)
            .context("no MAC address in `ip -j link show`")
    }
}
