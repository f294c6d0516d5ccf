//! From a parsed frame to a verdict, using one half's maps.
//!
//! Exceptions and the local class are painted into the country tables by userspace, so one
//! table walk (or one trie lookup) per packet finds the entry, and one read of the policy
//! array, at the row the destination port picks, gives the action.

use aya_ebpf::maps::lpm_trie::Key;
use filter_common::{
    country_slot,
    wire::{TCP_ACK, TCP_SYN},
    would_drop_slot, Settings, ACTION_DROP, ACTION_PASS, FLAG_DRY_RUN, FLAG_JUDGE_ICMP_ERRORS,
    FLAG_SCOPE, FLAG_TCP_SYN_ONLY, LOOKUP_LPM, PORTS_UDP, ROW_MAIN, ROW_OUT_OF_SCOPE, ROW_STRICT,
    SLOT_FRAGMENT_PASS, SLOT_ICMP_ERROR_PASS, SLOT_MALFORMED_DROP, SLOT_MALFORMED_PASS,
    SLOT_NDP_PASS, SLOT_NON_IP, SLOT_OUT_OF_SCOPE, SLOT_TCP_NOT_SYN, SLOT_UNDECLARED_NAT64_DROP,
    TABLE_CHUNK, TABLE_LPM, UNKNOWN_COUNTRY, V6_TABLE_BYTES,
};

use crate::{
    half::Half,
    parse::{Source, SourceKind, Transport, TransportKind, IPPROTO_TCP, IPPROTO_UDP},
};

/// The verdict on one frame.
pub struct Verdict {
    pub slot: u32,
    pub action: u8,
    /// Drop samples per second to take, non-zero only for a drop or would-drop.
    pub sample_rate: u32,
}

/// The counter slot and action for a frame, judged by half `H`. An IPv6 source that embeds
/// an IPv4 address becomes that address here (the half's declared NAT64 prefixes decide).
#[inline(always)]
pub fn judge<H: Half>(source: &mut Source, transport: Transport) -> Verdict {
    let Some(settings) = H::settings().get(0) else {
        return Verdict {
            slot: SLOT_MALFORMED_PASS,
            action: ACTION_PASS,
            sample_rate: 0,
        };
    };
    source.resolve_embedding(&settings.nat64);
    let (slot, action) = decide::<H>(settings, source, transport);
    if action != ACTION_DROP {
        return Verdict {
            slot,
            action,
            sample_rate: 0,
        };
    }
    // A dry run counts what it would drop in the slot after the drop slot, and passes it.
    if settings.flags & FLAG_DRY_RUN != 0 {
        return Verdict {
            slot: would_drop_slot(slot),
            action: ACTION_PASS,
            sample_rate: settings.samples_per_sec,
        };
    }
    Verdict {
        slot,
        action,
        sample_rate: settings.samples_per_sec,
    }
}

#[inline(always)]
fn decide<H: Half>(settings: &Settings, source: &Source, transport: Transport) -> (u32, u8) {
    let judge_icmp = settings.flags & FLAG_JUDGE_ICMP_ERRORS != 0;
    match source.kind {
        SourceKind::Malformed if settings.malformed == u32::from(ACTION_DROP) => {
            return (SLOT_MALFORMED_DROP, ACTION_DROP)
        }
        SourceKind::Malformed => return (SLOT_MALFORMED_PASS, ACTION_PASS),
        SourceKind::NonIp => return (SLOT_NON_IP, ACTION_PASS),
        _ if source.icmp_error && !judge_icmp => return (SLOT_ICMP_ERROR_PASS, ACTION_PASS),
        // Hop limit 255: from the link itself, whatever the address says.
        _ if source.ndp => return (SLOT_NDP_PASS, ACTION_PASS),
        SourceKind::V4 | SourceKind::V6 | SourceKind::UndeclaredNat64 => {}
    }
    let row = match rule_row::<H>(settings, transport) {
        Ok(row) => row,
        Err(slot) => return (slot, ACTION_PASS),
    };
    // Its IPv4 address cannot be read: no layout may let a denied client choose its verdict.
    if source.kind == SourceKind::UndeclaredNat64 {
        return (SLOT_UNDECLARED_NAT64_DROP, ACTION_DROP);
    }
    let entry = if source.kind == SourceKind::V4 {
        entry_v4::<H>(settings, source.v4_addr())
    } else {
        entry_v6::<H>(settings, &source.addr)
    };
    let action = match H::policy()
        .get(u32::from(row))
        .and_then(|rule| rule.get(usize::from(entry)))
    {
        Some(&ACTION_DROP) => ACTION_DROP,
        _ => ACTION_PASS,
    };
    (country_slot(entry, action), action)
}

