//! `regionfilter agent`: keeps the configured interfaces filtered with fresh data, serves
//! metrics, and logs one structured line per event. It runs the operations the command line
//! runs (`ops`), so a filter the agent attaches is one `status`, `update` and `detach` know.

pub mod config;
mod http;
pub mod log;
mod samples;

use std::{
    collections::{hash_map::RandomState, BTreeMap},
    hash::{BuildHasher as _, Hasher as _},
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use anyhow::{Context as _, Result};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::Notify,
    time::{sleep_until, Instant},
};

use self::{
    config::{Config, DataSource, InterfaceConfig},
    log::{event, Level},
};
use crate::{
    kernel::{
        maps::{hash_hex, FilterMaps},
        netdev,
        pins::{self, PinState},
        placement::{self, Condition},
    },
    model::{iface::IfaceName, policy::Policy},
    ops::{
        attach::{attach, AttachRequest, Attached},
        detach::detach,
        download,
        inputs::{DataArgs, PolicyChange},
        known_good::KnownGood,
        lock::{Busy, IfaceLock},
        metrics::DataFacts,
        privileges,
        state::{unix_now, AttachState, Layout},
        update::{update, Guard, Outcome, Target},
        ErrorKind, OpError,
    },
};

/// How often the agent looks for filters lost since their last reconcile (an interface deleted
/// and re-created by a hotplug or a network restart, a detach by hand): a few syscalls per
/// interface.
const LOST_CHECK: Duration = Duration::from_secs(5);

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
    /// The index of the interface of this name when the last reconcile failed (`None`: there
    /// was none), so a failure for want of the interface is retried once it is back.
    pub ifindex_at_failure: Option<u32>,
}

pub struct Shared {
    pub layout: Layout,
    pub listen: SocketAddr,
    statuses: Mutex<BTreeMap<IfaceName, IfaceStatus>>,
    /// Bumped after every pass, so the sample logger follows attaches and reloads.
    pass: AtomicU64,
    /// Drop samples logged per second, as the current configuration says (0: none).
    log_samples: AtomicU32,
    /// SIGTERM or SIGINT arrived: a pass stops before its next interface.
    stopping: AtomicBool,
}

impl Shared {
    fn statuses(&self) -> std::sync::MutexGuard<'_, BTreeMap<IfaceName, IfaceStatus>> {
        self.statuses.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn snapshot(&self) -> Vec<(IfaceName, IfaceStatus)> {
        self.statuses()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Whether `iface` runs its intended content now, as the kernel says: the last reconcile
    /// succeeded, the filter is on the interface its name says, and its active content is the
    /// one that reconcile reached.
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
        Ok(match placement::condition(&self.layout, iface) {
            Ok(Condition::Filtering) => None,
            Ok(Condition::Moved(moved)) => Some(moved),
            Ok(Condition::Gone) => Some(format!(
                "the interface {iface} is gone (deleted or re-created): nothing filters it"
            )),
            Ok(_) => Some("no filter attached".to_owned()),
            Err(e) => return Err(format!("{e:#}")),
        })
    }

    /// Configured interfaces whose filter has been lost (see [`Shared::filter_lost`]) since
    /// their last reconcile succeeded, or since it failed while the interface of that name was
    /// another or none (a network restart deletes and re-creates it): a pass puts them right,
    /// where waiting for the next refresh would leave them open for up to a day.
    fn lost(&self) -> Vec<(IfaceName, String)> {
        self.snapshot()
            .into_iter()
            .filter(|(iface, status)| match &status.last_error {
                None => status.intended.is_some(),
                Some(_) => netdev::index(iface)
                    .ok()
                    .is_some_and(|now| Some(now) != status.ifindex_at_failure),
            })
            .filter_map(|(iface, _)| match self.filter_lost(&iface) {
                Ok(Some(why)) => Some((iface, why)),
                Ok(None) | Err(_) => None,
            })
            .collect()
    }

    /// Configured interfaces that do not run their intended content, and why.
    pub fn not_ready(&self) -> Vec<(IfaceName, String)> {
        self.snapshot()
            .into_iter()
            .filter_map(|(iface, status)| self.ready(&iface, &status).err().map(|why| (iface, why)))
            .collect()
    }

