//! kprobe.multi (`BPF_TRACE_KPROBE_MULTI`): one link attaching one program to
//! many functions at once, the fastest way to cover 1500+ functions. aya 0.14
//! has no kprobe.multi, so this probe talks to the `bpf()` syscall directly:
//! it loads a two-instruction program and asks for a kprobe.multi link on one
//! function. Only `check` uses it until the function backend does.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use super::{function::CHECK_FUNCTION, KernelContext, Source};

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

pub struct KprobeMultiSource;

impl Source for KprobeMultiSource {
    fn name(&self) -> &'static str {
        "kprobe.multi"
    }

    fn try_on_running_kernel(&self, _kernel: &KernelContext) -> Result<String, String> {
        match try_attach(CHECK_FUNCTION) {
            Ok(_fds) => Ok(format!("attached kprobe.multi/{CHECK_FUNCTION}")),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => Err(format!(
                "the kernel has no fprobe, which kprobe.multi needs: CONFIG_FPROBE off or ftrace unavailable ({e})"
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}
