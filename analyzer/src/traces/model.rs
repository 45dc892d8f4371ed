//! What a trace is, as `traces --format json` writes it: the seed's fields
//! (`session_id`, `mode`, `traces[]` with `skb_addr`, `first_seen_ns`,
//! `duration_ns`, `functions_path`, `nft_events[]`, `packet_info`, `stats`),
//! plus ours (recording, how the trace ended, drop reason and location,
//! flags, rule text, duplicates removed). docs/analyzer.md shows an example.

use std::sync::Arc;

use serde::Serialize;

/// One packet's life at one skb address.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Trace {
    /// `0x`-prefixed hex address of the `struct sk_buff`.
    pub skb_addr: String,
    /// Kernel CLOCK_MONOTONIC ns of the first event.
    pub first_seen_ns: u64,
    pub duration_ns: u64,
    /// Functions and tracepoints, in order (nft events are in `nft_events`).
    /// Shared names: a trace does not allocate per hop.
    pub functions_path: Vec<Arc<str>>,
    /// When each entry of `functions_path` ran, in ns after
    /// `first_seen_ns` (for hop latencies; not written out).
    #[serde(skip)]
    pub path_offsets_ns: Vec<u64>,
    pub nft_events: Vec<NftEvent>,
    pub packet_info: PacketInfo,
    pub stats: TraceStats,
    // --- ours ---
    pub recording: String,
    /// 1-based number of the trace in the output order of its recording.
    pub trace_id: u64,
    /// How the trace ended: `dropped` (skb:kfree_skb), `consumed`
    /// (skb:consume_skb), `freed` (a release function), `in_flight` (still
    /// alive within `--timeout` of the recording's end), or `idle` (no
    /// event for `--timeout`: complete, its end not seen).
    pub end: &'static str,
    pub drop_reason: Option<String>,
    /// Kernel location that dropped it (`symbol+0xoff`).
    pub drop_location: Option<String>,
    /// `in_flight`, `incomplete_due_to_loss`.
    pub flags: Vec<&'static str>,
    /// Duplicate rule verdicts removed from this trace (`--dedup`).
    pub duplicates_removed: u64,
    /// CPUs the packet was seen on, in order of first appearance.
    pub cpus: Vec<u32>,
}

/// Names are shared `Arc<str>`s (from the recording's dictionaries), so an
/// event costs no string allocation.
///
/// A chain entry, rule verdict, chain exit or policy, from the eBPF nft
/// hooks or from the kernel's nftrace messages.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NftEvent {
    /// `chain_entry`, `rule_eval`, `chain_exit` (eBPF); `rule_eval`,
    /// `policy`, `return` (nftrace).
    #[serde(rename = "type")]
    pub kind: Arc<str>,
    pub family: Option<Arc<str>>,
    pub table: Option<Arc<str>>,
    pub chain: Option<Arc<str>>,
    pub hook: Option<Arc<str>>,
    /// Position of the rule in its chain, from 1.
    pub rule_seq: Option<u32>,
    pub rule_handle: Option<u64>,
    pub verdict: Option<Arc<str>>,
    /// Jump/goto target chain.
    pub target: Option<Arc<str>>,
    pub timestamp_ns: u64,
    // --- ours ---
    pub rule_text: Option<Arc<str>>,
    /// `ebpf` or `nftrace`.
    pub source: &'static str,
    /// The kernel's nftrace id (what `nft monitor trace` prints as `trace
    /// id`): nftrace events, and the eBPF rule verdicts, policies and
    /// returns.
    pub nftrace_id: Option<u32>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct PacketInfo {
    pub src_ip: Option<Arc<str>>,
    pub dst_ip: Option<Arc<str>>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, or the number.
    pub protocol: Option<Arc<str>>,
    pub ip_version: Option<u8>,
    pub length: u32,
    pub ip_id: Option<u16>,
    pub icmp_type: Option<u8>,
    pub ifindex: u32,
    pub netns: u32,
    pub mark: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TraceStats {
    pub total_functions: usize,
    pub total_rules_evaluated: usize,
    /// The last terminal nftables verdict (accept, drop, queue, stolen, or a
    /// chain policy); null when no rule decided.
    pub final_verdict: Option<String>,
}

/// Summary of a `traces` run, written after the traces.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Summary {
    pub traces: u64,
    /// Traces written (after filters and `--limit`).
    pub traces_written: u64,
    pub events: u64,
    pub duplicates_removed: u64,
    pub in_flight: u64,
    pub incomplete_due_to_loss: u64,
    pub nftrace_attached: u64,
    /// nftrace messages for which no skb event matched (filtered out, or
    /// lost).
    pub nftrace_unmatched: u64,
    /// True when any recording lost events or ended uncleanly.
    pub partial: bool,
    pub warnings: Vec<String>,
}

pub fn protocol_name(l4: u8) -> Arc<str> {
    match l4 {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        n => n.to_string().into(),
    }
}
