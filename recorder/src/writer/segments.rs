//! Event segments that survive `kill -9`.
//!
//! The open segment is a run of *parts*: complete Parquet files
//! (`events-NNNNNN.part-KKKKKK.parquet`), each written to a `.tmp` name and
//! renamed when it closes: at every flush interval, or at [`PART_ROWS`]
//! rows. A killed recorder so leaves only complete files, and loses at most
//! what arrived since the last flush. When the segment closes (rotation or
//! stop), its parts become one `events-NNNNNN.parquet` (`merge.rs`): their
//! row groups are copied as they are, without decoding, or, when the parts
//! are small (a quiet recording flushes a few rows a second), re-encoded
//! into large row groups. Temporary file, sync, atomic rename, then the
//! parts are removed; a reader ignores the parts of a segment whose file
//! exists.
//!
//! Before, the open segment was written twice, as an LZ4 Arrow IPC crash
//! copy next to the Parquet encoder: the copy was a quarter of the writer's
//! time (docs/benchmarks.md). Recordings of schema 3 and older may still
//! hold such an `.arrows` file; the analyzer reads it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use nft_schema::columns::events;
use nft_schema::files;
use nft_schema::tables::events_schema;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::merge::{merge_parts, remove};

/// A part closes when it would grow past this many rows: one row group.
/// Parts of at least an eighth of this, on average, are concatenated when
/// their segment closes; smaller ones are re-encoded (`merge.rs`).
pub const PART_ROWS: u64 = 1 << 20;

/// An open segment with this many parts is closed (rotated) at the next
/// opportunity, so a long, quiet recording (nftrace, one segment) does not
/// pile up part files.
pub const MAX_PARTS: usize = 256;

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

/// Creates a new file readable by its owner only (recordings hold
/// addresses). Never opens what is already there (`O_EXCL`) nor follows a
/// symbolic link (`O_NOFOLLOW`), so a name planted in the directory is
/// refused, not truncated. A `.tmp` left by a write that failed (disk full)
/// is removed first: temporary names are the recorder's own.
pub fn create_private(path: &Path) -> Result<File, SegmentError> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
    };
    let io = |source| SegmentError::Io {
        path: path.to_owned(),
        source,
    };
    match open() {
        Err(e)
            if e.kind() == std::io::ErrorKind::AlreadyExists
                && path.extension().is_some_and(|x| x == "tmp") =>
        {
            std::fs::remove_file(path).map_err(io)?;
            open().map_err(io)
        }
        r => r.map_err(io),
    }
}

/// Writes `bytes` to `path` so that a reader or a power loss sees the old
/// state or the whole new file: a temporary name, fsync, rename, and an
/// fsync of the directory.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), SegmentError> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let io = |source| SegmentError::Io {
        path: tmp.clone(),
        source,
    };
    let mut file = create_private(&tmp)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|source| SegmentError::Io {
        path: path.to_owned(),
        source,
    })?;
    sync_dir(path)
}

