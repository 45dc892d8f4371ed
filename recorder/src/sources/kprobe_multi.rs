//! kprobe.multi (`BPF_TRACE_KPROBE_MULTI`): one link attaching one program to
//! many functions at once, the fastest way to cover 1500+ functions. aya 0.14
//! has no kprobe.multi (neither does its section parser), so this module
//! talks to the `bpf()` syscall itself: it takes a program's instructions
//! from the embedded object with aya's own parser and relocator (`aya-obj`),
//! pointed at the maps the object was loaded with, loads them with the
//! kprobe.multi attach type, and creates one link for many functions with
//! each function's probe id as its cookie. `check` uses a two-instruction
//! program on one function.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{function::CHECK_FUNCTION, KernelContext, Source};
use crate::loader::LoadedObject;

// From include/uapi/linux/bpf.h.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_KPROBE: u32 = 2;
const BPF_TRACE_KPROBE_MULTI: u32 = 42;

/// The leading fields of `union bpf_attr` for BPF_PROG_LOAD.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The leading fields of `union bpf_attr` for BPF_LINK_CREATE with
/// `kprobe_multi`.
#[repr(C)]
#[derive(Default)]
struct LinkCreateKprobeMultiAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    kprobe_multi_flags: u32,
    cnt: u32,
    syms: u64,
    addrs: u64,
    cookies: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum KprobeMultiError {
    #[error("parsing the eBPF object: {0}")]
    Parse(#[from] aya_obj::ParseError),
    #[error("relocating the eBPF object for kprobe.multi: {why}")]
    Relocate { why: String },
    #[error("eBPF object has no program {0}")]
    NoProgram(String),
    #[error("loading {program} as kprobe.multi: {error}{log}")]
    Load {
        program: String,
        error: io::Error,
        /// The verifier's last lines.
        log: String,
    },
}

/// The embedded object parsed and relocated against the maps `obj` was
/// loaded with (the same ring buffer, config and counters), once for every
/// kprobe.multi program a recording loads from it.
pub struct Relocated {
    parsed: aya_obj::Object,
}

impl Relocated {
    pub fn new(obj: &LoadedObject) -> Result<Self, KprobeMultiError> {
        let relocate = |why: String| KprobeMultiError::Relocate { why };
        let mut parsed = aya_obj::Object::parse(obj.object_bytes())?;
        let maps = std::mem::take(&mut parsed.maps);
        let text: HashSet<usize> = parsed
            .functions
            .keys()
            .map(|(section, _)| *section)
            .collect();
        let with_fds = maps.iter().filter_map(|(map, def)| {
            let (_, fd) = obj.map_fds.iter().find(|(n, _)| n == map)?;
            Some((map.as_str(), fd.as_raw_fd(), def))
        });
        parsed
            .relocate_maps(with_fds, &text)
            .map_err(|e| relocate(e.to_string()))?;
        parsed
            .relocate_calls(&text)
            .map_err(|e| relocate(e.to_string()))?;
        Ok(Self { parsed })
    }

    /// Loads program `name` as a kprobe.multi program.
    pub fn load(&self, name: &str) -> Result<OwnedFd, KprobeMultiError> {
        let program = self
            .parsed
            .programs
            .get(name)
            .ok_or_else(|| KprobeMultiError::NoProgram(name.into()))?;
        let insns = &self.parsed.functions[&program.function_key()].instructions;
        load_insns(
            name,
            insns.as_ptr().cast(),
            insns.len(),
            &self.parsed.license,
        )
    }
}

/// BPF_PROG_LOAD of `count` instructions as a kprobe.multi program; on a
/// refusal, loads again with the verifier's log to say why.
fn load_insns(
    name: &str,
    insns: *const u64,
    count: usize,
    license: &CStr,
) -> Result<OwnedFd, KprobeMultiError> {
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_KPROBE,
        insn_cnt: count as u32,
        insns: insns as u64,
        license: license.as_ptr() as u64,
        prog_name,
        expected_attach_type: BPF_TRACE_KPROBE_MULTI,
        ..Default::default()
    };
    let first = match load_retrying(&attr) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut log = vec![0u8; 1 << 20];
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    let _ = bpf(BPF_PROG_LOAD, &attr);
    let text = String::from_utf8_lossy(&log);
    let text = text.trim_end_matches('\0').trim();
    let tail: Vec<&str> = text.lines().rev().take(6).collect();
    let log = if tail.is_empty() {
        String::new()
    } else {
        format!(
            "; verifier: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )
    };
    Err(KprobeMultiError::Load {
        program: name.to_string(),
        error: first,
        log,
    })
}

/// BPF_PROG_LOAD, again on EAGAIN as `super::load_retrying` does for aya's
/// loads.
fn load_retrying(attr: &ProgLoadAttr) -> io::Result<OwnedFd> {
    let mut attempts = 5;
    loop {
        match bpf(BPF_PROG_LOAD, attr) {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && attempts > 1 => attempts -= 1,
            r => return r,
        }
    }
}

/// One kprobe.multi link of `prog` on `functions`, each with its cookie
/// (what `bpf_get_attach_cookie` returns in it). Closing the fd detaches
/// every function at once.
pub fn link(prog: &OwnedFd, functions: &[(&str, u64)]) -> io::Result<OwnedFd> {
    let names: Vec<CString> = functions
        .iter()
        .map(|(f, _)| CString::new(*f).map_err(io::Error::other))
        .collect::<Result<_, _>>()?;
    let syms: Vec<*const libc::c_char> = names.iter().map(|n| n.as_ptr()).collect();
    let cookies: Vec<u64> = functions.iter().map(|(_, c)| *c).collect();
    bpf(
        BPF_LINK_CREATE,
        &LinkCreateKprobeMultiAttr {
            prog_fd: prog.as_raw_fd() as u32,
            attach_type: BPF_TRACE_KPROBE_MULTI,
            cnt: functions.len() as u32,
            syms: syms.as_ptr() as u64,
            cookies: cookies.as_ptr() as u64,
            ..Default::default()
        },
    )
}

fn bpf<T>(cmd: libc::c_long, attr: &T) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a live, correctly laid out prefix of bpf_attr; the
    // kernel reads at most size_of::<T>() bytes and zero-extends the rest.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a successful BPF_PROG_LOAD / BPF_LINK_CREATE returns a new fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Loads `r0 = 0; exit` as a kprobe.multi program and links it to
/// `function`; both are released when the returned fds drop.
fn try_attach(function: &str) -> io::Result<(OwnedFd, OwnedFd)> {
    // mov64 r0, 0 ; exit
    let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    let license = c"GPL";
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"nft_kpm_chk\0");
    let prog = bpf(
        BPF_PROG_LOAD,
        &ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_KPROBE,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name,
            expected_attach_type: BPF_TRACE_KPROBE_MULTI,
            ..Default::default()
        },
    )
    .map_err(|e| io::Error::new(e.kind(), format!("BPF_PROG_LOAD (kprobe.multi): {e}")))?;
    let sym = CString::new(function).map_err(io::Error::other)?;
    let syms = [sym.as_ptr()];
    let link = bpf(
        BPF_LINK_CREATE,
        &LinkCreateKprobeMultiAttr {
            prog_fd: std::os::fd::AsRawFd::as_raw_fd(&prog) as u32,
            attach_type: BPF_TRACE_KPROBE_MULTI,
            cnt: 1,
            syms: syms.as_ptr() as u64,
            ..Default::default()
        },
    )
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("BPF_LINK_CREATE kprobe.multi -> {function}: {e}"),
        )
    })?;
    Ok((prog, link))
}

/// Whether this kernel creates kprobe.multi links (a trial link on
/// [`CHECK_FUNCTION`], released at once), or why not.
pub fn supported() -> Result<(), String> {
    match try_attach(CHECK_FUNCTION) {
        Ok(_fds) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => Err(format!(
            "the kernel has no fprobe, which kprobe.multi needs: CONFIG_FPROBE off or ftrace unavailable ({e})"
        )),
        Err(e) => Err(e.to_string()),
    }
}

pub struct KprobeMultiSource;

impl Source for KprobeMultiSource {
    fn name(&self) -> &'static str {
        "kprobe.multi"
    }

    fn try_on_running_kernel(&self, _kernel: &KernelContext) -> Result<String, String> {
        supported().map(|()| format!("attached kprobe.multi/{CHECK_FUNCTION}"))
    }
}
