//! Fuzzes the recorder's NFT_MSG_TRACE netlink parser, `parse_datagram`
//! (recorder/src/sources/nftrace/message.rs): it reads datagrams from the
//! kernel, lengths and attribute layouts included, and a slicing mistake
//! there would take the recorder down mid-recording.
//!
//! The file is included by `#[path]` rather than depending on the
//! nft-recorder crate: that crate's build.rs builds the eBPF programs
//! (nightly, bpf-linker) and it links libpcap, none of which the parser
//! needs; message.rs itself depends only on libc.
#![no_main]

#[path = "../../recorder/src/sources/nftrace/message.rs"]
#[allow(dead_code)]
mod message;

libfuzzer_sys::fuzz_target!(init: nft_fuzz::init(), |data: &[u8]| {
    for event in message::parse_datagram(data) {
        // The header bytes it keeps are copied out of the datagram.
        assert!(event.packet.len() <= data.len());
    }
});
