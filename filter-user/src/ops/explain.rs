//! `explain --iface`'s kernel side: the filter attached to an interface, checked to be the one
//! that judges its packets and to match its known-good copy, with its program ready to judge
//! test frames on the live maps.

use anyhow::{bail, Context as _, Result};
use aya::{programs::Xdp, Ebpf};

use crate::{
    compile::artifact::Artifact,
    kernel::maps::{hash_bytes, hash_hex, FilterMaps},
    kernel::placement::{self, Condition},
    kernel::program,
    kernel::selftest::{self, SelftestError},
    model::iface::IfaceName,
    model::policy::{Action, Policy},
    ops::known_good::KnownGood,
    state::Layout,
};

/// The attached filter of one interface, opened for judging.
pub struct LiveFilter {
    /// The known-good copy: the data and policy the kernel runs.
    pub artifact: Artifact,
    pub policy: Policy,
    /// The attached program, on the active half's maps.
    pub program: LiveProgram,
}

/// The self-test copy of the attached program on the live maps.
pub struct LiveProgram(Ebpf);

impl LiveFilter {
    /// Opens `iface`'s filter: it must filter the interface of that name (a verdict from a
    /// filter that judges no packet of `iface` would answer the wrong question), and its
    /// known-good copy must be what the kernel holds.
    pub fn open(layout: &Layout, iface: &IfaceName) -> Result<Self> {
        let pin_dir = layout.pin_dir(iface);
        let condition = placement::condition(layout, iface)?;
        if let Some(problem) = condition.problem(iface, &pin_dir) {
            let advice = match condition {
                Condition::Moved(_) => {
                    "its verdicts are not the interface's; `regionfilter status` says more"
                }
                Condition::Absent | Condition::Foreign => {
                    "`regionfilter status` lists attached interfaces"
                }
                _ => "`regionfilter detach --iface` removes the pins",
            };
            bail!("{problem}; {advice}");
        }
        let maps = FilterMaps::open_pinned(&pin_dir)?;
        let (half, settings) = maps.active()?;
        let kernel_hash = settings.content_hash;
        let artifact = KnownGood::new(&layout.lib_dir, iface)
            .current()?
            .with_context(|| {
                format!(
                    "no known-good copy of {iface}'s data in {}",
                    layout.lib_dir.display()
                )
            })?;
        if hash_bytes(&artifact.header.content_hash).ok() != Some(kernel_hash) {
            bail!(
                "the known-good copy of {iface}'s data (sha256 {}) is not what the kernel holds (sha256 {}), \
                 so it was changed outside regionfilter: put the matching copy back, or run an \
                 update that changes the content, which writes it anew",
                artifact.header.content_hash,
                hash_hex(&kernel_hash)
            );
        }
        let policy = artifact
            .header
            .policy
            .clone()
            .context("the known-good copy carries no policy")?;
        let ebpf = program::load_selftest(&pin_dir, half)?;
        Ok(Self {
            artifact,
            policy,
            program: LiveProgram(ebpf),
        })
    }
}

impl LiveProgram {
    /// The attached program's slot and action for `frame` (`None`: aborted).
    pub fn judge(&mut self, frame: &[u8]) -> Result<(u32, Option<Action>)> {
        let judge: &mut Xdp = self
            .0
            .program_mut(filter_common::SELFTEST_PROGRAM)
            .context("self-test program missing from the embedded object")?
            .try_into()?;
        selftest::judge(judge, frame).map_err(|e: SelftestError| e.into())
    }
}
