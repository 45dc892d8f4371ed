//! Event sources: the ways the recorder sees packets. Each is a peer behind
//! [`Source`] and lives in its own module, whose kernel side (if any) is the
//! file of the same name in `ebpf/src/`.
//!
//! | source       | mechanism                          | eBPF side              |
//! |--------------|------------------------------------|------------------------|
//! | `tracepoint` | tp_btf on skb tracepoints          | `ebpf/src/tracepoint.rs` |
//! | `function`   | kprobe / fentry on skb functions   | `ebpf/src/function.rs` |
//! | `kprobe_multi` | one kprobe.multi link, many functions (raw `bpf()`) | none yet |
//! | `nft_hook`   | kprobes on `__nft_trace_packet`, `nft_do_chain` (entry, return) | `ebpf/src/nft.rs`, `nft_chain.rs` |
//! | `nftrace`    | the kernel's NFNLGRP_NFTRACE netlink | none                 |
//!
//! Two traits: [`Source`] is what `check` tries on the running kernel;
//! [`SessionSource`] is a source's lifecycle inside one recording (start,
//! stop), with every attach outcome written to one [`ledger::Ledger`].

pub mod function;
pub mod function_plan;
pub mod function_recording;
pub mod kprobe_multi;
pub mod ledger;
pub mod nft_hook;
pub mod nftrace;
pub mod tracepoint;

use aya::programs::ProgramError;

use crate::loader::{LoadError, LoadedObject};
use crate::stop::StopSignal;
use crate::writer::batch::Names;
use ledger::Ledger;

/// What a source is given to start within one recording.
pub struct StartContext<'a> {
    /// The loaded eBPF object every eBPF source attaches programs of.
    pub obj: &'a mut LoadedObject,
    pub btf: &'a aya::Btf,
    /// Where each attach outcome goes.
    pub ledger: &'a mut Ledger,
    /// Names the writer resolves (nft tables and chains, kallsyms).
    pub names: &'a mut Names,
    /// Set when the recording is asked to stop: a long attach gives up.
    pub stop: &'a StopSignal,
}

/// One source's part in a recording. The session starts the sources in a
/// fixed order and stops them in reverse; sources never attach or detach
/// on their own. Programs attached through `StartContext::obj` are detached
/// when the session drops the object, after every source has stopped.
pub trait SessionSource: Send {
    fn name(&self) -> &'static str;
    /// Attaches what the plan asks for, each outcome in the ledger. An
    /// error ends the start: the sources already started are stopped.
    fn start(&mut self, ctx: &mut StartContext<'_>) -> Result<(), StartError>;
    /// Ends what `start` began; returns what went wrong, if anything.
    fn stop(&mut self) -> Vec<String>;
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("stopped while attaching")]
    Interrupted,
    #[error(transparent)]
    Functions(#[from] function_plan::FunctionsError),
    #[error("--nft-hooks on: {0}")]
    NftHooks(String),
    #[error("nftrace: {0}")]
    Nftrace(String),
}

/// One way of seeing packets, as `nft-recorder check` tries it.
pub trait Source {
    /// Short name, as in `check` output and the manifest (`tp_btf`, `kprobe`,
    /// `kprobe.multi`, `fentry`, `nftrace`).
    fn name(&self) -> &'static str;

    /// Tries the mechanism for real on the running kernel (load, attach,
    /// detach; or subscribe) and says what it saw, or why it cannot run.
    fn try_on_running_kernel(&self, kernel: &KernelContext) -> Result<String, String>;
}

/// What a source needs from the running kernel to load and attach.
pub struct KernelContext {
    /// aya's view of the BTF (tp_btf and fentry targets are resolved in it).
    pub aya_btf: Option<aya::Btf>,
    /// Offsets from btf-rs, for the programs.
    pub offsets: nft_schema::raw::KernelOffsets,
}

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("eBPF object has no program {0}")]
    NoProgram(String),
    #[error("the running kernel's BTF could not be read, which {0} needs")]
    NoBtf(&'static str),
    #[error("{program} -> {target}: {}", chain(.source.as_ref()))]
    Program {
        program: String,
        target: String,
        #[source]
        source: Box<ProgramError>,
    },
}

/// Loads a program, again when the kernel answers EAGAIN. The verifier
/// gives up with EAGAIN when the loading thread has a signal pending (seen
/// with eight sessions loading at once in one API server); libbpf retries
/// such loads up to five times, and so does this.
pub fn load_retrying(
    mut load: impl FnMut() -> Result<(), ProgramError>,
) -> Result<(), ProgramError> {
    let mut attempts = 5;
    loop {
        match load() {
            Err(ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN) && attempts > 1 =>
            {
                attempts -= 1;
            }
            r => return r,
        }
    }
}

/// Renders an error and its causes on one line (aya's errors hide the errno
/// in their sources). A verifier log is cut to its last lines, which say why.
pub fn chain(e: &dyn std::error::Error) -> String {
    let s = chain_full(e);
    // Whoever debugs a refused program (`NFT_TRACER_VERIFIER_LOG`, see the
    // loader) wants the whole log.
    if std::env::var_os("NFT_TRACER_VERIFIER_LOG").is_some() {
        return s;
    }
    match s.split_once("Verifier output:") {
        Some((head, log)) if log.trim().trim_start_matches(':').trim().is_empty() => {
            head.trim_end().to_string()
        }
        Some((head, log)) => {
            let lines: Vec<&str> = log.trim().lines().collect();
            let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
            format!("{} Verifier output (last lines): {tail}", head.trim_end())
        }
        None => s,
    }
}

fn chain_full(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(cause) = cur {
        let text = cause.to_string();
        // aya repeats a cause's text in its own message; keep it once.
        let prefix: String = text.chars().take(40).collect();
        if !s.contains(&prefix) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = cause.source();
    }
    s
}
