//! Reading files of a recording that came from another box: only regular
//! files (a symlink could point out of the recording, a FIFO would block
//! the analyzer forever), and small files only where they are read whole.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `recording.json` is a few KiB to a few MiB (attach plans of thousands
/// of functions); anything larger is not a manifest.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// A ruleset snapshot (`nft -j list ruleset`) of a large firewall.
pub const MAX_SNAPSHOT_BYTES: u64 = 512 << 20;

/// Whether `path` is a regular file, not followed through a symlink.
pub fn is_regular(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

/// Reads a regular file of at most `limit` bytes whole; a symlink, a FIFO,
/// a directory or a larger file is an error that says which.
pub fn read_small(path: &Path, limit: u64) -> std::io::Result<String> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a symlink, FIFO or directory): not read",
        ));
    }
    if meta.len() > limit {
        return Err(std::io::Error::other(format!(
            "{} bytes, more than the {limit} such a file can be: not read",
            meta.len()
        )));
    }
    // O_NOFOLLOW and O_NONBLOCK: the file cannot turn into a symlink or a
    // FIFO between the check and the open without the open failing or
    // returning at once.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(std::io::Error::other("grew past its size limit while read"));
    }
    Ok(text)
}

/// Opens a regular file for reading (segments, tables), refusing symlinks
/// and FIFOs the same way.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    if !is_regular(path) {
        return Err(std::io::Error::other(
            "not a regular file (a symlink, FIFO or directory): not read",
        ));
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}
