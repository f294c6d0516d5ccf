//! XDP program: judge each frame by the country of its IPv4/IPv6 source address.
//!
//! Order of checks: always-pass CIDRs, always-drop CIDRs, then the country policy. Every verdict
//! goes through [`verdict`], which counts it in a per-CPU slot, so no path can forget to count.
#![no_std]
#![no_main]

use core::mem::size_of;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::bpf_xdp_get_buff_len,
    macros::{map, xdp},
    maps::{
        lpm_trie::{Key, LpmTrie},
        Array, PerCpuArray,
    },
    programs::XdpContext,
};
use filter_common::{
    country_slot, Config, Counter, ExceptionValue, ACTION_DROP, ACTION_PASS, COUNTER_SLOTS,
    COUNTRY_SLOTS, EXCEPTION_MAX_ENTRIES, REGION_MAX_ENTRIES, SLOT_EXCEPTION_DROP,
    SLOT_EXCEPTION_PASS, SLOT_MALFORMED_DROP, SLOT_MALFORMED_PASS, SLOT_NON_IP, UNKNOWN_COUNTRY,
};

#[map]
static REGION_V4: LpmTrie<[u8; 4], u16> = LpmTrie::with_max_entries(REGION_MAX_ENTRIES, 0);
#[map]
static REGION_V6: LpmTrie<[u8; 16], u16> = LpmTrie::with_max_entries(REGION_MAX_ENTRIES, 0);
#[map]
static EXC_PASS_V4: LpmTrie<[u8; 4], ExceptionValue> =
    LpmTrie::with_max_entries(EXCEPTION_MAX_ENTRIES, 0);
#[map]
static EXC_PASS_V6: LpmTrie<[u8; 16], ExceptionValue> =
    LpmTrie::with_max_entries(EXCEPTION_MAX_ENTRIES, 0);
#[map]
static EXC_DROP_V4: LpmTrie<[u8; 4], ExceptionValue> =
    LpmTrie::with_max_entries(EXCEPTION_MAX_ENTRIES, 0);
#[map]
static EXC_DROP_V6: LpmTrie<[u8; 16], ExceptionValue> =
    LpmTrie::with_max_entries(EXCEPTION_MAX_ENTRIES, 0);
/// Country index -> `ACTION_PASS` / `ACTION_DROP`. Index 0 is the unknown-space action.
#[map]
static POLICY: Array<u8> = Array::with_max_entries(COUNTRY_SLOTS, 0);
#[map]
static COUNTERS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);
#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
/// Outer (802.1ad) plus inner (802.1Q) tag; a third tag is treated as malformed.
const MAX_VLAN_TAGS: usize = 2;

/// `frags`: multi-buffer aware, so native mode attaches on jumbo-MTU interfaces. Headers are
/// always in the first buffer; only the byte counter needs the whole length.
#[xdp(frags)]
pub fn regionfilter(ctx: XdpContext) -> u32 {
    let (slot, action) = classify(&ctx);
    verdict(&ctx, slot, action)
}

