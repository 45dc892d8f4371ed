//! Opening a recording directory: its manifest and schema version first
//! (unreadable or newer: an error naming it), then every file it holds,
//! each checked before any query runs. One rule for damage: a damaged or
//! missing part (a segment, an open segment's part, a table, a snapshot) is
//! left out with a warning that names it and says what is missing, and the
//! recording is then incomplete ([`Recording::incomplete`]), which every
//! output says and every gate fails on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use nft_schema::manifest::{Manifest, MANIFEST_FILE};
use nft_schema::tables::names;
use nft_schema::SCHEMA_VERSION;
use nft_schema::{files, fleet};

use crate::notes::Notes;
use crate::safe_read::{read_small, MAX_MANIFEST_BYTES};
use crate::segments::{self, Table};
use crate::snapshot::{self, LoadedSnapshot};
use crate::{ipc, parquet_check};

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
    NewerSchema { path: PathBuf, found: u64 },
}

/// The dimension tables a recording may have, one file each.
pub const DIMENSIONS: [&str; 5] = [
    names::PROBES,
    names::DROP_REASONS,
    names::LOSSES,
    names::INTERFACES,
    names::STACKS,
];

/// One opened recording: only files that were checked are listed in it.
#[derive(Debug)]
pub struct Recording {
    /// Value of the `recording` column: the directory name (made unique
    /// when several recordings share one).
    pub name: String,
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Readable `events-NNNNNN.parquet` segments (and an interrupted
    /// recording's parts), in order.
    pub event_segments: Vec<PathBuf>,
    /// Rows of an open `events-NNNNNN.arrows` segment (interrupted
    /// recordings of schema 3 and older).
    pub open_events: Vec<RecordBatch>,
    pub nftrace_segments: Vec<PathBuf>,
    pub open_nftrace: Vec<RecordBatch>,
    /// Readable dimension tables, by table name.
    pub dimensions: BTreeMap<&'static str, PathBuf>,
    /// The ruleset snapshots that could be read.
    pub snapshots: Vec<LoadedSnapshot>,
    /// Things the user should know about this recording (interrupted,
    /// damaged parts, losses).
    pub warnings: Vec<String>,
    /// Why its data are incomplete (each is also a warning): damaged or
    /// missing parts, lost events, an unclean end. Empty: complete.
    pub incomplete: Vec<String>,
}

impl Recording {
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        let manifest = read_manifest(dir)?;
        let mut notes = Notes::default();
        describe_end(dir, &manifest, &mut notes);
        let files = segments::list_dir(dir, &mut notes).map_err(|source| OpenError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let events = Table::new(names::EVENTS, &manifest.segments, manifest.events);
        let nftrace = Table::new(
            names::NFTRACE,
            &manifest.nftrace_segments,
            manifest.nftrace_events,
        );
        let event_segments = segments::closed(dir, &files, &events, &manifest, &mut notes);
        let nftrace_segments = segments::closed(dir, &files, &nftrace, &manifest, &mut notes);
        let open_events = open_segment(dir, &files, names::EVENTS, &manifest, &mut notes);
        let open_nftrace = open_segment(dir, &files, names::NFTRACE, &manifest, &mut notes);
        let dimensions = dimensions(dir, &files, &mut notes);
        let snapshots = snapshot::load_all(dir, &manifest, &mut notes);
        Ok(Self {
            name: display_name(dir),
            dir: dir.to_path_buf(),
            manifest,
            event_segments,
            open_events,
            nftrace_segments,
            open_nftrace,
            dimensions,
            snapshots,
            warnings: notes.warnings,
            incomplete: notes.incomplete,
        })
    }

    /// Path of a dimension table's file (`probes`, `losses`, ...), if the
    /// recording has it and it is readable (a recorder killed early may not
    /// have written it).
    pub fn dimension(&self, table: &str) -> Option<PathBuf> {
        self.dimensions.get(table).cloned()
    }

