//! One task per configured interface: it reconciles the interface at start, on its own refresh
//! and retry timers, on a reload and on a repair the watch asks for. Its downloads and
//! switches hold back no other interface, nor signals, nor the watch.

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher as _, Hasher as _},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use tokio::{
    sync::mpsc,
    task::JoinHandle,
    time::{sleep_until, Instant},
};

use super::{
    active_hash,
    config::{Config, DataSource, InterfaceConfig},
    log::{event, Level},
    release, repair, short, Shared, LOCK_WAIT,
};
use crate::{
    kernel::pins,
    model::{iface::IfaceName, policy::Policy},
    ops::{
        attach::{attach, AttachRequest, Attached},
        data_spec::DataSpec,
        download::{self, Expect, Limits},
        policy_spec::PolicyChange,
        update::{update, Guard, Outcome, Target},
        ErrorKind, OpError,
    },
    state::{AttachState, Layout},
    sys::time::unix_now,
};

enum Command {
    Reload(Arc<Config>),
    Repair,
}

/// The handle the supervisor keeps; dropping it ends the task after what it is doing.
pub struct Worker {
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A reconcile under way runs on a blocking thread and finishes (or, stopping, starts
        // no switch); only the timers end here.
        self.task.abort();
    }
}

impl Worker {
    pub fn spawn(shared: &Arc<Shared>, iface: &IfaceName, config: &Arc<Config>) -> Self {
        let (commands, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(shared.clone(), iface.clone(), config.clone(), rx));
        Self { commands, task }
    }

    pub fn reload(&self, config: &Arc<Config>) {
        let _ = self.commands.send(Command::Reload(config.clone()));
    }

    pub fn repair(&self) {
        let _ = self.commands.send(Command::Repair);
    }
}

async fn run(
    shared: Arc<Shared>,
    iface: IfaceName,
    mut config: Arc<Config>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut ok = reconcile_in_background(&shared, &config, &iface, "start").await;
    let mut next = Instant::now() + next_wait(&config, &iface, ok);
    while !shared.stopping() {
        let trigger = tokio::select! {
            () = sleep_until(next) => if ok { "refresh" } else { "retry" },
            command = commands.recv() => match command {
                None => return,
                Some(Command::Reload(new)) => { config = new; "reload" }
                Some(Command::Repair) => "repair",
            },
        };
        ok = reconcile_in_background(&shared, &config, &iface, trigger).await;
        next = match trigger {
            "refresh" | "retry" => Instant::now() + next_wait(&config, &iface, ok),
            // A reload or repair keeps the refresh time; a failure brings the retry closer.
            _ if ok => next,
            _ => next.min(Instant::now() + config.retry),
        };
    }
}

/// The refresh interval plus up to `splay` at random, so a fleet does not refresh at once
/// (for an interface that follows a release, its poll plus up to a tenth); after a failure,
/// the retry interval, no longer than the poll.
fn next_wait(config: &Config, iface: &IfaceName, ok: bool) -> Duration {
    let follows = config
        .interfaces
        .iter()
        .any(|e| &e.iface == iface && matches!(e.source, DataSource::Release(_)));
    let (interval, splay) = match &config.release {
        Some(release) if follows => (release.poll, release.poll / 10),
        _ => (config.refresh, config.splay),
    };
    if !ok {
        return config.retry.min(interval);
    }
    let random = RandomState::new().build_hasher().finish();
    let splay_ms = u64::try_from(splay.as_millis()).unwrap_or(u64::MAX);
    interval + Duration::from_millis(random.checked_rem(splay_ms).unwrap_or(0))
}

async fn reconcile_in_background(
    shared: &Arc<Shared>,
    config: &Arc<Config>,
    iface: &IfaceName,
    trigger: &'static str,
) -> bool {
    let (shared, config, iface) = (shared.clone(), config.clone(), iface.clone());
    let done = tokio::task::spawn_blocking(move || {
        let Some(entry) = config.interfaces.iter().find(|e| e.iface == iface) else {
            return true;
        };
        let ok = reconcile(&shared, &config, entry, trigger);
        if !shared.stopping() {
            shared.reconciled(&iface, trigger);
        }
        ok
    })
    .await;
    done.unwrap_or_else(|e| {
        event(Level::Error, "pass_panicked", &[("msg", &e)]);
        false
    })
}

