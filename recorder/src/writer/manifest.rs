//! Writes `recording.json` atomically (temporary file, fsync, rename), so
//! a reader or a crash never sees half a manifest.

use std::path::Path;

use nft_schema::manifest::{Manifest, MANIFEST_FILE};

use super::segments::{write_file_atomically, SegmentError};

pub fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), SegmentError> {
    let path = dir.join(MANIFEST_FILE);
    let json = manifest.to_json().map_err(|e| SegmentError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    write_file_atomically(&path, json.as_bytes())
}
