//! What the running kernel offers, read at start-up: struct field offsets
//! from BTF, network namespace identities.

pub mod btf;
pub mod clock;
pub mod interfaces;
pub mod netns;
pub mod nft_layout;
pub mod rlimit;
pub mod uname;
