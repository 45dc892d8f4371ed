//! The maps shared by every program. Names come from `nft_schema::raw::names`
//! (the symbol names below must match them).

use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
};
use nft_schema::raw::{loss_index, LossReason, ProbeConfig, LOSS_PROBES, LOSS_REASONS};

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
