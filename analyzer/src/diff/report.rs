//! What `nft-analyzer diff` reports, and how it reads: `json` is the
//! [`Report`] as serde writes it (for tools); `text` (a terminal) and
//! `markdown` (a pull request) show the differences biggest first, then the
//! tables behind them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::rules::RulePair;
use crate::escape::{markdown_code, markdown_text, Shown};

/// Kinds of difference; `--fail-on` takes a list of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Packets dropped for a reason, or in a function, not seen before (or
    /// clearly more often).
    NewDrop,
    /// A flow's final verdicts, or a matched rule's verdicts, changed.
    VerdictChange,
    /// A path signature a flow did not take before.
    NewPath,
    /// A path signature a flow no longer takes.
    VanishedPath,
    /// A path both sides take, with a changed share of the flow.
    PathShare,
    /// A hop's or a flow's p50/p99 latency moved beyond the threshold.
    Latency,
    /// A rule that only one side has (and that saw packets).
    RuleChange,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::NewDrop => "new-drop",
            Kind::VerdictChange => "verdict-change",
            Kind::NewPath => "new-path",
            Kind::VanishedPath => "vanished-path",
            Kind::PathShare => "path-share",
            Kind::Latency => "latency",
            Kind::RuleChange => "rule-change",
        }
    }
}

/// One difference worth a person's attention.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Difference {
    pub kind: Kind,
    /// What changed: a flow, a rule, a drop reason, a hop.
    pub subject: String,
    /// How: `drop 100% → accept 100%`, `0 → 3`, `p99 12.0 µs → 40.1 µs`.
    pub change: String,
    /// Traces (or samples) affected; the report's order, biggest first.
    pub weight: f64,
    /// Example trace ids (`traces REC` numbering) on each side.
    pub base_example: Option<u64>,
    pub new_example: Option<u64>,
    /// Losses or in-flight traces that may explain it.
    pub trust: Option<String>,
}

/// One recording's side of the diff, and how far to trust it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Side {
    pub recording: String,
    pub dir: String,
    pub kernel: String,
    pub backend: String,
    pub events: u64,
    pub traces: u64,
    pub lost_events: u64,
    pub ended_cleanly: bool,
    pub in_flight: u64,
    pub incomplete_due_to_loss: u64,
    /// Why this side's data are incomplete (damaged or missing parts, lost
    /// events, an unclean end); empty: complete.
    pub incomplete: Vec<String>,
}

