//! What each counter slot counts: the one decoder of slot numbers, for `stats`, the metrics,
//! `explain --iface` (which prints the kernel's slot beside the model's) and anything else
//! that names or labels counters.

use std::{collections::BTreeMap, fmt};

use filter_common::{
    Counter, CLASS_EXCEPTION_DROP, CLASS_EXCEPTION_PASS, CLASS_LOCAL, COUNTER_SLOTS, ENTRY_SLOTS,
    SLOT_FRAGMENT_PASS, SLOT_ICMP_ERROR_PASS, SLOT_MALFORMED_DROP, SLOT_MALFORMED_PASS,
    SLOT_MALFORMED_WOULD_DROP, SLOT_NDP_PASS, SLOT_NON_IP, SLOT_OUT_OF_SCOPE, SLOT_SAMPLES_LOST,
    SLOT_TCP_NOT_SYN, SLOT_UNDECLARED_NAT64_DROP, SLOT_UNDECLARED_NAT64_WOULD_DROP,
    UNKNOWN_COUNTRY, VERDICT_DROP, VERDICT_PASS, VERDICT_WOULD_DROP,
};

use crate::model::country::Country;

/// What a counter slot counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// A country, unknown space (`None`) or a class, and the verdict.
    Entry {
        class: EntryClass,
        verdict: Verdict,
    },
    NonIp,
    Malformed(Verdict),
    IcmpErrorPassed,
    OutOfScope,
    FragmentPassed,
    TcpNotSynPassed,
    /// A source in `64:ff9b:1::/48` outside every declared NAT64 prefix: dropped or would drop.
    UndeclaredNat64(Verdict),
    /// Neighbour discovery with hop limit 255, passed.
    NdpPassed,
    /// Drop samples lost to a full ring: not a verdict.
    SamplesLost,
    /// A slot number this build does not use.
    Unused(u32),
}

/// The table entry a slot belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryClass {
    Country(Country),
    Unknown,
    AllowCidr,
    DenyCidr,
    Local,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Dropped,
    WouldDrop,
}

impl Verdict {
    /// In prose: `passed`, `dropped`, `would drop`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Dropped => "dropped",
            Self::WouldDrop => "would drop",
        }
    }

    /// As a label value or field name: `passed`, `dropped`, `would_drop`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Dropped => "dropped",
            Self::WouldDrop => "would_drop",
        }
    }
}

impl Slot {
    /// Names counter slot `slot`.
    #[must_use]
    pub fn of(slot: u32) -> Self {
        let verdict = |v: u32| match v {
            VERDICT_PASS => Verdict::Passed,
            VERDICT_DROP => Verdict::Dropped,
            _ => Verdict::WouldDrop,
        };
        if slot < ENTRY_SLOTS * 3 {
            let entry = u16::try_from(slot / 3).expect("below ENTRY_SLOTS");
            let class = match entry {
                UNKNOWN_COUNTRY => EntryClass::Unknown,
                CLASS_EXCEPTION_PASS => EntryClass::AllowCidr,
                CLASS_EXCEPTION_DROP => EntryClass::DenyCidr,
                CLASS_LOCAL => EntryClass::Local,
                index => match Country::from_index(index) {
                    Some(country) => EntryClass::Country(country),
                    None => return Self::Unused(slot),
                },
            };
            debug_assert!(slot % 3 <= VERDICT_WOULD_DROP);
            return Self::Entry {
                class,
                verdict: verdict(slot % 3),
            };
        }
        match slot {
            SLOT_NON_IP => Self::NonIp,
            SLOT_MALFORMED_PASS => Self::Malformed(Verdict::Passed),
            SLOT_MALFORMED_DROP => Self::Malformed(Verdict::Dropped),
            SLOT_MALFORMED_WOULD_DROP => Self::Malformed(Verdict::WouldDrop),
            SLOT_ICMP_ERROR_PASS => Self::IcmpErrorPassed,
            SLOT_OUT_OF_SCOPE => Self::OutOfScope,
            SLOT_FRAGMENT_PASS => Self::FragmentPassed,
            SLOT_TCP_NOT_SYN => Self::TcpNotSynPassed,
            SLOT_UNDECLARED_NAT64_DROP => Self::UndeclaredNat64(Verdict::Dropped),
            SLOT_UNDECLARED_NAT64_WOULD_DROP => Self::UndeclaredNat64(Verdict::WouldDrop),
            SLOT_NDP_PASS => Self::NdpPassed,
            SLOT_SAMPLES_LOST => Self::SamplesLost,
            other => Self::Unused(other),
        }
    }
}

