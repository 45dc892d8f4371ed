//! `nft-analyzer stats`: one screen about a recording: what it covers, what
//! was attached, what it saw, what it lost, and how its packets ended.

use std::io::Write;

use crate::catalog::Catalog;
use crate::escape::Shown;
use crate::output::{write_batches, Format};
use crate::queries;
use crate::traces::model::{Summary, Trace};
use crate::traces::sinks::{summary_line, Sink};
use crate::traces::{self, Filter};

/// Counts traces by how they ended and by final verdict.
#[derive(Default)]
struct Tally {
    by_end: std::collections::BTreeMap<&'static str, u64>,
    by_verdict: std::collections::BTreeMap<String, u64>,
}

impl Sink for Tally {
    fn trace(&mut self, t: Trace) -> std::io::Result<()> {
        *self.by_end.entry(t.end).or_default() += 1;
        let v = t.stats.final_verdict.clone().unwrap_or_else(|| "-".into());
        *self.by_verdict.entry(v).or_default() += 1;
        Ok(())
    }

    fn finish(&mut self, _: &Summary) -> std::io::Result<()> {
        Ok(())
    }
}

/// Each section's title and the library query behind it (`queries/`), in
/// screen order.
const SECTIONS: &[(&str, &str)] = &[
    ("events by source", "events_by_source"),
    ("events by probe", "events_by_probe"),
    ("nftrace messages", "nftrace_messages"),
    ("verdicts", "verdict_counts"),
    ("drops", "drops"),
    ("losses", "loss_reasons"),
    ("loss windows", "loss_windows"),
];

pub async fn run(
    catalog: &Catalog,
    options: &traces::Options,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let params = &options.params;
    for rec in &catalog.recordings {
        let m = &rec.manifest;
        let span_s = m
            .stopped_ns
            .map(|s| format!("{:.1} s", s.saturating_sub(m.started_ns) as f64 / 1e9))
            .unwrap_or_else(|| "unknown (interrupted)".into());
        writeln!(
            out,
            "== recording {} ({})",
            Shown(&rec.name),
            Shown(&rec.dir.display().to_string())
        )?;
        writeln!(
            out,
            "host {}, kernel {}, backend {}, schema {}, nft-recorder {}",
            Shown(&m.host),
            Shown(&m.kernel_release),
            Shown(&m.backend),
            m.schema_version,
            Shown(&m.tool_version)
        )?;
        if rec.is_incomplete() {
            writeln!(
                out,
                "PARTIAL: {} thing(s) missing from this recording (see the warnings)",
                rec.incomplete.len()
            )?;
        }
        writeln!(
            out,
            "span {span_s}; end: {}{}; {} events, {} nftrace messages, {} lost",
            Shown(&m.end),
            if m.ended_cleanly {
                " (clean)"
            } else {
                " (NOT clean)"
            },
            m.events,
            m.nftrace_events,
            m.lost_events
        )?;
        let attached = m.attach_plan.iter().filter(|a| a.attached).count();
        writeln!(
            out,
            "probes: {attached} attached, {} failed",
            m.attach_plan.len() - attached
        )?;
        // One line per shared reason: 43 functions refused for one cause
        // are one line, not 43 (the manifest keeps each probe's reason).
        for group in m.failure_groups() {
            writeln!(out, "  {}", Shown(&group.line(200)))?;
        }
        if !m.filters.is_empty() {
            let f: Vec<String> = m.filters.iter().map(|(k, v)| format!("{k} {v}")).collect();
            writeln!(out, "filters: {}", Shown(&f.join(", ")))?;
        }
    }
    for (title, name) in SECTIONS {
        writeln!(out, "\n== {title}")?;
        let df = catalog.ctx.sql(&params.bind(queries::query(name))).await?;
        let schema = df.schema().as_arrow().clone();
        let batches = df.collect().await?;
        write_batches(out, &schema, &batches, Format::Table)?;
    }
    let mut tally = Tally::default();
    let summary = traces::run(
        catalog,
        options,
        &Filter::default(),
        &mut tally,
        &indicatif::ProgressBar::hidden(),
    )
    .await?;
    writeln!(out, "\n== traces")?;
    writeln!(out, "{}", summary_line(&summary))?;
    let ends: Vec<String> = tally
        .by_end
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    writeln!(out, "by end: {}", ends.join(", "))?;
    let verdicts: Vec<String> = tally
        .by_verdict
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    writeln!(out, "by final verdict: {}", verdicts.join(", "))?;
    for w in catalog.warnings() {
        writeln!(out, "warning: {}", Shown(w))?;
    }
    Ok(())
}
