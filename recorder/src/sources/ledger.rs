//! The ledger of one recording's attach outcomes. Every source reports each
//! probe it tried here, attached or not and why; the ledger alone builds the
//! manifest's attach plan, the `probes` table's rows and the probe names
//! events are shown with, so the three never disagree.

use std::collections::{BTreeMap, HashMap};

use nft_schema::manifest::AttachResult;

use crate::writer::dims::ProbeRow;

#[derive(Debug, Default)]
pub struct Ledger {
    plan: Vec<AttachResult>,
    rows: Vec<ProbeRow>,
    names: HashMap<u32, String>,
}

/// Failures that share one reason, for a log line or a status page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureGroup {
    /// The reason, with the probe's own name replaced by `*`.
    pub reason: String,
    pub probes: Vec<String>,
}

impl Ledger {
    /// A probe that attached and emits events under `row.probe_id`.
    pub fn attached(&mut self, row: ProbeRow, backend: Option<&str>) {
        self.plan.push(AttachResult {
            probe: row.name.clone(),
            attached: true,
            error: None,
            backend: backend.map(str::to_string),
        });
        self.names.insert(row.probe_id, row.name.clone());
        self.rows.push(row);
    }

    /// A source that started but has no probe id of its own (nftrace).
    pub fn started(&mut self, probe: &str) {
        self.plan.push(AttachResult {
            probe: probe.to_string(),
            attached: true,
            error: None,
            backend: None,
        });
    }

    /// A row of the probes table that is not an attachment (the loss
    /// bucket every function shares).
    pub fn bucket(&mut self, row: ProbeRow) {
        self.rows.push(row);
    }

    pub fn failed(&mut self, probe: &str, why: String) {
        self.plan.push(AttachResult {
            probe: probe.to_string(),
            attached: false,
            error: Some(why),
            backend: None,
        });
    }

    pub fn plan(&self) -> &[AttachResult] {
        &self.plan
    }

    pub fn rows(&self) -> &[ProbeRow] {
        &self.rows
    }

    pub fn names(&self) -> &HashMap<u32, String> {
        &self.names
    }

    pub fn attached_count(&self) -> usize {
        self.plan.iter().filter(|a| a.attached).count()
    }

    pub fn failed_count(&self) -> usize {
        self.plan.iter().filter(|a| !a.attached).count()
    }

    /// The first failure's reason (for "nothing could be attached").
    pub fn first_failure(&self) -> Option<&str> {
        self.plan.iter().find_map(|a| a.error.as_deref())
    }

    /// Failures grouped by reason, the largest group first.
    pub fn failure_groups(&self) -> Vec<FailureGroup> {
        group_failures(&self.plan)
    }
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
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!(
            "{} not attached ({reason}): {}{tail}",
            self.probes.len(),
            shown.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
