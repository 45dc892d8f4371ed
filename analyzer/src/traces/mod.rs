//! `nft-analyzer traces`: per-packet traces. DataFusion runs
//! `queries/trace_events.sql` (sessionization by skb, free and idle gap, and
//! verdict dedup, as window functions) and `queries/nftrace_matches.sql`
//! (which skb each nftrace message belongs to); [`assemble`] shapes the
//! ordered rows into traces and [`sinks`] writes them.

pub mod assemble;
pub mod model;
pub mod sinks;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::error::DataFusionError;
use futures::StreamExt;
use indicatif::ProgressBar;
use nft_schema::columns::{self, losses, nftrace, rules, RECORDING};
use nft_schema::tables::names;

use crate::catalog::Catalog;
use crate::columns::{strs, u64s, Interner};
use crate::queries::{self, Params};
use assemble::{merge_windows, Assembler, Lookups};
use model::{NftEvent, Summary, Trace};

#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    #[error("query {query}: {source}")]
    Query {
        query: &'static str,
        source: DataFusionError,
    },
    #[error("reading query results: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("writing traces: {0}")]
    Write(#[from] std::io::Error),
    #[error("writing traces as Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
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
}

impl Filter {
    pub fn matches(&self, t: &Trace) -> bool {
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
            if !t.functions_path.iter().any(|p| p == f) {
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
    params: &Params,
    filter: &Filter,
    sink: &mut dyn sinks::Sink,
    progress: &ProgressBar,
) -> Result<Summary, TracesError> {
    progress.set_length(catalog.recordings.iter().map(|r| r.manifest.events).sum());
    progress.set_message("sorting events by skb and time");
    let lookups = load_lookups(catalog, params).await?;
    let mut summary = Summary {
        nftrace_attached: lookups.nftrace.values().map(|v| v.len() as u64).sum(),
        ..Summary::default()
    };
    summary.nftrace_unmatched = lookups
        .nftrace_eligible
        .saturating_sub(summary.nftrace_attached);
    summary.warnings = catalog.warnings().map(str::to_owned).collect();
    summary.partial = catalog
        .recordings
        .iter()
        .any(|r| !r.manifest.ended_cleanly || r.manifest.lost_events > 0);

    let sql = params.bind(query("trace_events"));
    let df = catalog
        .ctx
        .sql(&sql)
        .await
        .map_err(|source| TracesError::Query {
            query: "trace_events",
            source,
        })?;
    let mut stream = df
        .execute_stream()
        .await
        .map_err(|source| TracesError::Query {
            query: "trace_events",
            source,
        })?;
    let mut assembler = Assembler::new(&lookups);
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
            if let Err(e) = sink.trace(&t) {
                io_error = Some(e);
            }
        }
    };
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|source| TracesError::Query {
            query: "trace_events",
            source,
        })?;
        progress.set_message("building traces");
        progress.inc(batch.num_rows() as u64);
        assembler.push_batch(&batch, &mut emit)?;
    }
    assembler.finish_all(&mut emit);
    progress.finish_and_clear();
    if let Some(e) = io_error {
        return Err(e.into());
    }
    Ok(summary)
}

fn query(name: &str) -> &'static str {
    queries::find(name)
        .unwrap_or_else(|| panic!("query {name} is compiled in"))
        .sql
}

async fn collect(
    catalog: &Catalog,
    sql: &str,
    name: &'static str,
) -> Result<Vec<RecordBatch>, TracesError> {
    let err = |source| TracesError::Query {
        query: name,
        source,
    };
    catalog
        .ctx
        .sql(sql)
        .await
        .map_err(err)?
        .collect()
        .await
        .map_err(err)
}

