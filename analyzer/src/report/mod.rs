//! `nft-analyzer report`: the pictures. One pass over the traces
//! ([`collect`]: the path [`graph`], flows, latency [`histogram`]s, drops
//! over time, a bounded [`sample`] of whole traces), the library's
//! `rule_verdicts`, `chain_verdicts`, `drops` and `losses` queries, and the
//! manifest's header become one JSON document, which [`page`] puts into a
//! self-contained HTML file with the page's scripts and styles
//! (`report/assets/`). `diff --format html` puts two recordings and the
//! diff's findings on one page; [`serve`] serves the page and the traces.

pub mod collect;
pub mod graph;
pub mod histogram;
pub mod page;
pub mod sample;
pub mod serve;

use std::collections::BTreeMap;

use indicatif::ProgressBar;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::catalog::Catalog;
use crate::queries::{self, Params};
use crate::recording::Recording;
use crate::traces::{self, Filter, TracesError};
use collect::{Aggregates, Collector, Limits};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Traces(#[from] TracesError),
    #[error(transparent)]
    Query(#[from] crate::catalog::QueryError),
    #[error("reading query results: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    Diff(#[from] crate::diff::DiffError),
}

/// The page's data: one or two recordings, and for a diff its findings.
#[derive(Serialize)]
pub struct PageData {
    /// `recording` or `diff`.
    pub kind: &'static str,
    pub tool_version: &'static str,
    pub recordings: Vec<RecordingReport>,
    pub diff: Option<crate::diff::Report>,
    /// True when served by `nft-analyzer serve` (the page may ask
    /// `/api/traces` for traces beyond the sample).
    pub live: bool,
}

/// The header: what the recording covers and how far to trust it.
#[derive(Debug, Serialize)]
pub struct Header {
    pub host: String,
    pub kernel: String,
    pub backend: String,
    pub backend_reason: String,
    pub mode: String,
    pub tool_version: String,
    pub started_unix_ns: i128,
    pub span_ns: Option<u64>,
    pub end: String,
    pub ended_cleanly: bool,
    pub events: u64,
    pub nftrace_events: u64,
    pub lost_events: u64,
    pub probes_attached: usize,
    pub probes_failed: Vec<nft_schema::manifest::FailureGroup>,
    pub filters: BTreeMap<String, String>,
    pub command_line: Vec<String>,
}

/// Everything the page shows of one recording.
#[derive(Serialize)]
pub struct RecordingReport {
    pub name: String,
    pub dir: String,
    pub header: Header,
    pub traces: u64,
    pub partial: bool,
    pub in_flight: u64,
    pub incomplete_due_to_loss: u64,
    /// Why the recording's data are incomplete (damaged or missing parts,
    /// losses, an unclean end).
    pub incomplete: Vec<String>,
    pub warnings: Vec<String>,
    pub ends: BTreeMap<&'static str, u64>,
    pub final_verdicts: BTreeMap<String, u64>,
    pub graph: graph::GraphOut,
    pub flows: Vec<collect::FlowOut>,
    pub end_to_end: histogram::Summary,
    pub hops: Vec<collect::HopOut>,
    pub drops_over_time: collect::DropsOverTime,
    /// Rows of the library's queries, for this recording.
    pub queries: BTreeMap<&'static str, Vec<Map<String, Value>>>,
    pub sample: sample::SampleOut,
}

/// The library queries the page shows as they are.
const QUERIES: &[&str] = &[
    "rule_verdicts",
    "chain_verdicts",
    "drops",
    "losses",
    "loss_windows",
];

fn header(r: &Recording) -> Header {
    let m = &r.manifest;
    Header {
        host: m.host.clone(),
        kernel: m.kernel_release.clone(),
        backend: m.backend.clone(),
        backend_reason: m.backend_reason.clone(),
        mode: m.mode.clone(),
        tool_version: m.tool_version.clone(),
        started_unix_ns: m.started_ns as i128 + m.monotonic_to_unix_ns as i128,
        span_ns: m.stopped_ns.map(|s| s.saturating_sub(m.started_ns)),
        end: m.end.clone(),
        ended_cleanly: m.ended_cleanly,
        events: m.events,
        nftrace_events: m.nftrace_events,
        lost_events: m.lost_events,
        probes_attached: m.attach_plan.iter().filter(|a| a.attached).count(),
        probes_failed: m.failure_groups(),
        filters: m.filters.clone(),
        command_line: m.command_line.clone(),
    }
}

/// Runs a library query over the catalog and splits its rows by recording.
async fn query_rows(
    catalog: &Catalog,
    params: &Params,
    name: &'static str,
) -> Result<BTreeMap<String, Vec<Map<String, Value>>>, ReportError> {
    let batches = catalog
        .collect(&params.bind(queries::query(name)), name)
        .await?;
    let mut out: BTreeMap<String, Vec<Map<String, Value>>> = BTreeMap::new();
    for row in crate::output::json_rows(&batches)? {
        let rec = row
            .get("recording")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        out.entry(rec).or_default().push(row);
    }
    Ok(out)
}

/// Builds the report of every recording of `catalog`.
pub async fn build(
    catalog: &Catalog,
    options: &traces::Options,
    limits: Limits,
    progress: &ProgressBar,
) -> Result<Vec<RecordingReport>, ReportError> {
    let mut collector = Collector {
        by_recording: catalog
            .recordings
            .iter()
            .map(|r| {
                let m = &r.manifest;
                let span = r.end_ns().saturating_sub(m.started_ns);
                (r.name.clone(), Aggregates::new(limits, m.started_ns, span))
            })
            .collect(),
    };
    let summary = traces::run(
        catalog,
        options,
        &Filter::default(),
        &mut collector,
        progress,
    )
    .await?;
    let mut rows = BTreeMap::new();
    for name in QUERIES {
        rows.insert(*name, query_rows(catalog, &options.params, name).await?);
    }
    let mut out = Vec::new();
    for r in &catalog.recordings {
        let agg = collector
            .by_recording
            .remove(&r.name)
            .expect("one per recording");
        let queries = QUERIES
            .iter()
            .map(|q| (*q, rows[q].get(&r.name).cloned().unwrap_or_default()))
            .collect();
        out.push(recording_report(r, agg, &summary, queries));
    }
    Ok(out)
}

fn recording_report(
    r: &Recording,
    mut agg: Aggregates,
    summary: &traces::model::Summary,
    queries: BTreeMap<&'static str, Vec<Map<String, Value>>>,
) -> RecordingReport {
    let limits = agg.limits;
    let graph = agg
        .graph
        .output(limits.nodes, limits.flows_per_node, |f| agg.flow_name(f));
    let flows = agg.flows_out();
    let hops = agg.hops_out();
    let drops_over_time = agg.drops_out();
    let in_flight = agg.ends.get("in_flight").copied().unwrap_or(0);
    RecordingReport {
        name: r.name.clone(),
        dir: r.dir.display().to_string(),
        header: header(r),
        traces: agg.traces,
        partial: r.is_incomplete(),
        in_flight,
        incomplete_due_to_loss: agg.incomplete_due_to_loss,
        incomplete: r.incomplete.clone(),
        warnings: summary.warnings.clone(),
        ends: agg.ends.clone(),
        final_verdicts: agg.verdicts.clone(),
        graph,
        flows,
        end_to_end: agg.end_to_end.summary(),
        hops,
        drops_over_time,
        queries,
        sample: agg.sample.finish(),
    }
}