    /// Whether results over this recording are partial.
    pub fn is_incomplete(&self) -> bool {
        !self.incomplete.is_empty()
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

/// The manifest, read with a size cap; its version is checked before the
/// full parse, so a newer manifest with fields this version does not know
/// is still named correctly.
pub fn read_manifest(dir: &Path) -> Result<Manifest, OpenError> {
    let path = dir.join(MANIFEST_FILE);
    if std::fs::symlink_metadata(&path).is_err() {
        return Err(OpenError::NotARecording(dir.to_path_buf()));
    }
    let text = read_small(&path, MAX_MANIFEST_BYTES).map_err(|source| OpenError::Io {
        path: path.clone(),
        source,
    })?;
    parse_manifest(&text).map_err(|e| match e {
        ManifestError::Newer(found) => OpenError::NewerSchema { path, found },
        ManifestError::Json(source) => OpenError::Manifest { path, source },
    })
}

/// Why a manifest's text is not one this version reads.
#[derive(Debug)]
pub enum ManifestError {
    Newer(u64),
    Json(serde_json::Error),
}

/// A manifest from its text (the fuzzer's entry point too).
pub fn parse_manifest(text: &str) -> Result<Manifest, ManifestError> {
    let version = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("schema_version")?.as_u64());
    if let Some(found) = version.filter(|v| *v > u64::from(SCHEMA_VERSION)) {
        return Err(ManifestError::Newer(found));
    }
    Manifest::from_json(text).map_err(ManifestError::Json)
}

/// An unclean end and lost events make a recording incomplete.
fn describe_end(dir: &Path, manifest: &Manifest, notes: &mut Notes) {
    if !manifest.ended_cleanly {
        notes.missing(format!(
            "{}: the recording did not end cleanly (end: {}); packets in its last \
             moments may be cut short",
            dir.display(),
            manifest.end
        ));
    }
    if manifest.lost_events > 0 {
        notes.missing(format!(
            "{}: {} events were lost while recording (see the losses table); \
             traces overlapping a loss window are flagged",
            dir.display(),
            manifest.lost_events
        ));
    }
}

/// The dimension tables that are there and readable; a damaged one is
/// left out (its table is empty) and named.
fn dimensions(dir: &Path, files: &[String], notes: &mut Notes) -> BTreeMap<&'static str, PathBuf> {
    let mut out = BTreeMap::new();
    for table in DIMENSIONS {
        let name = files::dimension(table);
        if !files.contains(&name) {
            continue;
        }
        let path = dir.join(&name);
        match parquet_check::check(&path) {
            Ok(_) => {
                out.insert(table, path);
            }
            Err(why) => notes.missing(format!(
                "{}: damaged ({why}): left out, so the {table} table is empty",
                path.display()
            )),
        }
    }
    out
}

/// The open segment of an interrupted recording of schema 3 or older
/// (`<table>-NNNNNN.arrows`): every batch up to the first damaged one.
/// Newer recordings have none: such a file is not read.
fn open_segment(
    dir: &Path,
    files: &[String],
    table: &str,
    manifest: &Manifest,
    notes: &mut Notes,
) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for name in files.iter().filter(|f| segments::is_legacy_open(f, table)) {
        let path = dir.join(name);
        if manifest.schema_version > files::LAST_SCHEMA_WITH_ARROWS {
            notes.warn(format!(
                "{}: not read: a recording of schema {} keeps no .arrows file",
                path.display(),
                manifest.schema_version
            ));
            continue;
        }
        let (batches, damage) = match ipc::read_stream(&path) {
            Ok(read) => read,
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        match damage {
            Some(why) => notes.missing(format!(
                "{}: damaged after {rows} rows ({why}); using the rows before the damage",
                path.display()
            )),
            None => notes.warn(format!(
                "{}: open segment of an interrupted recording, {rows} rows read",
                path.display()
            )),
        }
        out.extend(batches);
    }
    out
}

/// A recording's name: its directory's, or `<host>/<id>` in the fleet
/// layout (`…/host=<host>/date=<day>/<id>`), where ids repeat across hosts.
fn display_name(dir: &Path) -> String {
    let full = dir.canonicalize().ok();
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
    };
    let Some(id) = name(full.as_deref()) else {
        return dir.display().to_string();
    };
    let date = full.as_deref().and_then(Path::parent);
    let host = date.and_then(Path::parent);
    let is = |n: &str, column: &str| {
        n.strip_prefix(column)
            .and_then(move |r| r.strip_prefix('='))
            .is_some()
    };
    let in_layout = name(date).is_some_and(|d| is(&d, fleet::DATE));
    match name(host) {
        Some(h) if in_layout && is(&h, fleet::HOST) => {
            format!("{}/{id}", &h[fleet::HOST.len() + 1..])
        }
        _ => id,
    }
}
