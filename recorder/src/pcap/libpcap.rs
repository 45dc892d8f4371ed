//! The four libpcap calls `--filter` needs: compile an expression on a
//! dead handle, and run the result on header bytes (nftrace messages).
//!
//! Hand-written over Debian's libpcap instead of through the `pcap` crate:
//! its `compile` passes a netmask of 0, with which `ip broadcast` compiles
//! to "0.0.0.0 or 255.255.255.255" instead of being refused as libpcap
//! refuses it without a known netmask, and it shows instructions only as
//! text.

use std::ffi::{c_char, c_int, c_uint, c_ushort, CStr, CString};

use super::Cbpf;

#[repr(C)]
struct BpfInsn {
    code: c_ushort,
    jt: u8,
    jf: u8,
    k: u32,
}

#[repr(C)]
struct BpfProgramRaw {
    bf_len: c_uint,
    bf_insns: *mut BpfInsn,
}

#[repr(C)]
struct PktHdr {
    ts: libc::timeval,
    caplen: u32,
    len: u32,
}

#[repr(C)]
struct PcapT {
    _private: [u8; 0],
}

/// `PCAP_NETMASK_UNKNOWN`: tests that need the netmask do not compile.
const NETMASK_UNKNOWN: u32 = 0xffff_ffff;
const SNAPLEN: c_int = 65535;

#[link(name = "pcap")]
extern "C" {
    fn pcap_open_dead(linktype: c_int, snaplen: c_int) -> *mut PcapT;
    fn pcap_close(p: *mut PcapT);
    fn pcap_compile(
        p: *mut PcapT,
        fp: *mut BpfProgramRaw,
        s: *const c_char,
        optimize: c_int,
        netmask: u32,
    ) -> c_int;
    fn pcap_geterr(p: *mut PcapT) -> *const c_char;
    fn pcap_freecode(fp: *mut BpfProgramRaw);
    fn pcap_offline_filter(fp: *const BpfProgramRaw, h: *const PktHdr, pkt: *const u8) -> c_int;
}

/// libpcap's DLT_EN10MB and DLT_RAW (Linux's numbering).
pub const DLT_EN10MB: c_int = 1;
pub const DLT_RAW: c_int = 12;

/// A compiled program, owned (freed with `pcap_freecode`).
pub struct Program {
    raw: BpfProgramRaw,
}

// SAFETY: the program is plain memory libpcap allocated for us; nothing
// else refers to it.
unsafe impl Send for Program {}

impl Program {
    /// Compiles `expr` for `linktype`, optimised as tcpdump does; the
    /// error is libpcap's message.
    pub fn compile(expr: &str, linktype: c_int) -> Result<Self, String> {
        let text =
            CString::new(expr).map_err(|_| "the expression contains a NUL byte".to_string())?;
        // SAFETY: plain libpcap calls on a handle we own and close; the
        // error string is copied before the handle is closed.
        unsafe {
            let p = pcap_open_dead(linktype, SNAPLEN);
            if p.is_null() {
                return Err("libpcap could not open a dead handle".into());
            }
            let mut raw = BpfProgramRaw {
                bf_len: 0,
                bf_insns: std::ptr::null_mut(),
            };
            let rc = pcap_compile(p, &mut raw, text.as_ptr(), 1, NETMASK_UNKNOWN);
            let result = if rc == 0 {
                Ok(Self { raw })
            } else {
                Err(CStr::from_ptr(pcap_geterr(p))
                    .to_string_lossy()
                    .into_owned())
            };
            pcap_close(p);
            result
        }
    }

    pub fn instructions(&self) -> Vec<Cbpf> {
        if self.raw.bf_insns.is_null() {
            return Vec::new();
        }
        // SAFETY: libpcap's program holds `bf_len` instructions.
        let insns =
            unsafe { std::slice::from_raw_parts(self.raw.bf_insns, self.raw.bf_len as usize) };
        insns
            .iter()
            .map(|i| Cbpf {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect()
    }

    /// libpcap's own interpreter on `packet` (all of it captured).
    pub fn matches(&self, packet: &[u8]) -> bool {
        let header = PktHdr {
            ts: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            caplen: packet.len() as u32,
            len: packet.len() as u32,
        };
        // SAFETY: a valid program, header and buffer of `caplen` bytes.
        unsafe { pcap_offline_filter(&self.raw, &header, packet.as_ptr()) != 0 }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: compiled by pcap_compile, freed once.
        unsafe { pcap_freecode(&mut self.raw) }
    }
}
