//! The NETLINK_NETFILTER socket joined to NFNLGRP_NFTRACE.
//!
//! Hand-written over libc rather than a netlink crate: it only needs open,
//! join one group, one request, and receiving datagrams; the attributes are
//! parsed in `message.rs`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

/// A NETLINK_NETFILTER socket joined to NFNLGRP_NFTRACE, in the calling
/// thread's network namespace.
pub struct NftraceSocket {
    fd: OwnedFd,
}

impl NftraceSocket {
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain syscalls; the fd is owned right after creation.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let sock = Self { fd };
        sock.bind()?;
        sock.join_group(libc::NFNLGRP_NFTRACE as u32)?;
        sock.set_recv_timeout(Duration::from_millis(200))?;
        sock.set_recv_buffer(8 << 20);
        Ok(sock)
    }

    fn bind(&self) -> io::Result<()> {
        // SAFETY: sockaddr_nl is plain data; zeroed means "kernel picks pid".
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn join_group(&self, group: u32) -> io::Result<()> {
        // SAFETY: setsockopt with a u32 option value of the right size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_NETLINK,
                libc::NETLINK_ADD_MEMBERSHIP,
                (&group as *const u32).cast(),
                4,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// A large receive buffer: trace messages come in bursts. Best effort
    /// (SO_RCVBUFFORCE needs CAP_NET_ADMIN); overruns are counted anyway.
    fn set_recv_buffer(&self, bytes: i32) {
        // SAFETY: setsockopt with an int of the right size.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&bytes as *const i32).cast(),
                4,
            )
        };
    }

    /// Receives one datagram (possibly several netlink messages) into
    /// `buf`. `Ok(0)` on timeout. ENOBUFS means the kernel dropped
    /// messages: the caller counts it as a loss.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: receiving into a buffer we own.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(n as usize)
    }

    fn set_recv_timeout(&self, timeout: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: setsockopt with a timeval of the right size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Asks nf_tables for its ruleset generation (NFT_MSG_GETGEN): proves
    /// nf_tables answers in this namespace.
    pub fn ruleset_generation(&self) -> io::Result<u32> {
        let msg_type = ((libc::NFNL_SUBSYS_NFTABLES as u16) << 8) | libc::NFT_MSG_GETGEN as u16;
        let len = (NLMSG_HDRLEN + NFGENMSG_LEN) as u32;
        let mut req = Vec::with_capacity(len as usize);
        req.extend_from_slice(&len.to_ne_bytes());
        req.extend_from_slice(&msg_type.to_ne_bytes());
        req.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
        req.extend_from_slice(&1u32.to_ne_bytes()); // seq
        req.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
        req.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]); // nfgenmsg
                                                                  // SAFETY: sending a buffer we own.
        let rc = unsafe { libc::send(self.fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 8192];
        loop {
            // SAFETY: receiving into a buffer we own.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let msg = &buf[..n as usize];
            if msg.len() < NLMSG_HDRLEN {
                return Err(io::Error::other("short netlink reply"));
            }
            let ty = u16::from_ne_bytes([msg[4], msg[5]]);
            if ty == libc::NLMSG_ERROR as u16 {
                let errno = i32::from_ne_bytes([msg[16], msg[17], msg[18], msg[19]]);
                return Err(io::Error::from_raw_os_error(-errno));
            }
            let expected = ((libc::NFNL_SUBSYS_NFTABLES as u16) << 8) | libc::NFT_MSG_NEWGEN as u16;
            if ty != expected {
                // A trace message from the group arrived first: skip it.
                continue;
            }
            // Attributes follow nlmsghdr + nfgenmsg; NFTA_GEN_ID (type 1) is
            // the first, a big-endian u32.
            let attrs = &msg[NLMSG_HDRLEN + NFGENMSG_LEN..];
            if attrs.len() >= 8 && u16::from_ne_bytes([attrs[2], attrs[3]]) == 1 {
                return Ok(u32::from_be_bytes([attrs[4], attrs[5], attrs[6], attrs[7]]));
            }
            return Err(io::Error::other("NFT_MSG_NEWGEN without NFTA_GEN_ID"));
        }
    }
}
