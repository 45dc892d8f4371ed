//! Tracepoint source, kernel side: `tp_btf` programs on tracepoints that pass
//! a `struct sk_buff *`. A tracing program cannot tell which tracepoint it
//! runs on and tp_btf fixes the target at load time, so there is one numbered
//! "slot" program per tracepoint, per skb argument position
//! (`nft_schema::raw::TP_SLOTS`); the recorder loads each slot it needs
//! against one tracepoint (`recorder/src/sources/tracepoint.rs`), and the
//! slot number is the event's probe id.

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use nft_schema::raw::{tp_slot_base, EventKind, PROBE_KFREE_SKB};

use crate::skb::{emit, BtfRead, Extra};

macro_rules! tp_slots {
    ($arg:literal: $($name:ident = $index:literal),* $(,)?) => {
        tp_slots!(@ $arg, false: $($name = $index),*);
    };
    (@ $arg:literal, $frees:literal: $($name:ident = $index:literal),* $(,)?) => {
        $(
            #[btf_tracepoint]
            pub fn $name(ctx: BtfTracePointContext) -> i32 {
                let skb: u64 = ctx.arg($arg);
                emit::<BtfRead, _>(&ctx, skb, Extra {
                    probe_id: tp_slot_base($arg) + $index,
                    kind: EventKind::Tracepoint,
                    location: 0,
                    drop_reason: 0,
                    frees_skb: $frees,
                    reported_before: false,
                    net: 0,
                }) as i32
            }
        )*
    };
}

// Slot 0 of argument 0 is reserved for `skb:consume_skb`, the other
// tracepoint that frees an skb (see `plan` in the recorder).
tp_slots!(@ 0, true: tp_a0_00 = 0);
tp_slots!(0:
    tp_a0_01 = 1, tp_a0_02 = 2, tp_a0_03 = 3, tp_a0_04 = 4, tp_a0_05 = 5,
    tp_a0_06 = 6, tp_a0_07 = 7, tp_a0_08 = 8, tp_a0_09 = 9, tp_a0_10 = 10, tp_a0_11 = 11,
    tp_a0_12 = 12, tp_a0_13 = 13, tp_a0_14 = 14, tp_a0_15 = 15, tp_a0_16 = 16, tp_a0_17 = 17,
    tp_a0_18 = 18, tp_a0_19 = 19, tp_a0_20 = 20, tp_a0_21 = 21, tp_a0_22 = 22, tp_a0_23 = 23,
);
tp_slots!(1:
    tp_a1_00 = 0, tp_a1_01 = 1, tp_a1_02 = 2, tp_a1_03 = 3, tp_a1_04 = 4, tp_a1_05 = 5,
    tp_a1_06 = 6, tp_a1_07 = 7, tp_a1_08 = 8, tp_a1_09 = 9, tp_a1_10 = 10, tp_a1_11 = 11,
    tp_a1_12 = 12, tp_a1_13 = 13, tp_a1_14 = 14, tp_a1_15 = 15,
);
tp_slots!(2:
    tp_a2_00 = 0, tp_a2_01 = 1, tp_a2_02 = 2, tp_a2_03 = 3, tp_a2_04 = 4, tp_a2_05 = 5,
    tp_a2_06 = 6, tp_a2_07 = 7,
);
tp_slots!(3: tp_a3_00 = 0, tp_a3_01 = 1, tp_a3_02 = 2, tp_a3_03 = 3);

/// `skb:kfree_skb(skb, location, reason, ...)`: every drop, with the
/// kernel's drop reason and the address that dropped it.
#[btf_tracepoint]
pub fn tp_kfree_skb(ctx: BtfTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let location: u64 = ctx.arg(1);
    let reason: u64 = ctx.arg(2);
    emit::<BtfRead, _>(
        &ctx,
        skb,
        Extra {
            probe_id: PROBE_KFREE_SKB,
            kind: EventKind::Tracepoint,
            location,
            drop_reason: reason as u32,
            frees_skb: true,
            reported_before: false,
            net: 0,
        },
    ) as i32
}
