//! Raw kernel -> user layouts, shared by the eBPF programs and the recorder.
//!
//! These are `#[repr(C)]` with explicit padding so the byte layout is the same
//! on both sides of the ring buffer; a test pins their sizes.

/// Marks a field offset that the running kernel's BTF does not have; the eBPF
/// side skips reading it and leaves the event field zero.
pub const OFFSET_MISSING: u32 = u32::MAX;

/// What kind of hook produced an event.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A `tp_btf` tracepoint (`net:*`, `skb:*`).
    Tracepoint = 1,
    /// A kernel function entry (kprobe or fentry).
    Function = 2,
}

/// One skb seen at one probe. Written by every skb program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkbEvent {
    /// `bpf_ktime_get_ns()`: kernel CLOCK_MONOTONIC in ns. The manifest holds
    /// the offset to wall time.
    pub ts_ns: u64,
    /// Address of the `struct sk_buff`: the key that ties events into traces.
    pub skb: u64,
    /// Index into the recording's `probes` table (which program and target).
    pub probe_id: u32,
    /// CPU the event was emitted on.
    pub cpu: u32,
    /// Inode number of the skb's device's network namespace (0 if no device).
    pub netns: u32,
    /// `skb->dev->ifindex` (0 if no device).
    pub ifindex: u32,
    /// `skb->mark`.
    pub mark: u32,
    /// `skb->len`.
    pub len: u32,
    /// `skb->protocol`, converted to host byte order (ETH_P_IP = 0x0800, ...).
    pub protocol: u16,
    /// [`EventKind`] as u8.
    pub kind: u8,
    pub _pad: [u8; 5],
}

/// Byte offsets of the kernel struct fields the programs read, taken from the
/// running kernel's BTF at start-up (never hard-coded). [`OFFSET_MISSING`]
/// where the kernel lacks a field.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `sk_buff.len`
    pub skb_len: u32,
    /// `sk_buff.mark`
    pub skb_mark: u32,
    /// `sk_buff.protocol`
    pub skb_protocol: u32,
    /// `sk_buff.dev`
    pub skb_dev: u32,
    /// `net_device.ifindex`
    pub dev_ifindex: u32,
    /// `net_device.nd_net` (a `possible_net_t` whose first field is `net`)
    pub dev_nd_net: u32,
    /// `net.ns.inum`
    pub net_inum: u32,
}

impl KernelOffsets {
    /// Every field missing: the programs read nothing but the skb address.
    pub const MISSING: Self = Self {
        skb_len: OFFSET_MISSING,
        skb_mark: OFFSET_MISSING,
        skb_protocol: OFFSET_MISSING,
        skb_dev: OFFSET_MISSING,
        dev_ifindex: OFFSET_MISSING,
        dev_nd_net: OFFSET_MISSING,
        net_inum: OFFSET_MISSING,
    };
}

/// Configuration handed to every program through the `CONFIG` array map
/// (one entry, index 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    pub offsets: KernelOffsets,
    /// When non-zero, only skbs whose device is in this network namespace
    /// (inode) are reported.
    pub netns_filter: u32,
}

/// Why an event could not be delivered. Index into the per-CPU `LOSSES` map.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossReason {
    /// `bpf_ringbuf_reserve` failed: the ring buffer was full.
    RingbufFull = 0,
    /// The `CONFIG` map could not be read (should never happen).
    NoConfig = 1,
}

/// Number of [`LossReason`] slots in the `LOSSES` map.
pub const LOSS_REASONS: u32 = 2;

/// Names of the maps and programs in the eBPF object, so the recorder and
/// the eBPF crate agree on them.
pub mod names {
    pub const MAP_EVENTS: &str = "EVENTS";
    pub const MAP_CONFIG: &str = "CONFIG";
    pub const MAP_LOSSES: &str = "LOSSES";
    /// `tp_btf` program for tracepoints whose skb is argument 0.
    pub const PROG_TP_SKB_ARG0: &str = "tp_skb_arg0";
    /// kprobe program for functions whose skb is parameter 1.
    pub const PROG_KPROBE_SKB_1: &str = "kprobe_skb_1";
    /// fentry program for functions whose skb is parameter 1.
    pub const PROG_FENTRY_SKB_1: &str = "fentry_skb_1";
    /// `.rodata` global holding the probe id of one program load.
    pub const GLOBAL_PROBE_ID: &str = "PROBE_ID";
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` integers with explicit padding, valid for
    // any bit pattern.
    unsafe impl aya::Pod for super::SkbEvent {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::ProbeConfig {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_pinned() {
        assert_eq!(core::mem::size_of::<SkbEvent>(), 48);
        assert_eq!(core::mem::align_of::<SkbEvent>(), 8);
        assert_eq!(core::mem::size_of::<KernelOffsets>(), 28);
        assert_eq!(core::mem::size_of::<ProbeConfig>(), 32);
    }
}
