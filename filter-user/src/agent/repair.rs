//! Putting lost filters back from local files: at start (a reboot took the pins) and whenever
//! the watch sees a filter that no longer filters the interface of its name. Nothing here
//! touches the network, so a repair never waits for a download.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::{
    config::{Config, InterfaceConfig},
    lock,
    log::{event, Level},
    lost_reason, short,
    worker::attach_entry,
    Shared, LOCK_WAIT, LOST_CHECK,
};
use crate::{
    compile::artifact::Artifact,
    kernel::{
        netdev, pins,
        placement::{self, Condition},
    },
    model::iface::IfaceName,
    ops::{data_spec::DataSpec, detach::detach, known_good::KnownGood},
    state::Layout,
};

/// Puts back the known-good filter of every configured interface that has none attached.
pub fn restore_all(shared: &Shared, config: &Config) {
    for entry in &config.interfaces {
        let restored = shared.switch(&entry.iface, || restore_if_detached(&shared.layout, entry));
        if restored == Some(true) {
            // Watched from now on, even while downloads for its first pass fail.
            shared.set(&entry.iface, |s| s.watched = true);
        }
    }
}

/// Attaches `entry`'s known-good data when no filter is attached and there is a usable copy:
/// the current one, else the previous one (a damaged copy is skipped, and said so). The
/// policy is the configured one when the configuration names one, so a copy written under
/// another configuration never judges this interface by a policy it no longer has. Logs what
/// happened; true when it restored.
pub fn restore_if_detached(layout: &Layout, entry: &InterfaceConfig) -> bool {
    let iface = &entry.iface;
    let known_good = KnownGood::new(&layout.lib_dir, iface);
    if pins::attached(&layout.pin_dir(iface)) || !known_good.current_path().exists() {
        return false;
    }
    // Taken off by `detach`, not by a reboot: what comes back is what the file configures.
    if known_good.detached() {
        return false;
    }
    for path in [known_good.current_path(), known_good.previous_path()] {
        if !path.exists() {
            continue;
        }
        if let Err(e) = Artifact::read(&path) {
            event(
                Level::Warning,
                "restore_skipped",
                &[("iface", iface), ("from", &path.display()), ("msg", &e)],
            );
            continue;
        }
        let data = DataSpec {
            artifact: Some(path.clone()),
            ..DataSpec::default()
        };
        match attach_entry(layout, entry, &data, entry.policy.clone()) {
            Ok(done) => {
                let policy = if entry.policy.is_some() {
                    "configured"
                } else {
                    "the copy's"
                };
                event(
                    Level::Info,
                    "restored",
                    &[
                        ("iface", iface),
                        ("content", &short(&done.state.content_hash)),
                        ("from", &path.display()),
                        ("policy", &policy),
                    ],
                );
                for warning in &done.warnings {
                    event(
                        Level::Warning,
                        "incomplete",
                        &[("iface", iface), ("msg", warning)],
                    );
                }
                return true;
            }
            Err(e) => {
                event(
                    Level::Warning,
                    "restore_failed",
                    &[
                        ("iface", iface),
                        ("from", &path.display()),
                        ("reason", &e.kind().name()),
                        ("msg", &e),
                    ],
                );
                return false;
            }
        }
    }
    false
}

/// The watch: a task that checks every [`LOST_CHECK`] and repairs on a blocking thread of its
/// own. What it cannot put back from local files it sends to `repairs`, for the interface's
/// worker.
pub struct Watch {
    config: Arc<Mutex<Arc<Config>>>,
}

impl Watch {
    pub fn reconfigure(&self, config: Arc<Config>) {
        *lock(&self.config) = config;
    }
}

pub fn spawn_watch(
    shared: Arc<Shared>,
    config: Arc<Config>,
    repairs: mpsc::UnboundedSender<IfaceName>,
) -> Watch {
    let config = Arc::new(Mutex::new(config));
    let watched = config.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(LOST_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (shared, config) = (shared.clone(), lock(&watched).clone());
            let check = tokio::task::spawn_blocking(move || check(&shared, &config)).await;
            match check {
                Ok(to_worker) => {
                    for iface in to_worker {
                        let _ = repairs.send(iface);
                    }
                }
                // Never silent: a check that panicked proves nothing, and says so.
                Err(e) => event(Level::Error, "watch_failed", &[("msg", &e)]),
            }
        }
    });
    Watch { config }
}

/// One look at every configured interface the agent has filtered: a filter that no longer
/// filters the interface of its name is logged (`filter_lost`) once per loss, and put back
/// from its known-good copy when an interface of that name exists. Returns the interfaces
/// whose worker must reconcile them instead (no usable copy, or one detached on purpose).
fn check(shared: &Shared, config: &Config) -> Vec<IfaceName> {
    let mut to_worker = Vec::new();
    for entry in &config.interfaces {
        let iface = &entry.iface;
        // Only what the watch needs: the whole status holds the data's facts too.
        let Some(lost) = shared
            .statuses()
            .get(iface)
            .filter(|s| s.watched)
            .map(|s| s.lost.clone())
        else {
            // Not configured, or never filtered by this agent: its worker is attaching it.
            continue;
        };
        let condition = match placement::condition_here(&shared.layout, iface) {
            Ok(Condition::Filtering) => {
                if lost.is_some() {
                    shared.set(iface, |s| s.lost = None);
                }
                continue;
            }
            Ok(condition) => condition,
            // Unreadable pins (out of file descriptors, say) prove nothing lost.
            Err(_) => continue,
        };
        let why = lost_reason(&shared.layout, iface, &condition);
        let ifindex = netdev::index(iface).ok();
        let seen = Some((why.clone(), ifindex));
        if lost == seen {
            continue;
        }
        // Said once per loss; acted on once per interface of that name (one that comes back
        // is a new chance).
        if lost.as_ref().is_none_or(|(said, _)| said != &why) {
            event(
                Level::Warning,
                "filter_lost",
                &[("iface", iface), ("msg", &why)],
            );
        }
        shared.set(iface, |s| s.lost.clone_from(&seen));
        // Nothing to attach to until an interface of this name exists: checked again on
        // every look, and repaired when one appears.
        if ifindex.is_none() {
            shared.reconciled(iface, "repair");
            continue;
        }
        let repaired = shared.switch(iface, || repair(&shared.layout, entry, &condition));
        match repaired {
            None => return to_worker,
            Some(true) => {
                shared.set(iface, |s| s.lost = None);
                shared.reconciled(iface, "repair");
            }
            Some(false) => to_worker.push(iface.clone()),
        }
    }
    to_worker
}

/// Puts `entry`'s filter back on the interface of its name from local files; false when it
/// could not.
fn repair(layout: &Layout, entry: &InterfaceConfig, condition: &Condition) -> bool {
    let iface = &entry.iface;
    // The filter went with an interface that was renamed or moved away, and another carries
    // the name now: the configuration names the interface, so the filter follows the name.
    if let Condition::Moved(moved) = condition {
        match detach(layout, iface, LOCK_WAIT) {
            Ok(_) => event(
                Level::Warning,
                "moved_off",
                &[
                    ("iface", iface),
                    (
                        "msg",
                        &format!("{moved}: took the filter off it, to filter {iface} again"),
                    ),
                ],
            ),
            Err(e) => {
                event(
                    Level::Error,
                    "repair_failed",
                    &[("iface", iface), ("msg", &e)],
                );
                return false;
            }
        }
        // The detach marked the copies as ended on purpose; this one was not.
        let _ = KnownGood::new(&layout.lib_dir, iface).clear_detached();
    }
    restore_if_detached(layout, entry)
}
