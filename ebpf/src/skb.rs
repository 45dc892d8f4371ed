//! Shared by every skb program: read the packet metadata through the
//! BTF-derived offsets in `CONFIG` and emit one `SkbEvent`.

use aya_ebpf::helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_kernel};
use nft_schema::raw::{EventKind, LossReason, ProbeConfig, SkbEvent, OFFSET_MISSING};

use crate::maps::{count_loss, probe_id, CONFIG, EVENTS};

/// Reads a `T` at `base + offset` in kernel memory; zero when the offset is
/// missing or the read faults.
#[inline(always)]
fn read_at<T: Default>(base: u64, offset: u32) -> T {
    if base == 0 || offset == OFFSET_MISSING {
        return T::default();
    }
    // SAFETY: bpf_probe_read_kernel checks the address; a bad one returns Err.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.unwrap_or_default()
}

/// Fills and submits one event for `skb`. Returns 0 (the programs' return
/// value is ignored by the kernel for tracing programs).
#[inline(always)]
pub fn emit(skb: u64, kind: EventKind) -> u32 {
    let Some(config) = CONFIG.get(0) else {
        count_loss(LossReason::NoConfig);
        return 0;
    };
    let config: &ProbeConfig = config;
    let off = &config.offsets;

    let dev: u64 = read_at(skb, off.skb_dev);
    let net: u64 = read_at(dev, off.dev_nd_net);
    let netns: u32 = read_at(net, off.net_inum);
    if config.netns_filter != 0 && netns != config.netns_filter {
        return 0;
    }

    let Some(mut entry) = EVENTS.reserve::<SkbEvent>(0) else {
        count_loss(LossReason::RingbufFull);
        return 0;
    };
    // SAFETY: helpers without preconditions.
    let (ts_ns, cpu) = unsafe { (bpf_ktime_get_ns(), bpf_get_smp_processor_id()) };
    entry.write(SkbEvent {
        ts_ns,
        skb,
        probe_id: probe_id(),
        cpu,
        netns,
        ifindex: read_at(dev, off.dev_ifindex),
        mark: read_at(skb, off.skb_mark),
        len: read_at(skb, off.skb_len),
        protocol: u16::from_be(read_at(skb, off.skb_protocol)),
        kind: kind as u8,
        _pad: [0; 5],
    });
    entry.submit(0);
    0
}