/// Rule text and positions, chain hooks, loss windows, recording ends and
/// matched nftrace messages: all small next to the events.
async fn load_lookups(catalog: &Catalog, params: &Params) -> Result<Lookups, TracesError> {
    let mut lk = Lookups {
        timeout_ns: params.timeout_ns,
        ..Lookups::default()
    };
    let mut interner = Interner::default();

    let sql = format!(
        "SELECT {RECORDING}, {f}, {t}, {c}, {h}, {p}, {x} FROM {tbl} WHERE {s} = 'start'",
        f = rules::FAMILY,
        t = q(rules::TABLE),
        c = rules::CHAIN,
        h = rules::HANDLE,
        p = rules::POSITION,
        x = rules::TEXT,
        s = rules::SNAPSHOT,
        tbl = names::RULES,
    );
    for b in collect(catalog, &sql, "rules").await? {
        let rec = strs(&b, RECORDING, &mut interner)?;
        let fam = strs(&b, rules::FAMILY, &mut interner)?;
        let tab = strs(&b, rules::TABLE, &mut interner)?;
        let chain = strs(&b, rules::CHAIN, &mut interner)?;
        let handle = u64s(&b, rules::HANDLE)?;
        let pos = u64s(&b, rules::POSITION)?;
        let text = strs(&b, rules::TEXT, &mut interner)?;
        for i in 0..b.num_rows() {
            let (Some(r), Some(f), Some(t), Some(c), Some(h)) =
                (rec.get(i), fam.get(i), tab.get(i), chain.get(i), handle[i])
            else {
                continue;
            };
            lk.rules.insert(
                (r.clone(), (f.clone(), t.clone(), c.clone(), h)),
                (
                    pos[i].unwrap_or(0) as u32,
                    text.get(i).map(|s| s.to_string()),
                ),
            );
        }
    }

    let sql = format!(
        "SELECT {RECORDING}, {f}, {t}, {c}, {h} FROM {tbl} WHERE {h} IS NOT NULL AND {s} = 'start'",
        f = columns::chains::FAMILY,
        t = q(columns::chains::TABLE),
        c = columns::chains::CHAIN,
        h = columns::chains::HOOK,
        s = columns::chains::SNAPSHOT,
        tbl = names::CHAINS,
    );
    for b in collect(catalog, &sql, "chains").await? {
        let rec = strs(&b, RECORDING, &mut interner)?;
        let fam = strs(&b, columns::chains::FAMILY, &mut interner)?;
        let tab = strs(&b, columns::chains::TABLE, &mut interner)?;
        let chain = strs(&b, columns::chains::CHAIN, &mut interner)?;
        let hook = strs(&b, columns::chains::HOOK, &mut interner)?;
        for i in 0..b.num_rows() {
            if let (Some(r), Some(f), Some(t), Some(c), Some(h)) = (
                rec.get(i),
                fam.get(i),
                tab.get(i),
                chain.get(i),
                hook.get(i),
            ) {
                lk.hooks
                    .insert((r.clone(), f.clone(), t.clone(), c.clone()), h.to_string());
            }
        }
    }

    let sql = format!(
        "SELECT {RECORDING}, {s}, {e} FROM {tbl} WHERE {n} > 0",
        s = losses::WINDOW_START_NS,
        e = losses::WINDOW_END_NS,
        n = losses::COUNT,
        tbl = names::LOSSES,
    );
    let mut windows: HashMap<Arc<str>, Vec<(u64, u64)>> = HashMap::new();
    for b in collect(catalog, &sql, "losses").await? {
        let rec = strs(&b, RECORDING, &mut interner)?;
        let start = u64s(&b, losses::WINDOW_START_NS)?;
        let end = u64s(&b, losses::WINDOW_END_NS)?;
        for i in 0..b.num_rows() {
            if let (Some(r), Some(s), Some(e)) = (rec.get(i), start[i], end[i]) {
                windows.entry(r.clone()).or_default().push((s, e));
            }
        }
    }
    lk.losses = windows
        .into_iter()
        .map(|(r, w)| (r, merge_windows(w)))
        .collect();

    // A recording ends at its stop time, or at its last event when it was
    // interrupted (or its clock disagrees).
    let sql = format!(
        "SELECT {RECORDING}, max({ts}) AS last_ns FROM {tbl} GROUP BY {RECORDING}",
        ts = columns::events::TS_NS,
        tbl = names::EVENTS,
    );
    let mut last: HashMap<String, u64> = HashMap::new();
    for b in collect(catalog, &sql, "recording ends").await? {
        let rec = strs(&b, RECORDING, &mut interner)?;
        for (i, ts) in u64s(&b, "last_ns")?.into_iter().enumerate() {
            if let (Some(r), Some(t)) = (rec.get(i), ts) {
                last.insert(r.to_string(), t);
            }
        }
    }
    for rec in &catalog.recordings {
        let end = rec.end_ns().max(last.get(&rec.name).copied().unwrap_or(0));
        lk.end_ns.insert(interner.get(&rec.name), end);
    }

    // Messages that belong to a packet: all but the handle-less "rule
    // continue" the kernel sends when a chain runs out of rules.
    let sql = format!(
        "SELECT count(*) AS n FROM {tbl} WHERE NOT ({t} = 'rule' AND {h} IS NULL) \
         AND {table} <> '{own}'",
        t = nftrace::TYPE,
        h = nftrace::RULE_HANDLE,
        table = q(nftrace::TABLE),
        own = nft_schema::tables::RECORDER_NFT_TABLE,
        tbl = names::NFTRACE,
    );
    for b in collect(catalog, &sql, "nftrace count").await? {
        lk.nftrace_eligible += u64s(&b, "n")?.into_iter().flatten().sum::<u64>();
    }
    if lk.nftrace_eligible > 0 {
        load_nftrace(catalog, params, &mut lk, &mut interner).await?;
    }
    Ok(lk)
}

