//! `record --push URL`: each segment shipped as soon as it closes, from a
//! thread of its own (never the ring-buffer thread, never the writer's),
//! then the whole recording once more when it ends: whatever is left, the
//! manifest last. Nothing local is deleted. A recorder killed before the
//! end leaves its closed segments uploaded and no manifest in the store;
//! `nft-recorder push` afterwards completes it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nft_schema::fleet;
use nft_schema::manifest::{Manifest, MANIFEST_FILE};
use nft_schema::store::{self, Destination};

use super::{fleet_key, push, recording_id, upload, PushError, PushOptions, PushReport};

/// How often the follower looks for newly closed segments.
const POLL: Duration = Duration::from_millis(500);

/// The follower thread of one recording.
pub struct Follower {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<usize, PushError>>,
    rec: PathBuf,
    url: String,
    options: PushOptions,
}

/// Checks `url` with one request (a listing of its prefix), so a missing
/// bucket, bad credentials or an unreachable endpoint are found before
/// anything is attached.
pub async fn check(url: &str, options: &PushOptions) -> Result<(), PushError> {
    let dest = store::open(url, options.request_timeout, options.retry_timeout, true)?;
    dest.store
        .list_with_delimiter(Some(&dest.prefix))
        .await
        .map_err(|e| PushError::store(&dest.root, &dest.prefix, e))?;
    Ok(())
}

/// Starts following the recording `rec` (it may not exist yet).
pub fn follow(rec: PathBuf, url: String, options: PushOptions) -> Follower {
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (stop, rec, url, options) = (stop.clone(), rec.clone(), url.clone(), options.clone());
        std::thread::Builder::new()
            .name("nft-push".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| PushError::io(&rec, e))?;
                runtime.block_on(closed_segments(&rec, &url, &options, &stop))
            })
            .expect("spawning the push thread")
    };
    Follower {
        stop,
        thread,
        rec,
        url,
        options,
    }
}

impl Follower {
    /// Once the recording has ended: stops following, then pushes the whole
    /// recording (what is already there is skipped). The report, and how
    /// many segments went while recording.
    pub fn finish(self) -> Result<(PushReport, usize), PushError> {
        self.stop.store(true, Ordering::Relaxed);
        let during = self
            .thread
            .join()
            .unwrap_or_else(|_| Err(PushError::io(&self.rec, std::io::Error::other("panicked"))))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PushError::io(&self.rec, e))?;
        let report = runtime.block_on(push(&self.rec, &self.url, &self.options))?;
        Ok((report, during))
    }
}

/// Uploads each closed segment the manifest lists, as they appear, until
/// `stop`; how many it uploaded.
async fn closed_segments(
    rec: &std::path::Path,
    url: &str,
    options: &PushOptions,
    stop: &AtomicBool,
) -> Result<usize, PushError> {
    let dest = store::open(url, options.request_timeout, options.retry_timeout, true)?;
    let mut done = BTreeSet::new();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(POLL).await;
        // Written by rename: either the old or the new one, never half.
        let Ok(text) = std::fs::read_to_string(rec.join(MANIFEST_FILE)) else {
            continue;
        };
        let Ok(manifest) = Manifest::from_json(&text) else {
            continue;
        };
        let closed = manifest.segments.iter().chain(&manifest.nftrace_segments);
        for name in closed
            .filter(|n| !done.contains(*n))
            .cloned()
            .collect::<Vec<_>>()
        {
            upload_one(&dest, rec, &manifest, &name).await?;
            done.insert(name);
        }
    }
    Ok(done.len())
}

async fn upload_one(
    dest: &Destination,
    rec: &std::path::Path,
    manifest: &Manifest,
    name: &str,
) -> Result<(), PushError> {
    let prefix = fleet::recording_prefix(manifest, &recording_id(rec)?);
    let key = fleet_key(&dest.prefix, &format!("{prefix}/{name}"));
    let path = rec.join(name);
    let size = std::fs::symlink_metadata(&path)
        .map_err(|e| PushError::io(&path, e))?
        .len();
    upload::put(dest, &path, &key, size).await?;
    Ok(())
}
