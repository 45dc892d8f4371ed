//! The maps shared by every program. Names come from `nft_schema::raw::names`
//! (the symbol names below must match them).

use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
};
use nft_schema::raw::{ProbeConfig, LOSS_REASONS};

/// Events to userspace. The size is overridden by the recorder at load time
/// (`--ringbuf-size`); this is the default.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// One entry: offsets from BTF and filters, written by the recorder before
/// attaching.
#[map]
pub static CONFIG: Array<ProbeConfig> = Array::with_max_entries(1, 0);

/// Per-CPU count of undelivered events, indexed by `LossReason`.
#[map]
pub static LOSSES: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOSS_REASONS, 0);

/// Probe id of this load of the object, set by the recorder through
/// `EbpfLoader::set_global` (tp_btf and fentry fix their target at load time,
/// so each load serves one probe).
#[no_mangle]
pub static PROBE_ID: u32 = 0;

#[inline(always)]
pub fn probe_id() -> u32 {
    // SAFETY: reading our own static; volatile keeps the compiler from
    // folding the load-time value to 0.
    unsafe { core::ptr::read_volatile(&PROBE_ID) }
}

#[inline(always)]
pub fn count_loss(reason: nft_schema::raw::LossReason) {
    if let Some(counter) = LOSSES.get_ptr_mut(reason as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe { *counter += 1 };
    }
}
