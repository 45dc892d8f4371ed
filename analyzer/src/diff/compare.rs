//! The comparison itself: two profiles and the matched rules in, the
//! report's tables and its differences out. Tolerances decide what is noise:
//! two recordings of the same traffic never match to the nanosecond.

use std::collections::{BTreeMap, BTreeSet};

use super::profile::{quantile, FlowProfile, Profile, NO_VERDICT};
use super::report::{
    counts, us, Difference, DropRow, FlowVerdicts, Kind, LatencyRow, PathRow, Report, Side,
};
use super::rules::RulePair;

/// What counts as a difference.
#[derive(Debug, Clone, Copy)]
pub struct Tolerances {
    /// A share (of a flow's traces, of a rule's verdicts) must move by more
    /// than this (0..1) to count.
    pub share: f64,
    /// A drop count must grow by more than this fraction to count (a drop
    /// the base never had always counts).
    pub count: f64,
    /// A p50 or p99 must move by more than this fraction of the base value...
    pub latency: f64,
    /// ...and by more than this many ns.
    pub latency_floor_ns: u64,
    /// Latency is compared only with at least this many samples on each side.
    pub min_samples: usize,
    /// A path's or a drop's count must change by at least this many traces:
    /// two runs of the same traffic differ by a packet or so (a handshake
    /// packet still in flight at the end, a neighbour already resolved).
    pub min_count: u64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Self {
            share: 0.10,
            count: 0.20,
            latency: 0.50,
            latency_floor_ns: 5_000,
            min_samples: 20,
            min_count: 2,
        }
    }
}

