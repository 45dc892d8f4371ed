//! Function source, kernel side: kprobe and fentry programs on kernel
//! functions taking a `struct sk_buff *`. On the host kernel these cannot
//! attach (no kprobes, fentry refused); `nft-recorder check` loads them to say
//! so, and the QEMU harness proves them on Debian kernels.

use aya_ebpf::{
    helpers::bpf_get_func_ip,
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
    EbpfContext,
};
use nft_schema::raw::{EventKind, PROBE_FUNCTION_BASE};

use crate::skb::{emit, Extra};

#[inline(always)]
fn function_extra(ctx: &impl EbpfContext) -> Extra {
    Extra {
        probe_id: PROBE_FUNCTION_BASE,
        kind: EventKind::Function,
        // SAFETY: helper reading the traced function's address from ctx.
        location: unsafe { bpf_get_func_ip(ctx.as_ptr()) },
        drop_reason: 0,
    }
}

/// kprobe for functions whose skb is parameter 1.
#[kprobe]
pub fn kprobe_skb_1(ctx: ProbeContext) -> u32 {
    let skb: u64 = ctx.arg(0).unwrap_or(0);
    emit(skb, function_extra(&ctx))
}

/// fentry for functions whose skb is parameter 1; the target is fixed at
/// load time.
#[fentry]
pub fn fentry_skb_1(ctx: FEntryContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    emit(skb, function_extra(&ctx)) as i32
}
