//! Writes `--filter`'s eBPF into the object's placeholder functions
//! (`ebpf/src/pcap.rs`) before aya loads it. aya 0.14 loads an object as
//! built and has no hook to change a function's instructions, so the bytes
//! are changed instead: each placeholder keeps its size and place (the
//! calls into it stay valid); the filter goes at its end, after no-op
//! jumps (`goto +0`), which the verifier accepts as reachable and removes
//! before the program runs.

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

use super::{Insn, PcapFilter};
use nft_schema::raw::{names, pcap_layer};

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("cannot read the embedded eBPF object: {0}")]
    Parse(#[from] object::Error),
    #[error("the eBPF object has no placeholder function {0}")]
    NoPlaceholder(&'static str),
}

/// An eBPF object owned in memory, 8-byte aligned as aya's ELF reader
/// requires.
pub struct ObjectBytes {
    words: Vec<u64>,
    len: usize,
}

impl ObjectBytes {
    fn copy_of(bytes: &[u8]) -> Self {
        let mut out = Self {
            words: vec![0u64; bytes.len().div_ceil(8)],
            len: bytes.len(),
        };
        out.bytes_mut().copy_from_slice(bytes);
        out
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

/// Where a placeholder's instructions are in the object file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Byte offset in the file.
    pub offset: usize,
    /// Instructions.
    pub insns: usize,
}

/// Both placeholders (link layer, network layer), found in one parse.
pub fn slots(elf: &[u8]) -> Result<(Slot, Slot), PatchError> {
    let file = object::File::parse(elf)?;
    Ok((
        slot(&file, names::FUNC_PCAP_L2)?,
        slot(&file, names::FUNC_PCAP_L3)?,
    ))
}

/// The placeholder of `name` (a substring of its mangled symbol).
fn slot(file: &object::File<'_>, name: &'static str) -> Result<Slot, PatchError> {
    let sym = file
        .symbols()
        .find(|s| s.kind() == SymbolKind::Text && s.name().is_ok_and(|n| n.contains(name)))
        .ok_or(PatchError::NoPlaceholder(name))?;
    let section =
        file.section_by_index(sym.section_index().ok_or(PatchError::NoPlaceholder(name))?)?;
    let (start, _) = section
        .file_range()
        .ok_or(PatchError::NoPlaceholder(name))?;
    Ok(Slot {
        offset: (start + sym.address()) as usize,
        insns: sym.size() as usize / 8,
    })
}

/// The room each layer's program has in `elf` (the smaller placeholder).
pub fn room(elf: &[u8]) -> Result<usize, PatchError> {
    let (l2, l3) = slots(elf)?;
    Ok(l2.insns.min(l3.insns))
}

/// A copy of `elf` with `filter`'s programs in their placeholders. The
/// caller has checked that each fits ([`room`]).
pub fn patched(elf: &[u8], filter: &PcapFilter) -> Result<ObjectBytes, PatchError> {
    let (l2, l3) = slots(elf)?;
    let mut out = ObjectBytes::copy_of(elf);
    for program in &filter.programs {
        let slot = if program.layer == pcap_layer::L2 {
            l2
        } else {
            l3
        };
        write_slot(out.bytes_mut(), slot, &program.ebpf);
    }
    Ok(out)
}

fn write_slot(bytes: &mut [u8], slot: Slot, program: &[Insn]) {
    let pad = slot.insns - program.len();
    let insns = std::iter::repeat_n(Insn::nop(), pad).chain(program.iter().copied());
    for (i, insn) in insns.enumerate() {
        let at = slot.offset + i * 8;
        bytes[at..at + 8].copy_from_slice(&insn.to_bytes());
    }
}
