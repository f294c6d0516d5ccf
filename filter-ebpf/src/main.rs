//! XDP program: judge each frame by the country of its IPv4/IPv6 source address.
//!
//! Every data and policy map exists twice ([`half`]); `ACTIVE` names the half packets see, so an
//! update fills the other half and switches with one map write. Every verdict goes through
//! [`count`], so no path can forget to count.
#![no_std]
#![no_main]

mod bench;
mod half;
mod lookup;
mod parse;
mod sample;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::bpf_xdp_get_buff_len,
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use filter_common::{Counter, ACTION_DROP, COUNTER_SLOTS};

use crate::{
    bench::next_source,
    half::{Half0, Half1},
    lookup::judge,
};

/// Which half (0 or 1) packets are judged by.
#[map]
static ACTIVE: Array<u32> = Array::with_max_entries(1, 0);
#[map]
static COUNTERS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// The half the self-test program judges with, set when userspace loads it.
#[unsafe(no_mangle)]
static SELFTEST_HALF: u32 = 0;

/// `frags`: multi-buffer aware, so native mode attaches on jumbo-MTU interfaces. Headers are
/// always in the first buffer; only the byte counter needs the whole length.
#[xdp(frags)]
pub fn regionfilter(ctx: XdpContext) -> u32 {
    filter(&ctx)
}

#[inline(always)]
fn filter(ctx: &XdpContext) -> u32 {
    let (mut source, transport) = parse::packet(ctx);
    // One read of ACTIVE per packet: the whole verdict comes from one half.
    let verdict = match ACTIVE.get(0) {
        Some(&1) => judge::<Half1>(&mut source, transport),
        _ => judge::<Half0>(&mut source, transport),
    };
    count(ctx, verdict.slot);
    if verdict.sample_rate != 0 {
        sample::sample(ctx, &source, transport, verdict.slot, verdict.sample_rate);
    }
    xdp_verdict(verdict.action)
}

/// Judges a frame by the half `SELFTEST_HALF` without counting it, and writes the counter slot
/// into its first four bytes (little endian), so userspace sees the country as well as the
/// action. Never attached: `update` runs it with BPF_PROG_TEST_RUN before switching halves.
#[xdp(frags)]
pub fn regionfilter_selftest(ctx: XdpContext) -> u32 {
    let (mut source, transport) = parse::packet(&ctx);
    // SAFETY: a plain read of a load-time constant.
    let half = unsafe { core::ptr::read_volatile(&SELFTEST_HALF) };
    let verdict = if half == 1 {
        judge::<Half1>(&mut source, transport)
    } else {
        judge::<Half0>(&mut source, transport)
    };
    parse::write(&ctx, 0, verdict.slot.to_le_bytes());
    xdp_verdict(verdict.action)
}

/// Benchmark sender for the end-to-end rows, run with BPF_PROG_TEST_RUN in live-frames mode in
/// the sender's namespace: the next source address, a valid IPv4 header checksum (netfilter
/// checks it), then out of `BENCH_SEND_IFINDEX` to the receiver's veth end.
#[xdp]
pub fn bench_send(ctx: XdpContext) -> u32 {
    next_source(&ctx);
    bench::fix_ipv4_checksum(&ctx);
    bench::redirect()
}

/// Benchmark floor: the cheapest possible XDP program.
#[xdp]
pub fn bench_floor(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

/// Benchmark harness cost: give the frame the next source address, then drop it.
#[xdp]
pub fn bench_rotate(ctx: XdpContext) -> u32 {
    next_source(&ctx);
    xdp_action::XDP_DROP
}

/// The filter with the next source address: BPF_PROG_TEST_RUN repeats one frame, so without
/// this every run would look up the same, cached address.
#[xdp]
pub fn bench_filter(ctx: XdpContext) -> u32 {
    next_source(&ctx);
    filter(&ctx)
}

/// Counts the verdict in its per-CPU slot.
#[inline(always)]
pub(crate) fn count(ctx: &XdpContext, slot: u32) {
    if let Some(counter) = COUNTERS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        let counter = unsafe { &mut *counter };
        counter.packets += 1;
        // SAFETY: the helper only reads the xdp_buff the context points to.
        counter.bytes += unsafe { bpf_xdp_get_buff_len(ctx.ctx) };
    }
}

#[inline(always)]
fn xdp_verdict(action: u8) -> u32 {
    if action == ACTION_DROP {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
