//! One recorder per network namespace. The nftrace source installs one
//! table of a fixed name in each namespace it traces and removes it at the
//! end; a second recorder there would delete the first one's table and
//! record the first one's messages. So each recorder holds an advisory lock
//! (`flock`) per namespace, on `LOCK_DIR/netns-<inode>.lock`, for as long as
//! it records; a second one is refused with the holder's pid and output.
//! The kernel drops the lock when the process dies, even by SIGKILL, so a
//! lock is never stale. Recorders without nftrace (`--no-nftrace`) install
//! no table and take no lock: their eBPF programs do not interfere.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::RecordError;

/// Where the locks live (tmpfs: gone at reboot).
pub const LOCK_DIR: &str = "/run/nft-tracer";

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct NetnsLock {
    _file: File,
}

fn lock_error(path: &Path, why: impl std::fmt::Display) -> RecordError {
    RecordError::Lock(format!("{}: {why}", path.display()))
}

/// The lock directory, created mode 0700 or checked: the recorder's own
/// user's, and nobody else's to write.
fn lock_dir() -> Result<PathBuf, RecordError> {
    let dir = PathBuf::from(LOCK_DIR);
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(lock_error(&dir, e)),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| lock_error(&dir, e))?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != euid || meta.mode() & 0o022 != 0 {
        return Err(lock_error(
            &dir,
            "is not a directory of the recorder's user that only it can write",
        ));
    }
    Ok(dir)
}

/// Takes the lock of the namespace with `inode` (shown as `label`) for a
/// recording into `output`, or says who holds it.
pub fn lock_netns(inode: u32, label: &str, output: &Path) -> Result<NetnsLock, RecordError> {
    let path = lock_dir()?.join(format!("netns-{inode}.lock"));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| lock_error(&path, e))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(lock_error(&path, err));
        }
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Err(RecordError::Busy {
            netns: label.to_string(),
            holder: holder.trim().to_string(),
        });
    }
    let note = format!(
        "nft-recorder pid {} recording into {}",
        std::process::id(),
        output.display()
    );
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(note.as_bytes()));
    written.map_err(|e| lock_error(&path, e))?;
    Ok(NetnsLock { _file: file })
}