/// Counts the verdict in its per-CPU slot and turns it into an XDP action.
#[inline(always)]
fn verdict(ctx: &XdpContext, slot: u32, action: u8) -> u32 {
    if let Some(counter) = COUNTERS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        let counter = unsafe { &mut *counter };
        counter.packets += 1;
        // SAFETY: the helper only reads the xdp_buff the context points to.
        counter.bytes += unsafe { bpf_xdp_get_buff_len(ctx.ctx) };
    }
    if action == ACTION_DROP {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// Returns the counter slot and action for one frame.
#[inline(always)]
fn classify(ctx: &XdpContext) -> (u32, u8) {
    let Some(mut proto) = read_be16(ctx, ETH_HLEN - 2) else {
        return malformed();
    };
    let mut offset = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        let Some(inner) = read_be16(ctx, offset + 2) else {
            return malformed();
        };
        proto = inner;
        offset += VLAN_HLEN;
    }
    match proto {
        ETH_P_IP => {
            // A full fixed header must be present; the source address sits at byte 12.
            let (Some(vihl), Some(src), Some(_)) = (
                read::<u8>(ctx, offset),
                read::<[u8; 4]>(ctx, offset + 12),
                read::<[u8; 4]>(ctx, offset + 16),
            ) else {
                return malformed();
            };
            if vihl >> 4 != 4 || vihl & 0x0f < 5 {
                return malformed();
            }
            judge(src, &EXC_PASS_V4, &EXC_DROP_V4, &REGION_V4)
        }
        ETH_P_IPV6 => {
            // A full fixed header must be present; the source address sits at byte 8.
            let (Some(version), Some(src), Some(_)) = (
                read::<u8>(ctx, offset),
                read::<[u8; 16]>(ctx, offset + 8),
                read::<[u8; 16]>(ctx, offset + 24),
            ) else {
                return malformed();
            };
            if version >> 4 != 6 {
                return malformed();
            }
            // An IPv4-mapped source (::ffff:a.b.c.d) is an IPv4 host: judge it as one, since the
            // IPv6 data leaves that range out.
            if let Some(v4) = ipv4_mapped(&src) {
                return judge(v4, &EXC_PASS_V4, &EXC_DROP_V4, &REGION_V4);
            }
            judge(src, &EXC_PASS_V6, &EXC_DROP_V6, &REGION_V6)
        }
        ETH_P_8021Q | ETH_P_8021AD => malformed(),
        _ => (SLOT_NON_IP, ACTION_PASS),
    }
}

/// Exceptions first (always-pass wins over always-drop), then the country policy.
#[inline(always)]
fn judge<const N: usize>(
    src: [u8; N],
    always_pass: &LpmTrie<[u8; N], ExceptionValue>,
    always_drop: &LpmTrie<[u8; N], ExceptionValue>,
    region: &LpmTrie<[u8; N], u16>,
) -> (u32, u8) {
    let key = Key::new((N * 8) as u32, src);
    if always_pass.get(&key).is_some() {
        return (SLOT_EXCEPTION_PASS, ACTION_PASS);
    }
    if always_drop.get(&key).is_some() {
        return (SLOT_EXCEPTION_DROP, ACTION_DROP);
    }
    let country = region.get(&key).copied().unwrap_or(UNKNOWN_COUNTRY);
    let action = match POLICY.get(u32::from(country)) {
        Some(&ACTION_DROP) => ACTION_DROP,
        _ => ACTION_PASS,
    };
    (country_slot(country, action), action)
}

/// The IPv4 address inside `::ffff:a.b.c.d`.
#[inline(always)]
fn ipv4_mapped(src: &[u8; 16]) -> Option<[u8; 4]> {
    const PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
    if src[..12] != PREFIX {
        return None;
    }
    Some([src[12], src[13], src[14], src[15]])
}

#[inline(always)]
fn malformed() -> (u32, u8) {
    let drop = matches!(CONFIG.get(0), Some(c) if c.malformed == u32::from(ACTION_DROP));
    if drop {
        (SLOT_MALFORMED_DROP, ACTION_DROP)
    } else {
        (SLOT_MALFORMED_PASS, ACTION_PASS)
    }
}

/// Reads a `T` at `offset` from the start of the frame, if the linear part holds all of it.
#[inline(always)]
fn read<T: Copy>(ctx: &XdpContext, offset: usize) -> Option<T> {
    let start = ctx.data();
    if start + offset + size_of::<T>() > ctx.data_end() {
        return None;
    }
    // SAFETY: bounds checked against data_end just above; packet data has no alignment.
    Some(unsafe { ((start + offset) as *const T).read_unaligned() })
}

#[inline(always)]
fn read_be16(ctx: &XdpContext, offset: usize) -> Option<u16> {
    read::<[u8; 2]>(ctx, offset).map(u16::from_be_bytes)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
