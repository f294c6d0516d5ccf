//! Whether a pinned filter is on the interface its name says. The pins are named after the
//! interface at attach time; the link holds the program on an interface *index*. A rename, a
//! move to another namespace, or a new interface taking the old name separates the two, and
//! then acting "on eth1" would act on another interface.

use anyhow::Result;

use crate::{
    kernel::{
        netdev,
        pins::{self, PinState},
    },
    model::iface::IfaceName,
    state::{AttachState, Layout},
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The name is the filter's interface in this namespace.
    Here,
    /// The filter's interface no longer carries this name: renamed (now `Some(name)`), or moved
    /// to another network namespace (`None`).
    Moved { ifindex: u32, now: Option<String> },
    /// Attached from another network namespace: names cannot be compared from here, the link
    /// still holds its interface.
    OtherNamespace,
}

/// Where the filter whose link holds interface `ifindex` (non-zero) is, seen from here.
#[must_use]
pub fn placement(iface: &IfaceName, ifindex: u32, record: Option<&AttachState>) -> Placement {
    let here = netdev::netns_id();
    let recorded = record.and_then(|r| r.netns);
    if recorded.is_some() && recorded != here {
        return Placement::OtherNamespace;
    }
    if netdev::index(iface).ok() == Some(ifindex) {
        return Placement::Here;
    }
    // Without the attach's namespace (an attach interrupted before its record was written),
    // the index may be another namespace's: interface indexes repeat across namespaces.
    if recorded.is_none() {
        return Placement::OtherNamespace;
    }
    match netdev::name_of(ifindex) {
        // The filter's interface is in this namespace under another name.
        Some(now) => Placement::Moved {
            ifindex,
            now: Some(now),
        },
        // Not in this namespace, where the attach happened: moved away.
        None => Placement::Moved { ifindex, now: None },
    }
}

/// What the pins named `iface` do for the interface of that name now: its pins' state, with an
/// attached filter's placement ([`recorded`]) folded in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The link holds the program on the interface of this name (or, seen from another
    /// namespace than the attach's, on the interface it was attached to).
    Filtering,
    /// The link holds the program on an interface that no longer carries the name: where it
    /// is, as an operator should read it ([`Placement::describe`]).
    Moved(String),
    /// The link's interface is gone: it filters nothing.
    Gone,
    /// An attach that did not finish.
    Incomplete,
    /// A directory holding nothing of regionfilter's.
    Foreign,
    /// No pins: not attached.
    Absent,
}

impl Condition {
    /// What is wrong with the filter named `iface` (pins in `pin_dir`), as every command and
    /// the agent say it before their own advice; `None` while it filters.
    #[must_use]
    pub fn problem(&self, iface: &IfaceName, pin_dir: &std::path::Path) -> Option<String> {
        Some(match self {
            Self::Filtering => return None,
            Self::Moved(moved) => moved.clone(),
            Self::Gone => format!(
                "the interface {iface} is gone (deleted or re-created), so nothing filters it"
            ),
            Self::Incomplete => format!(
                "an attach to {iface} did not finish (pins in {} without a link), so nothing \
                 filters it",
                pin_dir.display()
            ),
            Self::Foreign => format!(
                "regionfilter is not attached to {iface}: {} holds nothing of regionfilter's",
                pin_dir.display()
            ),
            Self::Absent => format!(
                "regionfilter is not attached to {iface} (no pins in {})",
                pin_dir.display()
            ),
        })
    }
}

/// The [`Condition`] of the pins of `iface` under `layout`.
pub fn condition(layout: &Layout, iface: &IfaceName) -> Result<Condition> {
    Ok(match pins::inspect(&layout.pin_dir(iface))? {
        PinState::Attached { ifindex } => recorded(layout, iface, ifindex)
            .describe(iface)
            .map_or(Condition::Filtering, Condition::Moved),
        other => without_link(other),
    })
}

/// The condition of pins whose link holds no interface, or that have no link. Where an
/// attached link's interface is, is each caller's own question: they never pass one here.
fn without_link(state: PinState) -> Condition {
    match state {
        PinState::Gone => Condition::Gone,
        PinState::Incomplete => Condition::Incomplete,
        PinState::Foreign => Condition::Foreign,
        PinState::Absent | PinState::Attached { .. } => Condition::Absent,
    }
}

/// [`condition`] for a caller that works in the namespace of the attach it checks (the agent):
/// "filtering" only when the kernel's link holds the interface that carries the name here now.
/// The record is not consulted, so a missing or stale one can never make a filter on another
/// interface read as filtering this one.
pub fn condition_here(layout: &Layout, iface: &IfaceName) -> Result<Condition> {
    Ok(match pins::inspect(&layout.pin_dir(iface))? {
        PinState::Attached { ifindex } if netdev::index(iface).ok() == Some(ifindex) => {
            Condition::Filtering
        }
        PinState::Attached { ifindex } => Condition::Moved(match netdev::name_of(ifindex) {
            now @ Some(_) => Placement::Moved { ifindex, now }
                .describe(iface)
                .unwrap_or_default(),
            None => format!(
                "the filter attached as {iface} is on interface index {ifindex}, which is not {iface} in this network namespace; {iface} is not filtered"
            ),
        }),
        other => without_link(other),
    })
}

/// [`placement`] with the attach's record read from `layout` (missing or unreadable records
/// leave only the kernel's view).
#[must_use]
pub fn recorded(layout: &Layout, iface: &IfaceName, ifindex: u32) -> Placement {
    let record = AttachState::load(&layout.state_file(iface)).ok();
    placement(iface, ifindex, record.as_ref())
}

impl Placement {
    /// What an operator should read about a filter that is not where its name says.
    #[must_use]
    pub fn describe(&self, iface: &IfaceName) -> Option<String> {
        match self {
            Self::Moved { ifindex, now: Some(now) } => Some(format!(
                "the filter attached as {iface} is on interface index {ifindex}, which is now named {now}; {iface} is not filtered"
            )),
            Self::Moved { ifindex, now: None } => Some(format!(
                "the filter attached as {iface} is on interface index {ifindex}, which was moved to another network namespace; {iface} is not filtered here"
            )),
            _ => None,
        }
    }
}
