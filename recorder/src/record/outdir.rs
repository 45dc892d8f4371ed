//! The output directory: created by the recorder, or taken only when it is
//! safe. The recorder runs as root and writes where it is told; a directory
//! another user owns or can write to, or a symbolic link, would let that
//! user swap files under root's writes. Such a directory is refused. Files
//! inside are then created with `O_EXCL | O_NOFOLLOW` (`create_private`).

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::RecordError;

/// The directory a recording is written into.
#[derive(Debug)]
pub struct OutputDir {
    pub path: PathBuf,
    /// Made by this recorder (else it existed, empty and safe).
    pub created: bool,
}

fn bad(path: &Path, why: impl Into<String>) -> RecordError {
    RecordError::Output {
        path: path.to_owned(),
        why: why.into(),
    }
}

/// Why an existing directory is not safe to record into, if it is not.
pub fn unsafe_reason(meta: &std::fs::Metadata) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if meta.file_type().is_symlink() {
        return Some(
            "is a symbolic link (recordings are written only into a real directory)".into(),
        );
    }
    if !meta.is_dir() {
        return Some("exists and is not a directory".into());
    }
    if meta.uid() != euid {
        return Some(format!(
            "is owned by uid {}, not by the recorder's uid {euid}: its owner could replace the files written there",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "is writable by group or others (mode {:o}): they could replace the files written there",
            meta.mode() & 0o7777
        ));
    }
    None
}

/// Creates `path` (mode 0700, parents as needed), or takes it when it
/// exists, is empty, and is a directory of the recorder's own user that
/// nobody else can write to.
pub fn prepare(path: &Path) -> Result<OutputDir, RecordError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            if let Some(why) = unsafe_reason(&meta) {
                return Err(bad(path, why));
            }
            let mut entries = std::fs::read_dir(path).map_err(|e| bad(path, e.to_string()))?;
            if entries.next().is_some() {
                return Err(bad(
                    path,
                    "exists and is not empty (recordings are never overwritten)",
                ));
            }
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| bad(path, e.to_string()))?;
            Ok(OutputDir {
                path: path.to_owned(),
                created: false,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(|e| bad(parent, e.to_string()))?;
            }
            // Not recursive: if anything appeared at `path` since the check
            // (a planted link), this fails instead of using it.
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(path)
                .map_err(|e| bad(path, e.to_string()))?;
            let meta = std::fs::symlink_metadata(path).map_err(|e| bad(path, e.to_string()))?;
            if let Some(why) = unsafe_reason(&meta) {
                return Err(bad(path, why));
            }
            Ok(OutputDir {
                path: path.to_owned(),
                created: true,
            })
        }
        Err(e) => Err(bad(path, e.to_string())),
    }
}

/// Bytes held by [`Reserve`]: room for the final manifest, side tables,
/// the nftrace table's close and the stop snapshots.
pub const RESERVE_BYTES: usize = 1 << 20;

/// Disk space held while recording (`RESERVE_FILE`), released at the stop.
#[derive(Debug)]
pub struct Reserve(Option<PathBuf>);

impl Reserve {
    /// Writes the reserve (real blocks: a sparse file would hold nothing).
    pub fn take(dir: &Path) -> Result<Self, RecordError> {
        let path = dir.join(nft_schema::manifest::RESERVE_FILE);
        let mut file = crate::writer::segments::create_private(&path)?;
        std::io::Write::write_all(&mut file, &vec![0u8; RESERVE_BYTES])
            .and_then(|()| file.sync_data())
            .map_err(|e| bad(&path, e.to_string()))?;
        Ok(Self(Some(path)))
    }

    /// Gives the space back (at the stop, before its files are written).
    pub fn release(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        self.release();
    }
}

impl OutputDir {
    /// Undoes a start that failed before the recording existed: removes
    /// what the recorder wrote (nothing else was there: the directory was
    /// empty), and the directory if the recorder made it.
    pub fn discard(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        if self.created {
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("nt-outdir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn refuses_links_shared_and_full_directories() {
        let made = scratch("new");
        let out = prepare(&made.join("rec")).unwrap();
        assert!(out.created);
        let mode = std::fs::metadata(&out.path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);

        let shared = scratch("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare(&shared).unwrap_err().to_string();
        assert!(err.contains("writable by group or others"), "{err}");

        let link = scratch("link");
        std::os::unix::fs::symlink(&out.path, &link).unwrap();
        let err = prepare(&link).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");

        std::fs::write(out.path.join("x"), b"x").unwrap();
        let err = prepare(&out.path).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        for p in [&made, &shared] {
            std::fs::remove_dir_all(p).unwrap();
        }
        std::fs::remove_file(&link).unwrap();
    }
}
