//! `nft-recorder check`: what the running kernel allows, found by trying
//! each mechanism for real (load, attach, detach), never by reading a kernel
//! config file.

use nft_schema::raw::KernelOffsets;

use crate::kernel::btf::KernelBtf;
use crate::kernel::nft_layout::NftLayout;
use crate::sources::{
    function::{FunctionBackend, FunctionSource},
    kprobe_multi::KprobeMultiSource,
    nftrace::NftraceSource,
    tracepoint::TracepointSource,
    KernelContext, Source,
};

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capability {
    pub name: &'static str,
    pub available: bool,
    /// What was seen when available, or why not.
    pub detail: String,
}

/// The whole report, in a fixed order.
#[derive(Clone, Debug)]
pub struct Report {
    pub capabilities: Vec<Capability>,
}

impl Report {
    pub fn get(&self, name: &str) -> Option<&Capability> {
        self.capabilities.iter().find(|c| c.name == name)
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some_and(|c| c.available)
    }

    /// The function backend `--backend auto` would use: fentry, then kprobe,
    /// then tracepoints only. `None` when not even tracepoints work.
    pub fn auto_backend(&self) -> Option<&'static str> {
        if self.has("fentry") {
            Some("fentry")
        } else if self.has("kprobe") {
            Some("kprobe")
        } else if self.has("tp_btf") {
            Some("tracepoint")
        } else {
            None
        }
    }

    /// The report as aligned text, one line per capability.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.capabilities {
            let yes = if c.available { "yes" } else { "no " };
            out.push_str(&format!("{:<12} {yes}  {}\n", c.name, c.detail));
        }
        match self.auto_backend() {
            Some(b) => out.push_str(&format!("--backend auto would use: {b}\n")),
            None => out.push_str("--backend auto: nothing usable on this kernel\n"),
        }
        if self.has("kprobe.multi") {
            out.push_str(&format!(
                "--backend auto, more than {} functions: kprobe-multi\n",
                crate::sources::function_plan::AUTO_MULTI_ABOVE
            ));
        }
        out
    }
}

/// Runs every check on the running kernel.
pub fn run() -> Report {
    let mut capabilities = Vec::new();

    // BTF: needed for offsets (all eBPF sources) and tp_btf/fentry targets.
    let offsets = match KernelBtf::running().and_then(|btf| btf.kernel_offsets()) {
        Ok((offsets, missing)) => {
            let detail = if missing.is_empty() {
                format!(
                    "{} (sk_buff.len at {}, sk_buff.dev at {})",
                    crate::kernel::btf::VMLINUX_BTF,
                    offsets.skb_len,
                    offsets.skb_dev
                )
            } else {
                format!("fields missing, left empty: {}", missing.join(", "))
            };
            capabilities.push(Capability {
                name: "btf",
                available: true,
                detail,
            });
            offsets
        }
        Err(e) => {
            capabilities.push(Capability {
                name: "btf",
                available: false,
                detail: e.to_string(),
            });
            KernelOffsets::MISSING
        }
    };
    // The nf_tables layout the nft hooks (issue 6) will read: found in BTF
    // or not, with the reason; loading nothing.
    let layout = KernelBtf::running()
        .map_err(|e| e.to_string())
        .and_then(|btf| NftLayout::running(&btf).map_err(|e| e.to_string()));
    capabilities.push(match layout {
        Ok(l) => Capability {
            name: "nft_layout",
            available: true,
            detail: l.describe(),
        },
        Err(reason) => Capability {
            name: "nft_layout",
            available: false,
            detail: reason,
        },
    });
    let aya_btf = aya::Btf::from_sys_fs().ok();
    let kernel = KernelContext { aya_btf, offsets };

    let sources: [&dyn Source; 5] = [
        &TracepointSource,
        &FunctionSource(FunctionBackend::Kprobe),
        &KprobeMultiSource,
        &FunctionSource(FunctionBackend::Fentry),
        &NftraceSource,
    ];
    let root = is_root();
    for source in sources {
        let (available, detail) = match source.try_on_running_kernel(&kernel) {
            Ok(detail) => (true, detail),
            Err(reason) if !root => (false, format!("{reason} (not running as root)")),
            Err(reason) => (false, explain(source.name(), &reason)),
        };
        capabilities.push(Capability {
            name: source.name(),
            available,
            detail,
        });
    }
    Report { capabilities }
}

/// Adds what a known failure means to the raw error text.
fn explain(name: &str, reason: &str) -> String {
    let reason = reason
        .trim_end()
        .trim_end_matches("Verifier output:")
        .trim_end();
    let hint = if reason.contains("devices/kprobe/type") {
        Some("the kernel has no kprobe PMU: built without CONFIG_KPROBES")
    } else if name == "fentry" && reason.contains("Operation not permitted") {
        Some("the kernel refuses BPF trampolines for fentry/fexit (locked down or no ftrace direct calls)")
    } else {
        None
    };
    match hint {
        Some(hint) => format!("{hint} ({reason})"),
        None => reason.to_string(),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
