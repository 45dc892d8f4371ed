//! Fuzzes `nft_reader::recording::parse_manifest`: `recording.json` is the
//! first thing the analyzer reads of a recording that came from another
//! box (version check on a loose parse, then the typed one). A manifest
//! that parses must also round-trip through the recorder's `to_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: nft_fuzz::init(), |data: &[u8]| {
    nft_fuzz::run(data, nft_fuzz::targets::manifest);
});
