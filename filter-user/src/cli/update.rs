//! `regionfilter update` and `regionfilter rollback`: replace the data or policy of attached
//! filters through the blue/green path, guarded, self-tested and serialised.

use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::inputs::{percent, wait_duration, DataArgs, LoadedData, PolicyArgs, PolicyChange};
use crate::{
    kernel::maps::{hash_hex, FilterMaps, Lookup},
    kernel::pins::{self, PinState},
    kernel::placement,
    kernel::selftest,
    kernel::swap::{self, Staged},
    model::iface::IfaceName,
    ops::download,
    ops::guards::{self, Refusal, Summary},
    ops::known_good::KnownGood,
    ops::lock::IfaceLock,
    ops::lockout::{self, LockOut, EXIT_LOCKOUT},
    ops::privileges,
    ops::state::{unix_now, AttachState, Layout},
};

/// Exit codes for cron (also in the README). Refusals carry theirs ([`Refusal::exit_code`]).
pub const EXIT_UNCHANGED: u8 = 3;
pub const EXIT_BUSY: u8 = 4;
pub const EXIT_SELFTEST: u8 = 9;

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Interface to update.
    #[arg(
        long,
        value_name = "IF",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub iface: Option<IfaceName>,
    /// Update every attached interface.
    #[arg(long)]
    pub all: bool,
    // New country data, as for attach. Without --db, --artifact or --url the loaded data is
    // kept and only the policy changes.
    #[command(flatten)]
    pub data: DataArgs,
    /// Download the database from this HTTPS URL instead of --db (cached under --lib-dir, with
    /// ETag/If-Modified-Since; `.tar.gz` unpacked; `{license_key}` replaced by
    /// $MAXMIND_LICENSE_KEY, and basic auth sent when $MAXMIND_ACCOUNT_ID is set too).
    #[arg(long, value_name = "URL", conflicts_with_all = ["db", "artifact", "prefer"], value_parser = url)]
    pub url: Option<String>,
    /// URL of a SHA-256 file (`sha256sum` format) the download must match.
    #[arg(long, value_name = "URL", requires = "url", value_parser = url)]
    pub sha256_url: Option<String>,
    /// Policy options change only what they name (countries, --allow-cidr, --deny-cidr,
    /// --unknown, --malformed); the rest of the loaded policy stays. `--policy FILE` or
    /// `--reset-policy` gives a complete new policy instead.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Replace the whole policy with the one the options describe (parts they do not name go
    /// back to their defaults: no exceptions, unknown pass, malformed pass).
    #[arg(long)]
    pub reset_policy: bool,
    /// End a dry run: enforce the loaded policy, keeping data and counters (one atomic switch).
    #[arg(long, conflicts_with = "dry_run")]
    pub enforce: bool,
    #[command(flatten)]
    pub guard: GuardArgs,
}

#[derive(Debug, clap::Args)]
pub struct GuardArgs {
    /// Apply the update even if a guard refuses it (empty data, large change, policy country
    /// without prefixes, older build date, a policy that would drop your SSH session or an
    /// established TCP peer of the interface).
    #[arg(long)]
    pub force: bool,
    /// Largest change in prefix count or address coverage, per family, accepted without --force.
    #[arg(long, value_name = "PERCENT", default_value = "10", value_parser = percent)]
    pub max_change: f64,
    /// How long to wait for another update of the same interface to finish (at most 24h).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = wait_duration)]
    pub wait: Duration,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// Interface whose previous known-good data and policy to restore.
    #[arg(long, value_name = "IF")]
    pub iface: IfaceName,
    /// How long to wait for another command on the same interface to finish (at most 24h).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = wait_duration)]
    pub wait: Duration,
}

/// `--url`, `--sha256-url`: HTTPS, or plain HTTP to this host only ([`download::check_url`]).
fn url(text: &str) -> Result<String, String> {
    download::check_url(text).map_err(|e| e.to_string())?;
    Ok(text.to_owned())
}

/// Guards refused the update.
#[derive(Debug, thiserror::Error)]
#[error("update refused, nothing changed: {}; override with --force", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct Refused(pub Vec<Refusal>);