impl Side {
    pub fn trusted(&self) -> bool {
        self.incomplete.is_empty() && self.incomplete_due_to_loss == 0
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PathRow {
    pub flow: String,
    pub path: String,
    pub base: u64,
    pub new: u64,
    pub base_share: f64,
    pub new_share: f64,
    pub base_example: Option<u64>,
    pub new_example: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FlowVerdicts {
    pub flow: String,
    pub base: BTreeMap<String, u64>,
    pub new: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DropRow {
    pub reason: String,
    pub function: String,
    pub base: u64,
    pub new: u64,
}

/// Latency percentiles of one hop (`a > b`) or one flow end to end.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencyRow {
    /// `hop` or `end-to-end`.
    pub scope: &'static str,
    pub subject: String,
    pub base_samples: usize,
    pub new_samples: usize,
    pub base_p50_ns: Option<u64>,
    pub new_p50_ns: Option<u64>,
    pub base_p99_ns: Option<u64>,
    pub new_p99_ns: Option<u64>,
    pub flagged: bool,
}

/// Everything `diff` found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub base: Side,
    pub new: Side,
    /// Biggest first.
    pub differences: Vec<Difference>,
    pub paths: Vec<PathRow>,
    pub flow_verdicts: Vec<FlowVerdicts>,
    pub rules: Vec<RulePair>,
    pub drops: Vec<DropRow>,
    pub latency: Vec<LatencyRow>,
}

impl Report {
    /// Whether a difference of one of `kinds` was found.
    pub fn has_any(&self, kinds: &[Kind]) -> bool {
        self.differences.iter().any(|d| kinds.contains(&d.kind))
    }
}

/// `accept 3, drop 1` (`-` when empty).
pub fn counts(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn us(ns: Option<u64>) -> String {
    ns.map(|v| format!("{:.1}", v as f64 / 1000.0))
        .unwrap_or_else(|| "-".into())
}

fn side_line(label: &str, s: &Side) -> String {
    let mut line = format!(
        "{label} {} ({}): kernel {}, backend {}, {} traces from {} events",
        Shown(&s.recording),
        Shown(&s.dir),
        Shown(&s.kernel),
        Shown(&s.backend),
        s.traces,
        s.events
    );
    if s.lost_events > 0 {
        line.push_str(&format!(", {} events LOST", s.lost_events));
    }
    if s.incomplete_due_to_loss > 0 {
        line.push_str(&format!(
            ", {} traces incomplete due to loss",
            s.incomplete_due_to_loss
        ));
    }
    if s.in_flight > 0 {
        line.push_str(&format!(", {} in flight", s.in_flight));
    }
    if !s.ended_cleanly {
        line.push_str(", interrupted");
    }
    line
}

fn examples(d: &Difference) -> String {
    match (d.base_example, d.new_example) {
        (None, None) => String::new(),
        (b, n) => format!(
            " (example trace: base {}, new {})",
            b.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            n.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
        ),
    }
}

/// The terminal report.
pub fn text(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", side_line("base", &r.base));
    let _ = writeln!(o, "{}", side_line("new ", &r.new));
    if !r.base.trusted() || !r.new.trusted() {
        let _ = writeln!(
            o,
            "warning: PARTIAL input: a side lost events, was interrupted or is damaged; \
             differences marked (trust) may come from that"
        );
        for reason in r.base.incomplete.iter().chain(&r.new.incomplete) {
            let _ = writeln!(o, "  partial: {}", Shown(reason));
        }
    }
    let _ = writeln!(o);
    if r.differences.is_empty() {
        let _ = writeln!(o, "no differences");
    } else {
        let _ = writeln!(o, "{} difference(s), biggest first:", r.differences.len());
        for d in &r.differences {
            let _ = writeln!(o, "  {:<14} {}", d.kind.name(), Shown(&d.subject));
            let _ = writeln!(o, "  {:<14}   {}{}", "", Shown(&d.change), examples(d));
            if let Some(t) = &d.trust {
                let _ = writeln!(o, "  {:<14}   (trust) {}", "", Shown(t));
            }
        }
    }
    let _ = writeln!(o, "\nrules (matched by table, chain and text):");
    for p in &r.rules {
        let mark = if p.base == p.new { " " } else { "*" };
        let _ = writeln!(o, "{mark} {}", Shown(&p.subject()));
        let _ = writeln!(
            o,
            "      base: {:<30} new: {}",
            Shown(&counts(&p.base)),
            Shown(&counts(&p.new))
        );
    }
    let _ = writeln!(o, "\nflows' final verdicts:");
    for f in &r.flow_verdicts {
        let mark = if f.base == f.new { " " } else { "*" };
        let _ = writeln!(
            o,
            "{mark} {:<44} base: {:<24} new: {}",
            Shown(&f.flow),
            Shown(&counts(&f.base)),
            Shown(&counts(&f.new))
        );
    }
    let _ = writeln!(o, "\ndrops (reason at function):");
    for d in &r.drops {
        let mark = if d.base == d.new { " " } else { "*" };
        let _ = writeln!(
            o,
            "{mark} {:<44} base: {:<6} new: {}",
            Shown(&format!("{} at {}", d.reason, d.function)),
            d.base,
            d.new
        );
    }
    let _ = writeln!(o, "\nlatency (µs, p50 / p99, samples):");
    for l in &r.latency {
        let mark = if l.flagged { "*" } else { " " };
        let _ = writeln!(
            o,
            "{mark} {:<10} {:<44} base: {} / {} ({})  new: {} / {} ({})",
            l.scope,
            Shown(&l.subject),
            us(l.base_p50_ns),
            us(l.base_p99_ns),
            l.base_samples,
            us(l.new_p50_ns),
            us(l.new_p99_ns),
            l.new_samples
        );
    }
    o
}

/// The report as Markdown, for a pull request.
pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "## nft-tracer diff: {} → {}\n",
        markdown_text(&r.base.recording),
        markdown_text(&r.new.recording)
    );
    let _ = writeln!(o, "- {}", markdown_text(&side_line("base", &r.base)));
    let _ = writeln!(o, "- {}\n", markdown_text(&side_line("new", &r.new)));
    for reason in r.base.incomplete.iter().chain(&r.new.incomplete) {
        let _ = writeln!(o, "- **partial input:** {}", markdown_text(reason));
    }
    if !r.base.incomplete.is_empty() || !r.new.incomplete.is_empty() {
        let _ = writeln!(o);
    }
    if r.differences.is_empty() {
        let _ = writeln!(o, "**No differences.**");
    } else {
        let _ = writeln!(o, "### {} difference(s)\n", r.differences.len());
        let _ = writeln!(o, "| kind | subject | change | examples | trust |");
        let _ = writeln!(o, "| --- | --- | --- | --- | --- |");
        for d in &r.differences {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                d.kind.name(),
                markdown_code(&d.subject),
                markdown_text(&d.change),
                examples(d).trim(),
                d.trust.as_deref().map(markdown_text).unwrap_or_default()
            );
        }
    }
    let _ = writeln!(
        o,
        "\n### Rules\n\n| rule | base | new |\n| --- | --- | --- |"
    );
    for p in &r.rules {
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            markdown_code(&p.subject()),
            markdown_text(&counts(&p.base)),
            markdown_text(&counts(&p.new))
        );
    }
    let _ = writeln!(
        o,
        "\n### Drops\n\n| reason | function | base | new |\n| --- | --- | --- | --- |"
    );
    for d in &r.drops {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            markdown_text(&d.reason),
            markdown_code(&d.function),
            d.base,
            d.new
        );
    }
    o
}
