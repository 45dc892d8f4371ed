//! Event segments that survive `kill -9`.
//!
//! The open segment is an Arrow IPC stream (`events-NNNNNN.arrows`), flushed
//! every flush interval: a killed recorder leaves it readable up to the last
//! complete batch. When a segment is closed (rotation or stop) it is
//! rewritten as zstd Parquet into a temporary file, synced, renamed to
//! `events-NNNNNN.parquet` atomically, and the IPC file is removed. So a
//! reader only ever sees complete Parquet files, plus at most one `.arrows`
//! file from an interrupted run, which [`recover_open_segments`] converts.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
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

/// Parquet settings for every table; each choice has a reason.
pub fn parquet_properties() -> WriterProperties {
    WriterProperties::builder()
        // zstd 3: most of level 9's ratio at several times the speed.
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        // Timestamps grow steadily: deltas pack into a few bits each, where
        // a dictionary would hold every distinct value.
        .set_column_encoding(
            ColumnPath::from(events::TS_NS),
            Encoding::DELTA_BINARY_PACKED,
        )
        .set_column_dictionary_enabled(ColumnPath::from(events::TS_NS), false)
        // Min/max per column chunk is enough to skip row groups; per-page
        // statistics cost encoding time for little.
        .set_statistics_enabled(EnabledStatistics::Chunk)
        // Large row groups compress better; a segment is bounded anyway.
        .set_max_row_group_row_count(Some(1 << 20))
        .build()
}

fn segment_name(table: &str, index: u32, ext: &str) -> String {
    format!("{table}-{index:06}.{ext}")
}

struct OpenSegment {
    index: u32,
    path: PathBuf,
    writer: StreamWriter<BufWriter<File>>,
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
            let writer =
                StreamWriter::try_new(BufWriter::new(file), &self.schema).map_err(|source| {
                    SegmentError::Arrow {
                        path: path.clone(),
                        source,
                    }
                })?;
            self.open = Some(OpenSegment {
                index,
                path,
                writer,
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
        let path = open.path.clone();
        let mut writer = open.writer;
        writer.finish().map_err(|source| SegmentError::Arrow {
            path: path.clone(),
            source,
        })?;
        let mut file = writer.into_inner().map_err(|source| SegmentError::Arrow {
            path: path.clone(),
            source,
        })?;
        file.flush().map_err(|source| SegmentError::Io {
            path: path.clone(),
            source,
        })?;
        drop(file);
        let name = segment_name(self.table, open.index, "parquet");
        let bytes = ipc_to_parquet(&path, &self.dir.join(&name))?.1;
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
    file.sync_all().map_err(|source| SegmentError::Io {
        path: tmp.clone(),
        source,
    })?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    std::fs::rename(&tmp, parquet).map_err(|source| SegmentError::Io {
        path: parquet.to_owned(),
        source,
    })?;
    std::fs::remove_file(ipc).map_err(|source| SegmentError::Io {
        path: ipc.to_owned(),
        source,
    })?;
    Ok((rows, bytes))
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