/// The exit code for an error of `update` or `rollback`.
#[must_use]
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(refused) = err.downcast_ref::<Refused>() {
        return refused.0.first().map_or(1, Refusal::exit_code);
    }
    // A source without ranges is the "empty data" refusal, caught while reading.
    if let Some(crate::data::DataError::Empty { .. } | crate::data::DataError::NoCountries { .. }) =
        err.downcast_ref::<crate::data::DataError>()
    {
        return Refusal::Empty.exit_code();
    }
    if err.downcast_ref::<LockOut>().is_some() {
        return EXIT_LOCKOUT;
    }
    if err.downcast_ref::<crate::ops::lock::Busy>().is_some() {
        return EXIT_BUSY;
    }
    if err.downcast_ref::<selftest::SelftestError>().is_some() {
        return EXIT_SELFTEST;
    }
    1
}

/// What to switch to.
enum Target {
    Update {
        data: Option<Box<LoadedData>>,
        policy: PolicyChange,
    },
    Rollback,
}

enum Outcome {
    /// Switched. `warnings` are steps after the switch that failed; the new data is live
    /// whatever they say.
    Updated {
        half: usize,
        summary: String,
        warnings: Vec<String>,
    },
    Unchanged,
}

pub fn run(layout: &Layout, args: &UpdateArgs) -> Result<u8> {
    privileges::require_bpf_admin("update")?;
    let policy = args.policy.change(args.reset_policy, args.enforce)?;
    let mut data = args.data.clone();
    if let Some(url) = &args.url {
        let fetched = download::fetch(
            &layout.lib_dir.join("downloads"),
            url,
            args.sha256_url.as_deref(),
        )?;
        if let download::Fetched::NotModified(path) = &fetched {
            println!(
                "{url}: not modified since the last download ({})",
                path.display()
            );
        }
        data.db.push(fetched.path().to_owned());
    }
    let data = if data.is_given() {
        Some(Box::new(data.load()?))
    } else {
        None
    };
    let target = Target::Update { data, policy };
    let ifaces = match &args.iface {
        Some(iface) => vec![iface.clone()],
        None => {
            // Directories that hold nothing of regionfilter's are not filters: skip them.
            let mut all = layout.pinned_interfaces()?;
            all.retain(|iface| {
                !matches!(
                    pins::inspect(&layout.pin_dir(iface)),
                    Ok(PinState::Foreign | PinState::Absent)
                )
            });
            if all.is_empty() {
                bail!(
                    "--all: regionfilter is attached to no interface (see `regionfilter status`)"
                );
            }
            all
        }
    };
    if ifaces.len() == 1 {
        return report(&ifaces[0], apply(layout, &ifaces[0], &target, &args.guard)?);
    }
    // --all: every interface gets its chance; the first failure decides the exit code.
    let mut failure = None;
    let mut all_unchanged = true;
    for iface in &ifaces {
        match apply(layout, iface, &target, &args.guard) {
            Ok(outcome) => all_unchanged &= report(iface, outcome)? == EXIT_UNCHANGED,
            Err(err) => {
                eprintln!("error: {iface}: {err:#}");
                failure.get_or_insert(exit_code(&err));
                all_unchanged = false;
            }
        }
    }
    Ok(failure.unwrap_or(if all_unchanged { EXIT_UNCHANGED } else { 0 }))
}

pub fn rollback(layout: &Layout, args: &RollbackArgs) -> Result<u8> {
    privileges::require_bpf_admin("rollback")?;
    let guard = GuardArgs {
        force: true,
        max_change: 0.0,
        wait: args.wait,
    };
    report(
        &args.iface,
        apply(layout, &args.iface, &Target::Rollback, &guard)?,
    )
}

/// One update of `iface` to `data`, keeping its policy: the path `update --iface IF --db ...`
/// takes, for callers that hold the data in memory. Returns whether halves were switched.
pub fn update_data(
    layout: &Layout,
    iface: &IfaceName,
    data: LoadedData,
    guard: &GuardArgs,
) -> Result<bool> {
    let target = Target::Update {
        data: Some(Box::new(data)),
        policy: PolicyChange::Keep,
    };
    Ok(matches!(
        apply(layout, iface, &target, guard)?,
        Outcome::Updated { .. }
    ))
}

