//! Opening a recording directory: its manifest, schema version and segment
//! files are checked before any query runs, so bad input is named clearly
//! (which directory, which file, what is wrong) instead of surfacing as a
//! query error halfway through.

use crate::safe_read::{is_regular, open_regular, read_small, MAX_MANIFEST_BYTES};
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::ipc::reader::StreamReader;
use arrow::record_batch::RecordBatch;
use nft_schema::files;
use nft_schema::manifest::{Manifest, MANIFEST_FILE};
use nft_schema::tables::names;
use nft_schema::SCHEMA_VERSION;
use parquet::file::reader::{FileReader, SerializedFileReader};

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0} is not a recording: it has no {MANIFEST_FILE}")]
    NotARecording(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid manifest: {source}")]
    Manifest {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{path}: schema version {found} is newer than this nft-analyzer reads \
         (up to {SCHEMA_VERSION}); use a newer nft-analyzer"
    )]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("{path}: corrupt or truncated Parquet file: {reason}")]
    CorruptSegment { path: PathBuf, reason: String },
    #[error("{path}: listed in the manifest but missing")]
    MissingSegment { path: PathBuf },
}

/// One opened recording. Its segments have been checked: every closed
/// Parquet segment has a readable footer, and the open segment of an
/// interrupted recording (Arrow IPC stream) has been read up to any damage.
#[derive(Debug)]
pub struct Recording {
    /// Value of the `recording` column: the directory name (made unique
    /// when several recordings share one).
    pub name: String,
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Closed `events-NNNNNN.parquet` segments, in order.
    pub event_segments: Vec<PathBuf>,
    /// Rows of an open `events-NNNNNN.arrows` segment (interrupted
    /// recordings only).
    pub open_events: Vec<RecordBatch>,
    pub nftrace_segments: Vec<PathBuf>,
    pub open_nftrace: Vec<RecordBatch>,
    /// Things the user should know about this recording (interrupted,
    /// damaged open segment, losses).
    pub warnings: Vec<String>,
}

impl Recording {
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        if std::fs::symlink_metadata(&manifest_path).is_err() {
            return Err(OpenError::NotARecording(dir.to_path_buf()));
        }
        let text =
            read_small(&manifest_path, MAX_MANIFEST_BYTES).map_err(|source| OpenError::Io {
                path: manifest_path.clone(),
                source,
            })?;
        // The version is checked before the full parse, so a newer manifest
        // with fields this version does not know is still named correctly.
        let version = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("schema_version")?.as_u64());
        if let Some(found) = version {
            if found > u64::from(SCHEMA_VERSION) {
                return Err(OpenError::NewerSchema {
                    path: manifest_path,
                    found: found as u32,
                });
            }
        }
        let manifest = Manifest::from_json(&text).map_err(|source| OpenError::Manifest {
            path: manifest_path.clone(),
            source,
        })?;
        let mut warnings = Vec::new();
        if !manifest.ended_cleanly {
            warnings.push(format!(
                "{}: the recording did not end cleanly (end: {}); packets in its last \
                 moments may be cut short",
                dir.display(),
                manifest.end
            ));
        }
        if manifest.lost_events > 0 {
            warnings.push(format!(
                "{}: {} events were lost while recording (see the losses table); \
                 traces overlapping a loss window are flagged",
                dir.display(),
                manifest.lost_events
            ));
        }
        let files = list_dir(dir, &mut warnings)?;
        let event_segments = closed_segments(
            dir,
            &files,
            names::EVENTS,
            &manifest.segments,
            &mut warnings,
        )?;
        let nftrace_segments = closed_segments(
            dir,
            &files,
            names::NFTRACE,
            &manifest.nftrace_segments,
            &mut warnings,
        )?;
        let open_events = open_segment(dir, &files, names::EVENTS, &mut warnings)?;
        let open_nftrace = open_segment(dir, &files, names::NFTRACE, &mut warnings)?;
        for dim in [
            names::PROBES,
            names::DROP_REASONS,
            names::LOSSES,
            names::INTERFACES,
            names::STACKS,
        ] {
            let path = dir.join(files::dimension(dim));
            if is_regular(&path) {
                check_parquet(&path)?;
            }
        }
        let name = dir
            .canonicalize()
            .ok()
            .as_deref()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Self {
            name,
            dir: dir.to_path_buf(),
            manifest,
            event_segments,
            open_events,
            nftrace_segments,
            open_nftrace,
            warnings,
        })
    }

    /// Path of a dimension table's file (`probes`, `losses`, ...), if the
    /// recording has it (a recorder killed early may not have written it).
    pub fn dimension(&self, table: &str) -> Option<PathBuf> {
        let path = self.dir.join(files::dimension(table));
        is_regular(&path).then_some(path)
    }

    /// Kernel monotonic ns at which the recording ended: the manifest's stop
    /// time, or, for an interrupted one, its start (the caller takes the
    /// maximum with the last event).
    pub fn end_ns(&self) -> u64 {
        self.manifest.stopped_ns.unwrap_or(self.manifest.started_ns)
    }
}

