//! Prometheus text exposition of the counters and of what each filter holds: what `stats
//! --format prometheus` prints (for node_exporter's textfile collector).

use std::{collections::BTreeSet, fmt::Write as _};

use filter_common::{Counter, COUNTER_SLOTS};

use anyhow::Result;

use crate::{
    compile::RegionSet,
    kernel::maps::{hash_hex, CounterTotals, FilterMaps},
    kernel::slots::{Decoded, Slot, Verdict},
    model::country::Country,
    model::iface::IfaceName,
    model::lookup::Lookup,
    ops::known_good::KnownGood,
    state::{AttachState, Layout},
};

/// What the exposition needs to know of a filter's data, kept apart from the data itself so
/// that a scrape never reads an artifact.
#[derive(Clone, Debug, Default)]
pub struct DataFacts {
    /// Countries of the loaded data: their series exist (as zeros) before any packet arrives.
    pub countries: BTreeSet<Country>,
    /// Newest build time of the data's sources (Unix seconds).
    pub built: Option<u64>,
}

impl DataFacts {
    #[must_use]
    pub fn of(regions: &RegionSet) -> Self {
        Self {
            countries: regions.countries(),
            built: regions.sources.iter().map(|s| s.build_epoch).max(),
        }
    }

    /// The facts of `iface`'s known-good copy; `None` without one (then only countries with
    /// traffic appear).
    #[must_use]
    pub fn known_good(layout: &Layout, iface: &IfaceName) -> Option<Self> {
        let artifact = KnownGood::new(&layout.lib_dir, iface).current().ok()??;
        Some(Self::of(&artifact.regions))
    }
}

/// Everything exported for one interface.
pub struct InterfaceMetrics {
    pub iface: IfaceName,
    pub totals: CounterTotals,
    /// Countries of the loaded data: their series exist (as zeros) before any packet arrives.
    pub countries: BTreeSet<Country>,
    /// Newest build time of the loaded data's sources (Unix seconds).
    pub data_built: Option<u64>,
    /// Last attach, update or rollback that switched the data (Unix seconds).
    pub updated_at: Option<u64>,
    /// Generation and content hash of the active half, read from the kernel.
    pub generation: u64,
    pub content_hash: String,
    pub lookup: &'static str,
}

impl InterfaceMetrics {
    /// The counters of `iface` and what its filter holds: the active half's settings from the
    /// kernel, the time of its last switch, and `facts(content hash)` about its data.
    pub fn read(
        layout: &Layout,
        iface: &IfaceName,
        facts: impl FnOnce(&str) -> Option<DataFacts>,
    ) -> Result<Self> {
        let maps = FilterMaps::open_pinned(&layout.pin_dir(iface))?;
        let settings = maps.active_settings()?;
        let content_hash = hash_hex(&settings.content_hash);
        let facts = facts(&content_hash).unwrap_or_default();
        let state = AttachState::load(&layout.state_file(iface)).ok();
        Ok(Self {
            totals: maps.counter_totals()?,
            countries: facts.countries,
            data_built: facts.built,
            updated_at: state.map(|s| s.updated_at.unwrap_or(s.attached_at)),
            generation: settings.generation,
            content_hash,
            lookup: Lookup::from_kernel(settings.lookup).name(),
            iface: iface.clone(),
        })
    }
}

/// A label value with the exposition format's escapes (`\`, `"`, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A family's `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A family whose series carry the `interface` label alone; `None` values are left out.
pub fn interface_family<'a>(
    out: &mut String,
    (name, kind, help): (&str, &str, &str),
    rows: impl IntoIterator<Item = (&'a IfaceName, Option<u64>)>,
) {
    header(out, name, kind, help);
    for (iface, value) in rows {
        if let Some(v) = value {
            let _ = writeln!(
                out,
                "{name}{{interface=\"{}\"}} {v}",
                escape(iface.as_str())
            );
        }
    }
}

/// A family whose series carry the `interface` label and then `labels` (names and values).
pub fn labelled_family<'a>(
    out: &mut String,
    (name, kind, help): (&str, &str, &str),
    rows: impl IntoIterator<Item = (&'a IfaceName, Vec<(&'static str, String)>, u64)>,
) {
    header(out, name, kind, help);
    for (iface, labels, value) in rows {
        let _ = write!(out, "{name}{{interface=\"{}\"", escape(iface.as_str()));
        for (label, text) in labels {
            let _ = write!(out, ",{label}=\"{}\"", escape(&text));
        }
        let _ = writeln!(out, "}} {value}");
    }
}

/// The exposition text for every interface: its counters, then the facts of its data.
#[must_use]
pub fn exposition(all: &[InterfaceMetrics]) -> String {
    let mut out = String::new();
    counter_families(&mut out, all);
    fact_families(&mut out, all);
    out
}

/// A counter family with `country` and `verdict` labels: every country series of each filter.
fn country_family(
    out: &mut String,
    all: &[InterfaceMetrics],
    (name, help): (&str, &str),
    field: fn(&Counter) -> u64,
) {
    header(out, name, "counter", help);
    for m in all {
        for (country, verdict, counter) in country_series(m) {
            let _ = writeln!(
                out,
                "{name}{{interface=\"{}\",country=\"{country}\",verdict=\"{}\"}} {}",
                escape(m.iface.as_str()),
                verdict.label(),
                field(&counter)
            );
        }
    }
}

/// A counter family with `class` and `verdict` labels: every class slot that can count.
fn class_family(
    out: &mut String,
    all: &[InterfaceMetrics],
    (name, help): (&str, &str),
    field: fn(&Counter) -> u64,
) {
    header(out, name, "counter", help);
    for m in all {
        for slot in 0..COUNTER_SLOTS {
            let kind = Slot::of(slot);
            let Some((class, verdict)) = kind.class() else {
                continue;
            };
            if !kind.can_count() {
                continue;
            }
            let _ = writeln!(
                out,
                "{name}{{interface=\"{}\",class=\"{class}\",verdict=\"{}\"}} {}",
                escape(m.iface.as_str()),
                verdict.label(),
                field(&m.totals[slot as usize])
            );
        }
    }
}

