//! nft-analyzer: reads nft-tracer recordings anywhere (no root, no BTF, no
//! kernel) and does the heavy work with DataFusion: per-packet traces, SQL,
//! diffs between recordings, statistics.
//!
//! Filled in by the analyzer issues; the binary's subcommands say which.
