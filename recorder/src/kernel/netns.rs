//! Network namespace identities: the inode number the eBPF programs compare
//! against `net->ns.inum`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Inode of a network namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`).
pub fn netns_inode(path: &Path) -> std::io::Result<u32> {
    let ino = std::fs::metadata(path)?.ino();
    u32::try_from(ino).map_err(|_| std::io::Error::other(format!("netns inode {ino} exceeds u32")))
}

/// Resolves `--netns NAME|PATH`: a bare name means `/run/netns/NAME` (as
/// `ip netns` creates them).
pub fn netns_path(name_or_path: &str) -> std::path::PathBuf {
    if name_or_path.contains('/') {
        name_or_path.into()
    } else {
        Path::new("/run/netns").join(name_or_path)
    }
}

/// Inode of the calling thread's own network namespace.
pub fn own_netns_inode() -> std::io::Result<u32> {
    netns_inode(Path::new("/proc/thread-self/ns/net"))
}

/// Moves the calling thread (only) into the network namespace at `path`;
/// sockets it opens and processes it spawns then live there.
pub fn enter_netns(path: &Path) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    // SAFETY: setns on a namespace fd we hold; affects this thread only.
    let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a new thread inside the namespace at `path` (`None`: this
/// process's), so the caller's thread stays where it is.
pub fn in_netns<T: Send + 'static>(
    path: Option<std::path::PathBuf>,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    std::thread::spawn(move || -> std::io::Result<T> {
        if let Some(path) = &path {
            enter_netns(path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        }
        Ok(f())
    })
    .join()
    .map_err(|_| std::io::Error::other("the thread in the namespace panicked"))?
}
