//! The nf_tables layout the nft hooks need, from BTF: which
//! `__nft_trace_packet` the kernel has (its parameters decide, not the
//! version: they changed in 6.4) and where `nft_traceinfo`, `nft_pktinfo`,
//! `nft_chain`, `nft_table`, `nft_base_chain`, `nft_rule_dp` and
//! `nft_verdict` keep their fields. nf_tables is built in on some kernels
//! (vmlinux BTF) and a module on others (`/sys/kernel/btf/nf_tables`, split
//! over vmlinux). A layout this code does not understand is an error naming
//! the field, so the recorder can fall back to the nftrace source and say
//! why.
//!
//! Why `__nft_trace_packet`: every rule that decides anything (immediate
//! verdicts, verdict maps, reject, queue, jump/goto/return, the end of a
//! regular chain) and every base-chain policy passes through it, with the
//! rule and the verdict, once the `nft_trace_enabled` static key is on (a
//! hook-less table holding `meta nftrace set 1` turns it on without marking
//! any packet). It is the kernel's own source of `nft monitor trace`, so the
//! two agree by construction. `nft_immediate_eval` alone would miss verdict
//! maps, reject, policies and the ends of chains. docs/backends.md has more.

use std::path::Path;

use nft_schema::raw::{nft_trace_abi, NftOffsets, OFFSET_MISSING};

use super::btf::{BtfError, KernelBtf};

/// The function the rule-verdict hook attaches to.
pub const TRACE_FUNCTION: &str = "__nft_trace_packet";
/// Where nf_tables' BTF is when it is a module.
pub const MODULE_BTF: &str = "/sys/kernel/btf/nf_tables";

#[derive(Debug, thiserror::Error)]
pub enum NftLayoutError {
    #[error("nf_tables has no BTF here: neither vmlinux nor {MODULE_BTF} declares struct nft_traceinfo (is nf_tables loaded?)")]
    NoNfTables,
    #[error(
        "{TRACE_FUNCTION} is not in nf_tables' BTF: this kernel cannot be hooked for rule verdicts"
    )]
    NoTraceFunction,
    #[error("{TRACE_FUNCTION}({params}): a parameter list this recorder does not know")]
    UnknownAbi { params: String },
    #[error("nf_tables layout: {0}")]
    Field(#[from] BtfError),
    #[error("nf_tables layout: {strukt}.{field} is {bits} bits at bit {bit}, expected {expected}")]
    Shape {
        strukt: &'static str,
        field: &'static str,
        bit: u32,
        bits: u32,
        expected: &'static str,
    },
}

/// The layout, and where it was read.
#[derive(Debug, Clone)]
pub struct NftLayout {
    pub offsets: NftOffsets,
    /// The BTF file that declares nf_tables.
    pub btf_path: String,
    /// `__nft_trace_packet`'s parameters as BTF gives them (struct names).
    pub trace_params: Vec<String>,
}

impl NftLayout {
    /// The running kernel's layout: vmlinux if nf_tables is built in, else
    /// its module's BTF.
    pub fn running(vmlinux: &KernelBtf) -> Result<Self, NftLayoutError> {
        Self::find(vmlinux, Some(Path::new(MODULE_BTF)))
    }

    /// The layout in `vmlinux`, or in `module` (split BTF over it).
    pub fn find(vmlinux: &KernelBtf, module: Option<&Path>) -> Result<Self, NftLayoutError> {
        if vmlinux.field_offset("nft_traceinfo", "skbid").is_ok() {
            return Self::from_btf(vmlinux);
        }
        let module = module.filter(|m| m.exists());
        let Some(module) = module else {
            return Err(NftLayoutError::NoNfTables);
        };
        Self::from_btf(&vmlinux.module(module)?)
    }

