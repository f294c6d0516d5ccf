//! Drop samples: some dropped and would-drop packets are written into the `SAMPLES` ring
//! buffer for `regionfilter watch`, at most `Settings::samples_per_sec` per CPU and second (a
//! credit of nanoseconds, one second's worth at most, so a flood cannot fill the ring).
//! Packets that pass never get here, and with sampling off a drop costs one compare.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, generated::bpf_xdp_get_buff_len},
    macros::map,
    maps::{PerCpuArray, RingBuf},
    programs::XdpContext,
};
use filter_common::{DropSample, SampleBudget, SAMPLES_RING_BYTES, SLOT_SAMPLES_LOST};

use crate::parse::{Source, SourceKind, Transport, TransportKind, IPPROTO_TCP, IPPROTO_UDP};

#[map]
static SAMPLES: RingBuf = RingBuf::with_byte_size(SAMPLES_RING_BYTES, 0);
#[map]
static SAMPLE_BUDGET: PerCpuArray<SampleBudget> = PerCpuArray::with_max_entries(1, 0);

const SECOND_NS: u64 = 1_000_000_000;

/// Writes a sample of this packet if this CPU's budget allows one (`rate` per second).
#[inline(always)]
pub fn sample(ctx: &XdpContext, source: &Source, transport: Transport, slot: u32, rate: u32) {
    let Some(budget) = SAMPLE_BUDGET.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a per-CPU slot, only this CPU touches it while the program runs.
    let budget = unsafe { &mut *budget };
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let elapsed = now.wrapping_sub(budget.last_ns);
    budget.last_ns = now;
    let credit = budget.credit_ns.saturating_add(elapsed).min(SECOND_NS);
    let cost = SECOND_NS / u64::from(rate.max(1));
    if credit < cost {
        budget.credit_ns = credit;
        return;
    }
    budget.credit_ns = credit - cost;
    let Some(mut entry) = SAMPLES.reserve::<DropSample>(0) else {
        // The ring is full: no reader is keeping up. Counted, so `watch` and the metrics can
        // say how many samples were lost.
        crate::count(ctx, SLOT_SAMPLES_LOST);
        return;
    };
    let ports = transport.kind == TransportKind::At
        && transport.complete
        && (transport.proto == IPPROTO_TCP || transport.proto == IPPROTO_UDP);
    entry.write(DropSample {
        time_ns: now,
        addr: source.addr,
        ifindex: ctx.ingress_ifindex() as u32,
        slot,
        // SAFETY: the helper only reads the xdp_buff the context points to.
        length: unsafe { bpf_xdp_get_buff_len(ctx.ctx) } as u32,
        dport: if ports { transport.dport } else { 0 },
        family: if source.kind == SourceKind::V4 { 4 } else { 6 },
        proto: if transport.kind == TransportKind::At {
            transport.proto
        } else {
            0
        },
    });
    entry.submit(0);
}