/// What one reconcile did.
pub(super) enum Done {
    Attached(Vec<String>),
    Adopted,
    Unchanged(Vec<String>),
    Updated {
        summary: String,
        warnings: Vec<String>,
    },
    /// A release's stage leaves this node out: it keeps the filter it runs (the message says
    /// which release waits).
    NotInStage(String),
}

fn reconcile(shared: &Shared, config: &Config, entry: &InterfaceConfig, trigger: &str) -> bool {
    let iface = &entry.iface;
    let first = shared
        .statuses()
        .get(iface)
        .is_none_or(|s| s.intended.is_none());
    match reconcile_one(shared, config, entry, first) {
        Ok(None) => false,
        Ok(Some(done)) => {
            let content = active_hash(&shared.layout, iface).unwrap_or_default();
            // Read here, on the worker's thread, so that no scrape waits for the artifact.
            shared.facts(iface, &content);
            let (name, summary, warnings) = match done {
                Done::Attached(warnings) => ("attached", None, warnings),
                Done::Adopted => ("adopted", None, Vec::new()),
                Done::Unchanged(warnings) => ("unchanged", None, warnings),
                Done::Updated { summary, warnings } => ("updated", Some(summary), warnings),
                Done::NotInStage(waiting) => ("not_in_stage", Some(waiting), Vec::new()),
            };
            shared.set(iface, |s| {
                s.intended = Some(content.clone());
                s.last_success = Some(unix_now());
                s.last_error = None;
                s.warnings.clone_from(&warnings);
                s.lost = None;
                s.watched = true;
            });
            let content = short(&content);
            let mut fields: Vec<(&str, &dyn std::fmt::Display)> =
                vec![("iface", iface), ("content", &content)];
            if let Some(summary) = &summary {
                fields.push(("msg", summary));
            }
            event(Level::Info, name, &fields);
            for warning in &warnings {
                event(
                    Level::Warning,
                    "incomplete",
                    &[("iface", iface), ("msg", warning)],
                );
            }
            warn_if_settings_differ(&shared.layout, entry);
            // Filtering, but not all kept: tried again at the retry interval.
            warnings.is_empty()
        }
        Err(err) => {
            let message = format!("{err}");
            shared.set(iface, |s| {
                s.failures += 1;
                s.last_error = Some(message.clone());
            });
            let release_url = match &entry.source {
                DataSource::Release(url) => Some(url.as_str()),
                _ => None,
            };
            let refused = release_url
                .map(|_| release::refusal_reason(&err))
                .filter(|&r| r != "failed");
            let name = match refused {
                // A release that was not applied: nothing changed.
                Some(_) => "release_refused",
                None if matches!(trigger, "refresh" | "retry") => "refresh_failed",
                None => "reconcile_failed",
            };
            let reason = refused.unwrap_or_else(|| err.kind().name());
            let mut fields: Vec<(&str, &dyn std::fmt::Display)> =
                vec![("iface", iface), ("reason", &reason), ("msg", &message)];
            // The agent never forces past a guard; a person decides.
            let hint = by_hand(&err, iface, release_url);
            if let Some(hint) = &hint {
                fields.push(("hint", hint));
            }
            event(Level::Error, name, &fields);
            false
        }
    }
}

