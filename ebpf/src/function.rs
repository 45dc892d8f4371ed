//! Function source, kernel side: kprobe and fentry programs on kernel
//! functions taking a `struct sk_buff *`. On the host kernel these cannot
//! attach (no kprobes, fentry refused); `nft-recorder check` loads them to say
//! so, and the QEMU harness proves them on Debian kernels.

use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};
use nft_schema::raw::EventKind;

use crate::skb::emit;

/// kprobe for functions whose skb is parameter 1.
#[kprobe]
pub fn kprobe_skb_1(ctx: ProbeContext) -> u32 {
    let skb: u64 = ctx.arg(0).unwrap_or(0);
    emit(skb, EventKind::Function)
}

/// fentry for functions whose skb is parameter 1; the target is fixed at
/// load time.
#[fentry]
pub fn fentry_skb_1(ctx: FEntryContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    emit(skb, EventKind::Function) as i32
}
