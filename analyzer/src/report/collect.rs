//! One pass over a recording's traces (as they stream out of
//! `traces::run`, none kept beyond the sample) that gathers everything the
//! report draws: the path graph, per-flow verdicts and latency, per-hop
//! latency, drops over time, and the bounded sample of whole traces for the
//! per-packet viewer.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use super::graph::{self, Graph};
use super::histogram::{self, Histogram};
use super::sample::Sampler;
use crate::traces::model::{Summary, Trace};
use crate::traces::sinks::{flow_text, Sink};

/// How much of a large recording the page holds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Distinct flows kept by name; the rest are counted as "other flows".
    pub flows: usize,
    /// Graph nodes drawn.
    pub nodes: usize,
    /// Flows listed per graph node.
    pub flows_per_node: usize,
    /// Hops whose latency is shown (the busiest).
    pub hops: usize,
    /// Sample: dropped traces kept, slowest traces kept, first traces kept.
    pub dropped: usize,
    pub slowest: usize,
    pub first: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            flows: 2000,
            nodes: 120,
            flows_per_node: 25,
            hops: 40,
            dropped: 1000,
            slowest: 200,
            first: 200,
        }
    }
}

/// Bins of the drops-over-time chart.
pub const DROP_BINS: u64 = 200;
/// (bin, reason) entries kept while counting before the bins widen.
const MAX_DROP_ENTRIES: usize = 20_000;

/// The name of the bucket that holds flows beyond [`Limits::flows`].
pub const OTHER_FLOWS: &str = "(other flows)";

#[derive(Debug, Default)]
struct FlowAgg {
    traces: u64,
    verdicts: BTreeMap<String, u64>,
    ends: BTreeMap<&'static str, u64>,
    drops: u64,
    latency: Histogram,
}

/// What one recording's traces add up to.
pub struct Aggregates {
    pub traces: u64,
    pub ends: BTreeMap<&'static str, u64>,
    pub verdicts: BTreeMap<String, u64>,
    pub graph: Graph,
    flow_ids: HashMap<String, u32, foldhash::fast::FixedState>,
    flow_names: Vec<String>,
    flows: Vec<FlowAgg>,
    pub end_to_end: Histogram,
    /// foldhash: a lookup per hop of every packet.
    hops: HashMap<(Arc<str>, Arc<str>), Histogram, foldhash::fast::FixedState>,
    /// (bin, reason) → drops; bins are `drop_bin_ns` wide from `start_ns`.
    drops_over_time: BTreeMap<(u64, String), u64>,
    start_ns: u64,
    span_ns: u64,
    drop_bin_ns: u64,
    pub sample: Sampler,
    /// Traces flagged `incomplete_due_to_loss`.
    pub incomplete_due_to_loss: u64,
    pub limits: Limits,
}

impl Aggregates {
    /// `start_ns`/`span_ns`: the recording's monotonic start and length,
    /// which fix the drop chart's bins (200 of them).
    pub fn new(limits: Limits, start_ns: u64, span_ns: u64) -> Self {
        Aggregates {
            traces: 0,
            ends: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            graph: Graph::default(),
            flow_ids: HashMap::default(),
            flow_names: Vec::new(),
            flows: vec![FlowAgg::default()], // id 0: other flows
            end_to_end: Histogram::default(),
            hops: HashMap::default(),
            drops_over_time: BTreeMap::new(),
            start_ns,
            span_ns,
            drop_bin_ns: (span_ns / DROP_BINS).max(1_000_000),
            sample: Sampler::new(limits),
            incomplete_due_to_loss: 0,
            limits,
        }
    }

    fn flow_id(&mut self, t: &Trace) -> u32 {
        let text = flow_text(t);
        if let Some(id) = self.flow_ids.get(&text) {
            return *id;
        }
        if self.flow_ids.len() >= self.limits.flows {
            return 0;
        }
        let id = self.flows.len() as u32;
        self.flows.push(FlowAgg::default());
        self.flow_names.push(text.clone());
        self.flow_ids.insert(text, id);
        id
    }

    pub fn flow_name(&self, id: u32) -> String {
        match id {
            0 => OTHER_FLOWS.to_owned(),
            n => self.flow_names[n as usize - 1].clone(),
        }
    }

