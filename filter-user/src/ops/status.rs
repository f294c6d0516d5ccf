//! `status`'s answer, for the command line and anything else that reports where filters are:
//! what is attached where, with which policy and data, as the pins, the kernel's active half
//! and the records say.

use anyhow::Result;
use serde::Serialize;

use crate::{
    kernel::maps::{hash_hex, FilterMaps},
    kernel::pins::{self, PinState},
    kernel::placement::placement,
    model::iface::IfaceName,
    model::lookup::Lookup,
    ops::lock::IfaceLock,
    state::{AttachState, Layout},
};

#[derive(Serialize)]
pub struct Report {
    pub interfaces: Vec<InterfaceStatus>,
}

/// The attach record as `status --json` shows it: its fields beside the entry's own, without
/// the record's `iface`, which would repeat the entry's key.
fn record_without_iface<S: serde::Serializer>(
    record: &Option<AttachState>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut value = serde_json::to_value(record).map_err(serde::ser::Error::custom)?;
    if let Some(fields) = value.as_object_mut() {
        fields.shift_remove("iface");
    }
    value.serialize(serializer)
}

#[derive(Serialize)]
pub struct InterfaceStatus {
    pub iface: IfaceName,
    pub pin_dir: String,
    /// `attached`, `attaching` (an attach holds the lock and has not pinned its link yet),
    /// `incomplete` (an attach that did not finish), `gone` (the interface was deleted or
    /// re-created after the attach) or `moved` (the filter's interface was renamed or moved to
    /// another namespace: the name is not filtered).
    pub condition: &'static str,
    /// For `moved`: where the filter really is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved: Option<String>,
    /// `None` when the record in the state directory is missing (e.g. /run was cleared).
    #[serde(flatten, serialize_with = "record_without_iface")]
    pub state: Option<AttachState>,
    /// What the kernel's active half says it holds; the truth if the record disagrees.
    pub kernel: Option<KernelView>,
}

#[derive(Serialize)]
pub struct KernelView {
    pub active_half: usize,
    pub generation: u64,
    pub lookup: Lookup,
    pub content_hash: String,
}

impl KernelView {
    fn read(pin_dir: &std::path::Path) -> Option<Self> {
        let maps = FilterMaps::open_pinned(pin_dir).ok()?;
        let (active_half, settings) = maps.active().ok()?;
        Some(Self {
            active_half,
            generation: settings.generation,
            lookup: Lookup::from_kernel(settings.lookup),
            content_hash: hash_hex(&settings.content_hash),
        })
    }
}

/// Every interface with pins under `layout`, as the kernel, the pins and the records say.
pub fn report(layout: &Layout) -> Result<Report> {
    let mut interfaces = Vec::new();
    for iface in layout.pinned_interfaces()? {
        let pin_dir = layout.pin_dir(&iface);
        let state = AttachState::load(&layout.state_file(&iface)).ok();
        let mut moved = None;
        let condition = match pins::inspect(&pin_dir)? {
            // Detached since the listing, or not regionfilter's.
            PinState::Absent | PinState::Foreign => continue,
            PinState::Attached { ifindex } => {
                moved = placement(&iface, ifindex, state.as_ref()).describe(&iface);
                if moved.is_some() {
                    "moved"
                } else {
                    "attached"
                }
            }
            PinState::Gone => "gone",
            PinState::Incomplete if IfaceLock::is_held(&layout.lock_file(&iface)) => "attaching",
            PinState::Incomplete => "incomplete",
        };
        interfaces.push(InterfaceStatus {
            pin_dir: pin_dir.display().to_string(),
            condition,
            moved,
            state,
            kernel: KernelView::read(&pin_dir),
            iface,
        });
    }
    Ok(Report { interfaces })
}