pub fn compare(
    base_side: Side,
    new_side: Side,
    base: &mut Profile,
    new: &mut Profile,
    rules: Vec<RulePair>,
    tol: &Tolerances,
) -> Report {
    let mut diffs = Vec::new();
    let empty = FlowProfile::default();
    let flows: BTreeSet<String> = base.flows.keys().chain(new.flows.keys()).cloned().collect();
    let global_trust = trust_of_sides(&base_side, &new_side);

    let mut paths = Vec::new();
    let mut flow_verdicts = Vec::new();
    for flow in &flows {
        let b = base.flows.get(flow).unwrap_or(&empty);
        let n = new.flows.get(flow).unwrap_or(&empty);
        let trust = flow_trust(b, n);
        // Paths.
        let sigs: BTreeSet<&String> = b.paths.keys().chain(n.paths.keys()).collect();
        for sig in sigs {
            let (bc, bex) = b.paths.get(sig).map_or((0, None), |(c, e)| (*c, Some(*e)));
            let (nc, nex) = n.paths.get(sig).map_or((0, None), |(c, e)| (*c, Some(*e)));
            let (bs, ns) = (share(bc, b.traces), share(nc, n.traces));
            paths.push(PathRow {
                flow: flow.clone(),
                path: sig.clone(),
                base: bc,
                new: nc,
                base_share: bs,
                new_share: ns,
                base_example: bex,
                new_example: nex,
            });
            // In-flight traces are left out of paths: their path is not
            // over. A change they could account for (the side with fewer
            // had that many still in flight) is not certain.
            let in_flight = if bc < nc { b.in_flight } else { n.in_flight };
            let certain = bc.abs_diff(nc).saturating_sub(in_flight);
            let kind = if certain < tol.min_count {
                None
            } else if bc == 0 && (b.traces == 0 || ns > tol.share) {
                Some(Kind::NewPath)
            } else if nc == 0 && (n.traces == 0 || bs > tol.share) {
                Some(Kind::VanishedPath)
            } else if bc > 0 && nc > 0 && (ns - bs).abs() > tol.share {
                Some(Kind::PathShare)
            } else {
                None
            };
            if let Some(kind) = kind {
                diffs.push(Difference {
                    kind,
                    subject: format!("{flow}: {sig}"),
                    change: format!(
                        "{bc} → {nc} traces ({:.0}% → {:.0}% of the flow)",
                        bs * 100.0,
                        ns * 100.0
                    ),
                    weight: bc.abs_diff(nc).max(1) as f64,
                    base_example: bex,
                    new_example: nex,
                    trust: trust.clone(),
                });
            }
        }
        // Final verdicts, for flows both sides saw complete. Traces no rule
        // decided (`none`) are left out of the shares: whether a packet
        // met the firewall at all is the paths' business.
        flow_verdicts.push(FlowVerdicts {
            flow: flow.clone(),
            base: b.verdicts.clone(),
            new: n.verdicts.clone(),
        });
        let decided = |f: &FlowProfile| {
            let mut v = f.verdicts.clone();
            v.remove(NO_VERDICT);
            v
        };
        let (bv, nv) = (decided(b), decided(n));
        if b.traces > 0 && n.traces > 0 && (!bv.is_empty() || !nv.is_empty()) {
            let decided_diff = bv.values().sum::<u64>().abs_diff(nv.values().sum());
            let changed = if bv.is_empty() || nv.is_empty() {
                (decided_diff >= tol.min_count)
                    .then(|| format!("{} → {}", or_none(&b.verdicts), or_none(&n.verdicts)))
            } else {
                shares_changed(&bv, &nv, tol)
            };
            if let Some(change) = changed {
                diffs.push(Difference {
                    kind: Kind::VerdictChange,
                    subject: format!("{flow}: final verdict"),
                    change,
                    weight: b.traces.max(n.traces) as f64,
                    base_example: b.paths.values().next().map(|p| p.1),
                    new_example: n.paths.values().next().map(|p| p.1),
                    trust: trust.clone(),
                });
            }
        }
    }

    // Rules.
    for p in &rules {
        let (bt, nt): (u64, u64) = (p.base.values().sum(), p.new.values().sum());
        let change = match (&p.base_text, &p.new_text) {
            (Some(_), Some(_)) if bt > 0 && nt > 0 => {
                shares_changed(&p.base, &p.new, tol).map(|c| (Kind::VerdictChange, c))
            }
            (Some(_), Some(_)) => None,
            (None, Some(_)) if nt > 0 => {
                Some((Kind::RuleChange, format!("added: {}", counts(&p.new))))
            }
            (Some(_), None) if bt > 0 => Some((
                Kind::RuleChange,
                format!("removed: had {}", counts(&p.base)),
            )),
            _ => None,
        };
        if let Some((kind, change)) = change {
            diffs.push(Difference {
                kind,
                subject: p.subject(),
                change,
                weight: bt.max(nt) as f64,
                base_example: None,
                new_example: None,
                trust: global_trust.clone(),
            });
        }
    }

    // Drops.
    let keys: BTreeSet<&(String, String)> = base.drops.keys().chain(new.drops.keys()).collect();
    let mut drops = Vec::new();
    for key in keys {
        let (bc, bex) = base
            .drops
            .get(key)
            .map_or((0, None), |(c, e)| (*c, Some(*e)));
        let (nc, nex) = new
            .drops
            .get(key)
            .map_or((0, None), |(c, e)| (*c, Some(*e)));
        drops.push(DropRow {
            reason: key.0.clone(),
            function: key.1.clone(),
            base: bc,
            new: nc,
        });
        if nc >= bc + tol.min_count.max(1) && (bc == 0 || nc as f64 > bc as f64 * (1.0 + tol.count))
        {
            diffs.push(Difference {
                kind: Kind::NewDrop,
                subject: format!("{} at {}", key.0, key.1),
                change: format!("{bc} → {nc} drops"),
                weight: (nc - bc) as f64,
                base_example: bex,
                new_example: nex,
                trust: global_trust.clone(),
            });
        }
    }
    drops.sort_by(|a, b| (b.base.max(b.new), &a.reason).cmp(&(a.base.max(a.new), &b.reason)));

    // Latency: hops, then flows end to end.
    let mut latency = Vec::new();
    let hop_keys: BTreeSet<(String, String)> =
        base.hops.keys().chain(new.hops.keys()).cloned().collect();
    for key in hop_keys {
        let subject = format!("{} > {}", key.0, key.1);
        let mut b = base.hops.remove(&key).unwrap_or_default();
        let mut n = new.hops.remove(&key).unwrap_or_default();
        let row = latency_row("hop", subject, &mut b, &mut n, tol);
        push_latency(&mut diffs, &row, global_trust.clone());
        latency.push(row);
    }
    for flow in &flows {
        let mut b = base
            .flows
            .get_mut(flow)
            .map(|f| std::mem::take(&mut f.durations))
            .unwrap_or_default();
        let mut n = new
            .flows
            .get_mut(flow)
            .map(|f| std::mem::take(&mut f.durations))
            .unwrap_or_default();
        let row = latency_row("end-to-end", flow.clone(), &mut b, &mut n, tol);
        push_latency(&mut diffs, &row, global_trust.clone());
        latency.push(row);
    }

    diffs.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then(a.kind.cmp(&b.kind))
            .then(a.subject.cmp(&b.subject))
    });
    Report {
        base: base_side,
        new: new_side,
        differences: diffs,
        paths,
        flow_verdicts,
        rules,
        drops,
        latency,
    }
}

