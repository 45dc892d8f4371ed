//! A Parquet file from another box, checked before any query reads it: the
//! footer parses, and every page header of every column chunk is read and
//! found plausible. parquet-rs reserves a page's declared uncompressed size
//! before it decompresses it (up to 2 GiB per page, several at once), so a
//! single flipped size would spend the memory `--memory-limit` promises;
//! here such a page makes the file damaged instead, before it is read.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::safe_read::open_regular;
use crate::thrift_compact::{Struct, ThriftError};

/// The largest page read. The recorder writes pages of about 1 MiB (the
/// Parquet writer's default page size); a page declaring more than this is
/// damage, not data. At most one page per column and reader is held, so
/// this bounds the page memory of a query.
pub const MAX_PAGE_BYTES: i32 = 16 << 20;

/// The most rows a file may declare: the recorder rotates segments at 4 Mi
/// rows; a footer claiming billions would keep a reader busy for hours.
pub const MAX_FILE_ROWS: i64 = 1 << 28;

/// A page header larger than this is damage (the recorder writes no page
/// statistics: its headers are a few dozen bytes).
const MAX_HEADER_BYTES: usize = 64 << 10;

/// Checks `path` and returns its row count; the error says what is wrong.
/// A panic in parquet-rs (it still has some on malformed footers) is
/// damage too.
pub fn check(path: &Path) -> Result<u64, String> {
    std::panic::catch_unwind(|| check_file(path))
        .unwrap_or_else(|panic| Err(format!("parquet-rs panicked: {}", panic_text(&*panic))))
}

/// A panic's message.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

fn check_file(path: &Path) -> Result<u64, String> {
    let file = open_regular(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    let meta = reader.metadata();
    let rows = meta.file_metadata().num_rows();
    if !(0..=MAX_FILE_ROWS).contains(&rows) {
        return Err(format!("the footer declares {rows} rows"));
    }
    let pages = open_regular(path).map_err(|e| e.to_string())?;
    let mut group_rows = 0i64;
    for (g, group) in meta.row_groups().iter().enumerate() {
        group_rows += group.num_rows();
        for column in group.columns() {
            check_chunk(&pages, len, column).map_err(|why| {
                format!(
                    "row group {g}, column {}: {why}",
                    column.column_descr().name()
                )
            })?;
        }
    }
    if group_rows != rows {
        return Err(format!(
            "its row groups hold {group_rows} rows, its footer says {rows}"
        ));
    }
    Ok(rows as u64)
}

/// Walks one column chunk's pages: each header parses, sizes are not
/// negative, a page fits in what is left of the chunk and under
/// [`MAX_PAGE_BYTES`], the pages tile the chunk exactly, and the data
/// pages' values add up to the chunk's.
fn check_chunk(pages: &File, file_len: u64, column: &ColumnChunkMetaData) -> Result<(), String> {
    let (start, chunk_len) = column.byte_range();
    let end = start
        .checked_add(chunk_len)
        .filter(|end| *end <= file_len)
        .ok_or_else(|| format!("its bytes {start}+{chunk_len} are past the file's end"))?;
    let mut at = start;
    let mut values = 0i64;
    let mut buf = vec![0u8; MAX_HEADER_BYTES];
    while at < end {
        let window = (end - at).min(MAX_HEADER_BYTES as u64) as usize;
        pages
            .read_exact_at(&mut buf[..window], at)
            .map_err(|e| e.to_string())?;
        let (header, header_len) =
            read_header(&buf[..window]).map_err(|e| format!("page at {at}: {e}"))?;
        if header.compressed < 0 || header.uncompressed < 0 {
            return Err(format!("page at {at}: a negative size"));
        }
        if header.uncompressed > MAX_PAGE_BYTES || header.compressed > MAX_PAGE_BYTES {
            return Err(format!(
                "page at {at} declares {} bytes ({} compressed), more than the {MAX_PAGE_BYTES} \
                 a page can be",
                header.uncompressed, header.compressed
            ));
        }
        at += header_len as u64 + header.compressed as u64;
        if at > end {
            return Err(format!("a page runs {} bytes past its chunk", at - end));
        }
        values += i64::from(header.values.max(0));
    }
    if values != column.num_values() {
        return Err(format!(
            "its pages hold {values} values, its metadata says {}",
            column.num_values()
        ));
    }
    Ok(())
}

/// What [`check_chunk`] needs of a `PageHeader` (parquet.thrift).
#[derive(Debug, Default)]
struct PageHeader {
    uncompressed: i32,
    compressed: i32,
    /// `num_values` of a data page (v1 or v2); 0 for other pages.
    values: i32,
}

/// `PageHeader`: 2 uncompressed_page_size, 3 compressed_page_size,
/// 5 data_page_header / 8 data_page_header_v2 (their field 1:
/// num_values); the other fields are skipped. Returns the header and its
/// length in bytes.
fn read_header(bytes: &[u8]) -> Result<(PageHeader, usize), ThriftError> {
    let mut h = PageHeader::default();
    let mut s = Struct::new(bytes);
    while let Some(field) = s.next_field()? {
        match field {
            2 => h.uncompressed = s.i32()?,
            3 => h.compressed = s.i32()?,
            5 | 8 => {
                let mut inner = s.nested()?;
                while let Some(f) = inner.next_field()? {
                    match f {
                        1 => h.values = inner.i32()?,
                        _ => inner.skip()?,
                    }
                }
                s.resume(inner);
            }
            _ => s.skip()?,
        }
    }
    Ok((h, s.consumed()))
}
