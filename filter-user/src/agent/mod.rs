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
mod release;
mod repair;
mod samples;
mod shared;
mod worker;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use anyhow::{Context as _, Result};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::{mpsc, Notify},
};

pub use self::shared::{IfaceStatus, Shared};
use self::{
    config::Config,
    log::{event, Level},
    shared::{active_hash, lock, lost_reason},
    worker::Worker,
};
use crate::{
    compile::artifact::short_hash as short,
    kernel::placement::{self, Condition},
    model::iface::IfaceName,
    ops::{
        detach::detach,
        lock::{Busy, IfaceLock},
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

/// Runs until SIGTERM or SIGINT. Errors only for what stops it from starting.
pub fn run(layout: Layout, config_path: &Path, overrides: &Overrides) -> Result<()> {
    privileges::require_bpf_admin("agent", true)?;
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
    let (config, workers, sampler) = start(&shared, config, &path).await;
    let config = serve_until_stop(
        &shared,
        config,
        workers,
        &path,
        overrides,
        &mut hangup,
        &stop,
    )
    .await;
    finish(&shared, &config, sampler).await
}

/// Serves metrics, puts every filter back from its known-good copy (then says ready) and
/// starts one worker per interface.
async fn start(
    shared: &Arc<Shared>,
    config: Config,
    path: &Path,
) -> (
    Arc<Config>,
    BTreeMap<IfaceName, Worker>,
    std::thread::JoinHandle<()>,
) {
    http::serve(shared.clone());
    let config = Arc::new(config);
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
    let workers: BTreeMap<IfaceName, Worker> = config
        .interfaces
        .iter()
        .map(|entry| {
            let worker = Worker::spawn(shared, &entry.iface, &config);
            (entry.iface.clone(), worker)
        })
        .collect();
    (config, workers, sampler)
}

/// Until a stop: repairs the watch hands over, and reloads on SIGHUP. Returns the
/// configuration in force at the stop.
async fn serve_until_stop(
    shared: &Arc<Shared>,
    mut config: Arc<Config>,
    mut workers: BTreeMap<IfaceName, Worker>,
    path: &Path,
    overrides: &Overrides,
    hangup: &mut tokio::signal::unix::Signal,
    stop: &Notify,
) -> Arc<Config> {
    let (repairs_tx, mut repairs) = mpsc::unbounded_channel();
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
                let Some(new) = reload(shared, &config, path, overrides) else { continue };
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
                            let worker = Worker::spawn(shared, &entry.iface, &config);
                            workers.insert(entry.iface.clone(), worker);
                        }
                    }
                }
            }
            () = stop.notified() => break,
        }
    }
    drop(workers);
    config
}

/// The stop: the switches under way finish (downloads are abandoned, nothing new starts),
/// filters are detached if configured, and the last line says what was left.
async fn finish(
    shared: &Arc<Shared>,
    config: &Arc<Config>,
    sampler: std::thread::JoinHandle<()>,
) -> Result<()> {
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
