//! nft hook source: rule verdicts and chain policies seen on the skb, by a
//! kprobe on `__nft_trace_packet` (kernel side: `ebpf/src/nft.rs`). It needs
//! the nf_tables layout from BTF (`kernel::nft_layout`, set into the
//! programs' CONFIG before loading), kprobes, and the `nft_trace_enabled`
//! key on, which the nftrace source's tables turn on (so the hook is only
//! attached with that source). The chain entry/exit hooks on `nft_do_chain`
//! are not built yet.

use aya::programs::KProbe;
use nft_schema::raw::names::PROG_NFT_RULE;

use super::{chain, AttachError};
use crate::kernel::nft_layout::TRACE_FUNCTION;
use crate::loader::LoadedObject;

/// Name of the hook in the probes table and the attach plan.
pub const PROBE_NAME: &str = "nft:__nft_trace_packet";

/// Whether to attach the nft hook (`record --nft-hooks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NftHooks {
    /// When kernel functions can be traced (kprobes) and the layout is
    /// known; otherwise rule verdicts come from nftrace alone, and the
    /// manifest says why.
    Auto,
    /// Always; failing to attach is an error.
    On,
    Off,
}

/// Loads `kprobe_nft_rule` and attaches it to `__nft_trace_packet`.
pub fn attach(obj: &mut LoadedObject) -> Result<(), AttachError> {
    let err = |e| AttachError::Program {
        program: PROG_NFT_RULE.into(),
        target: TRACE_FUNCTION.into(),
        source: Box::new(e),
    };
    let prog: &mut KProbe = obj
        .ebpf
        .program_mut(PROG_NFT_RULE)
        .ok_or_else(|| AttachError::NoProgram(PROG_NFT_RULE.into()))?
        .try_into()
        .map_err(err)?;
    prog.load().map_err(err)?;
    prog.attach(TRACE_FUNCTION, 0).map_err(err)?;
    Ok(())
}

/// One line for the attach plan.
pub fn describe(e: &AttachError) -> String {
    chain(e)
}