/// What a refused pass tells the operator, in place of the CLI's "override with --force".
fn by_hand(err: &OpError, iface: &IfaceName, release_url: Option<&str>) -> Option<String> {
    if !err.forceable() {
        return None;
    }
    if let Some(url) = release_url {
        return Some(format!(
            "retried until the release changes: publish a fixed release (a higher version), \
             or accept this one by hand: regionfilter update --iface {iface} --release-url \
             {url} --public-key KEY --force"
        ));
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

/// `Ok(None)`: the agent is stopping and nothing was changed.
fn reconcile_one(
    shared: &Shared,
    config: &Config,
    entry: &InterfaceConfig,
    first: bool,
) -> Result<Option<Done>, OpError> {
    let layout = &shared.layout;
    // After a reboot the pins are gone: put the last known-good filter back before fetching
    // anything, so the host is protected while the data downloads.
    let Some(restored) = shared.switch(&entry.iface, || repair::restore_if_detached(layout, entry))
    else {
        return Ok(None);
    };
    // Network I/O, outside the interface's gate: a repair never waits for it.
    let limits = Limits {
        cancel: Some(&shared.stopping),
        ca_file: config.ca_file.as_deref(),
        ..config.download
    };
    if let DataSource::Release(url) = &entry.source {
        return release::reconcile(shared, config, entry, url, &limits, first && !restored);
    }
    let data = data_args(layout, entry, &limits)?;
    let Some(done) = shared.switch(&entry.iface, || {
        if !pins::attached(&layout.pin_dir(&entry.iface)) {
            return attach_entry(layout, entry, &data, entry.policy.clone())
                .map(|a| Done::Attached(a.warnings));
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
            allow_older: false,
        };
        Ok(match update(layout, &entry.iface, &target, &guard)? {
            Outcome::Updated {
                summary, warnings, ..
            } => Done::Updated { summary, warnings },
            Outcome::Unchanged { warnings } if first && !restored && warnings.is_empty() => {
                Done::Adopted
            }
            Outcome::Unchanged { warnings } => Done::Unchanged(warnings),
        })
    }) else {
        return Ok(None);
    };
    done.map(Some)
}

/// Attaches `entry` as its configuration says, with `data` and `policy`.
pub(super) fn attach_entry(
    layout: &Layout,
    entry: &InterfaceConfig,
    data: &DataSpec,
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

/// The data options for this refresh: local files as they are, downloads fetched first.
fn data_args(
    layout: &Layout,
    entry: &InterfaceConfig,
    limits: &Limits<'_>,
) -> Result<DataSpec, OpError> {
    let cache = layout.download_dir();
    let fetch = |url: &str, sha: Option<&str>, expect| -> Result<PathBuf, OpError> {
        let fetched =
            download::fetch(&cache, url, sha, expect, limits).map_err(anyhow::Error::from)?;
        Ok(fetched.path().to_owned())
    };
    Ok(match &entry.source {
        DataSource::Files(data) => data.clone(),
        DataSource::Url {
            url,
            sha256_url,
            data,
        } => {
            let expect = Expect::Data {
                format: (data.format.len() == 1).then(|| data.format[0]),
                country_field: data.country_field,
            };
            let mut data = data.clone();
            data.db = vec![fetch(url, sha256_url.as_deref(), expect)?];
            data
        }
        DataSource::ArtifactUrl(url) => DataSpec {
            artifact: Some(fetch(url, None, Expect::Artifact)?),
            ..DataSpec::default()
        },
        // Reconciled by agent::release, never as plain data.
        DataSource::Release(url) => {
            return Err(anyhow::anyhow!("{url} is a release, not data").into());
        }
    })
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ops::{guards::Refusal, lock::Busy, lockout::LockOut, update::Refused};

    fn op(err: impl std::error::Error + Send + Sync + 'static) -> OpError {
        OpError::from(anyhow::Error::from(err))
    }

    #[test]
    fn refusals_get_a_hint_for_the_person_and_nothing_else_does() {
        let refused = op(Refused(vec![Refusal::Empty]));
        let eth0: IfaceName = "eth0".parse().unwrap();
        assert!(by_hand(&refused, &eth0, None)
            .is_some_and(|h| h.contains("regionfilter update --iface eth0 with the configured")));
        assert!(by_hand(&refused, &eth0, Some("https://r.example/stable"))
            .is_some_and(|h| h.contains("--release-url https://r.example/stable")));
        let lockout = op(LockOut {
            iface: "eth0".parse().unwrap(),
            peers: Vec::new(),
            also: Vec::new(),
        });
        assert!(by_hand(&lockout, &eth0, None).is_some_and(|h| h.contains("allow_cidrs")));
        let busy = op(Busy {
            path: "/run/regionfilter/eth0.lock".into(),
            waited: Duration::from_secs(30),
        });
        assert_eq!(by_hand(&busy, &eth0, None), None);
    }
}
