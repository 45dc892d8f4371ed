//! Function source, kernel side: kprobe, kprobe.multi and fentry programs
//! on kernel functions taking a `struct sk_buff *`, one per skb parameter
//! position (1..=5). A kprobe program is loaded once and attached to every
//! function of its position; a kprobe.multi program likewise, with one link
//! for all of them; an fentry program is loaded once per function (the
//! target is fixed at load time). kprobe and fentry learn which function
//! they run in from `bpf_get_func_ip` and the `FUNC_IDS` map; kprobe.multi
//! from the link's cookie for the function (its probe id). On the host kernel these cannot
//! attach (no kprobes, fentry refused); the QEMU harness proves them on
//! Debian kernels.

use aya_ebpf::{
    helpers::{bpf_get_func_ip, bpf_probe_read_kernel, generated::bpf_get_attach_cookie},
    macros::{fentry, kprobe},
    programs::{tracing::StackIdContext, FEntryContext, ProbeContext},
    EbpfContext,
};
use nft_schema::raw::{EventKind, LossReason, FUNC_FREES_SKB, PROBE_FUNCTION_BASE};

use crate::maps::{count_loss, FUNC_IDS};
use crate::skb::{emit, BtfRead, Extra, ProbeRead, Read};

/// Emits the event of function `ip` for `skb`; `caller` is the return
/// address into the calling function (0 when unknown). One lookup: the
/// recorder registers each function's address and the address after its
/// `endbr64`, whichever the kernel reports. An address missing from the map
/// is counted as a loss and stops here, so the rest of the program is
/// verified for one kind of state, not two.
#[inline(always)]
fn function_event<R: Read, C: StackIdContext>(ctx: &C, skb: u64, ip: u64, caller: u64) -> u32 {
    // SAFETY: plain map lookup; values are written before attaching.
    let Some(&value) = (unsafe { FUNC_IDS.get(ip) }) else {
        count_loss(PROBE_FUNCTION_BASE, LossReason::UnknownFunction);
        return 0;
    };
    value_event::<R, C>(ctx, skb, value, caller)
}

/// The event of a kprobe.multi hit: `cookie` is the function's `FUNC_IDS`
/// value (its probe id, with `FUNC_FREES_SKB` on the functions that free
/// an skb).
#[inline(always)]
fn cookie_event(ctx: &ProbeContext, skb: u64, cookie: u64, caller: u64) -> u32 {
    value_event::<ProbeRead, _>(ctx, skb, cookie as u32, caller)
}

/// The event of the function whose `FUNC_IDS` value is `value`.
#[inline(always)]
fn value_event<R: Read, C: StackIdContext>(ctx: &C, skb: u64, value: u32, caller: u64) -> u32 {
    emit::<R, C>(
        ctx,
        skb,
        Extra {
            probe_id: value & !FUNC_FREES_SKB,
            kind: EventKind::Function,
            location: caller,
            drop_reason: 0,
            frees_skb: value & FUNC_FREES_SKB != 0,
            reported_before: false,
            net: 0,
        },
    )
}

#[inline(always)]
fn func_ip(ctx: &impl EbpfContext) -> u64 {
    // SAFETY: helper reading the traced function's address from ctx.
    unsafe { bpf_get_func_ip(ctx.as_ptr()) }
}

/// At a kprobe on a function's entry the stack pointer points at the
/// return address into the caller.
#[inline(always)]
fn kprobe_caller(ctx: &ProbeContext) -> u64 {
    // SAFETY: `regs` is the probe's pt_regs; the read is checked by the
    // helper.
    unsafe {
        let sp = (*ctx.regs).rsp;
        bpf_probe_read_kernel(sp as *const u64).unwrap_or(0)
    }
}

macro_rules! function_programs {
    ($($kprobe:ident, $multi:ident, $fentry:ident = $arg:literal;)*) => {
        $(
            #[kprobe]
            pub fn $kprobe(ctx: ProbeContext) -> u32 {
                let skb: u64 = ctx.arg($arg).unwrap_or(0);
                function_event::<ProbeRead, _>(&ctx, skb, func_ip(&ctx), kprobe_caller(&ctx))
            }

            /// Loaded by the recorder as kprobe.multi (aya sees a kprobe).
            #[kprobe]
            pub fn $multi(ctx: ProbeContext) -> u32 {
                let skb: u64 = ctx.arg($arg).unwrap_or(0);
                // SAFETY: helper reading the link's cookie for this function.
                let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
                cookie_event(&ctx, skb, cookie, kprobe_caller(&ctx))
            }

            #[fentry]
            pub fn $fentry(ctx: FEntryContext) -> i32 {
                let skb: u64 = ctx.arg($arg);
                function_event::<BtfRead, _>(&ctx, skb, func_ip(&ctx), 0) as i32
            }
        )*
    };
}

// Names are `nft_schema::raw::names::{kprobe_program, kprobe_multi_program,
// fentry_program}(pos)`.
function_programs! {
    kprobe_skb_1, kpm_skb_1, fentry_skb_1 = 0;
    kprobe_skb_2, kpm_skb_2, fentry_skb_2 = 1;
    kprobe_skb_3, kpm_skb_3, fentry_skb_3 = 2;
    kprobe_skb_4, kpm_skb_4, fentry_skb_4 = 3;
    kprobe_skb_5, kpm_skb_5, fentry_skb_5 = 4;
}
