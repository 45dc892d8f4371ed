//! Arrow schemas of the recording's tables, one function per table.

use std::prelude::rust_2021::*;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::columns::{
    chains, drop_reasons, events, interfaces, losses, nftrace, probes, recordings, rules, traces,
    RECORDING,
};

/// Names of the tables (and the file stems of their Parquet files).
pub mod names {
    pub const EVENTS: &str = "events";
    pub const PROBES: &str = "probes";
    pub const DROP_REASONS: &str = "drop_reasons";
    pub const LOSSES: &str = "losses";
    pub const NFTRACE: &str = "nftrace";
    pub const INTERFACES: &str = "interfaces";
    pub const STACKS: &str = "stacks";
    /// Tables the analyzer derives from the manifest and ruleset snapshots.
    pub const RECORDINGS: &str = "recordings";
    pub const CHAINS: &str = "chains";
    pub const RULES: &str = "rules";
    /// `nft-analyzer traces --format parquet`.
    pub const TRACES: &str = "traces";
}

/// Values the recorder writes into `probes.kind`, `losses.reason` and the
/// manifest's `end`: spelled here once, for the recorder and the analyzer.
pub mod values {
    /// `probes.kind`: a tracepoint, one kernel function, the bucket every
    /// function shares for losses, an eBPF nft hook.
    pub const KIND_TRACEPOINT: &str = "tracepoint";
    pub const KIND_FUNCTION: &str = "function";
    pub const KIND_FUNCTIONS: &str = "functions";
    pub const KIND_NFT: &str = "nft";

    /// `losses.reason` values the recorder's userspace adds (the eBPF
    /// counters' reasons are named in the recorder's drain module).
    pub const LOSS_NFTRACE_OVERRUN: &str = "nftrace_overrun";
    pub const LOSS_MAX_BYTES: &str = "max_bytes";

    /// Manifest `end`: still recording (or killed), then how it ended.
    /// `error: <reason>` ends a recording that failed.
    pub const END_RUNNING: &str = "running";
    pub const END_DURATION: &str = "duration";
    pub const END_SIGNAL: &str = "signal";
    pub const END_MAX_BYTES: &str = "max-bytes";
    /// `--live` output was closed by its reader (`| head`).
    pub const END_STDOUT_CLOSED: &str = "stdout-closed";
    /// Stopped by a caller of the session library (the API's DELETE).
    pub const END_STOPPED: &str = "stopped";
    pub const END_ERROR_PREFIX: &str = "error: ";
}

/// The recorder's temporary nftables table (family `inet`) that switches
/// nftrace on. Its own trace messages are recorded but are not the user's
/// rules: the analyzer's traces and `verdicts` view leave them out.
pub const RECORDER_NFT_TABLE: &str = "nft_tracer";

/// File name label of a traced namespace's ruleset snapshots
/// (`ruleset-<label>-start.json`): the name as given to `--netns`, with
/// anything but ASCII letters, digits and `-` replaced by `_`; `self` for the
/// recorder's own namespace.
pub fn ruleset_label(netns_name: Option<&str>) -> String {
    match netns_name {
        None => "self".into(),
        Some(name) => name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
    }
}

fn cached(cell: &'static OnceLock<SchemaRef>, build: fn() -> Schema) -> SchemaRef {
    cell.get_or_init(|| Arc::new(build())).clone()
}

/// A dictionary-encoded string: names repeat, so each is stored once per
/// page.
fn dict(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        nullable,
    )
}

