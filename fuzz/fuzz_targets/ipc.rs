//! Fuzzes `nft_reader::ipc::read_stream_bytes`, the reader of an
//! interrupted schema-3 recording's open `.arrows` segment (an Arrow IPC
//! stream whose message lengths nft-reader checks before arrow-ipc sees
//! them: arrow-ipc allocates whatever a message declares), and `conform`
//! on the batches it returns, as the analyzer does next.
#![no_main]

libfuzzer_sys::fuzz_target!(init: nft_fuzz::init(), |data: &[u8]| {
    nft_fuzz::run(data, nft_fuzz::targets::ipc);
});