/// fsyncs the directory holding `path`, so a rename into it is durable.
pub fn sync_dir(path: &Path) -> Result<(), SegmentError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SegmentError::Io {
            path: dir.to_owned(),
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

/// A closed part: a complete Parquet file.
pub(super) struct Part {
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
}

/// The part being encoded.
struct CurrentPart {
    /// Where it is encoded, and the name it gets when complete.
    tmp: PathBuf,
    path: PathBuf,
    writer: ArrowWriter<File>,
    rows: u64,
}

struct OpenSegment {
    index: u32,
    parts: Vec<Part>,
    current: Option<CurrentPart>,
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
    /// [`PART_ROWS`]; smaller in tests.
    part_rows: u64,
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
            part_rows: PART_ROWS,
        }
    }

    /// Appends a batch to the open segment (opening one if needed).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SegmentError> {
        let n = batch.num_rows() as u64;
        let open = self.open.get_or_insert_with(|| {
            let index = self.next_index;
            self.next_index += 1;
            OpenSegment {
                index,
                parts: Vec::new(),
                current: None,
                rows: 0,
            }
        });
        if open
            .current
            .as_ref()
            .is_some_and(|c| c.rows > 0 && c.rows + n > self.part_rows)
        {
            close_part(open)?;
        }
        if open.current.is_none() {
            let number = open.parts.len() as u32 + 1;
            let path = self.dir.join(files::part(self.table, open.index, number));
            let tmp = path.with_extension("parquet.tmp");
            let writer = ArrowWriter::try_new(
                create_private(&tmp)?,
                self.schema.clone(),
                Some(parquet_properties()),
            )
            .map_err(|source| SegmentError::Parquet {
                path: tmp.clone(),
                source,
            })?;
            open.current = Some(CurrentPart {
                tmp,
                path,
                writer,
                rows: 0,
            });
        }
        let current = open.current.as_mut().expect("opened above");
        current
            .writer
            .write(batch)
            .map_err(|source| SegmentError::Parquet {
                path: current.tmp.clone(),
                source,
            })?;
        current.rows += n;
        open.rows += n;
        self.rows_written += n;
        Ok(())
    }

    /// Makes everything written so far survive a `kill -9`: the part being
    /// encoded is closed (a complete file; the next batch starts another).
    pub fn flush(&mut self) -> Result<(), SegmentError> {
        if let Some(open) = self.open.as_mut() {
            if open.current.as_ref().is_some_and(|c| c.rows > 0) {
                close_part(open)?;
            }
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

    /// Whether the open segment has [`MAX_PARTS`] parts: time to rotate.
    pub fn parts_full(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|o| o.parts.len() >= MAX_PARTS)
    }

    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }

    /// Closes the open segment: its parts become one Parquet file. Returns
    /// its file name.
    pub fn rotate(&mut self) -> Result<Option<String>, SegmentError> {
        let Some(mut open) = self.open.take() else {
            return Ok(None);
        };
        match open.current.take() {
            // An empty part is kept only when it is all there is (an empty
            // table still gets a segment).
            Some(c) if c.rows == 0 && !open.parts.is_empty() => {
                drop(c.writer);
                remove(&c.tmp)?;
            }
            Some(c) => {
                open.current = Some(c);
                close_part(&mut open)?;
            }
            None => {}
        }
        let name = files::segment(self.table, open.index);
        let path = self.dir.join(&name);
        let bytes = merge_parts(&open.parts, &path, &self.schema, self.part_rows)?;
        self.closed.push((name.clone(), bytes));
        Ok(Some(name))
    }

    /// Closed segment names, oldest first.
    pub fn closed(&self) -> Vec<String> {
        self.closed.iter().map(|c| c.0.clone()).collect()
    }

    /// Bytes on disk: closed segments plus the open one's parts and what
    /// its encoder has written.
    pub fn bytes_on_disk(&self) -> u64 {
        self.closed.iter().map(|c| c.1).sum::<u64>() + self.open_bytes()
    }

    /// Bytes of the open segment: its parts, what its encoder wrote, and
    /// its estimate of the rows it still holds in memory (they reach the
    /// disk at the next flush). Its merge writes about as much again, next
    /// to the parts, when it closes.
    pub fn open_bytes(&self) -> u64 {
        self.open.as_ref().map_or(0, |o| {
            o.parts.iter().map(|p| p.bytes).sum::<u64>()
                + o.current.as_ref().map_or(0, |c| {
                    (c.writer.bytes_written() + c.writer.in_progress_size()) as u64
                })
        })
    }

    /// Deletes the oldest closed segment (`--ring`); returns its name.
    /// `unlist` gets the segments that remain before the file goes, so a
    /// manifest updated there never lists a deleted segment.
    pub fn remove_oldest(
        &mut self,
        unlist: impl FnOnce(&[String]),
    ) -> Result<Option<String>, SegmentError> {
        if self.closed.is_empty() {
            return Ok(None);
        }
        let (name, _) = self.closed.remove(0);
        unlist(&self.closed());
        let path = self.dir.join(&name);
        std::fs::remove_file(&path).map_err(|source| SegmentError::Io { path, source })?;
        Ok(Some(name))
    }
}

