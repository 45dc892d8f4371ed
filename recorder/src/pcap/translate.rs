//! Classic BPF (what libpcap compiles a pcap-filter expression to) ->
//! eBPF for the probes' filter placeholder (`ebpf/src/pcap.rs`).
//!
//! Hand-written because no kept crate does it for this calling
//! convention: the kernel's own converter (`bpf_convert_filter`) reads
//! packets through skb helpers, which tracing programs cannot call, and
//! retis's translator is part of retis. The model is the kernel's.
//!
//! Registers: A = r0 (and the return value), r1 = the packet copy (a map
//! value of `PCAP_PACKET_BYTES`), r2 = its valid length, r3 = the packet
//! length (`len`), X = r4, r5 = scratch; the scratch memory M[0..16] lives
//! on the function's stack. Nothing else is touched, so the placeholder's
//! caller keeps r6-r9. Every packet load is checked twice: against r2 at
//! run time (beyond it: no match, as libpcap's own interpreter answers
//! for a load past the packet) and against the buffer's size for the
//! verifier. cBPF only jumps forward, so the result has no loops.

use nft_schema::raw::PCAP_PACKET_BYTES;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cbpf {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// One eBPF instruction (`struct bpf_insn`), as the kernel lays it out.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self {
            code,
            regs: (src << 4) | dst,
            off,
            imm,
        }
    }

    /// The 8 bytes of the instruction, little-endian as in the object.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = self.regs;
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }

    /// `goto +0`: a no-op the verifier removes.
    pub fn nop() -> Self {
        Self::new(JMP | JA, 0, 0, 0, 0)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranslateError {
    #[error("instruction {at} (code {code:#06x}) is not classic BPF this recorder can run")]
    Unsupported { at: usize, code: u16 },
    #[error(
        "instruction {at} reads the packet's Linux metadata (offset {k:#x}: SKF_AD/SKF_NET/SKF_LL), \
         which a probe cannot offer"
    )]
    Ancillary { at: usize, k: u32 },
    #[error(
        "instruction {at} reads packet byte {k}, beyond the first {PCAP_PACKET_BYTES} bytes the \
         probes copy"
    )]
    BeyondCopy { at: usize, k: u32 },
    #[error("instruction {at} divides or shifts by an invalid constant {k}")]
    BadConstant { at: usize, k: u32 },
    #[error(
        "instruction {at} jumps backwards or outside the program (a loop, as `protochain` \
         compiles to): a probe runs no loops"
    )]
    BadJump { at: usize },
    #[error("the program does not end with a return")]
    NoReturn,
}

// Classic and eBPF share these encodings.
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP_C: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;

const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const MSH: u16 = 0xa0;
const SRC_X: u16 = 0x08;
const RVAL_A: u16 = 0x10;
const TAX: u16 = 0x00;
const TXA: u16 = 0x80;

// eBPF-only encodings.
const E_LDX: u8 = 0x01;
const E_STX: u8 = 0x03;
const E_ALU: u8 = 0x04;
const JMP: u8 = 0x05;
const JMP32: u8 = 0x06;
const ALU64: u8 = 0x07;
const E_MEM: u8 = 0x60;
const E_X: u8 = 0x08;
const MOV: u8 = 0xb0;
const ADD: u8 = 0x00;
const AND: u8 = 0x50;
const LSH: u8 = 0x60;
const RSH: u8 = 0x70;
const NEG: u8 = 0x80;
const DIV: u8 = 0x30;
const MOD: u8 = 0x90;
const END_BE: u8 = 0xd0 | 0x08;
const JA: u8 = 0x00;
const JEQ: u8 = 0x10;
const JGT: u8 = 0x20;
const JGE: u8 = 0x30;
const JSET: u8 = 0x40;
const JLT: u8 = 0xa0;
const EXIT: u8 = 0x90;

const A: u8 = 0;
const BUF: u8 = 1;
const CAPLEN: u8 = 2;
const WIRELEN: u8 = 3;
const X: u8 = 4;
const TMP: u8 = 5;
const FP: u8 = 10;

/// Where a jump goes, resolved once every instruction's place is known.
#[derive(Clone, Copy)]
enum Target {
    /// The first eBPF instruction of classic instruction `n`.
    Classic(usize),
    /// The shared "no match" exit at the end.
    NoMatch,
}

/// The eBPF being built: instructions and the jumps still to resolve.
struct Out {
    insns: Vec<Insn>,
    jumps: Vec<(usize, Target)>,
}

impl Out {
    fn push(&mut self, i: Insn) {
        self.insns.push(i);
    }

    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, to: Target) {
        self.jumps.push((self.insns.len(), to));
        self.push(Insn::new(code, dst, src, 0, imm));
    }
}

/// The byte size of a classic load.
fn load_size(code: u16) -> Option<(u8, u32)> {
    match code & 0x18 {
        W => Some((0x00, 4)),
        H => Some((0x08, 2)),
        B => Some((0x10, 1)),
        _ => None,
    }
}