fn or_none(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        NO_VERDICT.to_owned()
    } else {
        counts(m)
    }
}

fn share(count: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}

/// `drop 100% → accept 100%` when some category's share moved more than
/// `tol`.
fn shares_changed(
    b: &BTreeMap<String, u64>,
    n: &BTreeMap<String, u64>,
    tol: &Tolerances,
) -> Option<String> {
    let (bt, nt) = (b.values().sum::<u64>(), n.values().sum::<u64>());
    let keys: BTreeSet<&String> = b.keys().chain(n.keys()).collect();
    let moved = keys.iter().any(|k| {
        let (bc, nc) = (
            b.get(*k).copied().unwrap_or(0),
            n.get(*k).copied().unwrap_or(0),
        );
        (share(nc, nt) - share(bc, bt)).abs() > tol.share && bc.abs_diff(nc) >= tol.min_count
    });
    let text = |m: &BTreeMap<String, u64>, t: u64| {
        m.iter()
            .map(|(k, v)| format!("{k} {:.0}%", share(*v, t) * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    };
    moved.then(|| format!("{} → {} ({bt} → {nt})", text(b, bt), text(n, nt)))
}

fn latency_row<T: Ord + Copy + Into<u64>>(
    scope: &'static str,
    subject: String,
    b: &mut [T],
    n: &mut [T],
    tol: &Tolerances,
) -> LatencyRow {
    let (bp50, bp99) = (quantile(b, 0.5), quantile(b, 0.99));
    let (np50, np99) = (quantile(n, 0.5), quantile(n, 0.99));
    let enough = b.len() >= tol.min_samples && n.len() >= tol.min_samples;
    let moved = |bv: Option<u64>, nv: Option<u64>| match (bv, nv) {
        (Some(bv), Some(nv)) => {
            let shift = bv.abs_diff(nv);
            shift > tol.latency_floor_ns && shift as f64 > bv as f64 * tol.latency
        }
        _ => false,
    };
    LatencyRow {
        scope,
        subject,
        base_samples: b.len(),
        new_samples: n.len(),
        base_p50_ns: bp50,
        new_p50_ns: np50,
        base_p99_ns: bp99,
        new_p99_ns: np99,
        flagged: enough && (moved(bp50, np50) || moved(bp99, np99)),
    }
}

fn push_latency(diffs: &mut Vec<Difference>, row: &LatencyRow, trust: Option<String>) {
    if !row.flagged {
        return;
    }
    let rel = |b: Option<u64>, n: Option<u64>| match (b, n) {
        (Some(b), Some(n)) if b > 0 => n.abs_diff(b) as f64 / b as f64,
        _ => 0.0,
    };
    let moved = rel(row.base_p50_ns, row.new_p50_ns).max(rel(row.base_p99_ns, row.new_p99_ns));
    diffs.push(Difference {
        kind: Kind::Latency,
        subject: format!("{} {}", row.scope, row.subject),
        change: format!(
            "p50 {} → {} µs, p99 {} → {} µs ({} → {} samples)",
            us(row.base_p50_ns),
            us(row.new_p50_ns),
            us(row.base_p99_ns),
            us(row.new_p99_ns),
            row.base_samples,
            row.new_samples
        ),
        weight: row.base_samples.min(row.new_samples) as f64 * moved.min(10.0),
        base_example: None,
        new_example: None,
        trust,
    });
}

/// What in a flow's traces may explain a difference in it.
fn flow_trust(b: &FlowProfile, n: &FlowProfile) -> Option<String> {
    let part = |label: &str, f: &FlowProfile| {
        let mut s = Vec::new();
        if f.incomplete_due_to_loss > 0 {
            s.push(format!(
                "{} incomplete due to loss",
                f.incomplete_due_to_loss
            ));
        }
        if f.in_flight > 0 {
            s.push(format!("{} in flight", f.in_flight));
        }
        (!s.is_empty()).then(|| format!("{label}: {}", s.join(", ")))
    };
    let parts: Vec<String> = [part("base", b), part("new", n)]
        .into_iter()
        .flatten()
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Losses of either side, for differences not tied to one flow.
fn trust_of_sides(b: &Side, n: &Side) -> Option<String> {
    let part = |label: &str, s: &Side| {
        let mut v = Vec::new();
        if s.lost_events > 0 {
            v.push(format!("{} events lost", s.lost_events));
        }
        if !s.ended_cleanly {
            v.push("interrupted".to_owned());
        }
        (!v.is_empty()).then(|| format!("{label}: {}", v.join(", ")))
    };
    let parts: Vec<String> = [part("base", b), part("new", n)]
        .into_iter()
        .flatten()
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}
