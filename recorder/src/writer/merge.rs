//! Turns an open segment's parts (`segments.rs`) into its one Parquet file,
//! when the segment closes and, for a killed recorder's leftovers, in
//! [`recover_open_segments`].
//!
//! Large parts are concatenated: each row group's column chunks are copied
//! byte for byte (`append_column`, as parquet-rs's own `parquet-concat`
//! does), so closing a busy segment costs a file copy, not an encoding.
//! Small parts (a quiet recording closes a part of a few rows every flush
//! interval) are decoded and encoded again into large row groups: that
//! costs little, because there are few rows, and it keeps the segment as
//! compact as one written in one go.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nft_schema::files;

use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
use parquet::file::writer::SerializedFileWriter;

use super::segments::{create_private, parquet_properties, Part, SegmentError, PART_ROWS};

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io {
        path: path.to_owned(),
        source,
    }
}

fn pq_err(path: &Path) -> impl FnOnce(parquet::errors::ParquetError) -> SegmentError + '_ {
    move |source| SegmentError::Parquet {
        path: path.to_owned(),
        source,
    }
}

/// Writes `parts`, in order, as the Parquet file `out` (temporary file,
/// sync, atomic rename), then removes them. Returns the file's size. Parts
/// of at least an eighth of `part_rows` on average are concatenated.
pub(super) fn merge_parts(
    parts: &[Part],
    out: &Path,
    schema: &SchemaRef,
    part_rows: u64,
) -> Result<u64, SegmentError> {
    let tmp = out.with_extension("parquet.tmp");
    let bytes = match parts {
        // A single part already is the segment.
        [only] => {
            let file = File::open(&only.path).map_err(io_err(&only.path))?;
            commit_parquet(file, &only.path, out)?
        }
        _ => {
            let rows: u64 = parts.iter().map(|p| p.rows).sum();
            let file = if !parts.is_empty() && rows / parts.len() as u64 >= part_rows / 8 {
                concat(parts, &tmp)?
            } else {
                reencode(parts, &tmp, schema)?
            };
            let bytes = commit_parquet(file, &tmp, out)?;
            for p in parts {
                remove(&p.path)?;
            }
            bytes
        }
    };
    Ok(bytes)
}

/// The parts' row groups copied into one file, with the first part's
/// key-value metadata (the Arrow schema, so readers get the dictionary
/// types back).
fn concat(parts: &[Part], tmp: &Path) -> Result<File, SegmentError> {
    let mut inputs = Vec::with_capacity(parts.len());
    for p in parts {
        let file = File::open(&p.path).map_err(io_err(&p.path))?;
        let meta = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Optional)
            .parse_and_finish(&file)
            .map_err(pq_err(&p.path))?;
        inputs.push((file, meta, &p.path));
    }
    let first = &inputs[0].1;
    let root = first.file_metadata().schema_descr().root_schema_ptr();
    let kv = first
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    let out = create_private(tmp)?;
    let mut writer = SerializedFileWriter::new(out, root, Arc::new(parquet_properties()))
        .map_err(pq_err(tmp))?;
    for entry in kv {
        writer.append_key_value_metadata(entry);
    }
    for (file, meta, path) in &inputs {
        if meta.file_metadata().schema_descr().root_schema()
            != first.file_metadata().schema_descr().root_schema()
        {
            return Err(SegmentError::Parquet {
                path: (*path).clone(),
                source: parquet::errors::ParquetError::General(
                    "a part's schema differs from the first part's".into(),
                ),
            });
        }
        for (rg_idx, rg) in meta.row_groups().iter().enumerate() {
            let mut rg_out = writer.next_row_group().map_err(pq_err(tmp))?;
            for (col_idx, column) in rg.columns().iter().enumerate() {
                let close = ColumnCloseResult {
                    bytes_written: column.compressed_size() as u64,
                    rows_written: rg.num_rows() as u64,
                    metadata: column.clone(),
                    bloom_filter: None,
                    column_index: pick(meta.column_index(), rg_idx, col_idx),
                    offset_index: pick(meta.offset_index(), rg_idx, col_idx),
                };
                rg_out.append_column(file, close).map_err(pq_err(path))?;
            }
            rg_out.close().map_err(pq_err(tmp))?;
        }
    }
    writer.into_inner().map_err(pq_err(tmp))
}

