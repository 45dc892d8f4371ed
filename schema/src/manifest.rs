//! `recording.json`: what a recording is, how it was made, and whether it
//! can be trusted (losses, clean end). Written by the recorder, read first
//! by the analyzer.

use std::collections::BTreeMap;
use std::prelude::rust_2021::*;

use serde::{Deserialize, Serialize};

/// File name of the manifest inside a recording directory.
pub const MANIFEST_FILE: &str = "recording.json";

/// Space the recorder holds while recording and releases at the stop, so
/// the stop's own files fit on a disk that filled up. Left behind only by a
/// killed recorder; readers ignore it.
pub const RESERVE_FILE: &str = "space-reserve.tmp";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// [`crate::SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// `nft-recorder` version.
    pub tool_version: String,
    pub host: String,
    pub kernel_release: String,
    /// Add to an event's `ts_ns` (kernel CLOCK_MONOTONIC) to get Unix time in
    /// ns.
    pub monotonic_to_unix_ns: i64,
    /// Kernel CLOCK_MONOTONIC ns at start and stop.
    pub started_ns: u64,
    pub stopped_ns: Option<u64>,
    pub command_line: Vec<String>,
    /// The backend that was used for functions (`fentry`, `kprobe`), or
    /// `tracepoint` when no function is traced.
    pub backend: String,
    /// `nft`, `full` or `multi` (`record --mode`); empty in recordings made
    /// before modes existed.
    #[serde(default)]
    pub mode: String,
    /// Whether skbs that matched the filters were followed until freed
    /// (`record --track-skbs`).
    #[serde(default)]
    pub skb_tracking: bool,
    /// Kernel functions asked for, attached, and not (the failures, with
    /// their reasons, are in `attach_plan`).
    #[serde(default)]
    pub functions_requested: u64,
    #[serde(default)]
    pub functions_attached: u64,
    /// Seconds spent attaching every probe, and detaching them at the end.
    #[serde(default)]
    pub attach_seconds: f64,
    #[serde(default)]
    pub detach_seconds: Option<f64>,
    /// `record --stack`: distinct kernel stacks in the `stacks` table
    /// (None: stacks were not taken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacks: Option<u64>,
    /// Network namespaces the recording is limited to (empty: all).
    pub netns: Vec<NetnsRef>,
    /// The packet filters as given on the command line (flag -> value).
    pub filters: BTreeMap<String, String>,
    /// Every probe asked for, and what became of it.
    pub attach_plan: Vec<AttachResult>,
    /// Closed event segment files, in order.
    pub segments: Vec<String>,
    /// Events written to segments (including segments `--ring` deleted).
    pub events: u64,
    /// Segments `--ring` deleted to stay under `--max-bytes`, oldest first.
    pub deleted_segments: Vec<String>,
    /// Closed `nftrace` segment files, in order.
    pub nftrace_segments: Vec<String>,
    /// nftrace messages written.
    pub nftrace_events: u64,
    /// Ruleset snapshots (`nft -j -a list ruleset`), per namespace, at start
    /// and stop.
    pub rulesets: Vec<String>,
    /// Total events lost (details in the `losses` table).
    pub lost_events: u64,
    /// How the recording ended: `running` until it does, then `duration`,
    /// `signal`, `max-bytes`, or `error: ...`. A manifest still saying
    /// `running` was left by a recorder that was killed.
    pub end: String,
    /// True once the recorder has flushed everything and detached.
    pub ended_cleanly: bool,
}

/// A network namespace the recording covers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NetnsRef {
    /// As given (`NAME` or path).
    pub name: String,
    pub inode: u32,
}

/// One probe of the attach plan.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AttachResult {
    pub probe: String,
    pub attached: bool,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// Kernel functions: the backend that attached it (`fentry`, `kprobe`);
    /// with `--backend auto`, functions fentry cannot take (module
    /// functions) get a kprobe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

impl Manifest {
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }
}