impl Slot {
    /// The metrics' `class` label of a slot that counts packets outside the country table
    /// (`always_pass`, `local`, `malformed`, ...) with its verdict; `None` for country and
    /// unknown-space slots, which are labelled by country, and for slots that count no packets.
    #[must_use]
    pub fn class(self) -> Option<(&'static str, Verdict)> {
        Some(match self {
            Self::Entry { class, verdict } => match class {
                EntryClass::Country(_) | EntryClass::Unknown => return None,
                EntryClass::AllowCidr => ("always_pass", verdict),
                EntryClass::DenyCidr => ("always_drop", verdict),
                EntryClass::Local => ("local", verdict),
            },
            Self::NonIp => ("non_ip", Verdict::Passed),
            Self::Malformed(verdict) => ("malformed", verdict),
            Self::IcmpErrorPassed => ("icmp_error", Verdict::Passed),
            Self::OutOfScope => ("out_of_scope", Verdict::Passed),
            Self::FragmentPassed => ("fragment", Verdict::Passed),
            Self::TcpNotSynPassed => ("tcp_not_syn", Verdict::Passed),
            Self::UndeclaredNat64(verdict) => ("undeclared_nat64", verdict),
            Self::NdpPassed => ("neighbour_discovery", Verdict::Passed),
            // Not packets of a class: its own series and field.
            Self::SamplesLost | Self::Unused(_) => return None,
        })
    }

    /// Whether the program can ever count in this slot: an always-pass CIDR never drops, and
    /// so on. Slots that cannot are left out of the metrics rather than exported as zeros.
    #[must_use]
    pub fn can_count(self) -> bool {
        match self {
            Self::Entry { class, verdict } => match class {
                EntryClass::AllowCidr => verdict == Verdict::Passed,
                EntryClass::DenyCidr => verdict != Verdict::Passed,
                EntryClass::Country(_) | EntryClass::Unknown | EntryClass::Local => true,
            },
            Self::UndeclaredNat64(verdict) => verdict != Verdict::Passed,
            Self::Malformed(_) => true,
            Self::NonIp
            | Self::IcmpErrorPassed
            | Self::OutOfScope
            | Self::FragmentPassed
            | Self::TcpNotSynPassed
            | Self::NdpPassed
            | Self::SamplesLost => true,
            Self::Unused(_) => false,
        }
    }
}

/// One entry's or class's counters, one per verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdicts {
    pub passed: Counter,
    pub dropped: Counter,
    pub would_drop: Counter,
}

impl Verdicts {
    #[must_use]
    pub fn get(&self, verdict: Verdict) -> Counter {
        match verdict {
            Verdict::Passed => self.passed,
            Verdict::Dropped => self.dropped,
            Verdict::WouldDrop => self.would_drop,
        }
    }

    fn add(&mut self, verdict: Verdict, counter: Counter) {
        let to = match verdict {
            Verdict::Passed => &mut self.passed,
            Verdict::Dropped => &mut self.dropped,
            Verdict::WouldDrop => &mut self.would_drop,
        };
        to.packets += counter.packets;
        to.bytes += counter.bytes;
    }
}

/// Every slot of one interface's summed counters, decoded once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Every country of the table, with or without traffic.
    pub countries: BTreeMap<Country, Verdicts>,
    /// Sources the data places in no country.
    pub unknown: Verdicts,
    /// The other classes by their [`Slot::class`] label.
    pub classes: BTreeMap<&'static str, Verdicts>,
    /// Drop samples lost to a full ring (not packets of a verdict).
    pub samples_lost: u64,
}

impl Decoded {
    /// Decodes `totals`, one counter per slot (missing slots count zero).
    #[must_use]
    pub fn new(totals: &[Counter]) -> Self {
        let mut decoded = Self::default();
        for slot in 0..COUNTER_SLOTS {
            let counter = totals.get(slot as usize).copied().unwrap_or_default();
            let kind = Slot::of(slot);
            match kind {
                Slot::Entry {
                    class: EntryClass::Country(c),
                    verdict,
                } => decoded
                    .countries
                    .entry(c)
                    .or_default()
                    .add(verdict, counter),
                Slot::Entry {
                    class: EntryClass::Unknown,
                    verdict,
                } => decoded.unknown.add(verdict, counter),
                Slot::SamplesLost => decoded.samples_lost = counter.packets,
                _ => {
                    if let Some((class, verdict)) = kind.class() {
                        decoded
                            .classes
                            .entry(class)
                            .or_default()
                            .add(verdict, counter);
                    }
                }
            }
        }
        decoded
    }

