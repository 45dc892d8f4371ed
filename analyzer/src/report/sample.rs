//! The traces the per-packet viewer holds whole: a bounded sample, since a
//! large recording has millions. It keeps the traces a person opens the page
//! for (every dropped one up to a cap, then the slowest), plus the first
//! ones, and says exactly what it kept.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::Serialize;

use super::collect::Limits;
use crate::traces::model::Trace;

/// A trace as `traces --format json` writes it, plus when each path entry
/// ran and its flow text.
#[derive(Debug, Serialize)]
pub struct SampledTrace {
    #[serde(flatten)]
    pub trace: Trace,
    /// ns after `first_seen_ns`, one per `functions_path` entry.
    pub path_offsets_ns: Vec<u64>,
    pub flow: String,
    /// Why it is in the sample: `dropped`, `first` or `slowest`.
    pub why: &'static str,
}

/// A heap entry ordered by duration (then arrival, so ties are stable).
struct BySlowness(u64, u64, SampledTrace);

impl PartialEq for BySlowness {
    fn eq(&self, o: &Self) -> bool {
        (self.0, self.1) == (o.0, o.1)
    }
}
impl Eq for BySlowness {}
impl PartialOrd for BySlowness {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for BySlowness {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Slower is greater; of equal ones the earlier is greater (kept).
        (self.0, Reverse(self.1)).cmp(&(o.0, Reverse(o.1)))
    }
}

pub struct Sampler {
    limits: Limits,
    dropped: Vec<SampledTrace>,
    first: Vec<SampledTrace>,
    /// Min-heap of the slowest others.
    slowest: BinaryHeap<Reverse<BySlowness>>,
    seen: u64,
    seen_dropped: u64,
}

/// What the sample holds, for the page to say.
#[derive(Debug, Serialize)]
pub struct SampleOut {
    pub traces: Vec<SampledTrace>,
    /// Every trace of the recording, and every dropped one.
    pub of_traces: u64,
    pub of_dropped: u64,
    pub dropped_kept: usize,
    pub first_kept: usize,
    pub slowest_kept: usize,
    pub note: String,
}

impl Sampler {
    pub fn new(limits: Limits) -> Self {
        Sampler {
            limits,
            dropped: Vec::new(),
            first: Vec::new(),
            slowest: BinaryHeap::new(),
            seen: 0,
            seen_dropped: 0,
        }
    }

    pub fn offer(&mut self, trace: Trace, flow: Option<&str>) {
        self.seen += 1;
        let dropped = trace.drop_reason.is_some();
        self.seen_dropped += dropped as u64;
        let take = |trace: Trace, why| SampledTrace {
            path_offsets_ns: trace.path_offsets_ns.clone(),
            flow: flow
                .map(str::to_owned)
                .unwrap_or_else(|| crate::traces::sinks::flow_text(&trace)),
            trace,
            why,
        };
        if dropped && self.dropped.len() < self.limits.dropped {
            self.dropped.push(take(trace, "dropped"));
        } else if self.first.len() < self.limits.first {
            self.first.push(take(trace, "first"));
        } else if self.limits.slowest > 0 && trace.end != "in_flight" {
            // An in-flight trace's duration is only how long it was seen.
            let d = trace.duration_ns;
            if self.slowest.len() < self.limits.slowest {
                self.slowest
                    .push(Reverse(BySlowness(d, self.seen, take(trace, "slowest"))));
            } else if self.slowest.peek().is_some_and(|Reverse(m)| d > m.0) {
                self.slowest.pop();
                self.slowest
                    .push(Reverse(BySlowness(d, self.seen, take(trace, "slowest"))));
            }
        }
    }

    pub fn finish(self) -> SampleOut {
        let (dropped_kept, first_kept) = (self.dropped.len(), self.first.len());
        let slowest_kept = self.slowest.len();
        let mut slowest: Vec<SampledTrace> =
            self.slowest.into_iter().map(|Reverse(b)| b.2).collect();
        slowest.sort_by_key(|t| Reverse(t.trace.duration_ns));
        let mut traces = self.dropped;
        traces.extend(self.first);
        traces.extend(slowest);
        let note = if traces.len() as u64 == self.seen {
            format!("all {} traces", self.seen)
        } else {
            let dropped = if dropped_kept as u64 == self.seen_dropped {
                format!("all {} dropped", self.seen_dropped)
            } else {
                format!("the first {dropped_kept} of {} dropped", self.seen_dropped)
            };
            format!(
                "a sample of {} of {} traces: {dropped}, the first {first_kept} others, \
                 and the {slowest_kept} slowest of the rest (every table and chart \
                 above counts every trace)",
                traces.len(),
                self.seen
            )
        };
        SampleOut {
            traces,
            of_traces: self.seen,
            of_dropped: self.seen_dropped,
            dropped_kept,
            first_kept,
            slowest_kept,
            note,
        }
    }
}
