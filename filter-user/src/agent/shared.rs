//! What the agent's tasks share: each interface's status (for the metrics, readiness and the
//! watch), the switch gate (one kernel change at a time per interface, none once stopping),
//! and the facts of the loaded data.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        Arc, Condvar, Mutex, MutexGuard, PoisonError,
    },
    time::Duration,
};

use super::{
    config::Config,
    log::{event, Level},
};
use crate::{
    compile::artifact::short_hash as short,
    kernel::{
        maps::{hash_hex, FilterMaps},
        placement::{self, Condition},
    },
    model::iface::IfaceName,
    ops::{lock::IfaceLock, metrics::DataFacts, release::Manifest},
    state::Layout,
};

/// What the agent knows of one configured interface, shared with the metrics endpoint.
#[derive(Clone, Debug, Default)]
pub struct IfaceStatus {
    /// The content hash the configuration asks for, once reached.
    pub intended: Option<String>,
    pub last_success: Option<u64>,
    pub failures: u64,
    /// Facts about the data of a content hash, for the exposition.
    pub facts: Option<(String, DataFacts)>,
    pub last_error: Option<String>,
    /// What the last operation that succeeded could not do (no known-good copy written, no
    /// status record): the filter runs, but the interface is not ready until one succeeds
    /// without them.
    pub warnings: Vec<String>,
    /// The agent has had a filter on this interface (restored or reconciled): the watch keeps
    /// it there.
    pub watched: bool,
    /// The last lost filter the watch acted on: what the kernel showed, and the index of the
    /// interface of this name then. The same loss is not acted on twice; a new one is.
    pub lost: Option<(String, Option<u32>)>,
    /// What following a release channel saw (`release_url` only).
    pub release: ReleaseSeen,
}

/// What the agent saw at an interface's release URL since it started.
#[derive(Clone, Debug, Default)]
pub struct ReleaseSeen {
    /// The interface follows a release channel: its refusal counters start at zero.
    pub following: bool,
    /// The newest manifest that verified, and this node's position (0-999) in its rollout.
    pub published: Option<(Manifest, u16)>,
    /// When a manifest last verified (Unix seconds).
    pub last_check: Option<u64>,
    /// Releases refused, by reason (`expired`, `rollback`, ..., `download`).
    pub refusals: BTreeMap<&'static str, u64>,
}

pub struct Shared {
    pub layout: Layout,
    pub listen: SocketAddr,
    pub(super) statuses: Mutex<BTreeMap<IfaceName, IfaceStatus>>,
    /// Bumped after every reconcile, so the sample logger follows attaches and reloads.
    pub(super) pass: AtomicU64,
    /// Drop samples logged per second, as the current configuration says (0: none).
    pub(super) log_samples: AtomicU32,
    /// SIGTERM or SIGINT arrived: no switch starts any more.
    pub(super) stopping: AtomicBool,
    /// One gate per interface: its kernel changes (worker and repair) one at a time.
    pub(super) gates: Mutex<BTreeMap<IfaceName, Arc<Mutex<()>>>>,
    /// Switches under way, for the stop to wait on.
    pub(super) in_flight: Mutex<usize>,
    pub(super) idle: Condvar,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(super) fn new(layout: Layout, config: &Config) -> Self {
        Self {
            layout,
            listen: config.metrics_listen,
            statuses: Mutex::new(BTreeMap::new()),
            pass: AtomicU64::new(0),
            log_samples: AtomicU32::new(config.log_samples),
            stopping: AtomicBool::new(false),
            gates: Mutex::new(BTreeMap::new()),
            in_flight: Mutex::new(0),
            idle: Condvar::new(),
        }
    }