/// Entry (row group, column) of a page index, if the file has one.
fn pick<T: Clone>(all: Option<&Vec<Vec<T>>>, rg: usize, col: usize) -> Option<T> {
    all.and_then(|a| a.get(rg))
        .and_then(|row| row.get(col))
        .cloned()
}

/// The parts' rows decoded and encoded again, in large row groups.
fn reencode(parts: &[Part], tmp: &Path, schema: &SchemaRef) -> Result<File, SegmentError> {
    let out = create_private(tmp)?;
    let mut writer = ArrowWriter::try_new(out, schema.clone(), Some(parquet_properties()))
        .map_err(pq_err(tmp))?;
    for p in parts {
        let file = File::open(&p.path).map_err(io_err(&p.path))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(64 * 1024).build())
            .map_err(pq_err(&p.path))?;
        for batch in reader {
            let batch = batch.map_err(|source| SegmentError::Arrow {
                path: p.path.clone(),
                source,
            })?;
            writer.write(&batch).map_err(pq_err(tmp))?;
        }
    }
    writer.into_inner().map_err(pq_err(tmp))
}

/// Syncs a finished Parquet file and renames it into place atomically.
/// Returns its size.
pub(super) fn commit_parquet(file: File, tmp: &Path, parquet: &Path) -> Result<u64, SegmentError> {
    file.sync_all().map_err(io_err(tmp))?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    std::fs::rename(tmp, parquet).map_err(io_err(parquet))?;
    Ok(bytes)
}

pub(super) fn remove(path: &Path) -> Result<(), SegmentError> {
    std::fs::remove_file(path).map_err(io_err(path))
}

/// What a killed recorder left: `(segment file, its parts in order)` for
/// each segment that has parts. A part's name without its `.part-KKKKKK`
/// is its segment's.
fn leftover_parts(dir: &Path) -> Result<Vec<(PathBuf, Vec<PathBuf>)>, SegmentError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    for name in names {
        let files::File::Part { table, index, .. } = files::parse(&name) else {
            continue;
        };
        let segment = dir.join(files::segment(table, index));
        match out.last_mut() {
            Some((s, parts)) if *s == segment => parts.push(dir.join(&name)),
            _ => out.push((segment, vec![dir.join(&name)])),
        }
    }
    Ok(out)
}

/// Turns the parts a killed recorder left into their segments, and removes
/// unfinished `.parquet.tmp` files and the space reserve. Parts whose segment already exists
/// (killed while removing them) are removed. Returns the segment file
/// names created.
pub fn recover_open_segments(dir: &Path) -> Result<Vec<String>, SegmentError> {
    let mut recovered = Vec::new();
    for (segment, paths) in leftover_parts(dir)? {
        if segment.exists() {
            for p in &paths {
                remove(p)?;
            }
            continue;
        }
        let mut parts = Vec::with_capacity(paths.len());
        let mut schema = None;
        for path in paths {
            let file = File::open(&path).map_err(io_err(&path))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq_err(&path))?;
            schema.get_or_insert_with(|| builder.schema().clone());
            let rows = builder.metadata().file_metadata().num_rows() as u64;
            parts.push(Part {
                path,
                rows,
                bytes: 0,
            });
        }
        let schema = schema.expect("at least one part");
        merge_parts(&parts, &segment, &schema, PART_ROWS)?;
        recovered.push(
            segment
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
    }
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let reserve = path
            .file_name()
            .is_some_and(|n| n == nft_schema::manifest::RESERVE_FILE);
        if reserve || path.to_string_lossy().ends_with(".parquet.tmp") {
            remove(&path)?;
        }
    }
    Ok(recovered)
}