    fn set(&self, iface: &IfaceName, change: impl FnOnce(&mut IfaceStatus)) {
        change(self.statuses().entry(iface.clone()).or_default());
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
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Runs until SIGTERM or SIGINT. Errors only for what stops it from starting.
pub fn run(layout: Layout, config_path: &Path, overrides: &Overrides) -> Result<()> {
    privileges::require_bpf_admin("agent")?;
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
    let shared = Arc::new(Shared {
        layout,
        listen: config.metrics_listen,
        statuses: Mutex::new(BTreeMap::new()),
        pass: AtomicU64::new(0),
        log_samples: AtomicU32::new(config.log_samples),
        stopping: AtomicBool::new(false),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(main_loop(shared, config, config_path.to_owned(), overrides))
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

async fn main_loop(
    shared: Arc<Shared>,
    config: Config,
    path: PathBuf,
    overrides: &Overrides,
) -> Result<()> {
    // Signals are taken before anything else, so a SIGTERM during the first pass is not lost;
    // it is noticed at once, and a running pass stops before its next interface.
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
    let sampler = samples::spawn(shared.clone());
    // At boot the pins are gone: every filter goes back from its known-good copy before any
    // download, and only then is the service ready (`Type=notify`).
    {
        let (shared, config) = (shared.clone(), config.clone());
        let _ = tokio::task::spawn_blocking(move || restore_all(&shared, &config)).await;
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let mut ok = pass(&shared, &config, "start").await;
    let mut next = Instant::now() + next_wait(&config, ok);
    let mut watch = tokio::time::interval(LOST_CHECK);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !shared.stopping.load(Ordering::Relaxed) {
        tokio::select! {
            () = sleep_until(next) => {
                ok = pass(&shared, &config, if ok { "refresh" } else { "retry" }).await;
                next = Instant::now() + next_wait(&config, ok);
            }
            _ = watch.tick() => {
                let lost = {
                    let shared = shared.clone();
                    tokio::task::spawn_blocking(move || shared.lost()).await.unwrap_or_default()
                };
                if !lost.is_empty() {
                    for (iface, why) in &lost {
                        event(Level::Warning, "filter_lost", &[("iface", iface), ("msg", why)]);
                    }
                    ok = pass(&shared, &config, "repair").await;
                    if !ok {
                        next = next.min(Instant::now() + config.retry);
                    }
                }
            }
            _ = hangup.recv() => {
                match Config::read(&path) {
                    Ok(mut new) => {
                        apply(&mut new, overrides);
                        log::set_format(new.log_format);
                        if new.metrics_listen != shared.listen {
                            event(Level::Warning, "listen_unchanged", &[("msg", &format!(
                                "metrics_listen changed to {}: restart the agent to move the listener from {}",
                                new.metrics_listen, shared.listen))]);
                        }
                        event(Level::Info, "reloaded", &[("config", &path.display()), ("interfaces", &new.interfaces.len())]);
                        // Taking a filter off is never a side effect of editing a file.
                        for entry in &config.interfaces {
                            if !new.interfaces.iter().any(|n| n.iface == entry.iface) {
                                event(Level::Warning, "unmanaged", &[("iface", &entry.iface), ("msg", &format!(
                                    "no longer in the configuration: its filter stays attached and is no longer refreshed; `regionfilter detach --iface {}` removes it", entry.iface))]);
                            }
                        }
                        shared.log_samples.store(new.log_samples, Ordering::Relaxed);
                        config = Arc::new(new);
                        ok = pass(&shared, &config, "reload").await;
                        if !ok {
                            next = next.min(Instant::now() + config.retry);
                        }
                    }
                    // A bad file changes nothing: the filters and the old configuration stay.
                    Err(e) => event(Level::Error, "config_error", &[("msg", &format!("{e:#}; keeping the running configuration"))]),
                }
            }
            () = stop.notified() => break,
        }
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

/// The refresh interval plus up to `splay` at random, so a fleet does not refresh at once;
/// after a failure, the retry interval.
fn next_wait(config: &Config, ok: bool) -> Duration {
    if !ok {
        return config.retry;
    }
    let random = RandomState::new().build_hasher().finish();
    let splay_ms = u64::try_from(config.splay.as_millis()).unwrap_or(u64::MAX);
    config.refresh + Duration::from_millis(random.checked_rem(splay_ms).unwrap_or(0))
}

/// Reconciles every configured interface, one after the other; a failing one is logged and
/// never stops the rest. True when every one succeeded.
async fn pass(shared: &Arc<Shared>, config: &Arc<Config>, trigger: &'static str) -> bool {
    let (shared, config) = (shared.clone(), config.clone());
    let done = tokio::task::spawn_blocking(move || {
        {
            let configured: Vec<&IfaceName> = config.interfaces.iter().map(|i| &i.iface).collect();
            shared
                .statuses()
                .retain(|iface, _| configured.contains(&iface));
        }
        let mut ok = true;
        for entry in &config.interfaces {
            if shared.stopping.load(Ordering::Relaxed) {
                return false;
            }
            ok &= reconcile(&shared, &config, entry, trigger);
        }
        shared.pass.fetch_add(1, Ordering::Relaxed);
        let waiting = shared.not_ready();
        let total = config.interfaces.len();
        event(
            if waiting.is_empty() {
                Level::Info
            } else {
                Level::Warning
            },
            "reconciled",
            &[
                ("trigger", &trigger),
                ("ready", &(total - waiting.len())),
                ("of", &total),
            ],
        );
        ok
    })
    .await;
    done.unwrap_or_else(|e| {
        event(Level::Error, "pass_panicked", &[("msg", &e)]);
        false
    })
}

/// Puts back the known-good filter of every configured interface that has none attached.
fn restore_all(shared: &Shared, config: &Config) {
    for entry in &config.interfaces {
        restore_if_detached(&shared.layout, entry);
    }
}

/// What one reconcile did.
enum Done {
    Attached,
    Adopted,
    Unchanged,
    Updated { summary: String },
}

fn reconcile(shared: &Shared, config: &Config, entry: &InterfaceConfig, trigger: &str) -> bool {
    let iface = &entry.iface;
    let first = shared
        .statuses()
        .get(iface)
        .is_none_or(|s| s.intended.is_none());
    match reconcile_one(&shared.layout, config, entry, first) {
        Ok(done) => {
            let content = active_hash(&shared.layout, iface).unwrap_or_default();
            // Read here, on the pass's thread, so that no scrape waits for the artifact.
            shared.facts(iface, &content);
            shared.set(iface, |s| {
                s.intended = Some(content.clone());
                s.last_success = Some(unix_now());
                s.last_error = None;
            });
            let (name, summary) = match done {
                Done::Attached => ("attached", None),
                Done::Adopted => ("adopted", None),
                Done::Unchanged => ("unchanged", None),
                Done::Updated { summary } => ("updated", Some(summary)),
            };
            let content = short(&content);
            let mut fields: Vec<(&str, &dyn std::fmt::Display)> =
                vec![("iface", iface), ("content", &content)];
            if let Some(summary) = &summary {
                fields.push(("msg", summary));
            }
            event(Level::Info, name, &fields);
            warn_if_settings_differ(&shared.layout, entry);
            true
        }
        Err(err) => {
            let message = format!("{err}");
            let ifindex = netdev::index(iface).ok();
            shared.set(iface, |s| {
                s.failures += 1;
                s.last_error = Some(message.clone());
                s.ifindex_at_failure = ifindex;
            });
            let name = if matches!(trigger, "refresh" | "retry") {
                "refresh_failed"
            } else {
                "reconcile_failed"
            };
            let reason = err.kind().name();
            let mut fields: Vec<(&str, &dyn std::fmt::Display)> =
                vec![("iface", iface), ("reason", &reason), ("msg", &message)];
            // The agent never forces past a guard; a person decides.
            let hint = by_hand(&err, iface);
            if let Some(hint) = &hint {
                fields.push(("hint", hint));
            }
            event(Level::Error, name, &fields);
            false
        }
    }
}

/// What a refused pass tells the operator, in place of the CLI's "override with --force".
fn by_hand(err: &OpError, iface: &IfaceName) -> Option<String> {
    if !err.forceable() {
        return None;
    }
    Some(match err.kind() {
        ErrorKind::LockOut => format!(
            "retried until the config changes; list the peers in the policy's allow_cidrs, or \
             accept it by hand: regionfilter attach (or update) --iface {iface} with the \
             configured data and policy and --force"
        ),
        _ => format!(
            "retried until the data or config changes; to accept it by hand: regionfilter \
             update --iface {iface} with the configured data and policy and --force"
        ),
    })
}

fn reconcile_one(
    layout: &Layout,
    config: &Config,
    entry: &InterfaceConfig,
    first: bool,
) -> Result<Done, OpError> {
    // After a reboot the pins are gone: put the last known-good filter back before fetching
    // anything, so the host is protected while the data downloads.
    let restored = restore_if_detached(layout, entry);
    let data = data_args(layout, entry)?;
    if !pins::attached(&layout.pin_dir(&entry.iface)) {
        attach_entry(layout, entry, &data, entry.policy.clone())?;
        return Ok(Done::Attached);
    }
    let loaded = data.load().map_err(OpError::from)?;
    let target = Target::Update {
        data: Some(Box::new(loaded)),
        policy: entry
            .policy
            .clone()
            .map_or(PolicyChange::Keep, PolicyChange::Replace),
    };
    let guard = Guard {
        force: false,
        max_change: config.max_change,
        wait: LOCK_WAIT,
    };
    Ok(match update(layout, &entry.iface, &target, &guard)? {
        Outcome::Updated { summary, .. } => Done::Updated { summary },
        Outcome::Unchanged if first && !restored => Done::Adopted,
        Outcome::Unchanged => Done::Unchanged,
    })
}

/// Attaches `entry` as its configuration says, with `data` and `policy`.
fn attach_entry(
    layout: &Layout,
    entry: &InterfaceConfig,
    data: &DataArgs,
    policy: Option<Policy>,
) -> Result<Attached, OpError> {
    let request = AttachRequest {
        iface: &entry.iface,
        data,
        policy,
        mode: entry.mode,
        lookup: entry.lookup,
        wait: LOCK_WAIT,
        force: false,
    };
    attach(layout, &request)
}

/// Attaches `entry`'s known-good artifact (with the policy it carries) when no filter is
/// attached and there is one. Logs what happened; true when it restored.
fn restore_if_detached(layout: &Layout, entry: &InterfaceConfig) -> bool {
    let iface = &entry.iface;
    let known_good = KnownGood::new(&layout.lib_dir, iface);
    let path = known_good.current_path();
    if pins::attached(&layout.pin_dir(iface)) || !path.exists() {
        return false;
    }
    // Taken off by `detach`, not by a reboot: what comes back is what the file configures.
    if known_good.detached() {
        return false;
    }
    let data = DataArgs {
        artifact: Some(path.clone()),
        ..DataArgs::default()
    };
    match attach_entry(layout, entry, &data, None) {
        Ok(done) => {
            event(
                Level::Info,
                "restored",
                &[
                    ("iface", iface),
                    ("content", &short(&done.state.content_hash)),
                    ("from", &path.display()),
                ],
            );
            true
        }
        Err(e) => {
            event(
                Level::Warning,
                "restore_failed",
                &[("iface", iface), ("reason", &e.kind().name()), ("msg", &e)],
            );
            false
        }
    }
}

/// The data options for this refresh: local files as they are, downloads fetched first.
fn data_args(layout: &Layout, entry: &InterfaceConfig) -> Result<DataArgs, OpError> {
    let cache = layout.download_dir();
    let fetch = |url: &str, sha: Option<&str>| -> Result<PathBuf, OpError> {
        let fetched = download::fetch(&cache, url, sha).map_err(anyhow::Error::from)?;
        Ok(fetched.path().to_owned())
    };
    Ok(match &entry.source {
        DataSource::Files(data) => data.clone(),
        DataSource::Url {
            url,
            sha256_url,
            data,
        } => {
            let mut data = data.clone();
            data.db = vec![fetch(url, sha256_url.as_deref())?];
            data
        }
        DataSource::ArtifactUrl(url) => DataArgs {
            artifact: Some(fetch(url, None)?),
            ..DataArgs::default()
        },
    })
}

fn active_hash(layout: &Layout, iface: &IfaceName) -> Option<String> {
    let maps = FilterMaps::open_pinned(&layout.pin_dir(iface)).ok()?;
    Some(hash_hex(&maps.active_settings().ok()?.content_hash))
}

/// Mode and lookup are fixed at attach: say so when the running filter has others.
fn warn_if_settings_differ(layout: &Layout, entry: &InterfaceConfig) {
    let iface = &entry.iface;
    let Ok(state) = AttachState::load(&layout.state_file(iface)) else {
        return;
    };
    if state.mode != entry.mode.name() || state.lookup != entry.lookup {
        event(
            Level::Warning,
            "settings_differ",
            &[
                ("iface", iface),
                (
                    "msg",
                    &format!(
                        "runs in {} mode with {} lookup, the configuration says {} and {}: \
                         `regionfilter detach --iface {iface}`, then reload the agent, to change them",
                        state.mode,
                        state.lookup.name(),
                        entry.mode.name(),
                        entry.lookup.name()
                    ),
                ),
            ],
        );
    }
}

/// Detaches every configured interface; returns how many could not be detached.
fn detach_all(shared: &Shared, config: &Config) -> usize {
    let mut failed = 0;
    for entry in &config.interfaces {
        let iface = &entry.iface;
        // Nothing attached (the interface never came up): nothing to take off.
        if matches!(
            pins::inspect(&shared.layout.pin_dir(iface)),
            Ok(PinState::Absent)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{guards::Refusal, lockout::LockOut, update::Refused};

    fn op(err: impl std::error::Error + Send + Sync + 'static) -> OpError {
        OpError::from(anyhow::Error::from(err))
    }

    #[test]
    fn refusals_get_a_hint_for_the_person_and_nothing_else_does() {
        let refused = op(Refused(vec![Refusal::Empty]));
        let eth0: IfaceName = "eth0".parse().unwrap();
        assert!(by_hand(&refused, &eth0)
            .is_some_and(|h| h.contains("regionfilter update --iface eth0 with the configured")));
        let lockout = op(LockOut {
            iface: "eth0".parse().unwrap(),
            peers: Vec::new(),
            also: Vec::new(),
        });
        assert!(by_hand(&lockout, &eth0).is_some_and(|h| h.contains("allow_cidrs")));
        let busy = op(Busy {
            path: "/run/regionfilter/eth0.lock".into(),
            waited: Duration::from_secs(30),
        });
        assert_eq!(by_hand(&busy, &eth0), None);
    }
}
