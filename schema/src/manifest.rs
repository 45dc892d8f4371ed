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

/// A `--filter` expression as the probes run it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FilterProgram {
    pub expression: String,
    /// One entry per layer libpcap compiled it for.
    pub layers: Vec<FilterLayer>,
    /// Layers it could not be compiled for (packets seen there never
    /// match), with libpcap's reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<FilterRefusal>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FilterLayer {
    /// `l2` (from the MAC header) or `l3` (from the network header).
    pub layer: String,
    /// Classic BPF instructions from libpcap.
    pub cbpf_insns: usize,
    /// eBPF instructions the probes run.
    pub ebpf_insns: usize,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FilterRefusal {
    pub layer: String,
    pub why: String,
}

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
    /// The backend that was used for functions (`fentry`, `kprobe`,
    /// `kprobe-multi`, `fentry+kprobe`), or `tracepoint` when no function is
    /// traced.
    pub backend: String,
    /// Why that backend: `auto`'s rule for the function count and what the
    /// backends it tried before said.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backend_reason: String,
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
    /// The packet filters as given on the command line (flag -> value;
    /// `filter` is the pcap-filter expression).
    pub filters: BTreeMap<String, String>,
    /// `--filter`: what libpcap compiled the expression to, per layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_program: Option<FilterProgram>,
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
    /// The attach failures grouped by their shared reason, largest first.
    pub fn failure_groups(&self) -> Vec<FailureGroup> {
        group_failures(&self.attach_plan)
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }
}

/// Failures that share one reason, for a log line or a status page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailureGroup {
    /// The reason, with the probe's own name replaced by `*`.
    pub reason: String,
    pub probes: Vec<String>,
}

/// The part of a failure's reason that many probes share: attach errors
/// name their program and target (`kprobe_skb_1 -> ip_rcv: ...`, also
/// nested: `fentry: ...; kprobe: ...`), and verifier logs end in statistics
/// (time, stack depth); targets become `*`, statistics and a leading
/// `program -> *: ` go.
fn shared_reason(probe: &str, why: &str) -> String {
    let mut out = String::with_capacity(why.len());
    let mut rest = why;
    while let Some(i) = rest.find(" -> ") {
        out.push_str(&rest[..i + 4]);
        let after = &rest[i + 4..];
        let end = after.find(':').unwrap_or(after.len());
        out.push('*');
        rest = &after[end..];
    }
    out.push_str(rest);
    let mut shared = String::with_capacity(out.len());
    for (i, part) in out.split("; ").enumerate() {
        if i > 0 {
            shared.push_str("; ");
        }
        shared.push_str(part.split(" Verifier output").next().unwrap_or(part));
    }
    let shared = match shared.split_once(" -> *: ") {
        Some((program, tail)) if !program.contains(' ') => tail.to_string(),
        _ => shared,
    };
    let short = probe.rsplit(':').next().unwrap_or(probe);
    if short.is_empty() {
        shared
    } else {
        shared.replace(short, "*")
    }
}

/// Groups failed probes by their shared reason.
pub fn group_failures(plan: &[AttachResult]) -> Vec<FailureGroup> {
    let mut by_reason: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in plan.iter().filter(|a| !a.attached) {
        let why = a.error.as_deref().unwrap_or("unknown");
        by_reason
            .entry(shared_reason(&a.probe, why))
            .or_default()
            .push(a.probe.clone());
    }
    let mut groups: Vec<FailureGroup> = by_reason
        .into_iter()
        .map(|(reason, probes)| FailureGroup { reason, probes })
        .collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.probes.len()));
    groups
}

impl FailureGroup {
    /// `43 not attached (kprobe -> *: ...): a, b, c and 40 more`, with the
    /// reason cut to `max_reason` characters.
    pub fn line(&self, max_reason: usize) -> String {
        let mut reason: String = self.reason.chars().take(max_reason).collect();
        if reason.len() < self.reason.len() {
            reason.push_str("...");
        }
        let shown: Vec<&str> = self.probes.iter().take(3).map(String::as_str).collect();
        let more = self.probes.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            std::format!(" and {more} more")
        } else {
            String::new()
        };
        std::format!(
            "{} not attached ({reason}): {}{tail}",
            self.probes.len(),
            shown.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn failed(probe: &str, why: &str) -> AttachResult {
        AttachResult {
            probe: probe.into(),
            attached: false,
            error: Some(why.into()),
            backend: None,
        }
    }

    #[test]
    fn one_cause_shared_by_many_probes_is_one_group() {
        let plan = vec![
            failed("ip_rcv", "kprobe -> ip_rcv: no kprobe PMU"),
            failed("tcp_v4_rcv", "kprobe -> tcp_v4_rcv: no kprobe PMU"),
            failed("ip_output", "fentry for ip_output refused"),
            failed(
                "__dev_queue_xmit",
                "no backend (fentry: fentry_skb_1 -> __dev_queue_xmit: EPERM.; kprobe: kprobe_skb_1 -> __dev_queue_xmit: no PMU)",
            ),
            failed(
                "dev_queue_xmit",
                "no backend (fentry: fentry_skb_1 -> dev_queue_xmit: EPERM.; kprobe: kprobe_skb_1 -> dev_queue_xmit: no PMU)",
            ),
            failed(
                "tp:qdisc_dequeue",
                "tp_a3_00 -> qdisc_dequeue: EACCES Verifier output (last lines): time 928 usec",
            ),
            failed(
                "tp:tcp_send_reset",
                "tp_a1_10 -> tcp_send_reset: EACCES Verifier output (last lines): time 472 usec",
            ),
            AttachResult {
                probe: "net:netif_receive_skb".into(),
                attached: true,
                error: None,
                backend: None,
            },
        ];
        let groups = group_failures(&plan);
        assert_eq!(groups.len(), 4);
        assert_eq!(groups[0].reason, "EACCES");
        assert_eq!(groups[0].probes, ["tp:qdisc_dequeue", "tp:tcp_send_reset"]);
        assert_eq!(
            groups[1].reason,
            "no backend (fentry: fentry_skb_1 -> *: EPERM.; kprobe: kprobe_skb_1 -> *: no PMU)"
        );
        assert_eq!(groups[1].probes, ["__dev_queue_xmit", "dev_queue_xmit"]);
        assert_eq!(groups[2].reason, "no kprobe PMU");
        assert_eq!(
            groups[2].line(100),
            "2 not attached (no kprobe PMU): ip_rcv, tcp_v4_rcv"
        );
        assert_eq!(groups[3].reason, "fentry for * refused");
    }
}
