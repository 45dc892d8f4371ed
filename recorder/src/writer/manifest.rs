//! Writes `recording.json` atomically (temporary file + rename), so a reader
//! or a crash never sees half a manifest.

use std::io::Write;
use std::path::Path;

use nft_schema::manifest::{Manifest, MANIFEST_FILE};

use super::segments::{create_private, SegmentError};

pub fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), SegmentError> {
    let path = dir.join(MANIFEST_FILE);
    let tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
    let json = manifest.to_json().map_err(|e| SegmentError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    let io = |source| SegmentError::Io {
        path: tmp.clone(),
        source,
    };
    let mut file = create_private(&tmp)?;
    file.write_all(json.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(|source| SegmentError::Io { path, source })
}
