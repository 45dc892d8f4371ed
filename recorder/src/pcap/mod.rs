//! `--filter EXPR`: a pcap-filter expression (tcpdump's language),
//! compiled by libpcap itself for each layer a probe may see a packet at
//! (from the MAC header, DLT_EN10MB; from the network header, DLT_RAW),
//! translated to eBPF ([`translate`]) and written into the eBPF object's
//! placeholders ([`patch`]) before it is loaded. Everything here runs
//! before anything is attached, so a bad expression is an error that
//! leaves nothing behind.

pub mod libpcap;
pub mod patch;
pub mod translate;

pub use libpcap::Program;
use nft_schema::manifest::{FilterLayer, FilterProgram, FilterRefusal};
use nft_schema::raw::{pcap_layer, PcapLayers};
pub use translate::{Cbpf, Insn, TranslateError};

/// Why an expression cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PcapFilterError {
    #[error("--filter {expr:?}: libpcap: {message}")]
    Compile { expr: String, message: String },
    #[error("--filter {expr:?}: the {layer} program: {why}")]
    Translate {
        expr: String,
        layer: &'static str,
        why: TranslateError,
    },
    #[error(
        "--filter {expr:?}: the {layer} program is {insns} eBPF instructions; the probes have \
         room for {limit} (a shorter expression, or fewer alternatives, fits)"
    )]
    TooLong {
        expr: String,
        layer: &'static str,
        insns: usize,
        limit: usize,
    },
    #[error("--filter: the eBPF object: {0}")]
    Object(#[from] patch::PatchError),
}

/// One layer's program.
#[derive(Clone, Debug)]
pub struct LayerProgram {
    /// A `pcap_layer` bit.
    pub layer: u32,
    /// "l2" or "l3", as the manifest spells it.
    pub name: &'static str,
    pub cbpf: Vec<Cbpf>,
    pub ebpf: Vec<Insn>,
}

/// A compiled `--filter`.
#[derive(Clone, Debug)]
pub struct PcapFilter {
    pub expression: String,
    /// The layers libpcap could compile the expression for (an expression
    /// such as `ether host …` has no network-layer program; `ip` has both).
    pub programs: Vec<LayerProgram>,
    /// The layers it could not, with libpcap's reason: packets seen at
    /// that layer never match.
    pub refused: Vec<(&'static str, String)>,
}

impl PcapFilter {
    /// Compiles `expr` for both layers; an error when libpcap compiles it
    /// for neither, or a program cannot run in a probe.
    pub fn compile(expr: &str) -> Result<Self, PcapFilterError> {
        let mut programs = Vec::new();
        let mut refused = Vec::new();
        let mut first_error = None;
        let limit = patch::room(crate::ebpf_object::EBPF_OBJECT)?;
        for (layer, name, linktype) in [
            (pcap_layer::L2, "l2", libpcap::DLT_EN10MB),
            (pcap_layer::L3, "l3", libpcap::DLT_RAW),
        ] {
            let cbpf = match Program::compile(expr, linktype) {
                Ok(p) => p.instructions(),
                Err(message) => {
                    first_error.get_or_insert_with(|| message.clone());
                    refused.push((name, message));
                    continue;
                }
            };
            let translate_err = |why| PcapFilterError::Translate {
                expr: expr.to_string(),
                layer: name,
                why,
            };
            translate::check_offsets(&cbpf).map_err(translate_err)?;
            let ebpf = translate::translate(&cbpf).map_err(translate_err)?;
            if ebpf.len() > limit {
                return Err(PcapFilterError::TooLong {
                    expr: expr.to_string(),
                    layer: name,
                    insns: ebpf.len(),
                    limit,
                });
            }
            programs.push(LayerProgram {
                layer,
                name,
                cbpf,
                ebpf,
            });
        }
        if programs.is_empty() {
            return Err(PcapFilterError::Compile {
                expr: expr.to_string(),
                message: first_error.unwrap_or_default(),
            });
        }
        Ok(Self {
            expression: expr.to_string(),
            programs,
            refused,
        })
    }

    /// The programs' read-only global.
    pub fn layers(&self) -> PcapLayers {
        PcapLayers {
            layers: self.programs.iter().fold(0, |acc, p| acc | p.layer),
        }
    }

    /// What the manifest says of it.
    pub fn manifest(&self) -> FilterProgram {
        FilterProgram {
            expression: self.expression.clone(),
            layers: self
                .programs
                .iter()
                .map(|p| FilterLayer {
                    layer: p.name.into(),
                    cbpf_insns: p.cbpf.len(),
                    ebpf_insns: p.ebpf.len(),
                })
                .collect(),
            refused: self
                .refused
                .iter()
                .map(|(layer, why)| FilterRefusal {
                    layer: (*layer).into(),
                    why: why.clone(),
                })
                .collect(),
        }
    }
}

/// libpcap's matcher for `expr` at the network layer, for packets the
/// kernel describes by their headers only (nftrace messages): `None` when
/// the expression has no network-layer program.
pub fn network_matcher(expr: &str) -> Option<Program> {
    Program::compile(expr, libpcap::DLT_RAW).ok()
}

#[cfg(test)]
mod tests;
