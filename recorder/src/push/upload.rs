//! One file of a recording into the store: skipped when the object there
//! already has the same size and content, else one PUT (small files) or a
//! multipart upload in fixed parts.
//!
//! "Same content" is S3's ETag computed here from the local file: the MD5
//! of the bytes for a single PUT, or `MD5(MD5(part 1) ‖ … ‖ MD5(part n))-n`
//! for a multipart upload, which this module always cuts into [`PART`]
//! bytes. A local store's ETag is not about content, so there the object is
//! read back and hashed.

use std::io::Read;

use md5::{Digest, Md5};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};

use super::PushError;
use nft_schema::store::Destination;

/// The multipart part size, and the size above which a file goes in parts
/// (S3 takes parts of 5 MiB and more).
pub const PART: usize = 8 << 20;

/// Uploads in flight per multipart upload.
const PARTS_IN_FLIGHT: usize = 2;

/// How long a failed multipart upload's abort may take.
const ABORT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What became of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Uploaded,
    /// Already there with the same size and content.
    Skipped,
}

/// The ETag S3 gives an object uploaded the way [`put`] uploads `file`.
pub fn expected_etag(file: &std::path::Path) -> Result<String, PushError> {
    let mut f = super::open_file(file)?;
    let mut parts = Vec::new();
    let mut buf = vec![0u8; PART];
    loop {
        let n = read_full(&mut f, &mut buf).map_err(|e| PushError::io(file, e))?;
        if n == 0 && !parts.is_empty() {
            break;
        }
        parts.push(Md5::digest(&buf[..n]));
        if n < PART {
            break;
        }
    }
    Ok(match parts.as_slice() {
        [one] => hex(one),
        many => {
            let mut all = Md5::new();
            for p in many {
                all.update(p);
            }
            format!("{}-{}", hex(&all.finalize()), many.len())
        }
    })
}

/// Uploads `file` to `key` unless the same bytes are there already.
pub async fn put(
    dest: &Destination,
    file: &std::path::Path,
    key: &Path,
    size: u64,
) -> Result<Outcome, PushError> {
    let etag = expected_etag(file)?;
    if same_object(dest, key, size, &etag).await? {
        return Ok(Outcome::Skipped);
    }
    let store = &dest.store;
    let failed = |e: object_store::Error| PushError::store(&dest.root, key, e);
    if size as usize <= PART {
        let bytes = std::fs::read(file).map_err(|e| PushError::io(file, e))?;
        store
            .put(key, PutPayload::from(bytes))
            .await
            .map_err(failed)?;
        return Ok(Outcome::Uploaded);
    }
    let upload = store.put_multipart(key).await.map_err(failed)?;
    let mut write = WriteMultipart::new_with_chunk_size(upload, PART);
    let mut f = super::open_file(file)?;
    let mut buf = vec![0u8; PART];
    let result = async {
        loop {
            let n = read_full(&mut f, &mut buf).map_err(|e| PushError::io(file, e))?;
            if n == 0 {
                break;
            }
            write
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(failed)?;
            write.write(&buf[..n]);
        }
        Ok::<(), PushError>(())
    }
    .await;
    match result {
        Ok(()) => {
            write.finish().await.map_err(failed)?;
            Ok(Outcome::Uploaded)
        }
        Err(e) => {
            // Do not leave the parts billed on the server, but do not wait
            // long on a server that has stopped answering either.
            let _ = tokio::time::timeout(ABORT_WAIT, write.abort()).await;
            Err(e)
        }
    }
}

/// Whether `key` holds `size` bytes whose ETag (or, on a local store,
/// content hash) is `etag`.
async fn same_object(
    dest: &Destination,
    key: &Path,
    size: u64,
    etag: &str,
) -> Result<bool, PushError> {
    let meta = match dest.store.head(key).await {
        Ok(meta) => meta,
        Err(object_store::Error::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(PushError::store(&dest.root, key, e)),
    };
    if meta.size != size {
        return Ok(false);
    }
    match &dest.local_root {
        None => Ok(meta.e_tag.unwrap_or_default().trim_matches('"') == etag),
        Some(root) => Ok(expected_etag(&root.join(key.as_ref()))? == etag),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads until `buf` is full or the file ends; the byte count.
fn read_full(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
