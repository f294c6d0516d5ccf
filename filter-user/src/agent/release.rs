//! Following a signed release channel (`release_url`): each pass fetches and verifies the
//! release, applies it when this node is in its stage, and keeps what the metrics report (the
//! release published, this node's position in it, refusals by reason).

use std::slice;

use anyhow::anyhow;

use super::{
    config::{Config, InterfaceConfig, ReleaseTrust},
    log::{event, Level},
    worker::{attach_entry, Done},
    Shared, LOCK_WAIT,
};
use crate::{
    kernel::pins,
    ops::{
        data_spec::DataSpec,
        download::{DownloadError, Limits},
        release::{self, ForNode, Manifest, ReleaseError},
        update::{update, Guard, Outcome},
        OpError,
    },
    sys::time::unix_now,
};

/// Every reason a refusal is counted under ([`refusal_reason`]).
pub fn refusal_reasons() -> impl Iterator<Item = &'static str> {
    ReleaseError::REASONS
        .into_iter()
        .chain(["download", "guard", "failed"])
}

/// The reason a refused release is counted under: [`ReleaseError::reason`], `download` when
/// it could not be fetched, `guard` when it verified but a guard or the lock-out check refused
/// the switch, else `failed`.
#[must_use]
pub fn refusal_reason(err: &OpError) -> &'static str {
    if let Some(refused) = err.downcast_ref::<ReleaseError>() {
        refused.reason()
    } else if err.downcast_ref::<DownloadError>().is_some() {
        "download"
    } else if err.forceable() {
        "guard"
    } else {
        "failed"
    }
}

/// One pass over an interface that follows the release at `url`. `adopt`: a first pass that
/// finds the release already running says `adopted`. `Ok(None)`: the agent is stopping.
pub(super) fn reconcile(
    shared: &Shared,
    config: &Config,
    entry: &InterfaceConfig,
    url: &str,
    limits: &Limits<'_>,
    adopt: bool,
) -> Result<Option<Done>, OpError> {
    let iface = &entry.iface;
    let trust = config
        .release
        .as_ref()
        .ok_or_else(|| anyhow!("release_url needs public_keys"))?;
    shared.set(iface, |s| s.release.following = true);
    let counted = apply_release(shared, config, entry, url, limits, adopt, trust);
    if let Err(err) = &counted {
        let reason = refusal_reason(err);
        shared.set(iface, |s| {
            *s.release.refusals.entry(reason).or_default() += 1
        });
    }
    counted
}

fn apply_release(
    shared: &Shared,
    config: &Config,
    entry: &InterfaceConfig,
    url: &str,
    limits: &Limits<'_>,
    adopt: bool,
    trust: &ReleaseTrust,
) -> Result<Option<Done>, OpError> {
    let iface = &entry.iface;
    let layout = &shared.layout;
    let now = unix_now();
    let follow = release::Follow {
        url,
        keys: &trust.keys,
        channel: &trust.channel,
        node: &trust.node,
    };
    // Refusals are counted by the caller, with those of the switch.
    let found = release::for_node(layout, &follow, slice::from_ref(iface), now, limits)?;
    let manifest = match &found {
        ForNode::Apply(apply) => &apply.manifest,
        ForNode::NotInStage { manifest } => manifest,
    };
    let position = release::position(manifest, &trust.node);
    shared.set(iface, |s| {
        s.release.published = Some((manifest.clone(), position));
        s.release.last_check = Some(now);
    });
    let apply = match found {
        ForNode::Apply(apply) => apply,
        ForNode::NotInStage { manifest } => {
            let waiting = format!(
                "release {} {} is at stage {} ({}), which does not include this node (position \
                 {}) yet",
                manifest.channel,
                manifest.version,
                manifest.rollout.stage,
                manifest.rollout.current(),
                per_mille(position)
            );
            if !pins::attached(&layout.pin_dir(iface)) {
                return Err(anyhow!("{waiting}, and {iface} runs no filter until it does").into());
            }
            return Ok(Some(Done::NotInStage(format!(
                "{waiting}: keeps what it runs"
            ))));
        }
    };
    let known_good_dir = layout.lib_dir.join(iface);
    let Some(done) = shared.switch(iface, || -> Result<Done, OpError> {
        let manifest = apply.manifest.clone();
        let done = if pins::attached(&layout.pin_dir(iface)) {
            let guard = Guard {
                force: false,
                max_change: config.max_change,
                wait: LOCK_WAIT,
                allow_older: true,
            };
            match update(layout, iface, &apply.target(), &guard)? {
                Outcome::Updated {
                    summary, warnings, ..
                } => Done::Updated { summary, warnings },
                Outcome::Unchanged { warnings } if adopt && warnings.is_empty() => Done::Adopted,
                Outcome::Unchanged { warnings } => Done::Unchanged(warnings),
            }
        } else {
            let data = DataSpec {
                artifact: Some(apply.artifact_path.clone()),
                ..DataSpec::default()
            };
            Done::Attached(attach_entry(layout, entry, &data, Some(apply.policy.clone()))?.warnings)
        };
        // A re-signed manifest of the running release (a later expiry, another stage) is
        // recorded too; an unchanged one is not written again.
        if release::applied(&known_good_dir).ok().flatten().as_ref() != Some(&manifest) {
            if let Err(e) = release::record_applied(&known_good_dir, &manifest) {
                return Ok(with_warning(
                    done,
                    format!(
                        "release {} applied, but not recorded: {e:#}",
                        manifest.version
                    ),
                ));
            }
            log_applied(entry, &manifest, position);
        }
        Ok(done)
    }) else {
        return Ok(None);
    };
    done.map(Some)
}

fn log_applied(entry: &InterfaceConfig, manifest: &Manifest, position: u16) {
    let stage = manifest.rollout.current();
    event(
        Level::Info,
        "release_applied",
        &[
            ("iface", &entry.iface),
            ("channel", &manifest.channel),
            ("version", &manifest.version),
            ("stage", &manifest.rollout.stage),
            ("share", &stage),
            ("position", &per_mille(position)),
        ],
    );
}

/// A release recorded nowhere is applied but not protected against rollback: the interface
/// is not ready until a pass records it.
fn with_warning(done: Done, warning: String) -> Done {
    match done {
        Done::Attached(mut w) => {
            w.push(warning);
            Done::Attached(w)
        }
        Done::Updated {
            summary,
            mut warnings,
        } => {
            warnings.push(warning);
            Done::Updated { summary, warnings }
        }
        Done::Adopted => Done::Unchanged(vec![warning]),
        Done::Unchanged(mut w) => {
            w.push(warning);
            Done::Unchanged(w)
        }
        Done::NotInStage(msg) => Done::NotInStage(msg),
    }
}

/// `277` as `27.7%`.
fn per_mille(position: u16) -> String {
    format!("{}.{}%", position / 10, position % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_reads_as_a_percentage() {
        assert_eq!(per_mille(277), "27.7%");
        assert_eq!(per_mille(0), "0.0%");
        assert_eq!(per_mille(999), "99.9%");
    }
}
