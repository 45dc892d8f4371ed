//! `--max-bytes` counts every byte the recording puts on disk, not only the
//! event segments: the nftrace segments, ruleset snapshots, side tables and
//! manifest, and the copy a segment's merge writes next to its parts
//! before removing them. The event segments are counted exactly as they
//! are written; the other files are measured from the directory at most
//! every [`MEASURE_EVERY`] (they grow slowly, from other threads).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::segments::SegmentWriter;

pub const MEASURE_EVERY: Duration = Duration::from_millis(250);

pub struct Quota {
    dir: PathBuf,
    /// Bytes of files that are not event segments, at the last measure.
    other: u64,
    measured: Option<Instant>,
}

impl Quota {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            other: 0,
            measured: None,
        }
    }

    /// Bytes the recording holds, plus the merge copy of the open segment
    /// it will write.
    pub fn used(&mut self, events: &SegmentWriter) -> u64 {
        if self.measured.is_none_or(|t| t.elapsed() >= MEASURE_EVERY) {
            self.other = other_bytes(&self.dir);
            self.measured = Some(Instant::now());
        }
        self.other + events.bytes_on_disk() + events.open_bytes()
    }
}

/// Sizes of the directory's files that the events writer does not count.
/// The space reserve is not counted: it stands for the files the stop
/// writes, which come after the limit is checked.
fn other_bytes(dir: &Path) -> u64 {
    let prefix = format!("{}-", nft_schema::tables::names::EVENTS);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with(&prefix) && name != nft_schema::manifest::RESERVE_FILE
        })
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}
