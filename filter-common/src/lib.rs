//! Types and constants shared by the XDP program and its userspace loader.
//!
//! Everything here is `#[repr(C)]` with explicit integer fields so both sides agree on the bytes.
#![no_std]

/// Country indices: 0 means "found in no country" (unknown space); `1 + (a-'A')*26 + (b-'A')` is
/// the two-letter code `ab`. Every alpha-2 shape fits, including the user-assigned codes some
/// databases use (`EU`, `AP`, `XK`, `ZZ`), so the index needs no table on the kernel side.
pub const UNKNOWN_COUNTRY: u16 = 0;
/// Number of country slots (unknown + 26 * 26 codes).
pub const COUNTRY_SLOTS: u32 = 1 + 26 * 26;

/// Encodes a two-letter upper-case code as its country index; `None` when it is not `[A-Z]{2}`.
#[must_use]
pub const fn country_index(code: [u8; 2]) -> Option<u16> {
    let [a, b] = code;
    if a.is_ascii_uppercase() && b.is_ascii_uppercase() {
        Some(1 + (a - b'A') as u16 * 26 + (b - b'A') as u16)
    } else {
        None
    }
}

/// Decodes a country index back to its two-letter code; `None` for unknown or out of range.
#[must_use]
pub const fn country_code(index: u16) -> Option<[u8; 2]> {
    if index == UNKNOWN_COUNTRY || index as u32 >= COUNTRY_SLOTS {
        return None;
    }
    let i = index - 1;
    Some([b'A' + (i / 26) as u8, b'A' + (i % 26) as u8])
}

/// Action stored in the policy array and the config.
pub const ACTION_PASS: u8 = 0;
pub const ACTION_DROP: u8 = 1;

/// Per-CPU counter slots. Country slots come first: `country * 2 + verdict`.
pub const VERDICT_PASS: u32 = 0;
pub const VERDICT_DROP: u32 = 1;
const SPECIAL_BASE: u32 = COUNTRY_SLOTS * 2;
/// Frames that are not IPv4 or IPv6 (ARP, LLDP, ...): always passed.
pub const SLOT_NON_IP: u32 = SPECIAL_BASE;
/// Truncated or malformed Ethernet/VLAN/IP headers, passed or dropped per `Config::malformed`.
pub const SLOT_MALFORMED_PASS: u32 = SPECIAL_BASE + 1;
pub const SLOT_MALFORMED_DROP: u32 = SPECIAL_BASE + 2;
/// Sources matched by an always-pass exception CIDR.
pub const SLOT_EXCEPTION_PASS: u32 = SPECIAL_BASE + 3;
/// Sources matched by an always-drop exception CIDR.
pub const SLOT_EXCEPTION_DROP: u32 = SPECIAL_BASE + 4;
/// Total number of counter slots.
pub const COUNTER_SLOTS: u32 = SPECIAL_BASE + 5;

/// Counter slot of a country verdict.
#[inline(always)]
#[must_use]
pub const fn country_slot(country: u16, action: u8) -> u32 {
    country as u32 * 2 + action as u32
}

/// One per-CPU counter cell.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// Runtime settings the program reads on each packet (single entry of the `CONFIG` array).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// `ACTION_PASS` or `ACTION_DROP` for truncated or malformed headers.
    pub malformed: u32,
}

/// Value of the exception tries: present means matched.
pub type ExceptionValue = u8;

/// Map names as they appear in the object file and under the pin directory.
pub mod maps {
    pub const REGION_V4: &str = "REGION_V4";
    pub const REGION_V6: &str = "REGION_V6";
    pub const EXC_PASS_V4: &str = "EXC_PASS_V4";
    pub const EXC_PASS_V6: &str = "EXC_PASS_V6";
    pub const EXC_DROP_V4: &str = "EXC_DROP_V4";
    pub const EXC_DROP_V6: &str = "EXC_DROP_V6";
    pub const POLICY: &str = "POLICY";
    pub const COUNTERS: &str = "COUNTERS";
    pub const CONFIG: &str = "CONFIG";
    /// Every map, in the order they are pinned.
    pub const ALL: [&str; 9] = [
        REGION_V4,
        REGION_V6,
        EXC_PASS_V4,
        EXC_PASS_V6,
        EXC_DROP_V4,
        EXC_DROP_V6,
        POLICY,
        COUNTERS,
        CONFIG,
    ];
}

/// Capacity of the country tries: a full-world database aggregates to well under this.
pub const REGION_MAX_ENTRIES: u32 = 1 << 20;
/// Capacity of each exception trie.
pub const EXCEPTION_MAX_ENTRIES: u32 = 1 << 16;
/// Name of the XDP program in the object file.
pub const PROGRAM_NAME: &str = "regionfilter";

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `repr(C)` integers with no padding.
    unsafe impl aya::Pod for super::Counter {}
    // SAFETY: plain `repr(C)` integers with no padding.
    unsafe impl aya::Pod for super::Config {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_index_round_trips_every_code() {
        for a in b'A'..=b'Z' {
            for b in b'A'..=b'Z' {
                let idx = country_index([a, b]).unwrap();
                assert!(idx > UNKNOWN_COUNTRY && u32::from(idx) < COUNTRY_SLOTS);
                assert_eq!(country_code(idx), Some([a, b]));
            }
        }
    }

    #[test]
    fn country_index_rejects_non_letters() {
        assert_eq!(country_index(*b"us"), None);
        assert_eq!(country_index(*b"U1"), None);
        assert_eq!(country_code(UNKNOWN_COUNTRY), None);
        assert_eq!(country_code(COUNTRY_SLOTS as u16), None);
    }

    #[test]
    fn counter_slots_do_not_overlap() {
        let last_country = country_slot(country_index(*b"ZZ").unwrap(), ACTION_DROP);
        assert!(last_country < SLOT_NON_IP);
        assert_eq!(COUNTER_SLOTS, SLOT_EXCEPTION_DROP + 1);
    }
}