    /// The counters of class `label` ([`Slot::class`]); zero for a label no slot has.
    #[must_use]
    pub fn class(&self, label: &str) -> Verdicts {
        self.classes.get(label).copied().unwrap_or_default()
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Entry { class, verdict } => {
                let what = match class {
                    EntryClass::Country(c) => c.code(),
                    EntryClass::Unknown => "unknown space".to_owned(),
                    EntryClass::AllowCidr => "always-pass CIDR".to_owned(),
                    EntryClass::DenyCidr => "always-drop CIDR".to_owned(),
                    EntryClass::Local => "local space".to_owned(),
                };
                write!(f, "{what} {}", verdict.name())
            }
            Self::NonIp => f.write_str("non-IP passed"),
            Self::Malformed(v) => write!(f, "malformed {}", v.name()),
            Self::IcmpErrorPassed => f.write_str("ICMP error passed"),
            Self::OutOfScope => f.write_str("out of scope passed"),
            Self::FragmentPassed => f.write_str("fragment passed"),
            Self::TcpNotSynPassed => f.write_str("TCP not opening a connection passed"),
            Self::UndeclaredNat64(v) => write!(f, "undeclared NAT64 {}", v.name()),
            Self::NdpPassed => f.write_str("neighbour discovery passed"),
            Self::SamplesLost => f.write_str("drop samples lost (ring full)"),
            Self::Unused(n) => write!(f, "unused slot {n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use filter_common::{
        country_slot, would_drop_slot, ACTION_DROP, COUNTER_SLOTS, SLOT_LOCAL_PASS,
    };

    use super::*;

    #[test]
    fn every_used_slot_has_a_name_and_they_differ() {
        let gb = Country::parse("GB").unwrap();
        assert_eq!(
            Slot::of(country_slot(gb.index(), ACTION_DROP)).to_string(),
            "GB dropped"
        );
        assert_eq!(
            Slot::of(would_drop_slot(country_slot(gb.index(), ACTION_DROP))).to_string(),
            "GB would drop"
        );
        assert_eq!(Slot::of(SLOT_LOCAL_PASS).to_string(), "local space passed");
        assert_eq!(
            Slot::of(SLOT_OUT_OF_SCOPE).to_string(),
            "out of scope passed"
        );
        let names: std::collections::BTreeSet<String> = (0..COUNTER_SLOTS)
            .map(|s| Slot::of(s).to_string())
            .collect();
        assert_eq!(
            names.len(),
            COUNTER_SLOTS as usize,
            "two slots share a name"
        );
        assert!(names.iter().all(|n| !n.starts_with("unused")));
    }

    #[test]
    fn decoding_puts_each_slot_under_its_country_or_class_once() {
        let gb = Country::parse("GB").unwrap();
        let mut totals = vec![Counter::default(); COUNTER_SLOTS as usize];
        let c = |packets| Counter {
            packets,
            bytes: packets * 100,
        };
        totals[country_slot(gb.index(), ACTION_DROP) as usize] = c(3);
        totals[would_drop_slot(country_slot(gb.index(), ACTION_DROP)) as usize] = c(4);
        totals[filter_common::SLOT_EXCEPTION_PASS as usize] = c(5);
        totals[SLOT_LOCAL_PASS as usize] = c(6);
        totals[SLOT_SAMPLES_LOST as usize] = c(7);
        let decoded = Decoded::new(&totals);
        assert_eq!(decoded.countries[&gb].dropped, c(3));
        assert_eq!(decoded.countries[&gb].would_drop, c(4));
        assert_eq!(decoded.class("always_pass").passed, c(5));
        assert_eq!(decoded.class("local").passed, c(6));
        assert_eq!(decoded.samples_lost, 7);
        let packets: u64 = decoded
            .countries
            .values()
            .chain([&decoded.unknown])
            .chain(decoded.classes.values())
            .map(|v| v.passed.packets + v.dropped.packets + v.would_drop.packets)
            .sum();
        assert_eq!(packets, 3 + 4 + 5 + 6, "a slot counted twice or lost");
    }
}
