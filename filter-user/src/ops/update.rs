//! Update and rollback: replace the data or policy of an attached filter through the blue/green
//! path, guarded, self-tested and serialised.

use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::{
    data_spec::LoadedData,
    error::OpError,
    guards::{self, Refusal, Summary},
    known_good::KnownGood,
    lock::IfaceLock,
    lockout::{self, LockOut},
    policy_spec::PolicyChange,
    privileges,
};
use crate::{
    compile::{artifact::Artifact, RegionSet},
    kernel::{
        maps::{hash_hex, FilterMaps},
        pins::{self, PinState},
        placement::{self, Condition},
        selftest,
        swap::{self, Staged},
    },
    model::{iface::IfaceName, lookup::Lookup, policy::Policy},
    state::{AttachState, Layout},
    sys::time::unix_now,
};

/// How carefully an update is applied.
#[derive(Clone, Debug)]
pub struct Guard {
    /// Apply even if a guard refuses.
    pub force: bool,
    /// Largest change in prefix count or coverage, per family, in percent.
    pub max_change: f64,
    /// How long to wait for another command on the same interface.
    pub wait: Duration,
    /// Accept data built before the loaded data: a signed release's rollback (a higher
    /// version of an old artifact) is older on purpose.
    pub allow_older: bool,
}

/// The interfaces regionfilter's pins say it is attached to (directories that hold nothing of
/// regionfilter's are skipped).
pub fn attached_interfaces(layout: &Layout) -> Result<Vec<IfaceName>> {
    let mut all = layout.pinned_interfaces()?;
    all.retain(|iface| {
        !matches!(
            pins::inspect(&layout.pin_dir(iface)),
            Ok(PinState::Foreign | PinState::Absent)
        )
    });
    Ok(all)
}

/// Guards refused the update. The message names no override: how to override is the front
/// end's to say (the CLI has `--force`, the agent none).
#[derive(Debug, thiserror::Error)]
#[error("update refused, nothing changed: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct Refused(pub Vec<Refusal>);

/// What to switch to.
pub enum Target {
    Update {
        data: Option<Box<LoadedData>>,
        policy: PolicyChange,
    },
    Rollback,
}

pub enum Outcome {
    /// Switched. `warnings` are steps after the switch that failed; the new data is live
    /// whatever they say.
    Updated {
        half: usize,
        /// Policy, prefix counts and self-test size, for the line that reports the switch.
        summary: String,
        /// The content hash now live.
        content_hash: String,
        warnings: Vec<String>,
    },
    /// The kernel already runs this content. `warnings`: the known-good copy, missing or
    /// damaged, could not be written again.
    Unchanged { warnings: Vec<String> },
}

/// Switches `iface` to `target` through the guarded, self-tested blue/green path.
pub fn update(
    layout: &Layout,
    iface: &IfaceName,
    target: &Target,
    guard: &Guard,
) -> Result<Outcome, OpError> {
    apply(layout, iface, target, guard).map_err(OpError::from)
}

