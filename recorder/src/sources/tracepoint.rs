//! Tracepoint source, userspace side: loads `tp_skb_arg0`
//! (`ebpf/src/tracepoint.rs`) against a tracepoint named in BTF and attaches
//! it. Works on every kernel with BTF, including where kprobes and ftrace are
//! locked down.

use aya::programs::BtfTracePoint;
use nft_schema::raw::names::PROG_TP_SKB_ARG0;

use super::{chain, AttachError, KernelContext, Source};
use crate::loader::{LoadOptions, LoadedObject};

/// The tracepoint `check` attaches to: on every receive path.
pub const CHECK_TRACEPOINT: &str = "netif_receive_skb";

/// Loads `tp_skb_arg0` for `tracepoint` (the BTF name without `btf_trace_`,
/// e.g. `netif_receive_skb`) and attaches it. The link lives as long as `obj`.
pub fn attach(obj: &mut LoadedObject, tracepoint: &str, btf: &aya::Btf) -> Result<(), AttachError> {
    let err = |source| AttachError::Program {
        program: PROG_TP_SKB_ARG0,
        target: tracepoint.to_string(),
        source,
    };
    let prog: &mut BtfTracePoint = obj
        .ebpf
        .program_mut(PROG_TP_SKB_ARG0)
        .ok_or(AttachError::NoProgram(PROG_TP_SKB_ARG0))?
        .try_into()
        .map_err(err)?;
    prog.load(tracepoint, btf).map_err(err)?;
    prog.attach().map_err(err)?;
    Ok(())
}

pub struct TracepointSource;

impl Source for TracepointSource {
    fn name(&self) -> &'static str {
        "tp_btf"
    }

    fn try_on_running_kernel(&self, kernel: &KernelContext) -> Result<String, String> {
        let btf = kernel
            .aya_btf
            .as_ref()
            .ok_or_else(|| AttachError::NoBtf("tp_btf").to_string())?;
        let mut obj = LoadedObject::load(&LoadOptions {
            probe_id: 0,
            config: kernel.config,
            ringbuf_bytes: 4096,
            btf: Some(btf),
        })
        .map_err(|e| chain(&e))?;
        attach(&mut obj, CHECK_TRACEPOINT, btf).map_err(|e| chain(&e))?;
        // Dropping `obj` detaches and unloads.
        Ok(format!("attached tp_btf/{CHECK_TRACEPOINT}"))
    }
}
