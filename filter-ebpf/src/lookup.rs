//! From a source address to a verdict, using one half's maps.

use aya_ebpf::maps::lpm_trie::Key;
use filter_common::{
    country_slot, would_drop_slot, Settings, ACTION_DROP, ACTION_PASS, EXCEPTIONS_DROP_V4,
    EXCEPTIONS_DROP_V6, EXCEPTIONS_PASS_V4, EXCEPTIONS_PASS_V6, FLAG_DRY_RUN,
    FLAG_JUDGE_ICMP_ERRORS, LOOKUP_LPM, SLOT_EXCEPTION_DROP, SLOT_EXCEPTION_PASS,
    SLOT_ICMP_ERROR_PASS, SLOT_MALFORMED_DROP, SLOT_MALFORMED_PASS, SLOT_NON_IP, TABLE_CHUNK,
    TABLE_LPM, UNKNOWN_COUNTRY, V6_TABLE_BYTES,
};

use crate::{half::Half, parse::Source};

/// The counter slot and action for a frame's source, judged by half `H`.
#[inline(always)]
pub fn judge<H: Half>(source: &Source) -> (u32, u8) {
    let Some(settings) = H::settings().get(0) else {
        return (SLOT_MALFORMED_PASS, ACTION_PASS);
    };
    let judge_icmp = settings.flags & FLAG_JUDGE_ICMP_ERRORS != 0;
    let (slot, action) = match source {
        Source::V4(src) => judge_v4::<H>(settings, *src),
        Source::V6(src) => judge_v6::<H>(settings, src),
        Source::IcmpErrorV4(src) if judge_icmp => judge_v4::<H>(settings, *src),
        Source::IcmpErrorV6(src) if judge_icmp => judge_v6::<H>(settings, src),
        Source::IcmpErrorV4(_) | Source::IcmpErrorV6(_) => (SLOT_ICMP_ERROR_PASS, ACTION_PASS),
        Source::Malformed if settings.malformed == u32::from(ACTION_DROP) => {
            (SLOT_MALFORMED_DROP, ACTION_DROP)
        }
        Source::Malformed => (SLOT_MALFORMED_PASS, ACTION_PASS),
        Source::NonIp => (SLOT_NON_IP, ACTION_PASS),
    };
    // A dry run counts what it would drop in the slot after the drop slot, and passes it.
    if action == ACTION_DROP && settings.flags & FLAG_DRY_RUN != 0 {
        return (would_drop_slot(slot), ACTION_PASS);
    }
    (slot, action)
}

/// Exceptions first (always-pass wins over always-drop), then the country policy. Empty
/// exception tries are skipped, so a policy without exceptions pays nothing for them.
#[inline(always)]
fn judge_v4<H: Half>(settings: &Settings, src: [u8; 4]) -> (u32, u8) {
    // Built only where a trie is asked, so the table path never writes a key to the stack.
    let key = || Key::new(32, src);
    if settings.exceptions & EXCEPTIONS_PASS_V4 != 0 && H::exc_pass_v4().get(key()).is_some() {
        return (SLOT_EXCEPTION_PASS, ACTION_PASS);
    }
    if settings.exceptions & EXCEPTIONS_DROP_V4 != 0 && H::exc_drop_v4().get(key()).is_some() {
        return (SLOT_EXCEPTION_DROP, ACTION_DROP);
    }
    let country = if settings.lookup == LOOKUP_LPM {
        H::lpm_v4().get(key()).copied().unwrap_or(UNKNOWN_COUNTRY)
    } else {
        v4_table::<H>(src)
    };
    by_country::<H>(country)
}

#[inline(always)]
fn judge_v6<H: Half>(settings: &Settings, src: &[u8; 16]) -> (u32, u8) {
    let key = || Key::new(128, *src);
    if settings.exceptions & EXCEPTIONS_PASS_V6 != 0 && H::exc_pass_v6().get(key()).is_some() {
        return (SLOT_EXCEPTION_PASS, ACTION_PASS);
    }
    if settings.exceptions & EXCEPTIONS_DROP_V6 != 0 && H::exc_drop_v6().get(key()).is_some() {
        return (SLOT_EXCEPTION_DROP, ACTION_DROP);
    }
    let table = if settings.lookup == LOOKUP_LPM {
        None
    } else {
        v6_table::<H>(src)
    };
    let country = match table {
        Some(country) => country,
        None => H::lpm_v6().get(key()).copied().unwrap_or(UNKNOWN_COUNTRY),
    };
    by_country::<H>(country)
}

/// DIR-16-8-8: one read of the first level resolves a /16; a /16 that holds longer prefixes
/// points to a pool chunk indexed by the third byte, and a /24 that does to one indexed by the
/// fourth.
#[inline(always)]
fn v4_table<H: Half>(src: [u8; 4]) -> u16 {
    let Some(l1) = H::v4_l1().get(u32::from(src[0])) else {
        return UNKNOWN_COUNTRY;
    };
    let mut entry = l1[usize::from(src[1])];
    for &byte in &src[2..] {
        if entry < TABLE_CHUNK {
            return entry;
        }
        let Some(chunk) = H::v4_pool().get(u32::from(entry - TABLE_CHUNK)) else {
            return UNKNOWN_COUNTRY;
        };
        entry = chunk[usize::from(byte)];
    }
    entry
}

/// Byte-wide strides over the first 64 bits; `None` when longer prefixes decide (LPM trie).
#[inline(always)]
fn v6_table<H: Half>(src: &[u8; 16]) -> Option<u16> {
    let mut entry = TABLE_CHUNK; // chunk 0, the root
    for &byte in &src[..V6_TABLE_BYTES] {
        if entry < TABLE_CHUNK {
            return Some(entry);
        }
        if entry == TABLE_LPM {
            return None;
        }
        let chunk = H::v6_pool().get(u32::from(entry - TABLE_CHUNK))?;
        entry = chunk[usize::from(byte)];
    }
    if entry == TABLE_LPM {
        None
    } else {
        Some(entry)
    }
}

#[inline(always)]
fn by_country<H: Half>(country: u16) -> (u32, u8) {
    let action = match H::policy().get(u32::from(country)) {
        Some(&ACTION_DROP) => ACTION_DROP,
        _ => ACTION_PASS,
    };
    (country_slot(country, action), action)
}
