//! nft-tracer's eBPF programs.
//!
//! Built by the recorder's `build.rs` (aya-build) for `bpfel-unknown-none`
//! with nightly and `-Z build-std=core`, then embedded into `nft-recorder`.
//! One module per event source (`nft.rs`: the rule hook, `nft_chain.rs`:
//! chain entry and exit); `skb.rs` holds what they share: reading
//! packet metadata through BTF-derived offsets and emitting the event.
#![no_std]
#![no_main]
#![feature(asm_experimental_arch)]

mod bench;
mod function;
mod maps;
mod nft;
mod nft_chain;
mod pcap;
mod skb;
mod tracepoint;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable panic; this is never executed.
    loop {}
}