/// The stack slot of M[k] (4 bytes each, below the frame pointer).
fn mem_off(k: u32) -> i16 {
    -64 + 4 * k as i16
}

/// Translates `prog` into eBPF, ending in `exit` on every path.
pub fn translate(prog: &[Cbpf]) -> Result<Vec<Insn>, TranslateError> {
    if !matches!(prog.last(), Some(i) if i.code & 0x07 == RET) {
        return Err(TranslateError::NoReturn);
    }
    let mut out = Out {
        insns: Vec::new(),
        jumps: Vec::new(),
    };
    prologue(prog, &mut out);
    let mut starts = Vec::with_capacity(prog.len());
    for (at, ins) in prog.iter().enumerate() {
        starts.push(out.insns.len());
        one(at, ins, prog.len(), &mut out)?;
    }
    // The shared "no match" exit, only when something jumps there (the
    // verifier refuses unreachable instructions).
    let no_match = out.insns.len();
    if out
        .jumps
        .iter()
        .any(|(_, to)| matches!(to, Target::NoMatch))
    {
        out.push(Insn::new(E_ALU | MOV, A, 0, 0, 0));
        out.push(Insn::new(JMP | EXIT, 0, 0, 0, 0));
    }
    for (at, to) in std::mem::take(&mut out.jumps) {
        let target = match to {
            Target::Classic(n) => starts[n],
            Target::NoMatch => no_match,
        };
        out.insns[at].off = (target as i64 - at as i64 - 1) as i16;
    }
    Ok(out.insns)
}

/// A and X start at 0; the scratch words the program loads start at 0 too
/// (the verifier refuses reads of stack never written).
fn prologue(prog: &[Cbpf], out: &mut Out) {
    out.push(Insn::new(E_ALU | MOV, A, 0, 0, 0));
    out.push(Insn::new(E_ALU | MOV, X, 0, 0, 0));
    let mut used = [false; 16];
    for i in prog {
        let class = i.code & 0x07;
        let mem = matches!(class, ST | STX) || (matches!(class, LD | LDX) && i.code & 0xe0 == MEM);
        if mem && i.k < 16 {
            used[i.k as usize] = true;
        }
    }
    for (k, _) in used.iter().enumerate().filter(|(_, u)| **u) {
        out.push(Insn::new(0x62, FP, 0, mem_off(k as u32), 0)); // *(u32 *)(fp + off) = 0
    }
}

fn one(at: usize, i: &Cbpf, len: usize, out: &mut Out) -> Result<(), TranslateError> {
    let unsupported = || TranslateError::Unsupported { at, code: i.code };
    match i.code & 0x07 {
        LD | LDX => load(i, out).ok_or_else(unsupported)?,
        ST | STX => {
            if i.k >= 16 {
                return Err(unsupported());
            }
            let src = if i.code & 0x07 == ST { A } else { X };
            out.push(Insn::new(E_STX | E_MEM, FP, src, mem_off(i.k), 0));
        }
        ALU => alu(at, i, out)?,
        JMP_C => jump(at, i, len, out)?,
        RET => {
            match i.code & 0x18 {
                RVAL_A => {}
                0 => out.push(Insn::new(E_ALU | MOV, A, 0, 0, i.k as i32)),
                _ => return Err(unsupported()),
            }
            out.push(Insn::new(JMP | EXIT, 0, 0, 0, 0));
        }
        MISC => match i.code & 0xf8 {
            TXA => out.push(Insn::new(E_ALU | MOV | E_X, A, X, 0, 0)),
            TAX => out.push(Insn::new(E_ALU | MOV | E_X, X, A, 0, 0)),
            _ => return Err(unsupported()),
        },
        _ => return Err(unsupported()),
    }
    Ok(())
}

/// LD/LDX: returns `None` for a form classic BPF does not have.
fn load(i: &Cbpf, out: &mut Out) -> Option<()> {
    let dst = if i.code & 0x07 == LD { A } else { X };
    match (i.code & 0x07, i.code & 0xe0) {
        (_, IMM) => out.push(Insn::new(E_ALU | MOV, dst, 0, 0, i.k as i32)),
        (_, MEM) if i.k < 16 => out.push(Insn::new(E_LDX | E_MEM, dst, FP, mem_off(i.k), 0)),
        (_, LEN) => out.push(Insn::new(E_ALU | MOV | E_X, dst, WIRELEN, 0, 0)),
        (LD, ABS) => packet_abs(i, A, out),
        (LD, IND) => packet_ind(i, out),
        (LDX, MSH) if i.code & 0x18 == B => {
            packet_abs(i, X, out);
            out.push(Insn::new(E_ALU | AND, X, 0, 0, 0x0f));
            out.push(Insn::new(E_ALU | LSH, X, 0, 0, 2));
        }
        _ => return None,
    }
    Some(())
}

