//! nft-recorder: the lean production-side half of nft-tracer.
//!
//! Data flow: `kernel` reads what the running kernel offers (BTF offsets,
//! namespaces) -> `loader` loads the embedded eBPF object with that
//! configuration -> `sources` attach the programs -> `drain` reads events
//! off the ring buffer -> `writer` turns them into a recording directory.
//! `record` runs that whole pipeline as a session with a lifecycle
//! (`record::Session`); `check` tries each backend and says what works.
//! `push` ships a recording to object storage.
//! No DataFusion, no SQL here: analysis happens in `nft-analyzer`.

pub mod check;
pub mod discover;
pub mod drain;
pub mod ebpf_object;
pub mod filter;
pub mod kernel;
pub mod live;
pub mod loader;
pub mod pcap;
pub mod push;
pub mod record;
pub mod sd_notify;
pub mod serve;
pub mod sources;
pub mod stop;
pub mod writer;