/// Finishes the part being encoded (footer) and gives it its name.
fn close_part(open: &mut OpenSegment) -> Result<(), SegmentError> {
    let Some(c) = open.current.take() else {
        return Ok(());
    };
    let file = c
        .writer
        .into_inner()
        .map_err(|source| SegmentError::Parquet {
            path: c.tmp.clone(),
            source,
        })?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    // Synced before its rename, so a power loss leaves each named part
    // whole (one fsync per flush interval or per million rows).
    file.sync_data().map_err(|source| SegmentError::Io {
        path: c.tmp.clone(),
        source,
    })?;
    drop(file);
    std::fs::rename(&c.tmp, &c.path).map_err(|source| SegmentError::Io {
        path: c.path.clone(),
        source,
    })?;
    open.parts.push(Part {
        path: c.path,
        rows: c.rows,
        bytes,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::batch::{events_batch, Names};
    use crate::writer::merge::recover_open_segments;
    use arrow::array::{AsArray, RecordBatch};
    use arrow::datatypes::UInt64Type;
    use nft_schema::raw::{EventKind, SkbEvent};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn batch(first_ts: u64, n: usize) -> RecordBatch {
        let events: Vec<SkbEvent> = (0..n as u64)
            .map(|i| SkbEvent {
                ts_ns: first_ts + i,
                skb: 0xffff_8880_0000_0000 + (i % 64) * 256,
                probe_id: (i % 3) as u32,
                ip_version: 4,
                l4_proto: 17,
                saddr: [
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0xff,
                    0xff,
                    10,
                    0,
                    0,
                    (i % 7) as u8,
                ],
                kind: EventKind::Tracepoint as u8,
                ..Default::default()
            })
            .collect();
        events_batch(&events, &[], &Names::default()).unwrap()
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nft-seg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// (timestamps in file order, row groups, schema) of a Parquet file.
    fn read(path: &Path) -> (Vec<u64>, usize, SchemaRef) {
        let b = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
        let groups = b.metadata().num_row_groups();
        let schema = b.schema().clone();
        let mut ts = Vec::new();
        for batch in b.build().unwrap() {
            let batch = batch.unwrap();
            let col = batch.column_by_name(events::TS_NS).unwrap();
            ts.extend(col.as_primitive::<UInt64Type>().values().iter());
        }
        (ts, groups, schema)
    }

    /// Flushes make small parts; closing re-encodes them into one row group.
    /// Parts of a full size are copied row group by row group. Both keep
    /// every row in order and the Arrow schema (dictionary columns).
    #[test]
    fn parts_merge_into_one_segment_by_copy_or_reencoding() {
        let d = dir("merge");
        let mut w = SegmentWriter::new(&d);
        for i in 0..5u64 {
            w.write(&batch(i * 100, 100)).unwrap();
            w.flush().unwrap();
        }
        let parts = files(&d).iter().filter(|f| f.contains(".part-")).count();
        assert_eq!(parts, 5, "{:?}", files(&d));
        assert_eq!(
            w.rotate().unwrap().as_deref(),
            Some("events-000001.parquet")
        );
        let (ts, groups, schema) = read(&d.join("events-000001.parquet"));
        assert_eq!(ts, (0..500).collect::<Vec<_>>());
        assert_eq!(groups, 1, "small parts are re-encoded together");
        assert_eq!(schema.fields(), events_schema().fields());

        // Three full parts: each write closes the one before.
        w.part_rows = 4096;
        let big = 4096;
        for i in 0..3u64 {
            w.write(&batch(1_000_000 + i * 4096, big)).unwrap();
        }
        assert_eq!(
            w.rotate().unwrap().as_deref(),
            Some("events-000002.parquet")
        );
        let (ts, groups, schema) = read(&d.join("events-000002.parquet"));
        assert_eq!(ts.len(), 3 * big);
        assert!(ts.windows(2).all(|w| w[1] == w[0] + 1), "in order");
        assert_eq!(groups, 3, "large parts are copied as they are");
        assert_eq!(schema.fields(), events_schema().fields());
        assert_eq!(
            files(&d),
            ["events-000001.parquet", "events-000002.parquet"],
            "parts removed"
        );
        assert_eq!(w.rows_written(), 500 + 3 * 4096);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// What `kill -9` leaves (flushed parts, a part being encoded) is read
    /// as parts, and recovery merges the flushed ones into the segment.
    #[test]
    fn a_killed_writer_leaves_complete_parts() {
        let d = dir("kill");
        let mut w = SegmentWriter::new(&d);
        w.write(&batch(0, 10)).unwrap();
        w.flush().unwrap();
        w.write(&batch(10, 10)).unwrap();
        w.flush().unwrap();
        w.write(&batch(20, 10)).unwrap();
        // No flush: these 10 rows are what a kill loses.
        std::mem::forget(w);
        assert_eq!(
            files(&d),
            [
                "events-000001.part-000001.parquet",
                "events-000001.part-000002.parquet",
                "events-000001.part-000003.parquet.tmp",
            ]
        );
        assert_eq!(
            recover_open_segments(&d).unwrap(),
            ["events-000001.parquet"]
        );
        assert_eq!(files(&d), ["events-000001.parquet"]);
        let (ts, _, _) = read(&d.join("events-000001.parquet"));
        assert_eq!(ts, (0..20).collect::<Vec<_>>());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