/// The policy row that judges this packet, or the slot of a packet passed unjudged: out of
/// scope, a non-first fragment, or TCP that opens no connection under `tcp syn`. Without a
/// scope or `tcp syn` no transport header is read.
#[inline(always)]
fn rule_row<H: Half>(settings: &Settings, transport: Transport) -> Result<u8, u32> {
    let scope = settings.flags & FLAG_SCOPE != 0;
    let syn_only = settings.flags & FLAG_TCP_SYN_ONLY != 0;
    if !scope && !syn_only {
        return Ok(ROW_MAIN);
    }
    // Without ports the strictest row judges under a scope: hiding the ports behind headers
    // must not take a packet out of it.
    let unparsed = if scope { ROW_STRICT } else { ROW_MAIN };
    let row = match (transport.kind, transport.proto) {
        (TransportKind::Fragment, _) => return Err(SLOT_FRAGMENT_PASS),
        (TransportKind::Unknown, _) => unparsed,
        (TransportKind::At, IPPROTO_TCP | IPPROTO_UDP) if !transport.complete => unparsed,
        (TransportKind::At, IPPROTO_TCP) => {
            if syn_only && transport.flags & (TCP_SYN | TCP_ACK) != TCP_SYN {
                return Err(SLOT_TCP_NOT_SYN);
            }
            if !scope {
                return Ok(ROW_MAIN);
            }
            port_row::<H>(0, transport.dport)
        }
        (TransportKind::At, _) if !scope => ROW_MAIN,
        (TransportKind::At, IPPROTO_UDP) => port_row::<H>(PORTS_UDP, transport.dport),
        // Truncation at the cast is harmless: userspace writes rows below 256.
        (TransportKind::At, _) => settings.portless_row as u8,
    };
    if row == ROW_OUT_OF_SCOPE {
        return Err(SLOT_OUT_OF_SCOPE);
    }
    Ok(row)
}

#[inline(always)]
fn port_row<H: Half>(base: u32, port: u16) -> u8 {
    let index = base + u32::from(port);
    H::ports()
        .get(index >> 8)
        .map_or(ROW_STRICT, |chunk| chunk[(index & 0xff) as usize])
}

/// The table entry (country or class) of an IPv4 source.
#[inline(always)]
fn entry_v4<H: Half>(settings: &Settings, src: [u8; 4]) -> u16 {
    if settings.lookup == LOOKUP_LPM {
        H::lpm_v4()
            .get(Key::new(32, src))
            .copied()
            .unwrap_or(UNKNOWN_COUNTRY)
    } else {
        v4_table::<H>(src)
    }
}

#[inline(always)]
fn entry_v6<H: Half>(settings: &Settings, src: &[u8; 16]) -> u16 {
    let table = if settings.lookup == LOOKUP_LPM {
        None
    } else {
        v6_table::<H>(src)
    };
    match table {
        Some(entry) => entry,
        None => H::lpm_v6()
            .get(Key::new(128, *src))
            .copied()
            .unwrap_or(UNKNOWN_COUNTRY),
    }
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
