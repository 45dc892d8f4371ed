//! `nft-recorder push REC URL`: a finished (or interrupted) recording
//! shipped to object storage in the fleet layout
//! (`URL/host=<host>/date=<YYYY-MM-DD>/<recording-id>/`, `nft_schema::fleet`),
//! so the analyzer can query many boxes' recordings as one dataset.
//!
//! Segments and tables go first, the manifest last: a reader that finds a
//! manifest finds every file it lists. A file already there with the same
//! size and content is skipped, so a push that was cut off resumes where it
//! stopped and a second push uploads nothing. Each request is retried with
//! backoff; nothing local is ever changed or deleted.

pub mod follow;
pub mod upload;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nft_schema::files::{self, File};
use nft_schema::fleet;
use nft_schema::manifest::{Manifest, MANIFEST_FILE};
use nft_schema::store;

use upload::Outcome;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Url(#[from] store::UrlError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a recording: {why}")]
    NotARecording { path: PathBuf, why: String },
    /// `error`'s text already holds its causes: it is not a `source`, so
    /// they are not printed twice.
    #[error("{root}/{key}: {error}")]
    Store {
        root: String,
        key: String,
        error: Box<object_store::Error>,
    },
}

impl PushError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn store(root: &str, key: &object_store::path::Path, error: object_store::Error) -> Self {
        Self::Store {
            root: root.to_string(),
            key: key.to_string(),
            error: Box::new(error),
        }
    }

    /// A mistake in the arguments (not the network, not the store).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::Url(_) | Self::NotARecording { .. })
    }
}

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// How long one request may go unanswered.
    pub request_timeout: Duration,
    /// How long each request is retried before the push fails.
    pub retry_timeout: Duration,
}

/// What a push did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PushReport {
    /// Where the recording is now: `URL/host=…/date=…/<id>`.
    pub url: String,
    pub uploaded_files: usize,
    pub uploaded_bytes: u64,
    /// Files already there with the same size and content.
    pub skipped_files: usize,
    pub skipped_bytes: u64,
    /// Files of the directory that are not part of a recording (`.tmp`
    /// files, anything the recording grammar does not name).
    pub left_out: Vec<String>,
    pub seconds: f64,
}

/// Pushes the recording `rec` under `url`.
pub async fn push(rec: &Path, url: &str, options: &PushOptions) -> Result<PushReport, PushError> {
    let started = Instant::now();
    let manifest = read_manifest(rec)?;
    let id = recording_id(rec)?;
    let (files, left_out) = recording_files(rec)?;
    let dest = store::open(url, options.request_timeout, options.retry_timeout, true)?;
    let prefix = fleet::recording_prefix(&manifest, &id);
    let mut report = PushReport {
        url: format!("{}/{prefix}", dest.url),
        uploaded_files: 0,
        uploaded_bytes: 0,
        skipped_files: 0,
        skipped_bytes: 0,
        left_out,
        seconds: 0.0,
    };
    for (name, size) in files {
        let key = fleet_key(&dest.prefix, &format!("{prefix}/{name}"));
        match upload::put(&dest, &rec.join(&name), &key, size).await? {
            Outcome::Uploaded => {
                report.uploaded_files += 1;
                report.uploaded_bytes += size;
            }
            Outcome::Skipped => {
                report.skipped_files += 1;
                report.skipped_bytes += size;
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// `base/rest` as an object key, `rest` being `/`-separated safe segments
/// (`Path::join` takes one segment and would escape a `/`).
fn fleet_key(base: &object_store::path::Path, rest: &str) -> object_store::path::Path {
    let mut key = base.clone();
    for part in rest.split('/') {
        key = key.join(part);
    }
    key
}

/// Opens a file of the recording for reading: a regular file, never through
/// a symbolic link.
fn open_file(path: &Path) -> Result<std::fs::File, PushError> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| PushError::io(path, e))
}

/// The manifest must be there and parse: without it this is not a
/// recording, and nothing is uploaded.
fn read_manifest(rec: &Path) -> Result<Manifest, PushError> {
    let path = rec.join(MANIFEST_FILE);
    let not = |why: String| PushError::NotARecording {
        path: rec.to_path_buf(),
        why,
    };
    let mut text = String::new();
    let f = open_file(&path).map_err(|e| not(e.to_string()))?;
    std::io::Read::read_to_string(&mut std::io::Read::take(f, 64 << 20), &mut text)
        .map_err(|e| not(format!("{MANIFEST_FILE}: {e}")))?;
    Manifest::from_json(&text).map_err(|e| not(format!("{MANIFEST_FILE}: {e}")))
}

/// The recording's id: its directory's name.
fn recording_id(rec: &Path) -> Result<String, PushError> {
    let full = rec.canonicalize().map_err(|e| PushError::io(rec, e))?;
    full.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| PushError::NotARecording {
            path: rec.to_path_buf(),
            why: "its directory has no name".into(),
        })
}

/// The recording's regular files with their sizes, in upload order (the
/// manifest last), and the names left out.
type Listing = (Vec<(String, u64)>, Vec<String>);

fn recording_files(rec: &Path) -> Result<Listing, PushError> {
    let mut files = Vec::new();
    let mut left_out = Vec::new();
    for entry in std::fs::read_dir(rec).map_err(|e| PushError::io(rec, e))? {
        let entry = entry.map_err(|e| PushError::io(rec, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry
            .metadata()
            .map_err(|e| PushError::io(&entry.path(), e))?;
        let known =
            name == MANIFEST_FILE || !matches!(files::parse(&name), File::Temporary | File::Other);
        if meta.file_type().is_file() && known {
            files.push((name, meta.len()));
        } else {
            left_out.push(name);
        }
    }
    files.sort_by_key(|(name, _)| (name == MANIFEST_FILE, name.clone()));
    left_out.sort();
    Ok((files, left_out))
}