async fn load_nftrace(
    catalog: &Catalog,
    params: &Params,
    lk: &mut Lookups,
    interner: &mut Interner,
) -> Result<(), TracesError> {
    let sql = params.bind(query("nftrace_matches"));
    for b in collect(catalog, &sql, "nftrace_matches").await? {
        let rec = strs(&b, RECORDING, interner)?;
        let skb = u64s(&b, columns::events::SKB)?;
        let event_ts = u64s(&b, "event_ts_ns")?;
        let ts = u64s(&b, nftrace::TS_NS)?;
        let kind = strs(&b, nftrace::TYPE, interner)?;
        let fam = strs(&b, nftrace::FAMILY, interner)?;
        let tab = strs(&b, nftrace::TABLE, interner)?;
        let chain = strs(&b, nftrace::CHAIN, interner)?;
        let handle = u64s(&b, nftrace::RULE_HANDLE)?;
        let verdict = strs(&b, nftrace::VERDICT, interner)?;
        let target = strs(&b, nftrace::TARGET, interner)?;
        let policy = strs(&b, nftrace::POLICY, interner)?;
        let trace_id = u64s(&b, nftrace::TRACE_ID)?;
        for i in 0..b.num_rows() {
            let (Some(r), Some(s), Some(ets)) = (rec.get(i), skb[i], event_ts[i]) else {
                continue;
            };
            let (f, t, c) = (fam.get(i), tab.get(i), chain.get(i));
            let rule = match (f, t, c, handle[i]) {
                (Some(f), Some(t), Some(c), Some(h)) => lk
                    .rules
                    .get(&(r.clone(), (f.clone(), t.clone(), c.clone(), h))),
                _ => None,
            };
            let hook = match (f, t, c) {
                (Some(f), Some(t), Some(c)) => lk
                    .hooks
                    .get(&(r.clone(), f.clone(), t.clone(), c.clone()))
                    .cloned(),
                _ => None,
            };
            let kind = match kind.get(i).map(|k| &**k) {
                Some("rule") => "rule_eval".to_owned(),
                Some(k) => k.to_owned(),
                None => "rule_eval".to_owned(),
            };
            let verdict = verdict.get(i).or(policy.get(i)).map(|v| v.to_string());
            let s_ = |v: Option<&Arc<str>>| v.map(|v| v.to_string());
            let event = NftEvent {
                kind,
                family: s_(f),
                table: s_(t),
                chain: s_(c),
                hook,
                rule_seq: rule.map(|r| r.0),
                rule_handle: handle[i],
                verdict,
                target: s_(target.get(i)),
                timestamp_ns: ts[i].unwrap_or(0),
                rule_text: rule.and_then(|r| r.1.clone()),
                source: "nftrace",
                nftrace_id: trace_id[i].map(|v| v as u32),
            };
            lk.nftrace
                .entry((r.clone(), s))
                .or_default()
                .push((ets, event));
        }
    }
    Ok(())
}

/// A quoted identifier (`table` is a keyword).
fn q(name: &str) -> String {
    format!("\"{name}\"")
}