fn report(iface: &IfaceName, outcome: Outcome) -> Result<u8> {
    match outcome {
        Outcome::Updated {
            half,
            summary,
            warnings,
        } => {
            println!("{iface}: switched to half {half}: {summary}");
            for warning in warnings {
                eprintln!("warning: {iface}: switched, but {warning}");
            }
            Ok(0)
        }
        Outcome::Unchanged => {
            println!("{iface}: unchanged (same content hash as the loaded data); nothing written");
            Ok(EXIT_UNCHANGED)
        }
    }
}

fn apply(
    layout: &Layout,
    iface: &IfaceName,
    target: &Target,
    guard: &GuardArgs,
) -> Result<Outcome> {
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
    let _lock = IfaceLock::acquire(&layout.lock_file(iface), guard.wait)?;
    match pins::inspect(&pin_dir)? {
        PinState::Attached { ifindex } => {
            if let Some(moved) = placement::recorded(layout, iface, ifindex).describe(iface) {
                bail!("{moved}: `regionfilter detach --iface {iface}`, then attach again");
            }
        }
        PinState::Absent => bail!(
            "regionfilter is not attached to {iface} (no pins in {}); attach it first",
            pin_dir.display()
        ),
        PinState::Foreign => bail!(
            "regionfilter is not attached to {iface}: {} holds nothing of regionfilter's",
            pin_dir.display()
        ),
        PinState::Incomplete => bail!(
            "an attach to {iface} did not finish (pins in {} without a link): nothing filters \
             there; `regionfilter detach --iface {iface}` removes them, then attach again",
            pin_dir.display()
        ),
        PinState::Gone => bail!(
            "the interface {iface} the filter was attached to is gone (deleted, or deleted and \
             re-created): nothing filters there; `regionfilter detach --iface {iface}` removes \
             its pins, then attach again"
        ),
    }
    let mut maps = FilterMaps::open_pinned(&pin_dir)?;
    let active = maps.active_half()?;
    let settings = maps.halves[active].settings()?;
    let active_hash = hash_hex(&settings.content_hash);
    let lookup = Lookup::from_kernel(settings.lookup);
    let known_good = KnownGood::new(&layout.lib_dir, iface);
    known_good.recover(&active_hash)?;
    // The loaded data as the known-good copy has it; ignored if it is not what the kernel holds.
    let current = known_good
        .current()?
        .filter(|a| a.header.content_hash == active_hash);

    let (regions, policy, guarded) = match target {
        Target::Update { data, policy } => {
            let regions = match (data, &current) {
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
                .or_else(|| current.as_ref().and_then(|c| c.header.policy.clone()));
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
    };
    // Compiling the tables first costs a fraction of a second on the "unchanged" path, and saves
    // hashing the data twice on every real update.
    let staged = Staged::new(regions, policy, lookup)?;
    // Warned once, when the scope changes, not on every cron run.
    let old_scope = current
        .as_ref()
        .and_then(|c| c.header.policy.as_ref())
        .map(|p| &p.scope);
    if old_scope != Some(&staged.policy.scope) {
        crate::model::scope::warn_ephemeral(&staged.policy.scope);
    }
    if staged.content_hash() == active_hash {
        return Ok(Outcome::Unchanged);
    }
    if guarded {
        let in_force = current
            .as_ref()
            .and_then(|c| c.header.policy.as_ref().map(|p| (p, &c.regions)));
        let cut_off = lockout::check(iface, &staged.policy, staged.regions(), in_force);
        if !cut_off.is_empty() {
            return Err(LockOut {
                iface: iface.clone(),
                peers: cut_off,
            }
            .into());
        }
        let old = current.as_ref().map(|c| {
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
        let refusals = guards::check(old.as_ref(), &new, &staged.policy, guard.max_change / 100.0);
        if !refusals.is_empty() {
            return Err(Refused(refusals).into());
        }
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
        summary: format!(
            "{}; {} IPv4 and {} IPv6 prefixes; self-test passed on {} addresses",
            staged.policy.full_summary(),
            staged.data_prefixes().0,
            staged.data_prefixes().1,
            samples.len()
        ),
    })
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