/// `events`: one row per skb seen at one probe. Flat columns, no bags.
pub fn events_schema() -> SchemaRef {
    static CELL: OnceLock<SchemaRef> = OnceLock::new();
    cached(&CELL, || {
        use DataType::*;
        Schema::new(vec![
            Field::new(events::TS_NS, UInt64, false),
            Field::new(events::SKB, UInt64, false),
            Field::new(events::PROBE_ID, UInt32, false),
            dict(events::PROBE, false),
            dict(events::KIND, false),
            Field::new(events::CPU, UInt32, false),
            Field::new(events::NETNS, UInt32, false),
            Field::new(events::IFINDEX, UInt32, false),
            Field::new(events::MARK, UInt32, false),
            Field::new(events::LEN, UInt32, false),
            Field::new(events::PROTOCOL, UInt16, false),
            Field::new(events::IP_VERSION, UInt8, true),
            dict(events::SADDR, true),
            dict(events::DADDR, true),
            Field::new(events::L4_PROTO, UInt8, true),
            Field::new(events::SPORT, UInt16, true),
            Field::new(events::DPORT, UInt16, true),
            Field::new(events::TCP_FLAGS, UInt8, true),
            Field::new(events::ICMP_TYPE, UInt8, true),
            Field::new(events::ICMP_CODE, UInt8, true),
            Field::new(events::IP_ID, UInt16, true),
            dict(events::DROP_REASON, true),
            Field::new(events::LOCATION, UInt64, true),
            dict(events::LOCATION_SYM, true),
            dict(events::NFT_EVENT, true),
            dict(events::NFT_FAMILY, true),
            dict(events::NFT_TABLE, true),
            dict(events::NFT_CHAIN, true),
            dict(events::NFT_HOOK, true),
            Field::new(events::NFT_PRIORITY, Int32, true),
            Field::new(events::NFT_RULE_HANDLE, UInt64, true),
            Field::new(events::NFT_RULE_SEQ, UInt32, true),
            dict(events::NFT_VERDICT, true),
            dict(events::NFT_TARGET, true),
            Field::new(events::NFT_TRACE_ID, UInt32, true),
            Field::new(events::STACK_ID, UInt32, true),
        ])
    })
}

/// `probes`: the dimension table behind `events.probe_id`.
pub fn probes_schema() -> SchemaRef {
    static CELL: OnceLock<SchemaRef> = OnceLock::new();
    cached(&CELL, || {
        Schema::new(vec![
            Field::new(probes::PROBE_ID, DataType::UInt32, false),
            Field::new(probes::KIND, DataType::Utf8, false),
            Field::new(probes::NAME, DataType::Utf8, false),
            Field::new(probes::SKB_ARG, DataType::UInt8, false),
        ])
    })
}

/// `drop_reasons`: the recording kernel's drop reason names.
pub fn drop_reasons_schema() -> SchemaRef {
    static CELL: OnceLock<SchemaRef> = OnceLock::new();
    cached(&CELL, || {
        Schema::new(vec![
            Field::new(drop_reasons::CODE, DataType::UInt32, false),
            Field::new(drop_reasons::NAME, DataType::Utf8, false),
        ])
    })
}

/// `nftrace`: the kernel's own per-rule trace messages.
pub fn nftrace_schema() -> SchemaRef {
    static CELL: OnceLock<SchemaRef> = OnceLock::new();
    cached(&CELL, || {
        use DataType::*;
        Schema::new(vec![
            Field::new(nftrace::TS_NS, UInt64, false),
            Field::new(nftrace::NETNS, UInt32, false),
            Field::new(nftrace::TRACE_ID, UInt32, false),
            dict(nftrace::TYPE, false),
            dict(nftrace::FAMILY, false),
            dict(nftrace::TABLE, false),
            dict(nftrace::CHAIN, false),
            Field::new(nftrace::RULE_HANDLE, UInt64, true),
            dict(nftrace::VERDICT, true),
            dict(nftrace::TARGET, true),
            dict(nftrace::POLICY, true),
            Field::new(nftrace::IIF, UInt32, true),
            Field::new(nftrace::OIF, UInt32, true),
            Field::new(nftrace::MARK, UInt32, true),
            Field::new(nftrace::IP_VERSION, UInt8, true),
            dict(nftrace::SADDR, true),
            dict(nftrace::DADDR, true),
            Field::new(nftrace::L4_PROTO, UInt8, true),
            Field::new(nftrace::SPORT, UInt16, true),
            Field::new(nftrace::DPORT, UInt16, true),
            Field::new(nftrace::TCP_FLAGS, UInt8, true),
            Field::new(nftrace::ICMP_TYPE, UInt8, true),
            Field::new(nftrace::ICMP_CODE, UInt8, true),
            Field::new(nftrace::IP_ID, UInt16, true),
        ])
    })
}

