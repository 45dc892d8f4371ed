//! What one side of a diff looks like, built from its traces as they stream
//! out of `traces::run` (one pass, no trace kept): per flow, how many traces
//! took each path signature, their final verdicts and durations; per hop,
//! the latencies; per drop reason and function, the count.

use std::collections::{BTreeMap, HashMap};

use super::normalize;
use crate::traces::model::{Summary, Trace};
use crate::traces::sinks::Sink;

/// The final verdict of a trace no rule decided.
pub const NO_VERDICT: &str = "none";

/// Traces of one flow on one side.
#[derive(Debug, Default)]
pub struct FlowProfile {
    /// Complete traces (in-flight ones are counted apart: their path is
    /// not over yet).
    pub traces: u64,
    /// Path signature → (count, first trace id as an example).
    pub paths: BTreeMap<String, (u64, u64)>,
    /// Final nftables verdict (`none` when no rule decided) → count.
    pub verdicts: BTreeMap<String, u64>,
    /// End-to-end durations, ns.
    pub durations: Vec<u64>,
    pub in_flight: u64,
    pub incomplete_due_to_loss: u64,
}

/// One recording's profile.
#[derive(Debug, Default)]
pub struct Profile {
    pub traces: u64,
    pub in_flight: u64,
    pub incomplete_due_to_loss: u64,
    pub flows: BTreeMap<String, FlowProfile>,
    /// (from, to) normalised functions → gaps in ns (u32 keeps memory at 4
    /// bytes a hop; a gap above 4.29 s is clamped, and such a gap is past
    /// any sensible `--timeout` anyway).
    pub hops: HashMap<(String, String), Vec<u32>>,
    /// (drop reason, function) → (count, first trace id).
    pub drops: BTreeMap<(String, String), (u64, u64)>,
}

impl Profile {
    fn add(&mut self, t: &Trace, exact_flows: bool) {
        self.traces += 1;
        let incomplete = t.flags.contains(&"incomplete_due_to_loss");
        self.incomplete_due_to_loss += incomplete as u64;
        let flow = self
            .flows
            .entry(normalize::flow(t, exact_flows))
            .or_default();
        flow.incomplete_due_to_loss += incomplete as u64;
        if t.end == "in_flight" {
            self.in_flight += 1;
            flow.in_flight += 1;
            return;
        }
        flow.traces += 1;
        let path = flow
            .paths
            .entry(normalize::signature(t))
            .or_insert((0, t.trace_id));
        path.0 += 1;
        let verdict = t.stats.final_verdict.as_deref().unwrap_or(NO_VERDICT);
        *flow.verdicts.entry(verdict.to_owned()).or_default() += 1;
        flow.durations.push(t.duration_ns);
        for pair in normalize::path(t).windows(2) {
            let ((from, t0), (to, t1)) = (pair[0], pair[1]);
            self.hops
                .entry((from.to_owned(), to.to_owned()))
                .or_default()
                .push(u32::try_from(t1.saturating_sub(t0)).unwrap_or(u32::MAX));
        }
        if let Some(reason) = &t.drop_reason {
            let function = t
                .drop_location
                .as_deref()
                .map(normalize::location_function)
                .unwrap_or("?");
            let d = self
                .drops
                .entry((reason.clone(), function.to_owned()))
                .or_insert((0, t.trace_id));
            d.0 += 1;
        }
    }
}

/// Routes each trace to the profile of its recording.
pub struct Profiles {
    pub base_name: String,
    pub base: Profile,
    pub new: Profile,
    pub exact_flows: bool,
}

impl Sink for Profiles {
    fn trace(&mut self, t: Trace) -> std::io::Result<()> {
        let side = if t.recording == self.base_name {
            &mut self.base
        } else {
            &mut self.new
        };
        side.add(&t, self.exact_flows);
        Ok(())
    }

    fn finish(&mut self, _: &Summary) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `q`-quantile (0..=1) of `v`, nearest rank; sorts `v`.
pub fn quantile<T: Ord + Copy + Into<u64>>(v: &mut [T], q: f64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1].into())
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn nearest_rank_quantiles() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(quantile(&mut v, 0.5), Some(50));
        assert_eq!(quantile(&mut v, 0.99), Some(99));
        assert_eq!(quantile(&mut v, 1.0), Some(100));
        assert_eq!(quantile(&mut [7u64], 0.5), Some(7));
        assert_eq!(quantile::<u64>(&mut [], 0.5), None);
    }
}
