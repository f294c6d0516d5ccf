//! `regionfilter status`: what is attached where, with which policy and data.

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
    sys::time::date,
};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Report {
    interfaces: Vec<InterfaceStatus>,
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
struct InterfaceStatus {
    iface: IfaceName,
    pin_dir: String,
    /// `attached`, `attaching` (an attach holds the lock and has not pinned its link yet),
    /// `incomplete` (an attach that did not finish), `gone` (the interface was deleted or
    /// re-created after the attach) or `moved` (the filter's interface was renamed or moved to
    /// another namespace: the name is not filtered).
    condition: &'static str,
    /// For `moved`: where the filter really is.
    #[serde(skip_serializing_if = "Option::is_none")]
    moved: Option<String>,
    /// `None` when the record in the state directory is missing (e.g. /run was cleared).
    #[serde(flatten, serialize_with = "record_without_iface")]
    state: Option<AttachState>,
    /// What the kernel's active half says it holds; the truth if the record disagrees.
    kernel: Option<KernelView>,
}

#[derive(Serialize)]
struct KernelView {
    active_half: usize,
    generation: u64,
    lookup: Lookup,
    content_hash: String,
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

pub fn run(layout: &Layout, args: &StatusArgs) -> Result<()> {
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
    let report = Report { interfaces };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

fn print_text(report: &Report) {
    if report.interfaces.is_empty() {
        println!("regionfilter is not attached to any interface");
    }
    for entry in &report.interfaces {
        let iface = &entry.iface;
        match entry.condition {
            "attaching" => {
                println!(
                    "{iface}: an attach is in progress (pins in {})",
                    entry.pin_dir
                );
                continue;
            }
            "incomplete" => {
                println!(
                    "{iface}: INCOMPLETE: an attach did not finish, nothing filters; its pins in {} hold kernel memory until `regionfilter detach --iface {iface}` (or the next attach) removes them",
                    entry.pin_dir
                );
                continue;
            }
            "moved" => {
                println!(
                    "{iface}: MOVED: {}; `regionfilter detach --iface {iface}` takes it off and removes its pins in {}",
                    entry.moved.as_deref().unwrap_or_default(),
                    entry.pin_dir
                );
                continue;
            }
            "gone" => {
                let was = entry
                    .state
                    .as_ref()
                    .map(|s| format!(" (it had index {})", s.ifindex))
                    .unwrap_or_default();
                println!(
                    "{iface}: GONE: the interface{was} was deleted or re-created after the attach, nothing filters; `regionfilter detach --iface {iface}` removes its pins in {}",
                    entry.pin_dir
                );
                continue;
            }
            _ => {}
        }
        let Some(state) = &entry.state else {
            println!(
                "{}: attached (pins in {}); no state record, details unknown",
                entry.iface, entry.pin_dir
            );
            continue;
        };
        let cidrs = crate::model::policy::list_or_none;
        println!(
            "{}: attached, {} mode{}, since {}",
            state.iface,
            state.mode,
            match state.link_layer {
                crate::model::iface::LinkLayer::Ethernet => "",
                crate::model::iface::LinkLayer::RawIp => " on a raw-IP link",
            },
            date(state.attached_at)
        );
        println!("  policy:      {}", state.policy.summary());
        for source in &state.sources {
            println!("  source:      {}", describe_source(source));
        }
        if let Some(artifact) = &state.artifact {
            println!("  artifact:    {}", artifact.display());
        }
        if let Some(updated) = state.updated_at {
            println!("  updated:     {}", date(updated));
        }
        println!("  content:     sha256 {}", state.content_hash);
        if let Some(kernel) = &entry.kernel {
            println!(
                "  kernel:      {} lookup, half {} active, generation {}",
                kernel.lookup.name(),
                kernel.active_half,
                kernel.generation
            );
            if kernel.content_hash != state.content_hash {
                println!(
                    "  warning:     the record is stale: the kernel holds sha256 {} (an update was interrupted; the next one repairs this)",
                    kernel.content_hash
                );
            }
        }
        println!(
            "  prefixes:    {} IPv4, {} IPv6",
            state.prefixes_v4, state.prefixes_v6
        );
        println!("  always pass: {}", cidrs(&state.policy.allow_cidrs));
        println!("  always drop: {}", cidrs(&state.policy.deny_cidrs));
        let p = &state.policy;
        let scope = p.scope.summary();
        println!(
            "  scope:       {}",
            scope.strip_prefix("scope ").unwrap_or(&scope)
        );
        println!(
            "  classes:     local {}; icmp errors {}; tcp {}; drop samples {}",
            crate::model::policy::action_name(p.local),
            p.icmp_errors.name(),
            p.tcp.name(),
            if p.samples == 0 {
                "off".to_owned()
            } else {
                format!("{}/s per CPU", p.samples)
            }
        );
        println!("  pins:        {}", entry.pin_dir);
    }
}

/// `PATH (FORMAT TYPE, built DATE)`: one source as every verb shows it.
pub(crate) fn describe_source(source: &crate::data::SourceInfo) -> String {
    format!(
        "{} ({} {}, built {})",
        source.path.display(),
        source.format,
        source.database_type,
        date(source.build_epoch)
    )
}
