//! Function source, userspace side: kprobe and fentry programs
//! (`ebpf/src/function.rs`) on kernel functions taking an skb.
//!
//! A kprobe program loads once and attaches to many functions; an fentry
//! program fixes its target at load time (one load per function) but costs
//! less per hit.

use aya::programs::{FEntry, KProbe};
use nft_schema::raw::names::{PROG_FENTRY_SKB_1, PROG_KPROBE_SKB_1};

use super::{chain, AttachError, KernelContext, Source};
use crate::loader::{LoadOptions, LoadedObject};

/// The function `check` attaches to: a landmark of the IPv4 receive path
/// that every kernel has.
pub const CHECK_FUNCTION: &str = "ip_rcv";

/// Which function-tracing mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionBackend {
    Kprobe,
    Fentry,
}

/// Attaches the skb-at-parameter-1 program of `backend` to `function`.
pub fn attach(
    obj: &mut LoadedObject,
    backend: FunctionBackend,
    function: &str,
    btf: Option<&aya::Btf>,
) -> Result<(), AttachError> {
    match backend {
        FunctionBackend::Kprobe => {
            let err = |source: aya::programs::ProgramError| AttachError::Program {
                program: PROG_KPROBE_SKB_1.to_string(),
                target: function.to_string(),
                source: Box::new(source),
            };
            let prog: &mut KProbe = obj
                .ebpf
                .program_mut(PROG_KPROBE_SKB_1)
                .ok_or_else(|| AttachError::NoProgram(PROG_KPROBE_SKB_1.into()))?
                .try_into()
                .map_err(err)?;
            prog.load().map_err(err)?;
            prog.attach(function, 0).map_err(err)?;
        }
        FunctionBackend::Fentry => {
            let btf = btf.ok_or(AttachError::NoBtf("fentry"))?;
            let err = |source: aya::programs::ProgramError| AttachError::Program {
                program: PROG_FENTRY_SKB_1.to_string(),
                target: function.to_string(),
                source: Box::new(source),
            };
            let prog: &mut FEntry = obj
                .ebpf
                .program_mut(PROG_FENTRY_SKB_1)
                .ok_or_else(|| AttachError::NoProgram(PROG_FENTRY_SKB_1.into()))?
                .try_into()
                .map_err(err)?;
            prog.load(function, btf).map_err(err)?;
            prog.attach().map_err(err)?;
        }
    }
    Ok(())
}

pub struct FunctionSource(pub FunctionBackend);

impl Source for FunctionSource {
    fn name(&self) -> &'static str {
        match self.0 {
            FunctionBackend::Kprobe => "kprobe",
            FunctionBackend::Fentry => "fentry",
        }
    }

    fn try_on_running_kernel(&self, kernel: &KernelContext) -> Result<String, String> {
        let mut obj = LoadedObject::load(&LoadOptions {
            config: kernel.config,
            ringbuf_bytes: 4096,
            btf: kernel.aya_btf.as_ref(),
        })
        .map_err(|e| chain(&e))?;
        attach(&mut obj, self.0, CHECK_FUNCTION, kernel.aya_btf.as_ref()).map_err(|e| chain(&e))?;
        Ok(format!("attached {}/{CHECK_FUNCTION}", self.name()))
    }
}
