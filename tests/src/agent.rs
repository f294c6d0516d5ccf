//! A `regionfilter agent` running inside a namespace, its log lines read as they come, and a
//! plain HTTP client for its endpoints.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    path::Path,
    process::{Child, Stdio},
    sync::mpsc::{self, Receiver},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::{cli::Instance, netns::NetNs};

/// How long any one expected log line may take.
pub const LINE_WAIT: Duration = Duration::from_secs(60);

/// The agent process; SIGKILLed on drop if still running (tests stop it with [`Agent::stop`]).
pub struct Agent {
    child: Child,
    lines: Receiver<String>,
    /// Every line read so far.
    pub log: Vec<String>,
}

impl Agent {
    pub fn start(inst: &Instance, ns: &NetNs, config: &Path, extra: &[&str]) -> Result<Self> {
        let mut args = vec!["agent", "--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut child = inst
            .command(Some(ns), &args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start regionfilter agent")?;
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            lines,
            log: Vec::new(),
        })
    }

    /// Reads lines until one contains every one of `parts`; returns it.
    pub fn wait_for(&mut self, parts: &[&str]) -> Result<String> {
        let deadline = Instant::now() + LINE_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if parts.iter().all(|p| line.contains(p)) {
                        return Ok(line);
                    }
                }
                Err(_) => bail!(
                    "no line with {parts:?} within {LINE_WAIT:?}; the agent said:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// The lines so far that contain `part`.
    #[must_use]
    pub fn lines_with(&self, part: &str) -> Vec<&String> {
        self.log.iter().filter(|l| l.contains(part)).collect()
    }

    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the agent has `path` open right now (it opens an interface's lock file before it
    /// waits for the lock): a state to wait for, where a sleep would guess.
    #[must_use]
    pub fn has_open(&self, path: &Path) -> bool {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", self.child.id())) else {
            return false;
        };
        fds.filter_map(Result::ok)
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(i32::try_from(self.child.id()).unwrap(), signal) };
    }

    /// SIGTERM, then the rest of the log until the process exits; returns its exit status.
    pub fn stop(mut self) -> Result<(std::process::ExitStatus, Vec<String>)> {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + LINE_WAIT;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.log.push(line);
        }
        let status = self.child.wait()?;
        Ok((status, std::mem::take(&mut self.log)))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on `addr` from inside `ns`: status code and body.
pub fn get(ns: &NetNs, addr: &str, path: &str) -> Result<(u16, String)> {
    let addr = addr.to_owned();
    let path = path.to_owned();
    ns.enter(move || -> Result<(u16, String)> {
        let mut stream = TcpStream::connect(&addr).with_context(|| format!("connect {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        let status = reply
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("not HTTP: {reply}"))?;
        let body = reply
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    })?
}