/// `interfaces`: interface names per namespace.
pub fn interfaces_schema() -> SchemaRef {
    static CELL: OnceLock<SchemaRef> = OnceLock::new();
    cached(&CELL, || {
        Schema::new(vec![
            Field::new(interfaces::NETNS, DataType::UInt32, false),
            Field::new(interfaces::IFINDEX, DataType::UInt32, false),
            Field::new(interfaces::NAME, DataType::Utf8, false),
            Field::new(interfaces::SEEN, DataType::Utf8, false),
        ])
    })
}

/// `losses`: every event that could not be delivered, counted.
/// `stacks`: the kernel stacks behind `events.stack_id` (`record --stack`).
pub fn stacks_schema() -> SchemaRef {
    static CELL: OnceLock<SchemaRef> = OnceLock::new();
    cached(&CELL, || {
        use crate::columns::stacks;
        Schema::new(vec![
            Field::new(stacks::STACK_ID, DataType::UInt32, false),
            Field::new(stacks::FRAME, DataType::UInt16, false),
            Field::new(stacks::ADDRESS, DataType::UInt64, false),
            Field::new(stacks::SYMBOL, DataType::Utf8, true),
        ])
    })
}

pub fn losses_schema() -> SchemaRef {
    static CELL: OnceLock<SchemaRef> = OnceLock::new();
    cached(&CELL, || {
        Schema::new(vec![
            Field::new(losses::WINDOW_START_NS, DataType::UInt64, false),
            Field::new(losses::WINDOW_END_NS, DataType::UInt64, false),
            Field::new(losses::CPU, DataType::UInt32, false),
            Field::new(losses::PROBE_ID, DataType::UInt32, false),
            Field::new(losses::REASON, DataType::Utf8, false),
            Field::new(losses::COUNT, DataType::UInt64, false),
        ])
    })
}

/// `recordings` (analyzer): one row per opened recording.
pub fn recordings_schema() -> SchemaRef {
    static CELL: OnceLock<SchemaRef> = OnceLock::new();
    cached(&CELL, || {
        use DataType::*;
        Schema::new(vec![
            Field::new(RECORDING, Utf8, false),
            Field::new(recordings::DIR, Utf8, false),
            Field::new(recordings::SCHEMA_VERSION, UInt32, false),
            Field::new(recordings::TOOL_VERSION, Utf8, false),
            Field::new(recordings::HOST, Utf8, false),
            Field::new(recordings::KERNEL_RELEASE, Utf8, false),
            Field::new(recordings::BACKEND, Utf8, false),
            Field::new(recordings::STARTED_NS, UInt64, false),
            Field::new(recordings::STOPPED_NS, UInt64, true),
            Field::new(recordings::MONOTONIC_TO_UNIX_NS, Int64, false),
            Field::new(recordings::EVENTS, UInt64, false),
            Field::new(recordings::NFTRACE_EVENTS, UInt64, false),
            Field::new(recordings::LOST_EVENTS, UInt64, false),
            Field::new(recordings::END, Utf8, false),
            Field::new(recordings::ENDED_CLEANLY, Boolean, false),
            Field::new(recordings::COMMAND_LINE, Utf8, false),
        ])
    })
}

