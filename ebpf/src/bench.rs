//! Yardsticks for the overhead benchmark (`tests/e2e/load_bench.rs`),
//! never attached by a recording: loaded on the same tracepoint as a
//! recording's program, they show in one run what the kernel's tracepoint
//! call costs by itself (`bench_empty`), what reading and filtering a
//! packet costs without emitting it (`bench_prepare`), and two of its
//! parts: a clock read (`bench_ktime`) and one `bpf_probe_read_kernel` of
//! 56 bytes of the (cache-hot) skb (`bench_read`). The rest of a recording
//! program's time per hit is the ring buffer's.

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use nft_schema::raw::{EventKind, PROBE_BENCH};

use crate::skb::{prepare, BtfRead, Extra};

#[btf_tracepoint]
pub fn bench_empty(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[btf_tracepoint]
pub fn bench_prepare(ctx: BtfTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    if skb == 0 {
        return 0;
    }
    let extra = Extra {
        probe_id: PROBE_BENCH,
        kind: EventKind::Tracepoint,
        location: 0,
        drop_reason: 0,
        frees_skb: false,
        reported_before: false,
        net: 0,
    };
    match prepare::<BtfRead, _>(&ctx, skb, extra) {
        Some(ev) => ev.len as i32 & 1,
        None => 0,
    }
}

#[btf_tracepoint]
pub fn bench_ktime(_ctx: BtfTracePointContext) -> i32 {
    // SAFETY: helper without preconditions.
    (unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() } & 1) as i32
}

#[btf_tracepoint]
pub fn bench_read(ctx: BtfTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let v: [u64; 7] = crate::skb::read_at(skb, 0);
    (v[3] & 1) as i32
}