fn apply(layout: &Layout, iface: &IfaceName, target: &Target, guard: &Guard) -> Result<Outcome> {
    let _lock = lock_attached(layout, iface, target, guard)?;
    let pin_dir = layout.pin_dir(iface);
    let mut maps = FilterMaps::open_pinned(&pin_dir)?;
    let settings = maps.active_settings()?;
    let active_hash = hash_hex(&settings.content_hash);
    let lookup = Lookup::from_kernel(settings.lookup);
    let known_good = KnownGood::new(&layout.lib_dir, iface);
    known_good.recover(&active_hash)?;
    // The loaded data as the known-good copy has it; ignored if it is not what the kernel holds.
    let current = known_good
        .current()?
        .filter(|a| a.header.content_hash == active_hash);

    let (regions, policy, guarded) = wanted(
        layout,
        iface,
        target,
        &known_good,
        current.as_ref(),
        &active_hash,
        guard,
    )?;
    // Compiling the tables first costs a fraction of a second on the "unchanged" path, and saves
    // hashing the data twice on every real update.
    let staged = Staged::new(regions, policy, lookup)?;
    // Warned once, when the scope changes, not on every cron run.
    let old_scope = current
        .as_ref()
        .and_then(|c| c.header.policy.as_ref())
        .map(|p| &p.scope);
    if old_scope != Some(&staged.policy.scope) {
        super::lockout::warn_ephemeral(&staged.policy.scope);
    }
    if staged.content_hash() == active_hash {
        return Ok(unchanged(iface, &known_good, &staged));
    }
    if guarded {
        check_guards(iface, &staged, current.as_ref(), guard)?;
    }
    let samples = selftest::samples(staged.regions(), &staged.policy);
    known_good.stage(&staged.artifact)?;
    let installed = swap::install(&mut maps, &staged, lookup, |half| {
        selftest::check_pinned(&pin_dir, half, &samples)
    });
    let half = match installed {
        Ok(half) => half,
        Err(err) => {
            known_good.discard_staged();
            return Err(err);
        }
    };
    // Switched: the new data is live. What follows only keeps records, so its failures are
    // reported as warnings and never turn this into a failure.
    let mut warnings = Vec::new();
    let kept = match target {
        Target::Rollback => known_good.swap_previous(),
        Target::Update { .. } => known_good.commit(),
    };
    if let Err(e) = kept {
        warnings.push(format!(
            "the known-good copy was not renamed into place ({e:#}); the next update repairs it"
        ));
    }
    if let Err(e) = record(layout, iface, &staged) {
        warnings.push(format!("the status record was not refreshed: {e:#}"));
    }
    Ok(Outcome::Updated {
        warnings,
        half,
        content_hash: staged.content_hash().to_owned(),
        summary: format!(
            "{}; {} IPv4 and {} IPv6 prefixes; self-test passed on {} addresses",
            staged.policy.full_summary(),
            staged.data_prefixes().0,
            staged.data_prefixes().1,
            samples.len()
        ),
    })
}

/// Checks the caller may change `iface`'s filter and that one filters it, and takes the
/// interface's lock (held until the returned guard drops).
fn lock_attached(
    layout: &Layout,
    iface: &IfaceName,
    target: &Target,
    guard: &Guard,
) -> Result<IfaceLock> {
    let verb = match target {
        Target::Update { .. } => "update",
        Target::Rollback => "rollback",
    };
    privileges::require_bpf_admin(verb, true)?;
    privileges::require_address_space("update")?;
    let pin_dir = layout.pin_dir(iface);
    // Checked before the lock too, so a refusal creates no lock file; again under the lock.
    if matches!(
        pins::inspect(&pin_dir)?,
        PinState::Absent | PinState::Foreign
    ) {
        bail!(
            "regionfilter is not attached to {iface} (no pins in {}); attach it first",
            pin_dir.display()
        );
    }
    let lock = IfaceLock::acquire(&layout.lock_file(iface), guard.wait)?;
    let condition = placement::condition(layout, iface)?;
    match &condition {
        Condition::Filtering => {}
        Condition::Absent => bail!(
            "{}; attach it first",
            condition.problem(iface, &pin_dir).unwrap_or_default()
        ),
        Condition::Foreign => bail!("{}", condition.problem(iface, &pin_dir).unwrap_or_default()),
        Condition::Moved(_) | Condition::Incomplete | Condition::Gone => bail!(
            "{}; `regionfilter detach --iface {iface}` removes its pins, then attach again",
            condition.problem(iface, &pin_dir).unwrap_or_default()
        ),
    }
    Ok(lock)
}