fn counter_families(out: &mut String, all: &[InterfaceMetrics]) {
    country_family(
        out,
        all,
        (
            "regionfilter_packets_total",
            "Packets judged by the country of their source (country \"unknown\": in no country).",
        ),
        |c| c.packets,
    );
    country_family(
        out,
        all,
        (
            "regionfilter_bytes_total",
            "Bytes of the packets judged by the country of their source.",
        ),
        |c| c.bytes,
    );
    class_family(
        out,
        all,
        (
            "regionfilter_class_packets_total",
            "Packets decided other than by country: exceptions, local space, non-IP, malformed, ICMP errors, out of scope, fragments, TCP not opening a connection, neighbour discovery, undeclared NAT64.",
        ),
        |c| c.packets,
    );
    class_family(
        out,
        all,
        (
            "regionfilter_class_bytes_total",
            "Bytes of the packets decided other than by country.",
        ),
        |c| c.bytes,
    );
}

/// The per-interface facts: samples lost, the data's build and update times, its size, the
/// active half and content.
fn fact_families(out: &mut String, all: &[InterfaceMetrics]) {
    interface_family(
        out,
        (
            "regionfilter_samples_lost_total",
            "counter",
            "Drop samples lost because the ring buffer was full (no reader kept up).",
        ),
        all.iter().map(|m| {
            (
                &m.iface,
                Some(m.totals[filter_common::SLOT_SAMPLES_LOST as usize].packets),
            )
        }),
    );
    interface_family(
        out,
        (
            "regionfilter_data_build_timestamp_seconds",
            "gauge",
            "Build time of the newest source of the loaded data.",
        ),
        all.iter().map(|m| (&m.iface, m.data_built)),
    );
    interface_family(
        out,
        (
            "regionfilter_last_update_timestamp_seconds",
            "gauge",
            "Time of the last attach, update or rollback that switched the data.",
        ),
        all.iter().map(|m| (&m.iface, m.updated_at)),
    );
    interface_family(
        out,
        (
            "regionfilter_generation",
            "gauge",
            "Generation of the active half (incremented by every switch).",
        ),
        all.iter().map(|m| (&m.iface, Some(m.generation))),
    );
    header(
        out,
        "regionfilter_content_info",
        "gauge",
        "Always 1: the content hash of the active data and policy, and the lookup.",
    );
    for m in all {
        let _ = writeln!(
            out,
            "regionfilter_content_info{{interface=\"{}\",content_hash=\"{}\",lookup=\"{}\"}} 1",
            escape(m.iface.as_str()),
            escape(&m.content_hash),
            m.lookup
        );
    }
}

/// Every country series of one interface: the data's countries and any other country with
/// traffic, then unknown space, each with its three verdicts.
fn country_series(m: &InterfaceMetrics) -> Vec<(String, Verdict, Counter)> {
    let decoded = Decoded::new(&m.totals);
    let verdicts = [Verdict::Passed, Verdict::Dropped, Verdict::WouldDrop];
    let mut out = Vec::new();
    for (country, counters) in &decoded.countries {
        let has_traffic = verdicts.iter().any(|v| counters.get(*v).packets > 0);
        if m.countries.contains(country) || has_traffic {
            out.extend(verdicts.map(|v| (country.code(), v, counters.get(v))));
        }
    }
    out.extend(verdicts.map(|v| ("unknown".to_owned(), v, decoded.unknown.get(v))));
    out
}

#[cfg(test)]
mod tests {
    use filter_common::{country_slot, ACTION_DROP, SLOT_OUT_OF_SCOPE};

    use super::*;

    #[test]
    fn countries_of_the_data_are_zeros_before_traffic_and_classes_are_apart() {
        let gb = Country::parse("GB").unwrap();
        let se = Country::parse("SE").unwrap();
        let mut totals = vec![Counter::default(); COUNTER_SLOTS as usize];
        totals[country_slot(gb.index(), ACTION_DROP) as usize] = Counter {
            packets: 3,
            bytes: 180,
        };
        totals[SLOT_OUT_OF_SCOPE as usize] = Counter {
            packets: 7,
            bytes: 420,
        };
        let text = exposition(&[InterfaceMetrics {
            iface: "eth1".parse().unwrap(),
            totals,
            countries: [se].into(),
            data_built: Some(1_700_000_000),
            updated_at: None,
            generation: 2,
            content_hash: "ab".repeat(32),
            lookup: "fast",
        }]);
        for line in [
            r#"regionfilter_packets_total{interface="eth1",country="GB",verdict="dropped"} 3"#,
            r#"regionfilter_bytes_total{interface="eth1",country="GB",verdict="dropped"} 180"#,
            r#"regionfilter_packets_total{interface="eth1",country="SE",verdict="passed"} 0"#,
            r#"regionfilter_packets_total{interface="eth1",country="unknown",verdict="would_drop"} 0"#,
            r#"regionfilter_class_packets_total{interface="eth1",class="out_of_scope",verdict="passed"} 7"#,
            r#"regionfilter_generation{interface="eth1"} 2"#,
            "regionfilter_data_build_timestamp_seconds{interface=\"eth1\"} 1700000000",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        assert!(
            !text.contains("regionfilter_last_update_timestamp_seconds{"),
            "{text}"
        );
        assert!(
            !text.contains("class=\"always_pass\",verdict=\"dropped\""),
            "{text}"
        );
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