    pub(super) fn statuses(&self) -> MutexGuard<'_, BTreeMap<IfaceName, IfaceStatus>> {
        lock(&self.statuses)
    }

    pub(super) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Runs `change` (a kernel change of `iface`) unless the agent is stopping: after any other
    /// change of the same interface by this agent, and counted, so a stop waits for it to end.
    /// `None` when the agent is stopping and nothing ran.
    pub(super) fn switch<T>(&self, iface: &IfaceName, change: impl FnOnce() -> T) -> Option<T> {
        let gate = lock(&self.gates).entry(iface.clone()).or_default().clone();
        let _turn = lock(&gate);
        {
            let mut n = lock(&self.in_flight);
            if self.stopping() {
                return None;
            }
            *n += 1;
        }
        struct Done<'a>(&'a Shared);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                *lock(&self.0.in_flight) -= 1;
                self.0.idle.notify_all();
            }
        }
        let _done = Done(self);
        Some(change())
    }

    /// Marks the agent as stopping, makes waits for another command's lock give up, and waits
    /// (up to `limit`) for the switches under way to end; true when they did.
    pub(super) fn stop_switches(&self, limit: Duration) -> bool {
        let n = lock(&self.in_flight);
        self.stopping.store(true, Ordering::Relaxed);
        IfaceLock::cancel_waits();
        let (n, timeout) = self
            .idle
            .wait_timeout_while(n, limit, |n| *n > 0)
            .unwrap_or_else(PoisonError::into_inner);
        *n == 0 && !timeout.timed_out()
    }

    pub fn snapshot(&self) -> Vec<(IfaceName, IfaceStatus)> {
        self.statuses()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Whether `iface` runs its intended content now, as the kernel says: the last reconcile
    /// succeeded without warnings, the kernel's link holds the interface of that name here, and
    /// its active content is the one that reconcile reached.
    pub fn ready(&self, iface: &IfaceName, status: &IfaceStatus) -> Result<(), String> {
        if let Some(error) = &status.last_error {
            return Err(error.clone());
        }
        let Some(intended) = &status.intended else {
            return Err("not reconciled yet".to_owned());
        };
        if let Some(lost) = self.filter_lost(iface)? {
            return Err(lost);
        }
        if !status.warnings.is_empty() {
            return Err(status.warnings.join("; "));
        }
        let active = active_hash(&self.layout, iface).ok_or("cannot read the filter's maps")?;
        if &active == intended {
            Ok(())
        } else {
            Err(format!(
                "runs content {}, the configuration asks for {}",
                short(&active),
                short(intended)
            ))
        }
    }

    /// Why `iface`'s filter is not on the interface of that name now (its interface deleted or
    /// re-created, renamed or moved, or the filter detached), if it is not; an error when the
    /// pins cannot be read (out of file descriptors, say), which proves nothing lost.
    pub(super) fn filter_lost(&self, iface: &IfaceName) -> Result<Option<String>, String> {
        Ok(match placement::condition_here(&self.layout, iface) {
            Ok(Condition::Filtering) => None,
            Ok(condition) => Some(lost_reason(&self.layout, iface, &condition)),
            Err(e) => return Err(format!("{e:#}")),
        })
    }

    /// Configured interfaces that do not run their intended content, and why.
    pub fn not_ready(&self) -> Vec<(IfaceName, String)> {
        self.snapshot()
            .into_iter()
            .filter_map(|(iface, status)| self.ready(&iface, &status).err().map(|why| (iface, why)))
            .collect()
    }

    /// Starts keeping a status for `iface` (a configured interface).
    pub(super) fn track(&self, iface: &IfaceName) {
        self.statuses().entry(iface.clone()).or_default();
    }

    /// Changes the status of `iface`, if it is still configured: a reconcile that ends after a
    /// reload dropped its interface leaves no status behind.
    pub(super) fn set(&self, iface: &IfaceName, change: impl FnOnce(&mut IfaceStatus)) {
        if let Some(status) = self.statuses().get_mut(iface) {
            change(status);
        }
    }

    /// Facts about `iface`'s data at content `hash`, kept per hash: read from the known-good
    /// copy once for each new hash, whether the agent switched it or someone did by hand.
    pub fn facts(&self, iface: &IfaceName, hash: &str) -> Option<DataFacts> {
        let kept = self.statuses().get(iface).and_then(|s| s.facts.clone());
        if let Some((_, facts)) = kept.filter(|(h, _)| h == hash) {
            return Some(facts);
        }
        let facts = DataFacts::known_good(&self.layout, iface)?;
        self.set(iface, |s| s.facts = Some((hash.to_owned(), facts.clone())));
        Some(facts)
    }

    /// Logs the summary line after an interface's reconcile or repair, and lets the sample
    /// logger follow.
    pub(super) fn reconciled(&self, iface: &IfaceName, trigger: &str) {
        self.pass.fetch_add(1, Ordering::Relaxed);
        let total = self.statuses().len();
        let waiting = self.not_ready();
        event(
            if waiting.is_empty() {
                Level::Info
            } else {
                Level::Warning
            },
            "reconciled",
            &[
                ("iface", iface),
                ("trigger", &trigger),
                ("ready", &(total - waiting.len())),
                ("of", &total),
            ],
        );
    }
}

/// What an operator reads about a filter that does not filter the interface of its name.
pub(super) fn lost_reason(layout: &Layout, iface: &IfaceName, condition: &Condition) -> String {
    condition
        .problem(iface, &layout.pin_dir(iface))
        .unwrap_or_default()
}

pub(super) fn active_hash(layout: &Layout, iface: &IfaceName) -> Option<String> {
    let maps = FilterMaps::open_pinned(&layout.pin_dir(iface)).ok()?;
    Some(hash_hex(&maps.active_settings().ok()?.content_hash))
}