/// The data and policy `target` asks for, given what is loaded (`current`, whose content the
/// kernel runs, if known), and whether the guards judge the change.
fn wanted(
    layout: &Layout,
    iface: &IfaceName,
    target: &Target,
    known_good: &KnownGood,
    current: Option<&Artifact>,
    active_hash: &str,
    guard: &Guard,
) -> Result<(RegionSet, Policy, bool)> {
    Ok(match target {
        Target::Update { data, policy } => {
            let regions = match (data, current) {
                (Some(data), _) => data.regions.clone(),
                (None, Some(current)) => current.regions.clone(),
                (None, None) => bail!(
                    "no known-good copy of {iface}'s loaded data in {}: give the data again with --db, --artifact or --url",
                    layout.lib_dir.display()
                ),
            };
            // What stays when no option names it: the new artifact's own policy, else the
            // loaded one.
            let kept = data
                .as_ref()
                .and_then(|d| d.policy_or_artifacts(None))
                .or_else(|| current.and_then(|c| c.header.policy.clone()))
                // Without a usable copy (damaged, lost to a full disk), the status record's
                // policy, when it is the one the kernel runs.
                .or_else(|| {
                    AttachState::load(&layout.state_file(iface))
                        .ok()
                        .filter(|r| r.content_hash == active_hash)
                        .map(|r| r.policy)
                });
            let policy = match (policy, kept) {
                (PolicyChange::Replace(new), _) => new.clone(),
                (PolicyChange::Keep, Some(kept)) => kept,
                (PolicyChange::Edit(edit), Some(kept)) => edit.apply(&kept)?,
                (PolicyChange::Keep | PolicyChange::Edit(_), None) => bail!(
                    "no known-good copy of {iface}'s loaded policy in {}: give the whole policy \
                     with --policy FILE, or with --reset-policy and --allow or --deny",
                    layout.lib_dir.display()
                ),
            };
            (regions, policy, !guard.force)
        }
        Target::Rollback => {
            let previous = known_good.previous()?.with_context(|| {
                format!(
                    "no previous known-good data for {iface} in {}: nothing to roll back to",
                    layout.lib_dir.display()
                )
            })?;
            let policy = previous
                .header
                .policy
                .context("the previous known-good artifact carries no policy")?;
            (previous.regions, policy, false)
        }
    })
}

/// The kernel already runs `staged`. A known-good copy lost to a full disk or damaged is
/// written again now, or a reboot would have nothing (or the wrong thing) to restore.
fn unchanged(iface: &IfaceName, known_good: &KnownGood, staged: &Staged) -> Outcome {
    let warnings = match known_good.ensure_current(&staged.artifact) {
        Ok(wrote) => {
            if wrote {
                log::info!("wrote the missing or damaged known-good copy of {iface} again");
            }
            Vec::new()
        }
        Err(e) => vec![format!(
            "no known-good copy of the running content could be written ({e:#}); after a \
             reboot nothing would be restored"
        )],
    };
    Outcome::Unchanged { warnings }
}

/// The guards and the lock-out check on the change from `current` to `staged`. Every reason
/// is named at once: the lock-out (its own exit code), with whatever the guards refused too,
/// since one `--force` would override them all.
fn check_guards(
    iface: &IfaceName,
    staged: &Staged,
    current: Option<&Artifact>,
    guard: &Guard,
) -> Result<()> {
    let old = current.map(|c| {
        Summary::of(
            &c.regions,
            usize::try_from(c.header.prefixes_v4).unwrap_or(usize::MAX),
            usize::try_from(c.header.prefixes_v6).unwrap_or(usize::MAX),
        )
    });
    let new = Summary::of(
        staged.regions(),
        staged.data_prefixes().0,
        staged.data_prefixes().1,
    );
    let old_policy = current.and_then(|c| c.header.policy.as_ref());
    let mut refusals = guards::check(
        old.as_ref(),
        old_policy,
        &new,
        &staged.policy,
        guard.max_change / 100.0,
    );
    if guard.allow_older {
        refusals.retain(|r| !matches!(r, guards::Refusal::Older { .. }));
    }
    let in_force = current.and_then(|c| c.header.policy.as_ref().map(|p| (p, &c.regions)));
    let cut_off = lockout::check(iface, &staged.policy, staged.regions(), in_force);
    if !cut_off.is_empty() {
        return Err(LockOut {
            iface: iface.clone(),
            peers: cut_off,
            also: refusals,
        }
        .into());
    }
    if !refusals.is_empty() {
        return Err(Refused(refusals).into());
    }
    Ok(())
}

/// Refreshes the record `status` reads; the kernel's settings stay the truth if this fails.
fn record(layout: &Layout, iface: &IfaceName, staged: &Staged) -> Result<()> {
    let path = layout.state_file(iface);
    let mut state = AttachState::load(&path)?;
    state.policy = staged.policy.clone();
    state.sources = staged.regions().sources.clone();
    state.content_hash = staged.content_hash().to_owned();
    state.prefixes_v4 = staged.data_prefixes().0;
    state.prefixes_v6 = staged.data_prefixes().1;
    state.updated_at = Some(unix_now());
    state.save(&path)
}