/// Opens several recordings and makes their names unique (`rec`, `rec#2`).
pub fn open_all(dirs: &[PathBuf]) -> Result<Vec<Recording>, OpenError> {
    let mut out: Vec<Recording> = Vec::new();
    for dir in dirs {
        let mut rec = Recording::open(dir)?;
        let base = rec.name.clone();
        let mut n = 1;
        while out.iter().any(|r| r.name == rec.name) {
            n += 1;
            rec.name = format!("{base}#{n}");
        }
        out.push(rec);
    }
    Ok(out)
}

/// The directory's regular files. A symlink, FIFO or directory named like
/// a recording's file is left out with a warning: it could lead out of the
/// recording or block a reader forever.
fn list_dir(dir: &Path, warnings: &mut Vec<String>) -> Result<Vec<String>, OpenError> {
    let io = |source| OpenError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().map_err(io)?.is_file() {
            files.push(name);
        } else if files::parse(&name) != files::File::Other {
            warnings.push(format!(
                "{}: not a regular file (a symlink, FIFO or directory): ignored",
                dir.join(&name).display()
            ));
        }
    }
    files.sort();
    Ok(files)
}

/// `<table>-NNNNNN.parquet` files, in order. Every segment the manifest lists
/// must be there; a segment closed after the manifest's last rewrite (a
/// recorder killed in between) is found by its name and used too. So are the
/// parts of an interrupted recording's open segment
/// (`<table>-NNNNNN.part-KKKKKK.parquet`, complete Parquet files), unless
/// their segment exists (killed while removing them).
fn closed_segments(
    dir: &Path,
    files: &[String],
    table: &str,
    listed: &[String],
    warnings: &mut Vec<String>,
) -> Result<Vec<PathBuf>, OpenError> {
    for name in listed {
        if !files.contains(name) {
            return Err(OpenError::MissingSegment {
                path: dir.join(name),
            });
        }
    }
    let mut out = Vec::new();
    let mut parts = 0;
    for name in files {
        let segment = match part_of(name, table) {
            Some(segment) if files.iter().any(|f| f == &segment) => continue,
            Some(_) => {
                parts += 1;
                true
            }
            None => is_segment(name, table),
        };
        if segment {
            let path = dir.join(name);
            check_parquet(&path)?;
            out.push(path);
        }
    }
    if parts > 0 {
        warnings.push(format!(
            "{}: the open {table} segment of an interrupted recording: {parts} part(s) read",
            dir.display()
        ));
    }
    Ok(out)
}

/// The segment file a part of `table` belongs to:
/// `events-000003.part-000002.parquet` -> `events-000003.parquet`.
fn part_of(file: &str, table: &str) -> Option<String> {
    match files::parse(file) {
        files::File::Part {
            table: t, index, ..
        } if t == table => Some(files::segment(t, index)),
        _ => None,
    }
}

fn is_segment(file: &str, table: &str) -> bool {
    matches!(files::parse(file), files::File::Segment { table: t, .. } if t == table)
}

fn is_legacy_open_segment(file: &str, table: &str) -> bool {
    matches!(files::parse(file), files::File::LegacyOpenSegment { table: t, .. } if t == table)
}

/// Reads the footer: a Parquet file that cannot be opened is named here, not
/// in the middle of a query.
fn check_parquet(path: &Path) -> Result<(), OpenError> {
    let file = open_regular(path).map_err(|source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = SerializedFileReader::new(file).map_err(|e| OpenError::CorruptSegment {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let _ = reader.metadata().file_metadata().num_rows();
    Ok(())
}

/// The open segment of an interrupted recording (`<table>-NNNNNN.arrows`):
/// every batch up to the first damaged one; the damage is a warning.
fn open_segment(
    dir: &Path,
    files: &[String],
    table: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<RecordBatch>, OpenError> {
    let mut out = Vec::new();
    for name in files.iter().filter(|f| is_legacy_open_segment(f, table)) {
        let path = dir.join(name);
        let (batches, damage) = read_ipc_stream(&path)?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        match damage {
            Some(why) => warnings.push(format!(
                "{}: damaged after {rows} rows ({why}); using the rows before the damage",
                path.display()
            )),
            None => warnings.push(format!(
                "{}: open segment of an interrupted recording, {rows} rows read",
                path.display()
            )),
        }
        out.extend(batches);
    }
    Ok(out)
}

/// Reads an Arrow IPC stream up to its first damaged batch.
pub fn read_ipc_stream(path: &Path) -> Result<(Vec<RecordBatch>, Option<String>), OpenError> {
    let file = File::open(path).map_err(|source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = match StreamReader::try_new(std::io::BufReader::new(file), None) {
        Ok(r) => r,
        Err(e) => return Ok((Vec::new(), Some(e.to_string()))),
    };
    let mut batches = Vec::new();
    for batch in reader {
        match batch {
            Ok(b) => batches.push(b),
            Err(e) => return Ok((batches, Some(e.to_string()))),
        }
    }
    Ok((batches, None))
}