    /// Reads the layout from the BTF that declares nf_tables.
    pub fn from_btf(btf: &KernelBtf) -> Result<Self, NftLayoutError> {
        let params = btf
            .function_struct_params(TRACE_FUNCTION)?
            .ok_or(NftLayoutError::NoTraceFunction)?;
        let shape: Vec<&str> = params.iter().map(String::as_str).collect();
        let abi = match shape.as_slice() {
            ["nft_traceinfo", "nft_chain", ""] => nft_trace_abi::INFO_CHAIN_TYPE,
            ["nft_pktinfo", "nft_verdict", "nft_rule_dp", "nft_traceinfo", ""] => {
                nft_trace_abi::PKT_VERDICT_RULE_INFO_TYPE
            }
            _ => {
                return Err(NftLayoutError::UnknownAbi {
                    params: shape
                        .iter()
                        .map(|p| if p.is_empty() { "?" } else { p })
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        };
        let v1 = abi == nft_trace_abi::INFO_CHAIN_TYPE;
        let off = |s: &str, f: &str| btf.field_offset(s, f);
        let only_v1 = |s: &str, f: &str| {
            if v1 {
                btf.field_offset(s, f)
            } else {
                Ok(OFFSET_MISSING)
            }
        };
        let bits = |s: &'static str, f: &'static str| btf.field_bits(s, f);

        // `type` is an 8-bit bitfield; the program reads it as a byte.
        let (type_bit, type_bits) = bits("nft_traceinfo", "type")?;
        if type_bits != 8 || !type_bit.is_multiple_of(8) {
            return Err(shape_error(
                "nft_traceinfo",
                "type",
                type_bit,
                type_bits,
                "8 bits on a byte boundary",
            ));
        }
        // The family is read as one byte, then masked.
        let (family_bit, family_bits) = bits("nft_table", "family")?;
        if family_bits == 0 || family_bit % 8 + family_bits > 8 {
            return Err(shape_error(
                "nft_table",
                "family",
                family_bit,
                family_bits,
                "a bitfield within one byte",
            ));
        }
        // The handle and is_last are read from one u64.
        let (handle_bit, handle_bits) = bits("nft_rule_dp", "handle")?;
        let (last_bit, last_bits) = bits("nft_rule_dp", "is_last")?;
        if handle_bits == 0 || handle_bit + handle_bits > 64 || last_bits != 1 || last_bit >= 64 {
            return Err(shape_error(
                "nft_rule_dp",
                "handle",
                handle_bit,
                handle_bits,
                "handle and is_last in the first u64",
            ));
        }
        let offsets = NftOffsets {
            abi,
            info_nf_trace: off("nft_traceinfo", "nf_trace")?,
            info_type: type_bit / 8,
            info_skbid: off("nft_traceinfo", "skbid")?,
            info_basechain: off("nft_traceinfo", "basechain")?,
            info_pkt: only_v1("nft_traceinfo", "pkt")?,
            info_rule: only_v1("nft_traceinfo", "rule")?,
            info_verdict: only_v1("nft_traceinfo", "verdict")?,
            pkt_skb: off("nft_pktinfo", "skb")?,
            pkt_state: off("nft_pktinfo", "state")?,
            state_hook: off("nf_hook_state", "hook")?,
            state_pf: off("nf_hook_state", "pf")?,
            state_net: off("nf_hook_state", "net")?,
            chain_table: off("nft_chain", "table")?,
            chain_handle: off("nft_chain", "handle")?,
            chain_name: off("nft_chain", "name")?,
            table_name: off("nft_table", "name")?,
            table_family_bit: family_bit,
            table_family_bits: family_bits,
            base_chain_chain: off("nft_base_chain", "chain")?,
            base_chain_policy: off("nft_base_chain", "policy")?,
            base_chain_priority: off("nft_base_chain", "ops.priority")?,
            rule_handle_bit: handle_bit,
            rule_handle_bits: handle_bits,
            rule_is_last_bit: last_bit,
            rule_last_chain: if v1 {
                OFFSET_MISSING
            } else {
                off("nft_rule_dp_last", "chain")?
            },
            verdict_code: off("nft_verdict", "code")?,
            verdict_chain: off("nft_verdict", "chain")?,
            table_handle: off("nft_table", "handle")?,
        };
        Ok(Self {
            offsets,
            btf_path: btf.path().display().to_string(),
            trace_params: params,
        })
    }

    /// `abi 2: __nft_trace_packet(nft_pktinfo, nft_verdict, ...)`, for
    /// `check` and the manifest.
    pub fn describe(&self) -> String {
        let params: Vec<&str> = self
            .trace_params
            .iter()
            .map(|p| if p.is_empty() { "int" } else { p.as_str() })
            .collect();
        format!(
            "abi {}: {TRACE_FUNCTION}({}) in {}",
            self.offsets.abi,
            params.join(", "),
            self.btf_path
        )
    }
}

fn shape_error(
    strukt: &'static str,
    field: &'static str,
    bit: u32,
    bits: u32,
    expected: &'static str,
) -> NftLayoutError {
    NftLayoutError::Shape {
        strukt,
        field,
        bit,
        bits,
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The host's kernel (6.18 here) has nf_tables built in: its layout is in
    // vmlinux BTF, with the 6.4+ parameters. Debian 6.1 and 6.12 (modules)
    // are checked in tests/e2e/vm.rs against their real BTF.
    #[test]
    fn the_running_kernel_has_a_known_layout() {
        let vmlinux = KernelBtf::running().unwrap();
        let layout = NftLayout::running(&vmlinux).unwrap();
        let o = layout.offsets;
        assert_eq!(
            o.abi,
            nft_trace_abi::PKT_VERDICT_RULE_INFO_TYPE,
            "{}",
            layout.describe()
        );
        assert_eq!((o.info_nf_trace, o.info_type, o.info_skbid), (1, 3, 4));
        assert_eq!(o.pkt_skb, 0);
        assert_eq!(o.info_pkt, OFFSET_MISSING);
        assert_ne!(o.rule_last_chain, OFFSET_MISSING);
        assert_eq!(o.rule_is_last_bit, 0);
        assert!(o.rule_handle_bits >= 42, "{o:?}");
        assert!(o.table_family_bits >= 6, "{o:?}");
    }

    #[test]
    fn a_kernel_without_nf_tables_btf_is_a_clear_error() {
        let vmlinux = KernelBtf::running().unwrap();
        if vmlinux.field_offset("nft_traceinfo", "skbid").is_ok() {
            // Built in here: a missing module path is never consulted.
            assert!(NftLayout::find(&vmlinux, None).is_ok());
            return;
        }
        let e = NftLayout::find(&vmlinux, None).unwrap_err();
        assert!(e.to_string().contains("nft_traceinfo"), "{e}");
    }
}
