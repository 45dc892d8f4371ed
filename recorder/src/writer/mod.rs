//! Turns raw events into a recording directory: Arrow batches
//! (`batch`), event segments that survive `kill -9` (`segments`), the
//! dimension tables (`dims`) and the manifest (`manifest`). Runs on its own
//! thread, never on the ring-buffer thread.

pub mod batch;
pub mod dims;
pub mod kallsyms;
pub mod manifest;
pub mod merge;
pub mod nft_names;
pub mod nftrace_batch;
pub mod quota;
pub mod segments;
pub mod stacks;