    pub fn add(&mut self, t: Trace) {
        self.traces += 1;
        *self.ends.entry(t.end).or_default() += 1;
        self.incomplete_due_to_loss += t.flags.contains(&"incomplete_due_to_loss") as u64;
        let verdict = t.stats.final_verdict.clone().unwrap_or_else(|| "-".into());
        *self.verdicts.entry(verdict.clone()).or_default() += 1;
        let flow = self.flow_id(&t);
        let steps = graph::steps(&t);
        self.graph.add(&steps, flow);
        let f = &mut self.flows[flow as usize];
        f.traces += 1;
        *f.verdicts.entry(verdict).or_default() += 1;
        *f.ends.entry(t.end).or_default() += 1;
        if t.end != "in_flight" {
            f.latency.add(t.duration_ns);
            self.end_to_end.add(t.duration_ns);
        }
        if let Some(reason) = &t.drop_reason {
            f.drops += 1;
            let at = (t.first_seen_ns + t.duration_ns).saturating_sub(self.start_ns);
            let bin = at / self.drop_bin_ns;
            *self
                .drops_over_time
                .entry((bin, reason.clone()))
                .or_default() += 1;
            if self.drops_over_time.len() > MAX_DROP_ENTRIES {
                self.coarsen_drop_bins(2);
            }
        }
        for pair in t
            .functions_path
            .windows(2)
            .zip(t.path_offsets_ns.windows(2))
        {
            let (names, offs) = pair;
            self.hops
                .entry((names[0].clone(), names[1].clone()))
                .or_default()
                .add(offs[1].saturating_sub(offs[0]));
        }
        self.sample
            .offer(t, flow_text_cached(&self.flow_names, flow));
    }
}

fn flow_text_cached(names: &[String], id: u32) -> Option<&str> {
    (id > 0).then(|| names[id as usize - 1].as_str())
}

/// A flow row of the page.
#[derive(Debug, Serialize)]
pub struct FlowOut {
    pub flow: String,
    pub traces: u64,
    pub verdicts: BTreeMap<String, u64>,
    pub ends: BTreeMap<&'static str, u64>,
    pub drops: u64,
    pub latency: histogram::Summary,
}

#[derive(Debug, Serialize)]
pub struct HopOut {
    pub from: Arc<str>,
    pub to: Arc<str>,
    pub latency: histogram::Summary,
}

/// Drops per reason in time bins.
#[derive(Debug, Serialize)]
pub struct DropsOverTime {
    pub bin_ns: u64,
    pub bins: u64,
    /// reason → [(bin, drops)].
    pub series: BTreeMap<String, Vec<(u64, u64)>>,
}

impl Aggregates {
    /// Flows, busiest first; "other flows" last when any.
    pub fn flows_out(&self) -> Vec<FlowOut> {
        let mut ids: Vec<usize> = (1..self.flows.len()).collect();
        ids.sort_by(|a, b| {
            self.flows[*b]
                .traces
                .cmp(&self.flows[*a].traces)
                .then(a.cmp(b))
        });
        if self.flows[0].traces > 0 {
            ids.push(0);
        }
        ids.into_iter()
            .map(|i| {
                let f = &self.flows[i];
                FlowOut {
                    flow: self.flow_name(i as u32),
                    traces: f.traces,
                    verdicts: f.verdicts.clone(),
                    ends: f.ends.clone(),
                    drops: f.drops,
                    latency: f.latency.summary(),
                }
            })
            .collect()
    }

    /// The busiest hops (by samples).
    pub fn hops_out(&self) -> Vec<HopOut> {
        let mut hops: Vec<_> = self.hops.iter().collect();
        hops.sort_by(|a, b| b.1.samples().cmp(&a.1.samples()).then(a.0.cmp(b.0)));
        hops.truncate(self.limits.hops);
        hops.into_iter()
            .map(|((from, to), h)| HopOut {
                from: from.clone(),
                to: to.clone(),
                latency: h.summary(),
            })
            .collect()
    }

    /// Makes the drop bins `factor` times wider (an interrupted recording
    /// has no known span, so its bins start narrow and widen as drops come).
    fn coarsen_drop_bins(&mut self, factor: u64) {
        let old = std::mem::take(&mut self.drops_over_time);
        for ((bin, reason), n) in old {
            *self
                .drops_over_time
                .entry((bin / factor, reason))
                .or_default() += n;
        }
        self.drop_bin_ns *= factor;
    }

    /// At most [`DROP_BINS`] bins over the span (or the last drop).
    pub fn drops_out(&mut self) -> DropsOverTime {
        let last = self
            .drops_over_time
            .keys()
            .map(|(b, _)| *b)
            .max()
            .unwrap_or(0);
        let bins = (last + 1).max(self.span_ns.div_ceil(self.drop_bin_ns));
        let factor = bins.div_ceil(DROP_BINS);
        if factor > 1 {
            self.coarsen_drop_bins(factor);
        }
        let mut series: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        let mut last_bin = 0;
        for ((bin, reason), n) in &self.drops_over_time {
            series.entry(reason.clone()).or_default().push((*bin, *n));
            last_bin = last_bin.max(*bin);
        }
        DropsOverTime {
            bin_ns: self.drop_bin_ns,
            bins: (last_bin + 1).max(self.span_ns.div_ceil(self.drop_bin_ns)),
            series,
        }
    }
}

/// Routes each trace to its recording's aggregates.
pub struct Collector {
    pub by_recording: BTreeMap<String, Aggregates>,
}

impl Sink for Collector {
    fn trace(&mut self, t: Trace) -> std::io::Result<()> {
        if let Some(a) = self.by_recording.get_mut(&t.recording) {
            a.add(t);
        }
        Ok(())
    }

    fn finish(&mut self, _: &Summary) -> std::io::Result<()> {
        Ok(())
    }
}