/// `chains` (analyzer): the chains of the ruleset snapshots.
pub fn chains_schema() -> SchemaRef {
    static CELL: OnceLock<SchemaRef> = OnceLock::new();
    cached(&CELL, || {
        use DataType::*;
        Schema::new(vec![
            Field::new(RECORDING, Utf8, false),
            Field::new(chains::NETNS, UInt32, true),
            Field::new(chains::SNAPSHOT, Utf8, false),
            Field::new(chains::FAMILY, Utf8, false),
            Field::new(chains::TABLE, Utf8, false),
            Field::new(chains::CHAIN, Utf8, false),
            Field::new(chains::HANDLE, UInt64, false),
            Field::new(chains::TYPE, Utf8, true),
            Field::new(chains::HOOK, Utf8, true),
            Field::new(chains::PRIORITY, Int32, true),
            Field::new(chains::POLICY, Utf8, true),
        ])
    })
}

/// `rules` (analyzer): the rules of the ruleset snapshots, with their text.
pub fn rules_schema() -> SchemaRef {
    static CELL: OnceLock<SchemaRef> = OnceLock::new();
    cached(&CELL, || {
        use DataType::*;
        Schema::new(vec![
            Field::new(RECORDING, Utf8, false),
            Field::new(rules::NETNS, UInt32, true),
            Field::new(rules::SNAPSHOT, Utf8, false),
            Field::new(rules::FAMILY, Utf8, false),
            Field::new(rules::TABLE, Utf8, false),
            Field::new(rules::CHAIN, Utf8, false),
            Field::new(rules::HANDLE, UInt64, false),
            Field::new(rules::POSITION, UInt32, false),
            Field::new(rules::TEXT, Utf8, true),
            Field::new(rules::PACKETS, UInt64, true),
            Field::new(rules::BYTES, UInt64, true),
        ])
    })
}

/// `traces` (analyzer output): one row per per-packet trace.
pub fn traces_schema() -> SchemaRef {
    static CELL: OnceLock<SchemaRef> = OnceLock::new();
    cached(&CELL, || {
        use DataType::*;
        let list = |name: &str| {
            Field::new(
                name,
                List(std::sync::Arc::new(Field::new("item", Utf8, true))),
                false,
            )
        };
        Schema::new(vec![
            Field::new(RECORDING, Utf8, false),
            Field::new(traces::TRACE_ID, UInt64, false),
            Field::new(traces::SKB, UInt64, false),
            Field::new(traces::FIRST_SEEN_NS, UInt64, false),
            Field::new(traces::DURATION_NS, UInt64, false),
            Field::new(traces::END, Utf8, false),
            Field::new(traces::FINAL_VERDICT, Utf8, true),
            Field::new(traces::DROP_REASON, Utf8, true),
            Field::new(traces::DROP_LOCATION, Utf8, true),
            list(traces::FLAGS),
            list(traces::FUNCTIONS_PATH),
            list(traces::NFT_PATH),
            Field::new(traces::TOTAL_FUNCTIONS, UInt32, false),
            Field::new(traces::TOTAL_RULES_EVALUATED, UInt32, false),
            Field::new(traces::DUPLICATES_REMOVED, UInt64, false),
            Field::new(traces::L4_PROTO, Utf8, true),
            Field::new(traces::SADDR, Utf8, true),
            Field::new(traces::SPORT, UInt16, true),
            Field::new(traces::DADDR, Utf8, true),
            Field::new(traces::DPORT, UInt16, true),
            Field::new(traces::IP_ID, UInt16, true),
        ])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_are_unique_per_table() {
        for schema in [
            events_schema(),
            probes_schema(),
            drop_reasons_schema(),
            losses_schema(),
            nftrace_schema(),
            interfaces_schema(),
            recordings_schema(),
            chains_schema(),
            rules_schema(),
            traces_schema(),
        ] {
            let mut names: Vec<_> = schema.fields().iter().map(|f| f.name().clone()).collect();
            let n = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), n, "{schema:?}");
        }
    }
}
