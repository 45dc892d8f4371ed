//! `--filter`, kernel side: a pcap-filter expression, compiled by libpcap
//! and translated to eBPF by the recorder (`recorder/src/pcap/`), runs
//! here on a copy of the packet's first bytes.
//!
//! aya loads objects as they are built, so the recorder writes the filter
//! into this object before loading it: each layer has a placeholder
//! function of `PCAP_FILTER_INSNS` instructions ([`nft_pcap_l2`],
//! [`nft_pcap_l3`]), found by its symbol, whose instructions the recorder
//! replaces (no-op jumps first, which the verifier removes, then the
//! filter). Without a filter the read-only global `PCAP_LAYERS` is 0, the
//! verifier skips all of this, and it costs nothing.

use aya_ebpf::{helpers::generated, macros::map, maps::PerCpuArray};
use nft_schema::raw::{
    pcap_layer, PcapLayers, PcapPacket, OFFSET_MISSING, PCAP_FILTER_INSNS, PCAP_PACKET_BYTES,
};

use crate::maps::kernel_offset;
use crate::skb::{Read, HEADER_UNSET};

/// Which layers have a filter program, written by the loader
/// (`names::GLOBAL_PCAP_LAYERS`).
#[no_mangle]
static PCAP_LAYERS: PcapLayers = PcapLayers { layers: 0 };

/// The packet copy the filter reads.
#[map]
static PCAP_PACKET: PerCpuArray<PcapPacket> = PerCpuArray::with_max_entries(1, 0);

/// An Ethernet header: a MAC header at least this long before the network
/// header is read by the link-layer program.
const ETH_HLEN: u16 = 14;

/// A placeholder of `PCAP_FILTER_INSNS` instructions: `buf` holds the
/// packet from the layer's first header, `caplen` bytes of it valid,
/// `wirelen` its length from there; non-zero is a match (the filter's
/// `ret`). The calling convention is the eBPF one (r1-r3 in, r0 out; the
/// filter touches r0-r5 and its own stack only): the asm names every
/// register it may change. The fillers differ so the two are never merged.
macro_rules! placeholder {
    ($(#[$doc:meta])* $name:ident, $filler:literal) => {
        $(#[$doc])*
        #[inline(never)]
        pub fn $name(buf: *const u8, caplen: u64, wirelen: u64) -> u64 {
            let ret: u64;
            // SAFETY: the placeholder reads nothing; the recorder replaces
            // it with a filter the verifier checks like any other code.
            unsafe {
                core::arch::asm!(
                    ".rept {n}", $filler, ".endr",
                    n = const PCAP_FILTER_INSNS,
                    in("r1") buf, in("r2") caplen, in("r3") wirelen,
                    lateout("r0") ret, out("r4") _, out("r5") _,
                    options(nostack),
                );
            }
            ret
        }
    };
}

placeholder!(
    /// From the MAC header (`names::FUNC_PCAP_L2`).
    nft_pcap_l2,
    "r0 = 1"
);
placeholder!(
    /// From the network header (`names::FUNC_PCAP_L3`).
    nft_pcap_l3,
    "r0 = 2"
);

#[inline(always)]
fn layers() -> u32 {
    // SAFETY: reading a static the loader wrote before any program ran;
    // volatile so the compiler does not fold in the built-in 0.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!(PCAP_LAYERS.layers)) }
}

/// True when there is no `--filter`, or the packet in `skb` matches it at
/// the layer its headers allow: from the MAC header when there is an
/// Ethernet-sized one before the network header, else from the network
/// header. A layer without a program (an expression only one layer can
/// express) does not match.
#[inline(always)]
pub fn matches<R: Read>(skb: u64) -> bool {
    let layers = layers();
    if layers == 0 {
        return true;
    }
    let head: u64 = R::at(skb, kernel_offset!(skb_head));
    let mac: u16 = R::at(skb, kernel_offset!(skb_mac_header));
    let nh: u16 = R::at(skb, kernel_offset!(skb_network_header));
    if head == 0 || nh == HEADER_UNSET || kernel_offset!(skb_tail) == OFFSET_MISSING {
        return false;
    }
    let link = mac != HEADER_UNSET && nh >= mac.wrapping_add(ETH_HLEN) && mac < nh;
    let (start, layer) = if link {
        (mac, pcap_layer::L2)
    } else {
        (nh, pcap_layer::L3)
    };
    if layers & layer == 0 {
        return false;
    }
    let tail: u32 = R::at(skb, kernel_offset!(skb_tail));
    let data: u64 = R::at(skb, kernel_offset!(skb_data));
    let len: u32 = R::at(skb, kernel_offset!(skb_len));
    let start = start as u64;
    let caplen = (tail as u64)
        .saturating_sub(start)
        .min(PCAP_PACKET_BYTES as u64);
    // `len` counts from `data`; the filter's length counts from `start`.
    let pulled = data.wrapping_sub(head) as i64 - start as i64;
    let wirelen = (len as i64 + pulled).max(0) as u64;
    let Some(packet) = PCAP_PACKET.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: `packet` is this CPU's slot of our map, PCAP_PACKET_BYTES
    // long; the helper checks the kernel address and zeroes on a fault.
    // Reading past a short packet's tail stays inside its buffer: the
    // head buffer ends with `skb_shared_info` (over 256 bytes) after `end`.
    let read = unsafe {
        generated::bpf_probe_read_kernel(
            packet.cast(),
            PCAP_PACKET_BYTES as u32,
            (head + start) as *const core::ffi::c_void,
        )
    };
    if read != 0 {
        return false;
    }
    let buf = packet as *const u8;
    let verdict = if layer == pcap_layer::L2 {
        nft_pcap_l2(buf, caplen, wirelen)
    } else {
        nft_pcap_l3(buf, caplen, wirelen)
    };
    verdict != 0
}
