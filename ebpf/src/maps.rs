//! The maps shared by every program. Names come from `nft_schema::raw::names`
//! (the symbol names below must match them).

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf, StackTrace},
};
use nft_schema::raw::{
    loss_index, LossReason, ProbeConfig, DEFAULT_TRACKED_SKBS, LOSS_PROBES, LOSS_REASONS,
    MAX_FUNCTIONS,
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