/// `dst = P[k:size]` (big-endian).
fn packet_abs(i: &Cbpf, dst: u8, out: &mut Out) {
    let (size, n) = load_size(i.code).unwrap_or((0x10, 1));
    // Offsets were checked by `check_offsets`: k + n <= PCAP_PACKET_BYTES.
    out.jump(JMP | JLT, CAPLEN, 0, (i.k + n) as i32, Target::NoMatch);
    out.push(Insn::new(E_LDX | E_MEM | size, dst, BUF, i.k as i16, 0));
    swap(size, dst, out);
}

/// `A = P[X + k:size]` (big-endian).
fn packet_ind(i: &Cbpf, out: &mut Out) {
    let (size, n) = load_size(i.code).unwrap_or((0x10, 1));
    // A is about to be overwritten: it holds the load's end offset.
    out.push(Insn::new(ALU64 | MOV | E_X, A, X, 0, 0));
    out.push(Insn::new(ALU64 | ADD, A, 0, 0, (i.k + n) as i32));
    out.jump(JMP | JGT | E_X, A, CAPLEN, 0, Target::NoMatch);
    out.jump(JMP | JGT, A, 0, PCAP_PACKET_BYTES as i32, Target::NoMatch);
    out.push(Insn::new(ALU64 | MOV | E_X, TMP, BUF, 0, 0));
    out.push(Insn::new(ALU64 | ADD | E_X, TMP, A, 0, 0));
    out.push(Insn::new(E_LDX | E_MEM | size, A, TMP, -(n as i16), 0));
    swap(size, A, out);
}

/// Network to host order for 2- and 4-byte loads.
fn swap(size: u8, dst: u8, out: &mut Out) {
    match size {
        0x00 => out.push(Insn::new(E_ALU | END_BE, dst, 0, 0, 32)),
        0x08 => out.push(Insn::new(E_ALU | END_BE, dst, 0, 0, 16)),
        _ => {}
    }
}

fn alu(at: usize, i: &Cbpf, out: &mut Out) -> Result<(), TranslateError> {
    let op = (i.code & 0xf0) as u8;
    if op == NEG {
        out.push(Insn::new(E_ALU | NEG, A, 0, 0, 0));
        return Ok(());
    }
    if op > 0xa0 {
        return Err(TranslateError::Unsupported { at, code: i.code });
    }
    if i.code & SRC_X != 0 {
        if op == DIV || op == MOD {
            // Classic BPF ends the program (no match) on a division by 0.
            out.jump(JMP32 | JEQ, X, 0, 0, Target::NoMatch);
        }
        out.push(Insn::new(E_ALU | op | E_X, A, X, 0, 0));
    } else {
        let bad = ((op == DIV || op == MOD) && i.k == 0) || ((op == LSH || op == RSH) && i.k >= 32);
        if bad {
            return Err(TranslateError::BadConstant { at, k: i.k });
        }
        out.push(Insn::new(E_ALU | op, A, 0, 0, i.k as i32));
    }
    Ok(())
}

fn jump(at: usize, i: &Cbpf, len: usize, out: &mut Out) -> Result<(), TranslateError> {
    let to = |off: u64| -> Result<Target, TranslateError> {
        let n = at as u64 + 1 + off;
        if n >= len as u64 {
            return Err(TranslateError::BadJump { at });
        }
        Ok(Target::Classic(n as usize))
    };
    let op = (i.code & 0xf0) as u8;
    if op == JA {
        out.jump(JMP | JA, 0, 0, 0, to(i.k as u64)?);
        return Ok(());
    }
    if !matches!(op, JEQ | JGT | JGE | JSET) {
        return Err(TranslateError::Unsupported { at, code: i.code });
    }
    let (src, imm, x) = if i.code & SRC_X != 0 {
        (X, 0, E_X)
    } else {
        (0, i.k as i32, 0)
    };
    out.jump(JMP32 | op | x, A, src, imm, to(i.jt as u64)?);
    if i.jf != 0 {
        out.jump(JMP | JA, 0, 0, 0, to(i.jf as u64)?);
    }
    Ok(())
}

/// Refuses what the probes cannot run, before translating: reads of
/// Linux's ancillary data (negative offsets) and absolute reads past the
/// copy. (Indirect reads are bounded at run time.)
pub fn check_offsets(prog: &[Cbpf]) -> Result<(), TranslateError> {
    for (at, i) in prog.iter().enumerate() {
        let class = i.code & 0x07;
        let mode = i.code & 0xe0;
        let packet = (class == LD && matches!(mode, ABS | IND)) || (class == LDX && mode == MSH);
        if !packet {
            continue;
        }
        if i.k >= 0x8000_0000 {
            return Err(TranslateError::Ancillary { at, k: i.k });
        }
        let n = load_size(i.code).map_or(1, |(_, n)| n);
        if i.k as u64 + n as u64 > PCAP_PACKET_BYTES as u64 {
            return Err(TranslateError::BeyondCopy { at, k: i.k });
        }
    }
    Ok(())
}
