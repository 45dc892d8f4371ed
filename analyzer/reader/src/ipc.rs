//! The open segment of an interrupted recording of schema 3 or older
//! (`<table>-NNNNNN.arrows`, an Arrow IPC stream), read up to its first
//! damaged message. arrow-ipc allocates (and zeroes) the body length a
//! message declares before reading it, so a 16-byte file declaring an
//! exabyte aborted the process: every message's lengths are checked
//! against the bytes that are there first, and only that checked prefix is
//! handed to arrow-ipc.

use std::io::{Cursor, Read};
use std::path::Path;

use arrow::ipc::reader::StreamReader;
use arrow::record_batch::RecordBatch;

use crate::safe_read::open_regular;

/// Largest open segment read: the recorder rotated segments long before.
pub const MAX_OPEN_SEGMENT_BYTES: u64 = 2 << 30;

const CONTINUATION: [u8; 4] = [0xff; 4];

/// Reads the stream at `path`: its batches up to the first damage, and
/// what the damage was.
pub fn read_stream(path: &Path) -> std::io::Result<(Vec<RecordBatch>, Option<String>)> {
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    if len > MAX_OPEN_SEGMENT_BYTES {
        return Err(std::io::Error::other(format!(
            "{len} bytes, more than an open segment can be ({MAX_OPEN_SEGMENT_BYTES})"
        )));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_OPEN_SEGMENT_BYTES).read_to_end(&mut bytes)?;
    Ok(read_stream_bytes(&bytes))
}

/// [`read_stream`] over bytes in memory. A panic in arrow-ipc (a schema
/// message with no fields panics it) is damage at that point.
pub fn read_stream_bytes(bytes: &[u8]) -> (Vec<RecordBatch>, Option<String>) {
    let (checked, damage) = checked_prefix(bytes);
    let mut batches = Vec::new();
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_checked(&bytes[..checked], &mut batches)
    }));
    let read_damage = read.unwrap_or_else(|panic| {
        Some(format!(
            "arrow-ipc panicked: {}",
            crate::parquet_check::panic_text(&*panic)
        ))
    });
    (batches, read_damage.or(damage))
}

/// The batches of a checked stream, up to the first error (returned).
fn read_checked(bytes: &[u8], batches: &mut Vec<RecordBatch>) -> Option<String> {
    let mut damage = None;
    match StreamReader::try_new(Cursor::new(bytes), None) {
        Ok(reader) => {
            for batch in reader {
                match batch {
                    Ok(b) => batches.push(b),
                    Err(e) => {
                        damage = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        Err(e) => damage = Some(e.to_string()),
    }
    damage
}

/// The length of the leading run of whole, plausible messages, and what
/// stopped it (None: the stream ended properly or at a message boundary).
fn checked_prefix(bytes: &[u8]) -> (usize, Option<String>) {
    let mut at = 0usize;
    while at < bytes.len() {
        match message_len(&bytes[at..]) {
            Ok(Some(n)) => at += n,
            Ok(None) => return (bytes.len(), None), // end-of-stream marker
            Err(why) => return (at, Some(format!("message at byte {at}: {why}"))),
        }
    }
    (at, None)
}

/// The whole length of the message at the start of `b` (prefix, metadata,
/// body), `None` for the end-of-stream marker.
fn message_len(b: &[u8]) -> Result<Option<usize>, String> {
    let word = |at: usize| -> Result<[u8; 4], String> {
        b.get(at..at + 4)
            .map(|w| [w[0], w[1], w[2], w[3]])
            .ok_or_else(|| "cut short".to_string())
    };
    // `0xFFFFFFFF <len>`, or the pre-1.0 form: just `<len>`.
    let (prefix, meta_len) = match word(0)? {
        CONTINUATION => (8, i32::from_le_bytes(word(4)?)),
        w => (4, i32::from_le_bytes(w)),
    };
    if meta_len == 0 {
        return Ok(None);
    }
    let meta_len = usize::try_from(meta_len).map_err(|_| "a negative metadata length")?;
    let meta = b
        .get(prefix..prefix + meta_len)
        .ok_or("its metadata is cut short")?;
    let message =
        arrow::ipc::root_as_message(meta).map_err(|e| format!("unreadable metadata: {e}"))?;
    let body = usize::try_from(message.bodyLength()).map_err(|_| "a negative body length")?;
    let total = (prefix + meta_len)
        .checked_add(body)
        .filter(|t| *t <= b.len())
        .ok_or_else(|| format!("it declares a {body}-byte body, more than the file holds"))?;
    let batch = message
        .header_as_record_batch()
        .or_else(|| message.header_as_dictionary_batch().and_then(|d| d.data()));
    if let Some(batch) = batch {
        check_buffers(&batch, &b[prefix + meta_len..total])?;
    }
    Ok(Some(total))
}

/// The most a compressed buffer may declare it decompresses to: the
/// recorder's batches were a few MiB.
const MAX_BUFFER_BYTES: i64 = 256 << 20;

/// A batch's buffers lie inside its body, and a compressed one declares a
/// plausible size: arrow-ipc allocates the size a compressed buffer's
/// 8-byte prefix declares before decompressing (found by the fuzzer: an
/// LZ4 or zstd buffer declaring 4e18 bytes aborted the process).
fn check_buffers(batch: &arrow::ipc::RecordBatch, body: &[u8]) -> Result<(), String> {
    let compressed = batch.compression().is_some();
    for buf in batch.buffers().iter().flatten() {
        let (offset, len) = (buf.offset(), buf.length());
        let inside = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(o, l)| Some((o, o.checked_add(l)?)))
            .filter(|(_, end)| *end <= body.len());
        let Some((start, end)) = inside else {
            return Err(format!("a buffer at {offset}+{len} outside its body"));
        };
        if compressed && end - start >= 8 {
            let mut size = [0u8; 8];
            size.copy_from_slice(&body[start..start + 8]);
            let size = i64::from_le_bytes(size);
            if !(-1..=MAX_BUFFER_BYTES).contains(&size) {
                return Err(format!("a compressed buffer declares {size} bytes"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_file_declaring_a_huge_body_is_damage_not_an_abort() {
        // The 16 bytes of the review: a continuation, a length, garbage.
        let b = [0xff, 0xff, 0xff, 0xff, 8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        let (batches, damage) = read_stream_bytes(&b);
        assert!(batches.is_empty());
        assert!(damage.is_some());
        for b in [
            &[][..],
            &[0xff; 3],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        ] {
            let (batches, damage) = read_stream_bytes(b);
            assert!(batches.is_empty(), "{b:?}");
            assert!(damage.is_some() || b.is_empty(), "{b:?}");
        }
    }
}
