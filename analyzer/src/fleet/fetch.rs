//! One URL's recordings listed and copied into a private directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::TryStreamExt;
use nft_schema::files::{self, File};
use nft_schema::fleet;
use nft_schema::manifest::MANIFEST_FILE;
use nft_schema::store::{self, Destination};
use object_store::path::Path as Key;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use super::FleetError;

/// How long each request is retried before the read fails, and how long
/// one may go unanswered.
const RETRY: Duration = Duration::from_secs(10);
const REQUEST: Duration = Duration::from_secs(60);

/// The local copies of one URL's recordings.
pub struct Fetched {
    pub url: String,
    pub recordings: Vec<PathBuf>,
    pub files: usize,
    pub bytes: u64,
    /// Objects below the URL that are not files of a recording (left out).
    pub ignored: usize,
    dir: tempfile::TempDir,
}

impl Fetched {
    /// The private directory the copies are in.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// Lists `url` and copies each recording below it.
pub async fn fetch(url: &str) -> Result<Fetched, FleetError> {
    let dest = store::open(url, REQUEST, RETRY, false)?;
    let failed = |e: object_store::Error| FleetError::Store {
        url: url.to_string(),
        why: e.to_string(),
    };
    let objects: Vec<ObjectMeta> = dest
        .store
        .list(Some(&dest.prefix))
        .try_collect()
        .await
        .map_err(failed)?;
    let (recordings, ignored) = group(&dest, &objects);
    if recordings.is_empty() {
        return Err(FleetError::Empty {
            url: url.to_string(),
        });
    }
    let local = |source| FleetError::Local {
        url: url.to_string(),
        source,
    };
    // tempfile makes the directory with mode 0700 and a random name.
    let dir = tempfile::Builder::new()
        .prefix("nft-analyzer-fleet-")
        .tempdir()
        .map_err(local)?;
    let mut out = Fetched {
        url: url.trim_end_matches('/').to_string(),
        recordings: Vec::new(),
        files: 0,
        bytes: 0,
        ignored,
        dir,
    };
    for (rel, objects) in recordings {
        let target = out.dir.path().join(&rel);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&target)
            .map_err(local)?;
        for meta in objects {
            out.bytes += copy(&dest, meta, &target).await?;
            out.files += 1;
        }
        out.recordings.push(target);
    }
    Ok(out)
}

/// The recordings below the prefix, each as its local relative path (the
/// key's path below the URL, made of safe segments) and its objects; and
/// how many objects are not files of a recording.
type Grouped<'a> = (BTreeMap<PathBuf, Vec<&'a ObjectMeta>>, usize);

fn group<'a>(dest: &Destination, objects: &'a [ObjectMeta]) -> Grouped<'a> {
    let below = |key: &Key| -> Vec<String> {
        let parts: Vec<String> = key.parts().map(|p| p.as_ref().to_string()).collect();
        let skip = dest.prefix.parts().count();
        parts.into_iter().skip(skip).collect()
    };
    let mut by_dir: BTreeMap<Vec<String>, Vec<&ObjectMeta>> = BTreeMap::new();
    let mut with_manifest = std::collections::BTreeSet::new();
    let mut ignored = 0;
    for meta in objects {
        let mut parts = below(&meta.location);
        let Some(name) = parts.pop() else {
            ignored += 1;
            continue;
        };
        let known =
            name == MANIFEST_FILE || !matches!(files::parse(&name), File::Temporary | File::Other);
        if !known {
            ignored += 1;
            continue;
        }
        if name == MANIFEST_FILE {
            with_manifest.insert(parts.clone());
        }
        by_dir.entry(parts).or_default().push(meta);
    }
    let mut out = BTreeMap::new();
    for (parts, objects) in by_dir {
        if !with_manifest.contains(&parts) {
            ignored += objects.len();
            continue;
        }
        let mut rel: PathBuf = parts.iter().map(|p| fleet::segment(p)).collect();
        if rel.as_os_str().is_empty() {
            let last = dest.prefix.filename().unwrap_or("recording");
            rel = PathBuf::from(fleet::segment(last));
        }
        out.insert(rel, objects);
    }
    (out, ignored)
}

/// Copies one object into `dir` under its own (checked) name; its size.
async fn copy(dest: &Destination, meta: &ObjectMeta, dir: &Path) -> Result<u64, FleetError> {
    let failed = |why: String| FleetError::Store {
        url: format!("{}/{}", dest.root, meta.location),
        why,
    };
    let name = meta.location.filename().unwrap_or_default();
    let bytes = dest
        .store
        .get(&meta.location)
        .await
        .map_err(|e| failed(e.to_string()))?
        .bytes()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if bytes.len() as u64 != meta.size {
        return Err(failed(format!(
            "read {} bytes, the listing said {}",
            bytes.len(),
            meta.size
        )));
    }
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| failed(format!("{}: {e}", path.display())))?;
    file.write_all(&bytes)
        .map_err(|e| failed(format!("{}: {e}", path.display())))?;
    Ok(meta.size)
}
