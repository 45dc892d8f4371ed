//! A recording's segment files: which are there, which the manifest lists,
//! which are readable, and whether together they hold the events the
//! manifest counts.

use std::path::{Path, PathBuf};

use nft_schema::files;
use nft_schema::manifest::Manifest;

use crate::notes::Notes;
use crate::parquet_check;

/// A segmented table (`events`, `nftrace`) as the manifest describes it.
pub struct Table<'a> {
    pub name: &'a str,
    /// Closed segments the manifest lists.
    pub listed: &'a [String],
    /// Rows the manifest counts as written.
    pub rows: u64,
}

impl<'a> Table<'a> {
    pub fn new(name: &'a str, listed: &'a [String], rows: u64) -> Self {
        Self { name, listed, rows }
    }
}

/// The directory's regular files. A symlink, FIFO or directory named like
/// a recording's file is left out with a warning: it could lead out of the
/// recording or block a reader forever.
pub fn list_dir(dir: &Path, notes: &mut Notes) -> std::io::Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file() {
            files.push(name);
        } else if files::parse(&name) != files::File::Other {
            notes.missing(format!(
                "{}: not a regular file (a symlink, FIFO or directory): left out",
                dir.join(&name).display()
            ));
        }
    }
    files.sort();
    Ok(files)
}

/// `<table>-NNNNNN.parquet` files that are readable, in order. A segment
/// closed after the manifest's last rewrite (a recorder killed in between)
/// is found by its name and used too. So are the parts of an interrupted
/// recording's open segment (`<table>-NNNNNN.part-KKKKKK.parquet`,
/// complete Parquet files), unless their segment exists (killed while
/// removing them). A listed segment that is missing, and a damaged one,
/// are left out and named.
pub fn closed(
    dir: &Path,
    files: &[String],
    table: &Table,
    manifest: &Manifest,
    notes: &mut Notes,
) -> Vec<PathBuf> {
    for name in table.listed.iter().filter(|n| !files.contains(n)) {
        notes.missing(format!(
            "{}: listed in the manifest but missing: its {} are left out",
            dir.join(name).display(),
            table.name
        ));
    }
    let mut out = Vec::new();
    let (mut parts, mut rows) = (0, 0u64);
    for name in files {
        let segment = match part_of(name, table.name) {
            Some(segment) if files.contains(&segment) => continue,
            Some(_) => {
                parts += 1;
                true
            }
            None => is_segment(name, table.name),
        };
        if !segment {
            continue;
        }
        let path = dir.join(name);
        match parquet_check::check(&path) {
            Ok(n) => {
                rows += n;
                out.push(path);
            }
            Err(why) => notes.missing(format!(
                "{}: damaged ({why}): its {} are left out",
                path.display(),
                table.name
            )),
        }
    }
    if parts > 0 {
        notes.warn(format!(
            "{}: the open {} segment of an interrupted recording: {parts} part(s) read",
            dir.display(),
            table.name
        ));
    }
    compare_counts(dir, table, manifest, rows, notes);
    out
}

/// A recording that ended cleanly and deleted no segment holds exactly
/// the rows its manifest counts; fewer means some are missing.
fn compare_counts(dir: &Path, table: &Table, manifest: &Manifest, rows: u64, notes: &mut Notes) {
    if !manifest.ended_cleanly || !manifest.deleted_segments.is_empty() || rows == table.rows {
        return;
    }
    let text = format!(
        "{}: its {} segments hold {rows} rows, the manifest counts {}",
        dir.display(),
        table.name,
        table.rows
    );
    if rows < table.rows {
        notes.missing(format!("{text}: {} are missing", table.rows - rows));
    } else {
        notes.warn(text);
    }
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

pub fn is_legacy_open(file: &str, table: &str) -> bool {
    matches!(files::parse(file), files::File::LegacyOpenSegment { table: t, .. } if t == table)
}
