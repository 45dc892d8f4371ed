//! `nft-analyzer traces`: per-packet traces. `queries/trace_events.sql`
//! defines which events form a trace (sessionization by skb, free and idle
//! gap, and verdict dedup, as window functions). Two engines apply it:
//! [`stream`] (the default) in one pass over the events in recording order,
//! and DataFusion running the SQL itself (`--engine sql`, 24 times slower;
//! tests hold the two equal). DataFusion also runs
//! `queries/nftrace_matches.sql` (which skb each nftrace message belongs
//! to) for both; [`assemble`] shapes traces and [`sinks`] writes them.

pub mod assemble;
mod decode;
pub mod lookups;
pub mod model;
pub mod sinks;
pub mod stream;

use futures::StreamExt;
use indicatif::ProgressBar;

use crate::catalog::{Catalog, QueryError};
use crate::queries::{self, Params};
use assemble::Assembler;
use model::{Summary, Trace};

#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("reading query results: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("writing traces: {0}")]
    Write(#[from] std::io::Error),
    #[error("writing traces as Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("reading {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    ReadParquet {
        path: std::path::PathBuf,
        source: parquet::errors::ParquetError,
    },
    /// The events could not all be decoded: the result would be partial.
    #[error("decoding the events: {0}; the result would be incomplete")]
    Decode(String),
}

/// What builds traces from events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Engine {
    /// One pass in recording order ([`stream`]).
    #[default]
    Stream,
    /// `queries/trace_events.sql` run by DataFusion.
    Sql,
}

/// How traces are built: the parameters of the trace SQL, and which
/// engine applies them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub params: Params,
    pub engine: Engine,
}

/// Which traces to write.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Final nftables verdict (`accept`, `drop`, ...).
    pub verdict: Option<String>,
    /// Substring of the trace's flow, as printed in the table
    /// (`tcp 10.0.0.1:40000 > 10.0.0.2:80`).
    pub flow: Option<String>,
    /// A function or tracepoint the path must contain.
    pub function: Option<String>,
    /// Stop after this many traces.
    pub limit: Option<u64>,
    /// Only the trace with this id (`trace_id`, numbered per recording).
    pub trace_id: Option<u64>,
    /// Only traces of this recording (its name in the catalog).
    pub recording: Option<String>,
}

impl Filter {
    pub fn matches(&self, t: &Trace) -> bool {
        if self.trace_id.is_some_and(|id| id != t.trace_id) {
            return false;
        }
        if self.recording.as_ref().is_some_and(|r| *r != t.recording) {
            return false;
        }
        if let Some(v) = &self.verdict {
            if t.stats.final_verdict.as_deref() != Some(v.as_str()) {
                return false;
            }
        }
        if let Some(f) = &self.flow {
            if !sinks::flow_text(t).contains(f.as_str()) {
                return false;
            }
        }
        if let Some(f) = &self.function {
            if !t.functions_path.iter().any(|p| **p == **f) {
                return false;
            }
        }
        true
    }
}

/// Runs the trace queries and hands every trace that passes `filter` to
/// `sink`, then returns the summary.
/// `progress` counts events (length: the recordings' event totals); it
/// stays hidden unless the caller made it visible.
pub async fn run(
    catalog: &Catalog,
    options: &Options,
    filter: &Filter,
    sink: &mut dyn sinks::Sink,
    progress: &ProgressBar,
) -> Result<Summary, TracesError> {
    let params = &options.params;
    progress.set_length(catalog.recordings.iter().map(|r| r.manifest.events).sum());
    progress.set_message("sorting events by skb and time");
    let lookups = lookups::load(catalog, params).await?;
    let mut summary = Summary {
        nftrace_attached: lookups.nftrace.values().map(|v| v.len() as u64).sum(),
        ..Summary::default()
    };
    summary.nftrace_unmatched = lookups
        .nftrace_eligible
        .saturating_sub(summary.nftrace_attached);
    summary.warnings = catalog.warnings().map(str::to_owned).collect();
    summary.partial = catalog.is_partial();

    let mut io_error: Option<std::io::Error> = None;
    let mut emit = |t: Trace| {
        summary.traces += 1;
        summary.duplicates_removed += t.duplicates_removed;
        let nft_rows = t.nft_events.iter().filter(|e| e.source == "ebpf").count();
        summary.events += (t.functions_path.len() + nft_rows) as u64 + t.duplicates_removed;
        if t.end == "in_flight" {
            summary.in_flight += 1;
        }
        if t.flags.contains(&"incomplete_due_to_loss") {
            summary.incomplete_due_to_loss += 1;
        }
        let room = filter.limit.is_none_or(|l| summary.traces_written < l);
        if room && io_error.is_none() && filter.matches(&t) {
            summary.traces_written += 1;
            if let Err(e) = sink.trace(t) {
                io_error = Some(e);
            }
        }
    };
    let mut notes = stream::StreamNotes::default();
    match options.engine {
        Engine::Stream => {
            progress.set_message("building traces");
            notes = stream::run(catalog, &lookups, params, &mut emit, &mut |n| {
                progress.inc(n)
            })?;
        }
        Engine::Sql => sql_engine(catalog, &lookups, params, &mut emit, progress).await?,
    }
    if notes.late_events > 0 {
        summary.warnings.push(format!(
            "{} event(s) arrived after a later event of the same skb; they joined \
             its trace in arrival order (--engine sql sorts them)",
            notes.late_events
        ));
    }
    if notes.out_of_order > 0 {
        summary.warnings.push(format!(
            "{} trace(s) were written out of start order: more than {} finished \
             traces waited behind a long-open one",
            notes.out_of_order,
            stream::MAX_WAITING
        ));
    }
    progress.finish_and_clear();
    if let Some(e) = io_error {
        return Err(e.into());
    }
    Ok(summary)
}

/// The SQL engine: `trace_events.sql` in DataFusion, rows into traces.
async fn sql_engine(
    catalog: &Catalog,
    lookups: &lookups::Lookups,
    params: &Params,
    emit: &mut dyn FnMut(Trace),
    progress: &ProgressBar,
) -> Result<(), TracesError> {
    let sql = params.bind(queries::query("trace_events"));
    let err = |source| QueryError {
        query: "trace_events",
        source,
    };
    let df = catalog.ctx.sql(&sql).await.map_err(err)?;
    let mut stream = df.execute_stream().await.map_err(err)?;
    let mut assembler = Assembler::new(lookups);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(err)?;
        progress.set_message("building traces");
        progress.inc(batch.num_rows() as u64);
        assembler.push_batch(&batch, emit)?;
    }
    assembler.finish_all(emit);
    Ok(())
}
