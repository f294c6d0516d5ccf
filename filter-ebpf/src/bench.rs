//! Benchmark helpers: BPF_PROG_TEST_RUN repeats one frame, so the benchmark programs give it
//! the next of `BENCH_ADDRS_ENTRIES` source addresses on every run. Never on the packet path.

use aya_ebpf::{
    helpers::generated::bpf_redirect,
    macros::map,
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use filter_common::BENCH_ADDRS_ENTRIES;

use crate::parse::{self, ETH_HLEN, ETH_P_IP, ETH_P_IPV6, IPV4_SRC_OFFSET, IPV6_SRC_OFFSET};

/// Source addresses the benchmark programs cycle through; one entry outside benchmarks.
#[map]
static BENCH_ADDRS: Array<[u8; 16]> = Array::with_max_entries(BENCH_ADDRS_ENTRIES, 0);
#[map]
static BENCH_CURSOR: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// The interface `bench_send` transmits on, set when userspace loads it.
#[unsafe(no_mangle)]
static BENCH_SEND_IFINDEX: u32 = 0;

/// Writes `BENCH_ADDRS[cursor++]` into the source field of an untagged IPv4 or IPv6 frame.
#[inline(always)]
pub fn next_source(ctx: &XdpContext) {
    let Some(cursor) = BENCH_CURSOR.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot, only this CPU touches it while the program runs.
    let index = unsafe {
        let index = *cursor;
        *cursor = index.wrapping_add(1);
        index
    };
    let Some(addr) = BENCH_ADDRS.get(index & (BENCH_ADDRS_ENTRIES - 1)) else {
        return;
    };
    match parse::read_be16(ctx, ETH_HLEN - 2) {
        Some(ETH_P_IP) => parse::write(ctx, IPV4_SRC_OFFSET, [addr[0], addr[1], addr[2], addr[3]]),
        Some(ETH_P_IPV6) => parse::write(ctx, IPV6_SRC_OFFSET, *addr),
        _ => {}
    }
}

/// Recomputes the header checksum of an untagged IPv4 frame with a 20-byte header; leaves
/// other frames alone.
#[inline(always)]
pub fn fix_ipv4_checksum(ctx: &XdpContext) {
    const CHECKSUM_AT: usize = 10;
    if parse::read_be16(ctx, ETH_HLEN - 2) != Some(ETH_P_IP) {
        return;
    }
    let Some(header) = parse::read::<[u8; 20]>(ctx, ETH_HLEN) else {
        return;
    };
    let mut sum = 0u32;
    let mut i = 0;
    while i < header.len() {
        if i != CHECKSUM_AT {
            sum += u32::from(u16::from_be_bytes([header[i], header[i + 1]]));
        }
        i += 2;
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    parse::write(ctx, ETH_HLEN + CHECKSUM_AT, (!(sum as u16)).to_be_bytes());
}

/// `XDP_REDIRECT` to `BENCH_SEND_IFINDEX`.
#[inline(always)]
pub fn redirect() -> u32 {
    // SAFETY: a plain read of a load-time constant.
    let ifindex = unsafe { core::ptr::read_volatile(&BENCH_SEND_IFINDEX) };
    // SAFETY: the helper only records the target; flags 0 means no fallback action.
    unsafe { bpf_redirect(ifindex, 0) as u32 }
}
