//! The eBPF object built from `ebpf/` by `build.rs`, embedded in the binary
//! so the recorder is one self-contained file on the production box.

/// The ELF bytes of `nft-ebpf`, 8-byte aligned as aya requires.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nft-ebpf"));
