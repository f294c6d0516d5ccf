//! What each counter slot counts, by name: for `explain --iface`, which prints the kernel's
//! slot beside the model's, and for anything else that labels counters.

use std::fmt;

use filter_common::{
    CLASS_EXCEPTION_DROP, CLASS_EXCEPTION_PASS, CLASS_LOCAL, ENTRY_SLOTS, SLOT_FRAGMENT_PASS,
    SLOT_ICMP_ERROR_PASS, SLOT_MALFORMED_DROP, SLOT_MALFORMED_PASS, SLOT_MALFORMED_WOULD_DROP,
    SLOT_NDP_PASS, SLOT_NON_IP, SLOT_OUT_OF_SCOPE, SLOT_SAMPLES_LOST, SLOT_TCP_NOT_SYN,
    SLOT_UNDECLARED_NAT64_DROP, SLOT_UNDECLARED_NAT64_WOULD_DROP, UNKNOWN_COUNTRY, VERDICT_DROP,
    VERDICT_PASS, VERDICT_WOULD_DROP,
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
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Dropped => "dropped",
            Self::WouldDrop => "would drop",
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
}
