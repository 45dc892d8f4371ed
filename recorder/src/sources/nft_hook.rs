//! nft hooks source: nftables events seen on the skb itself, where the
//! nftrace source only sees netlink messages matched to skbs by headers and
//! time. Three kprobes (kernel side: `ebpf/src/nft.rs`, `ebpf/src/nft_chain.rs`):
//! - `__nft_trace_packet`: every rule verdict, return and base-chain policy;
//! - `nft_do_chain` entry and return: each base chain entered and the
//!   verdict it returned.
//!
//! They need the nf_tables layout from BTF (`kernel::nft_layout`, set into
//! the programs' CONFIG before loading) and kprobes; the rule hook also
//! needs the `nft_trace_enabled` key on, which the nftrace source's tables
//! turn on (so the hooks are only attached with that source). kprobe, not
//! fentry: aya 0.14 resolves fentry targets in vmlinux BTF only, and
//! nf_tables is often a module.

use aya::programs::KProbe;
use nft_schema::raw::{
    names::{PROG_NFT_CHAIN_ENTRY, PROG_NFT_CHAIN_EXIT, PROG_NFT_RULE},
    PROBE_NFT_CHAIN_ENTRY, PROBE_NFT_CHAIN_EXIT, PROBE_NFT_RULE,
};

use nft_schema::tables::values;

use super::{chain, AttachError, SessionSource, StartContext, StartError};
use crate::kernel::nft_layout::TRACE_FUNCTION;
use crate::loader::LoadedObject;
use crate::writer::dims::ProbeRow;

/// The function whose entry and return are the chain hooks.
pub const CHAIN_FUNCTION: &str = "nft_do_chain";

/// One nft hook: its program, target, and name in the probes table.
#[derive(Debug, Clone, Copy)]
pub struct Hook {
    pub probe_id: u32,
    /// Name in the probes table and the attach plan.
    pub name: &'static str,
    program: &'static str,
    function: &'static str,
}

/// The hooks, in attach order: the chain exit before the entry, so no
/// exit is ever seen for an entry that was not (an exit for a call entered
/// before the entry probe finds an empty stack and is ignored).
pub const HOOKS: [Hook; 3] = [
    Hook {
        probe_id: PROBE_NFT_CHAIN_EXIT,
        name: "nft:nft_do_chain:return",
        program: PROG_NFT_CHAIN_EXIT,
        function: CHAIN_FUNCTION,
    },
    Hook {
        probe_id: PROBE_NFT_CHAIN_ENTRY,
        name: "nft:nft_do_chain",
        program: PROG_NFT_CHAIN_ENTRY,
        function: CHAIN_FUNCTION,
    },
    Hook {
        probe_id: PROBE_NFT_RULE,
        name: "nft:__nft_trace_packet",
        program: PROG_NFT_RULE,
        function: TRACE_FUNCTION,
    },
];

/// Whether to attach the nft hooks (`record --nft-hooks`).
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

/// Loads `hook`'s program and attaches it to its function.
pub fn attach(obj: &mut LoadedObject, hook: &Hook) -> Result<(), AttachError> {
    let err = |e| AttachError::Program {
        program: hook.program.into(),
        target: hook.function.into(),
        source: Box::new(e),
    };
    let prog: &mut KProbe = obj
        .ebpf
        .program_mut(hook.program)
        .ok_or_else(|| AttachError::NoProgram(hook.program.into()))?
        .try_into()
        .map_err(err)?;
    super::load_retrying(|| prog.load()).map_err(err)?;
    prog.attach(hook.function, 0).map_err(err)?;
    Ok(())
}

/// One line for the attach plan.
pub fn describe(e: &AttachError) -> String {
    chain(e)
}

/// The nft hooks of one recording.
pub struct NftHookRecording {
    /// `None`: `--nft-hooks off`; else whether they can run, or why not
    /// (no layout in BTF, no nftrace tables, no kprobes).
    usable: Option<Result<(), String>>,
    mode: NftHooks,
    /// At least one hook attached (its names then matter).
    pub attached: bool,
}

impl NftHookRecording {
    pub fn new(mode: NftHooks, usable: Option<Result<(), String>>) -> Self {
        Self {
            usable,
            mode,
            attached: false,
        }
    }
}

impl SessionSource for NftHookRecording {
    fn name(&self) -> &'static str {
        "nft hooks"
    }

    fn start(&mut self, ctx: &mut StartContext<'_>) -> Result<(), StartError> {
        let Some(usable) = &self.usable else {
            return Ok(());
        };
        for hook in &HOOKS {
            if ctx.stop.requested() {
                return Err(StartError::Interrupted);
            }
            let result = usable
                .clone()
                .and_then(|()| attach(ctx.obj, hook).map_err(|e| describe(&e)));
            match result {
                Ok(()) => {
                    self.attached = true;
                    ctx.ledger.attached(
                        ProbeRow {
                            probe_id: hook.probe_id,
                            kind: values::KIND_NFT.into(),
                            name: hook.name.into(),
                            skb_arg: 0,
                        },
                        None,
                    );
                }
                Err(why) if self.mode == NftHooks::On => {
                    return Err(StartError::NftHooks(format!("{}: {why}", hook.name)));
                }
                Err(why) => ctx.ledger.failed(hook.name, why),
            }
        }
        Ok(())
    }

    /// Kprobes of the object: they detach with it.
    fn stop(&mut self) -> Vec<String> {
        Vec::new()
    }
}
