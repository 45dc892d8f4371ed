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
use crate::thrift_compact::{Struct, ThriftError, CUT_SHORT};

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
            check_chunk(&pages, len, column, &mut None).map_err(|why| {
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
fn check_chunk(
    pages: &File,
    file_len: u64,
    column: &ColumnChunkMetaData,
    starts: &mut Option<&mut Vec<u64>>,
) -> Result<(), String> {
    let (start, chunk_len) = column.byte_range();
    let end = start
        .checked_add(chunk_len)
        .filter(|end| *end <= file_len)
        .ok_or_else(|| format!("its bytes {start}+{chunk_len} are past the file's end"))?;
    let mut at = start;
    let mut values = 0i64;
    let mut buf = vec![0u8; MAX_HEADER_BYTES];
    while at < end {
        if let Some(starts) = starts.as_mut() {
            starts.push(at);
        }
        let (header, header_len) =
            header_at(pages, at, end, &mut buf).map_err(|e| format!("page at {at}: {e}"))?;
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

/// Where every page of a sound file starts, in file order (the damage
/// tests cut files there).
pub fn page_starts(path: &Path) -> Result<Vec<u64>, String> {
    let file = open_regular(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let reader = SerializedFileReader::new(file.try_clone().map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let mut starts = Vec::new();
    for group in reader.metadata().row_groups() {
        for column in group.columns() {
            check_chunk(&file, len, column, &mut Some(&mut starts))?;
        }
    }
    starts.sort_unstable();
    Ok(starts)
}

/// Reads the page header at `at`: first from a small window (headers are
/// a few dozen bytes; reading 64 KiB per page made a file of tiny pages
/// cost thousands of times its size), then from the largest a header may
/// take if it was cut short.
fn header_at(
    pages: &File,
    at: u64,
    end: u64,
    buf: &mut [u8],
) -> Result<(PageHeader, usize), String> {
    let mut last = String::new();
    for window in [FIRST_HEADER_WINDOW, MAX_HEADER_BYTES] {
        let window = (end - at).min(window as u64) as usize;
        pages
            .read_exact_at(&mut buf[..window], at)
            .map_err(|e| e.to_string())?;
        match read_header(&buf[..window]) {
            Ok(found) => return Ok(found),
            Err(e) if e.what == CUT_SHORT && window < MAX_HEADER_BYTES => last = e.to_string(),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(last)
}

/// The first read of a page header.
const FIRST_HEADER_WINDOW: usize = 512;

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BinaryArray, RecordBatch, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;

    use super::*;

    fn write(path: &Path, value: Vec<u8>, page_limit: usize) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::UInt64, false),
            Field::new("blob", DataType::Binary, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(UInt64Array::from(vec![1])),
                Arc::new(BinaryArray::from(vec![value.as_slice()])),
            ],
        )
        .unwrap();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap()))
            .set_dictionary_enabled(false)
            .set_data_page_size_limit(page_limit)
            .build();
        let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    #[test]
    fn a_sound_file_passes_and_its_pages_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ok.parquet");
        write(&path, vec![7; 100], 1 << 20);
        assert_eq!(check(&path), Ok(1));
        let starts = page_starts(&path).unwrap();
        assert_eq!(starts.len(), 2, "one page per column: {starts:?}");
        assert_eq!(starts[0], 4, "after the magic");
    }

    /// A page that declares 20 MiB: a few KiB on disk (zeros compress),
    /// 20 MiB reserved before decompressing. It is damage here.
    #[test]
    fn a_page_declaring_more_than_the_cap_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.parquet");
        write(&path, vec![0; 20 << 20], 64 << 20);
        assert!(std::fs::metadata(&path).unwrap().len() < 64 << 10);
        let e = check(&path).unwrap_err();
        assert!(e.contains("more than the 16777216 a page can be"), "{e}");
    }

    #[test]
    fn cut_files_are_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.parquet");
        write(&path, vec![7; 5000], 1 << 20);
        let bytes = std::fs::read(&path).unwrap();
        for n in [0, 4, 100, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..n]).unwrap();
            assert!(check(&path).is_err(), "cut at {n}");
        }
    }
}
