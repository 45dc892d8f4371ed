//! Event segments that survive `kill -9`.
//!
//! The open segment is written twice as batches arrive: as an Arrow IPC
//! stream (`events-NNNNNN.arrows`), flushed every flush interval, so a
//! killed recorder leaves it readable up to the last complete batch; and
//! into a Parquet encoder whose output goes to `events-NNNNNN.parquet.tmp`.
//! When the segment is closed (rotation or stop) the encoder writes its
//! footer, the file is synced and renamed to `events-NNNNNN.parquet`
//! atomically, and the IPC file is removed. Encoding as batches arrive
//! saves reading the IPC stream back on close (a third of the writer's time
//! before). So a reader only ever sees complete Parquet files, plus at most
//! one `.arrows` file from an interrupted run, which
//! [`recover_open_segments`] converts (the unfinished `.parquet.tmp` it
//! leaves is overwritten).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow::ipc::CompressionType;
use arrow::record_batch::RecordBatch;
use nft_schema::columns::events;
use nft_schema::tables::events_schema;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
}

/// Creates a file readable by its owner only (recordings hold addresses).
pub fn create_private(path: &Path) -> Result<File, SegmentError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| SegmentError::Io {
            path: path.to_owned(),
            source,
        })
}

/// Parquet settings for every table; each choice has a reason, measured by
/// `cargo bench -p nft-recorder --bench writer` (docs/benchmarks.md).
pub fn parquet_properties() -> WriterProperties {
    let mut builder = WriterProperties::builder()
        // zstd 1: on the events mix it is both faster and smaller than
        // level 3 (2.97 vs 3.27 bytes/event with the settings below).
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid level"),
        ))
        // Integer columns are written PLAIN and left to zstd: a Parquet
        // dictionary hashes every value (a fifth of the writer's time) and
        // saved only 0.2 bytes/event. String columns (names, addresses as
        // text) keep their dictionaries: few distinct values, long strings.
        .set_dictionary_enabled(false)
        // Timestamps grow steadily: deltas pack into a few bits each.
        .set_column_encoding(
            ColumnPath::from(events::TS_NS),
            Encoding::DELTA_BINARY_PACKED,
        )
        // Min/max per column chunk only where it prunes: time ranges and
        // skb addresses. Elsewhere (strings above all: a comparison per
        // value) statistics cost encoding time and skip nothing.
        .set_statistics_enabled(EnabledStatistics::None)
        .set_column_statistics_enabled(ColumnPath::from(events::TS_NS), EnabledStatistics::Chunk)
        .set_column_statistics_enabled(ColumnPath::from(events::SKB), EnabledStatistics::Chunk)
        // Large row groups compress better; a segment is bounded anyway, and
        // the open row group is what the encoder holds in memory.
        .set_max_row_group_row_count(Some(1 << 20));
    for table in [
        nft_schema::tables::events_schema(),
        nft_schema::tables::nftrace_schema(),
    ] {
        for field in table.fields() {
            if matches!(field.data_type(), DataType::Dictionary(..)) {
                builder = builder
                    .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), true);
            }
        }
    }
    builder.build()
}

/// The crash copy is LZ4-compressed: most of an event's columns are null or
/// repeat, so it shrinks from 131 to 10 bytes/event (an open segment counts
/// against `--max-bytes`), and writing less is faster than compressing
/// costs (writer bench).
fn ipc_options() -> IpcWriteOptions {
    IpcWriteOptions::default()
        .try_with_compression(Some(CompressionType::LZ4_FRAME))
        .expect("arrow built with ipc_compression")
}

fn segment_name(table: &str, index: u32, ext: &str) -> String {
    format!("{table}-{index:06}.{ext}")
}

struct OpenSegment {
    index: u32,
    /// The IPC stream: what a `kill -9` leaves.
    path: PathBuf,
    writer: StreamWriter<BufWriter<File>>,
    /// The Parquet file being encoded, renamed when the segment closes.
    parquet_tmp: PathBuf,
    parquet: ArrowWriter<File>,
    rows: u64,
}

/// Writes batches of one table into rotating segments in one recording
/// directory (`<table>-NNNNNN.parquet`).
pub struct SegmentWriter {
    dir: PathBuf,
    table: &'static str,
    schema: SchemaRef,
    next_index: u32,
    open: Option<OpenSegment>,
    /// Closed segments (file names), oldest first, with their sizes.
    closed: Vec<(String, u64)>,
    rows_written: u64,
}

impl SegmentWriter {
    /// Segments of the `events` table.
    pub fn new(dir: &Path) -> Self {
        Self::for_table(dir, nft_schema::tables::names::EVENTS, events_schema())
    }

    /// Segments of any table.
    pub fn for_table(dir: &Path, table: &'static str, schema: SchemaRef) -> Self {
        Self {
            dir: dir.to_owned(),
            table,
            schema,
            next_index: 1,
            open: None,
            closed: Vec::new(),
            rows_written: 0,
        }
    }

