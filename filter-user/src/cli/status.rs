//! `regionfilter status`: what is attached where, with which policy and data.

use anyhow::Result;

use crate::{
    ops::{self, status::Report},
    state::Layout,
    sys::time::date,
};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(layout: &Layout, args: &StatusArgs) -> Result<()> {
    let report = ops::status::report(layout)?;
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
