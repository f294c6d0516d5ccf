//! `regionfilter agent`: keeps the configured interfaces filtered with fresh data, serves
//! metrics, and logs one structured line per event. It runs the operations the command line
//! runs (`ops`), so a filter the agent attaches is one `status`, `update` and `detach` know.
//!
//! Tasks, so that no promise waits behind network I/O:
//! - one [`worker`] per configured interface: its own refresh and retry timers, downloads and
//!   switches, so a slow download holds back only its own interface;
//! - the [`repair`] watch: every [`LOST_CHECK`] it asks the kernel whether each filter is still
//!   on the interface of its name, and puts a lost one back from its known-good copy (local
//!   files only);
//! - the supervisor (here): signals, reloads, stop;
//! - the metrics server ([`http`]) and the drop-sample logger ([`samples`]).
//!
//! Kernel changes go through [`Shared::switch`]: one at a time per interface, none started once
//! the agent is stopping, and a stop waits only for the ones under way.

pub mod config;
mod http;
pub mod log;
mod repair;
mod samples;
mod worker;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        Arc, Condvar, Mutex, MutexGuard, PoisonError,
    },
    time::Duration,
};

use anyhow::{Context as _, Result};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::{mpsc, Notify},
};

use self::{
    config::Config,
    log::{event, Level},
    worker::Worker,
};
use crate::{
    kernel::{
        maps::{hash_hex, FilterMaps},
        placement::{self, Condition},
    },
    model::iface::IfaceName,
    ops::{
        detach::detach,
        lock::{Busy, IfaceLock},
        metrics::DataFacts,
        privileges,
    },
    state::Layout,
};

/// How often the agent asks the kernel whether each filter is still on the interface of its
/// name (an interface deleted and re-created by a hotplug or a network restart, renamed, or a
/// detach by hand): a few syscalls per interface.
pub const LOST_CHECK: Duration = Duration::from_secs(5);

/// How long an operation of the agent waits for a command an operator runs on the same
/// interface.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// What the command line may override in the file.
#[derive(Debug, Default)]
pub struct Overrides {
    pub metrics_listen: Option<SocketAddr>,
    pub detach_on_exit: bool,
    pub json: bool,
}

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
}

