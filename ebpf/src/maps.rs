//! The maps shared by every program. Names come from `nft_schema::raw::names`
//! (the symbol names below must match them).

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf, StackTrace},
};
use nft_schema::raw::{
    loss_index, KernelOffsets, LossReason, ProbeConfig, DEFAULT_TRACKED_SKBS, LOSS_PROBES,
    LOSS_REASONS, MAX_FUNCTIONS,
};

/// Events to userspace. The size is overridden by the recorder at load time
/// (`--ringbuf-size`); this is the default.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// One entry: offsets from BTF and filters, written by the recorder before
/// attaching.
#[map]
pub static CONFIG: Array<ProbeConfig> = Array::with_max_entries(1, 0);

/// Per-CPU count of undelivered events, per probe and reason
/// (`nft_schema::raw::loss_index`).
#[map]
pub static LOSSES: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOSS_REASONS * LOSS_PROBES, 0);

#[inline(always)]
pub fn count_loss(probe_id: u32, reason: LossReason) {
    if let Some(counter) = LOSSES.get_ptr_mut(loss_index(probe_id, reason)) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe { *counter += 1 };
    }
}

/// Traced function address -> probe id, with `FUNC_FREES_SKB` on the
/// functions that free an skb. Filled by the recorder before attaching; a
/// kprobe program serves many functions and learns which one from
/// `bpf_get_func_ip`. Two entries per function: its address and the address
/// after an `endbr64` (kernels disagree on which one a kprobe reports).
#[map]
pub static FUNC_IDS: HashMap<u64, u32> = HashMap::with_max_entries(2 * MAX_FUNCTIONS, 0);

/// skbs that passed the filters, followed by address until freed
/// (`ProbeConfig::track_skbs`): skb address -> when last reported. The size is set by the recorder
/// (`--track-skbs`); a full map is counted as a loss.
#[map]
pub static TRACKED: HashMap<u64, u64> = HashMap::with_max_entries(DEFAULT_TRACKED_SKBS, 0);

/// Kernel stacks of `--stack`, each kept once (`bpf_get_stackid`). The
/// recorder sizes it at load time: one entry without `--stack` (the map is
/// allocated up front), `DEFAULT_STACKS` with it.
#[map]
pub static STACKS: StackTrace = StackTrace::with_max_entries(1, 0);

/// `bpf_ringbuf_submit` flags and the `bpf_ringbuf_query` field.
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;
/// A ring buffer record's header (`BPF_RINGBUF_HDR_SZ`).
const RINGBUF_HDR: u64 = 8;

/// The flags to submit a reserved record of `size` bytes with. A wake-up
/// is an interrupt (irq_work) that costs far more than the event itself on
/// a VM, so records go in without one, except the record that makes the
/// unread data cross a multiple of `ProbeConfig::ring_wakeup_bytes`; the
/// reader also polls on a short timer, so nothing waits longer than that
/// (and a crossing missed between two CPUs' records is caught by it).
#[inline(always)]
pub fn wakeup_flags(size: usize) -> u64 {
    let step = match CONFIG.get(0) {
        Some(c) => c.ring_wakeup_bytes as u64,
        None => 0,
    };
    if step == 0 {
        return 0;
    }
    let mask = !(step - 1);
    let avail = EVENTS.query(BPF_RB_AVAIL_DATA);
    let before = avail.saturating_sub(size as u64 + RINGBUF_HDR);
    if avail & mask != before & mask {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Field offsets from the running kernel's BTF, written by the loader into
/// this read-only global (`names::GLOBAL_KERNEL_OFFSETS`), which the
/// verifier sees as constants: see [`crate::skb::BtfRead`].
#[no_mangle]
pub(crate) static KERNEL_OFFSETS: KernelOffsets = KernelOffsets::MISSING;

/// One field of [`KERNEL_OFFSETS`]; volatile so the compiler does not fold
/// in the default the object is built with.
macro_rules! kernel_offset {
    ($field:ident) => {
        // SAFETY: reading a field of a static; the loader wrote it before
        // any program ran.
        unsafe {
            core::ptr::read_volatile(core::ptr::addr_of!($crate::maps::KERNEL_OFFSETS.$field))
        }
    };
}
pub(crate) use kernel_offset;