    /// Appends a batch to the open segment (opening one if needed).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SegmentError> {
        if self.open.is_none() {
            let index = self.next_index;
            self.next_index += 1;
            let path = self.dir.join(segment_name(self.table, index, "arrows"));
            let file = create_private(&path)?;
            let writer = StreamWriter::try_new_with_options(
                BufWriter::new(file),
                &self.schema,
                ipc_options(),
            )
            .map_err(|source| SegmentError::Arrow {
                path: path.clone(),
                source,
            })?;
            let parquet_tmp = self
                .dir
                .join(segment_name(self.table, index, "parquet.tmp"));
            let parquet = ArrowWriter::try_new(
                create_private(&parquet_tmp)?,
                self.schema.clone(),
                Some(parquet_properties()),
            )
            .map_err(|source| SegmentError::Parquet {
                path: parquet_tmp.clone(),
                source,
            })?;
            self.open = Some(OpenSegment {
                index,
                path,
                writer,
                parquet_tmp,
                parquet,
                rows: 0,
            });
        }
        let open = self.open.as_mut().expect("opened above");
        open.writer
            .write(batch)
            .map_err(|source| SegmentError::Arrow {
                path: open.path.clone(),
                source,
            })?;
        open.parquet
            .write(batch)
            .map_err(|source| SegmentError::Parquet {
                path: open.parquet_tmp.clone(),
                source,
            })?;
        open.rows += batch.num_rows() as u64;
        self.rows_written += batch.num_rows() as u64;
        Ok(())
    }

    /// Pushes the open segment to the kernel (what a `kill -9` keeps).
    pub fn flush(&mut self) -> Result<(), SegmentError> {
        if let Some(open) = self.open.as_mut() {
            open.writer
                .get_mut()
                .flush()
                .map_err(|source| SegmentError::Io {
                    path: open.path.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Whether a segment is open (possibly with zero rows).
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Rows in the open segment.
    pub fn open_rows(&self) -> u64 {
        self.open.as_ref().map_or(0, |o| o.rows)
    }

    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }

    /// Closes the open segment into Parquet. Returns its file name.
    pub fn rotate(&mut self) -> Result<Option<String>, SegmentError> {
        let Some(open) = self.open.take() else {
            return Ok(None);
        };
        // The IPC stream is only a crash copy now: drop it unfinished.
        drop(open.writer);
        let tmp = open.parquet_tmp;
        let file = open
            .parquet
            .into_inner()
            .map_err(|source| SegmentError::Parquet {
                path: tmp.clone(),
                source,
            })?;
        let name = segment_name(self.table, open.index, "parquet");
        let bytes = commit_parquet(file, &tmp, &self.dir.join(&name))?;
        remove(&open.path)?;
        self.closed.push((name.clone(), bytes));
        Ok(Some(name))
    }

    /// Closed segment names, oldest first.
    pub fn closed(&self) -> Vec<String> {
        self.closed.iter().map(|c| c.0.clone()).collect()
    }

    /// Bytes on disk: closed segments plus the open one.
    pub fn bytes_on_disk(&self) -> u64 {
        let open = self
            .open
            .as_ref()
            .and_then(|o| std::fs::metadata(&o.path).ok())
            .map_or(0, |m| m.len());
        self.closed.iter().map(|c| c.1).sum::<u64>() + open
    }

    /// Deletes the oldest closed segment (`--ring`); returns its name.
    pub fn remove_oldest(&mut self) -> Result<Option<String>, SegmentError> {
        if self.closed.is_empty() {
            return Ok(None);
        }
        let (name, _) = self.closed.remove(0);
        let path = self.dir.join(&name);
        std::fs::remove_file(&path).map_err(|source| SegmentError::Io { path, source })?;
        Ok(Some(name))
    }
}

/// Rewrites an IPC stream as Parquet (temporary file, sync, atomic rename),
/// then removes the stream. Reads every complete batch; a stream cut short by
/// a kill ends at its last complete batch. Returns (rows, Parquet bytes).
pub fn ipc_to_parquet(ipc: &Path, parquet: &Path) -> Result<(u64, u64), SegmentError> {
    let arrow_err = |source| SegmentError::Arrow {
        path: ipc.to_owned(),
        source,
    };
    let input = File::open(ipc).map_err(|source| SegmentError::Io {
        path: ipc.to_owned(),
        source,
    })?;
    let reader = StreamReader::try_new(std::io::BufReader::new(input), None).map_err(arrow_err)?;
    let schema = reader.schema();
    let tmp = parquet.with_extension("parquet.tmp");
    let out = create_private(&tmp)?;
    let pq_err = |source| SegmentError::Parquet {
        path: tmp.clone(),
        source,
    };
    let mut writer =
        ArrowWriter::try_new(out, schema, Some(parquet_properties())).map_err(pq_err)?;
    let mut rows = 0u64;
    for batch in reader {
        // A truncated tail (killed mid-write) ends the stream here.
        let Ok(batch) = batch else { break };
        rows += batch.num_rows() as u64;
        writer.write(&batch).map_err(pq_err)?;
    }
    let file = writer.into_inner().map_err(pq_err)?;
    let bytes = commit_parquet(file, &tmp, parquet)?;
    remove(ipc)?;
    Ok((rows, bytes))
}

/// Syncs a finished Parquet file and renames it into place atomically.
/// Returns its size.
fn commit_parquet(file: File, tmp: &Path, parquet: &Path) -> Result<u64, SegmentError> {
    file.sync_all().map_err(|source| SegmentError::Io {
        path: tmp.to_owned(),
        source,
    })?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    std::fs::rename(tmp, parquet).map_err(|source| SegmentError::Io {
        path: parquet.to_owned(),
        source,
    })?;
    Ok(bytes)
}

fn remove(path: &Path) -> Result<(), SegmentError> {
    std::fs::remove_file(path).map_err(|source| SegmentError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Converts the `.arrows` segment(s) a killed recorder left into Parquet.
/// Returns the Parquet file names created.
pub fn recover_open_segments(dir: &Path) -> Result<Vec<String>, SegmentError> {
    let mut recovered = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| SegmentError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut open: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "arrows"))
        .collect();
    open.sort();
    for ipc in open {
        let parquet = ipc.with_extension("parquet");
        ipc_to_parquet(&ipc, &parquet)?;
        recovered.push(
            parquet
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
    }
    Ok(recovered)
}
