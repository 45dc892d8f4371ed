//! `recording.json`: what a recording is, how it was made, and whether it
//! can be trusted (losses, clean end). Written by the recorder, read first
//! by the analyzer.

use std::prelude::rust_2021::*;

use serde::{Deserialize, Serialize};

/// File name of the manifest inside a recording directory.
pub const MANIFEST_FILE: &str = "recording.json";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
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
    pub command_line: Vec<String>,
    /// The backend that was used (`tracepoint`, `kprobe`, `fentry`, ...).
    pub backend: String,
    /// Every probe asked for, and what became of it.
    pub attach_plan: Vec<AttachResult>,
    /// Event segment files, in order.
    pub segments: Vec<String>,
    /// Total events lost (details in the `losses` table).
    pub lost_events: u64,
    /// False until the recorder has flushed everything and detached.
    pub ended_cleanly: bool,
}

/// One probe of the attach plan.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AttachResult {
    pub probe: String,
    pub attached: bool,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl Manifest {
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }
}
