//! Fuzzes the ruleset snapshot parser, `nft_reader::snapshot::parse` (the
//! `nft -j -a list ruleset` JSON) and `rule_texts` (the `nft -s -a list
//! ruleset` text, a hand-written block parser): both come from another
//! box inside a recording. The input is split at its first 0 byte into
//! the JSON and the text.
#![no_main]

libfuzzer_sys::fuzz_target!(init: nft_fuzz::init(), |data: &[u8]| {
    nft_fuzz::run(data, nft_fuzz::targets::snapshot);
});