pub struct Shared {
    pub layout: Layout,
    pub listen: SocketAddr,
    statuses: Mutex<BTreeMap<IfaceName, IfaceStatus>>,
    /// Bumped after every reconcile, so the sample logger follows attaches and reloads.
    pass: AtomicU64,
    /// Drop samples logged per second, as the current configuration says (0: none).
    log_samples: AtomicU32,
    /// SIGTERM or SIGINT arrived: no switch starts any more.
    stopping: AtomicBool,
    /// One gate per interface: its kernel changes (worker and repair) one at a time.
    gates: Mutex<BTreeMap<IfaceName, Arc<Mutex<()>>>>,
    /// Switches under way, for the stop to wait on.
    in_flight: Mutex<usize>,
    idle: Condvar,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn new(layout: Layout, config: &Config) -> Self {
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

    fn statuses(&self) -> MutexGuard<'_, BTreeMap<IfaceName, IfaceStatus>> {
        lock(&self.statuses)
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Runs `change` (a kernel change of `iface`) unless the agent is stopping: after any other
    /// change of the same interface by this agent, and counted, so a stop waits for it to end.
    /// `None` when the agent is stopping and nothing ran.
    fn switch<T>(&self, iface: &IfaceName, change: impl FnOnce() -> T) -> Option<T> {
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
    fn stop_switches(&self, limit: Duration) -> bool {
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
    fn filter_lost(&self, iface: &IfaceName) -> Result<Option<String>, String> {
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
    fn track(&self, iface: &IfaceName) {
        self.statuses().entry(iface.clone()).or_default();
    }

    /// Changes the status of `iface`, if it is still configured: a reconcile that ends after a
    /// reload dropped its interface leaves no status behind.
    fn set(&self, iface: &IfaceName, change: impl FnOnce(&mut IfaceStatus)) {
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
    fn reconciled(&self, iface: &IfaceName, trigger: &str) {
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
fn lost_reason(layout: &Layout, iface: &IfaceName, condition: &Condition) -> String {
    condition
        .problem(iface, &layout.pin_dir(iface))
        .unwrap_or_default()
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Runs until SIGTERM or SIGINT. Errors only for what stops it from starting.
pub fn run(layout: Layout, config_path: &Path, overrides: &Overrides) -> Result<()> {
    privileges::require_bpf_admin("agent")?;
    // Checked again by every attach and update (a limit lowered while it runs is a logged
    // failure); here so an agent that could only die at its first attach does not start.
    privileges::require_address_space("agent")?;
    // One agent per state directory: two would fight over the same filters.
    let lock_path = layout.agent_lock_file();
    let _instance = IfaceLock::acquire(&lock_path, Duration::ZERO).map_err(|e| {
        if e.downcast_ref::<Busy>().is_some() {
            anyhow::anyhow!(
                "another regionfilter agent is running for {} (it holds {})",
                layout.state_dir.display(),
                lock_path.display()
            )
        } else {
            e
        }
    })?;
    let mut config = Config::read(config_path)?;
    apply(&mut config, overrides);
    log::init(config.log_format);
    let shared = Arc::new(Shared::new(layout, &config));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(supervise(shared, config, config_path.to_owned(), overrides));
    // Downloads still under way are abandoned, not waited for: nothing they wrote is in use
    // until a switch, and no switch starts once stopping.
    runtime.shutdown_background();
    result
}

fn apply(config: &mut Config, overrides: &Overrides) {
    if let Some(listen) = overrides.metrics_listen {
        config.metrics_listen = listen;
    }
    config.detach_on_exit |= overrides.detach_on_exit;
    if overrides.json {
        config.log_format = config::LogFormat::Json;
    }
}

/// How long a stop waits for the switches under way (a switch waits at most [`LOCK_WAIT`] for
/// another command, and waits for locks end at once when stopping).
const STOP_WAIT: Duration = Duration::from_secs(120);

async fn supervise(
    shared: Arc<Shared>,
    config: Config,
    path: PathBuf,
    overrides: &Overrides,
) -> Result<()> {
    // Signals are taken before anything else, so a SIGTERM during the first pass is not lost.
    let mut hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let stop = Arc::new(Notify::new());
    {
        let (shared, stop) = (shared.clone(), stop.clone());
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            shared.stopping.store(true, Ordering::Relaxed);
            event(Level::Info, "stopping", &[("signal", &name)]);
            stop.notify_one();
        });
    }
    http::serve(shared.clone());
    let mut config = Arc::new(config);
    event(
        Level::Info,
        "started",
        &[
            ("config", &path.display()),
            ("interfaces", &config.interfaces.len()),
            ("metrics", &shared.listen),
        ],
    );
    for entry in &config.interfaces {
        shared.track(&entry.iface);
    }
    let sampler = samples::spawn(shared.clone());
    // At boot the pins are gone: every filter goes back from its known-good copy before any
    // download, and only then is the service ready (`Type=notify`).
    {
        let (shared, config) = (shared.clone(), config.clone());
        let _ = tokio::task::spawn_blocking(move || repair::restore_all(&shared, &config)).await;
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let (repairs_tx, mut repairs) = mpsc::unbounded_channel();
    let mut workers: BTreeMap<IfaceName, Worker> = config
        .interfaces
        .iter()
        .map(|entry| {
            let worker = Worker::spawn(&shared, &entry.iface, &config);
            (entry.iface.clone(), worker)
        })
        .collect();
    let watch = repair::spawn_watch(shared.clone(), config.clone(), repairs_tx);
    loop {
        tokio::select! {
            // A lost filter the watch could not put back from local files: its worker
            // reconciles it now, with the configured data.
            Some(iface) = repairs.recv() => {
                if let Some(worker) = workers.get(&iface) {
                    worker.repair();
                }
            }
            _ = hangup.recv() => {
                let Some(new) = reload(&shared, &config, &path, overrides) else { continue };
                config = new;
                watch.reconfigure(config.clone());
                let configured: Vec<&IfaceName> = config.interfaces.iter().map(|i| &i.iface).collect();
                // Workers of interfaces no longer configured end after what they are doing.
                workers.retain(|iface, _| configured.contains(&iface));
                shared.statuses().retain(|iface, _| configured.contains(&iface));
                for entry in &config.interfaces {
                    shared.track(&entry.iface);
                    match workers.get(&entry.iface) {
                        Some(worker) => worker.reload(&config),
                        None => {
                            let worker = Worker::spawn(&shared, &entry.iface, &config);
                            workers.insert(entry.iface.clone(), worker);
                        }
                    }
                }
            }
            () = stop.notified() => break,
        }
    }
    // The switches under way finish; downloads are abandoned; nothing new starts.
    let finished = {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || shared.stop_switches(STOP_WAIT))
            .await
            .unwrap_or(false)
    };
    if !finished {
        event(
            Level::Error,
            "stop_timeout",
            &[(
                "msg",
                &format!("a switch did not end within {STOP_WAIT:?}; stopping anyway"),
            )],
        );
    }
    drop(workers);
    let failed = if config.detach_on_exit {
        let (shared, to_detach) = (shared.clone(), config.clone());
        tokio::task::spawn_blocking(move || detach_all(&shared, &to_detach))
            .await
            .unwrap_or(config.interfaces.len())
    } else {
        0
    };
    let _ = tokio::task::spawn_blocking(move || sampler.join()).await;
    let total = config.interfaces.len();
    let filters = match (config.detach_on_exit, failed) {
        (false, _) => "left attached".to_owned(),
        (true, 0) => "detached".to_owned(),
        (true, n) => format!("detached {} of {total}", total - n),
    };
    event(
        if failed == 0 {
            Level::Info
        } else {
            Level::Error
        },
        "stopped",
        &[("filters", &filters)],
    );
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {total} filters could not be detached (see the detach_failed lines)"
        );
    }
    Ok(())
}

/// Reads the file again on SIGHUP; `None` (and the running configuration kept) when it is bad.
fn reload(
    shared: &Shared,
    config: &Config,
    path: &Path,
    overrides: &Overrides,
) -> Option<Arc<Config>> {
    let mut new = match Config::read(path) {
        Ok(new) => new,
        // A bad file changes nothing: the filters and the old configuration stay.
        Err(e) => {
            event(
                Level::Error,
                "config_error",
                &[("msg", &format!("{e:#}; keeping the running configuration"))],
            );
            return None;
        }
    };
    apply(&mut new, overrides);
    log::set_format(new.log_format);
    if new.metrics_listen != shared.listen {
        event(
            Level::Warning,
            "listen_unchanged",
            &[(
                "msg",
                &format!(
                    "metrics_listen changed to {}: restart the agent to move the listener from {}",
                    new.metrics_listen, shared.listen
                ),
            )],
        );
    }
    event(
        Level::Info,
        "reloaded",
        &[
            ("config", &path.display()),
            ("interfaces", &new.interfaces.len()),
        ],
    );
    // Taking a filter off is never a side effect of editing a file.
    for entry in &config.interfaces {
        if !new.interfaces.iter().any(|n| n.iface == entry.iface) {
            event(
                Level::Warning,
                "unmanaged",
                &[
                    ("iface", &entry.iface),
                    (
                        "msg",
                        &format!(
                            "no longer in the configuration: its filter stays attached and is no \
                             longer refreshed; `regionfilter detach --iface {}` removes it",
                            entry.iface
                        ),
                    ),
                ],
            );
        }
    }
    shared.log_samples.store(new.log_samples, Ordering::Relaxed);
    Some(Arc::new(new))
}

fn active_hash(layout: &Layout, iface: &IfaceName) -> Option<String> {
    let maps = FilterMaps::open_pinned(&layout.pin_dir(iface)).ok()?;
    Some(hash_hex(&maps.active_settings().ok()?.content_hash))
}

/// Detaches every configured interface; returns how many could not be detached.
fn detach_all(shared: &Shared, config: &Config) -> usize {
    let mut failed = 0;
    for entry in &config.interfaces {
        let iface = &entry.iface;
        // Nothing attached (the interface never came up): nothing to take off.
        if matches!(
            placement::condition(&shared.layout, iface),
            Ok(Condition::Absent)
        ) {
            continue;
        }
        match detach(&shared.layout, iface, LOCK_WAIT) {
            Ok(_) => event(Level::Info, "detached", &[("iface", iface)]),
            Err(e) => {
                failed += 1;
                event(
                    Level::Error,
                    "detach_failed",
                    &[("iface", iface), ("msg", &e)],
                );
            }
        }
    }
    failed
}
