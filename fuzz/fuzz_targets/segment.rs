//! Fuzzes the recording opener on a Parquet event segment:
//! `Recording::open` on a directory whose manifest lists one segment (the
//! input), which must never panic and must either accept the segment or
//! name it as damaged (footer and page-header checks in
//! `nft_reader::parquet_check`), then a full read of every accepted
//! segment with parquet-rs, as the analyzer's decode thread does. There,
//! as in the analyzer, a parquet-rs panic is caught and is an error; what
//! this target is for are aborts, out-of-memory and hangs on files the
//! checker let through.
#![no_main]

libfuzzer_sys::fuzz_target!(init: nft_fuzz::init(), |data: &[u8]| {
    nft_fuzz::run(data, nft_fuzz::targets::segment);
});
