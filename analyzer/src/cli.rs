//! Command-line interface of `nft-analyzer`: every subcommand and flag is
//! documented here, which is also what `--help` prints.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use nft_analyzer::catalog::{Catalog, Settings};
use nft_analyzer::diff;
use nft_analyzer::escape::Shown;
use nft_analyzer::exit::Outcome;
use nft_analyzer::output::Format;
use nft_analyzer::queries::{self, Params};
use nft_analyzer::report::{self, collect::Limits};
use nft_analyzer::shell;
use nft_analyzer::traces::Engine;
use nft_analyzer::traces::{self, sinks, Filter};

#[derive(Parser, Debug)]
#[command(
    name = "nft-analyzer",
    version,
    about = "Analyse nft-tracer recordings: per-packet traces, SQL, diffs, statistics",
    long_about = "Analyse nft-tracer recordings anywhere (no root, no BTF, no kernel needed) \
                  with DataFusion SQL: turn events into per-packet traces, run SQL over the \
                  recording's tables, and diff two recordings to see what a ruleset or kernel \
                  change did to the packets.",
    after_help = "Exit codes: 0 complete; 1 a gate (diff --fail-on) found what it gates on; \
                  2 an error; 3 partial input (a damaged or missing part was left out, events \
                  were lost, or a recording did not end cleanly) under a gate or --strict. \
                  Partial results always say so."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Fail (exit 3) when the input is partial: a damaged or missing part
    /// of a recording was left out, events were lost, or a recording did
    /// not end cleanly. The output is written either way, and says so.
    #[arg(long, global = true)]
    pub strict: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Tuning {
    /// Idle gap after which an skb's next event starts a new trace (and
    /// within which of the recording's end an unfreed packet is in flight).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Repeated rule verdicts on one skb within this window are duplicates.
    #[arg(long, default_value = "5us", value_parser = humantime::parse_duration)]
    pub dedup: Duration,
    /// Memory DataFusion may use before spilling to disk.
    #[arg(long, default_value = "1536MiB", value_parser = parse_bytes)]
    pub memory_limit: usize,
    /// What builds the traces: `stream`, one pass in event order (fast), or
    /// `sql`, queries/trace_events.sql run by DataFusion (the definition;
    /// both give the same traces).
    #[arg(long, value_enum, default_value_t = Engine::Stream)]
    pub engine: Engine,
}

impl Tuning {
    fn params(&self) -> Params {
        Params {
            timeout_ns: self.timeout.as_nanos() as u64,
            dedup_ns: self.dedup.as_nanos() as u64,
            ..Params::default()
        }
    }

    fn options(&self) -> traces::Options {
        traces::Options {
            params: self.params(),
            engine: self.engine,
        }
    }

    fn settings(&self) -> Settings {
        Settings {
            memory_limit: self.memory_limit,
            ..Settings::default()
        }
    }
}

/// How much the report page holds whole (every aggregate counts every
/// trace either way).
#[derive(clap::Args, Debug, Clone)]
pub struct SampleArgs {
    /// Dropped traces the per-packet viewer holds.
    #[arg(long, default_value_t = 1000)]
    pub sample_dropped: usize,
    /// Slowest traces it holds besides.
    #[arg(long, default_value_t = 200)]
    pub sample_slowest: usize,
    /// First traces it holds besides.
    #[arg(long, default_value_t = 200)]
    pub sample_first: usize,
}

impl SampleArgs {
    fn limits(&self) -> Limits {
        Limits {
            dropped: self.sample_dropped,
            slowest: self.sample_slowest,
            first: self.sample_first,
            ..Limits::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TraceFormat {
    Json,
    Ndjson,
    Parquet,
    Table,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Text,
    Markdown,
    Json,
    /// The report page of both recordings with the differences marked
    /// (needs --output).
    Html,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Group a recording's events into per-packet traces (function path,
    /// nftables chains and rule verdicts, drop reason), as JSON, NDJSON,
    /// Parquet or a table.
    #[command(after_help = "Examples:\n  \
        nft-analyzer traces rec/ --format table\n  \
        nft-analyzer traces rec/ --verdict drop --flow ':22 ' --format json\n  \
        nft-analyzer traces rec/ --format parquet -o traces.parquet")]
    Traces {
        /// Recording directories.
        #[arg(required = true)]
        recordings: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: TraceFormat,
        /// Write here instead of stdout (required for parquet).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Only traces whose final nftables verdict is this (`accept`,
        /// `drop`, ...). Packets the kernel dropped elsewhere have a
        /// `drop_reason`; `sql --query drops` lists them.
        #[arg(long)]
        verdict: Option<String>,
        /// Only traces whose flow text contains this, e.g. `10.0.0.2:80` or
        /// `udp `.
        #[arg(long)]
        flow: Option<String>,
        /// Only traces whose path contains this function or tracepoint.
        #[arg(long)]
        function: Option<String>,
        /// Write at most this many traces.
        #[arg(long)]
        limit: Option<u64>,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// Run SQL over recordings' tables (events, nftrace, probes, functions,
    /// drop_reasons, losses, interfaces, chains, rules, verdicts,
    /// recordings), or a named query from the library. Without SQL,
    /// statements are read from stdin (an interactive shell on a terminal).
    #[command(after_help = "Examples:\n  \
        nft-analyzer sql rec/ \"SELECT probe, count(*) FROM events GROUP BY probe\"\n  \
        nft-analyzer sql rec/ --query drops --format csv\n  \
        nft-analyzer sql before/ after/ \"SELECT recording, count(*) FROM events GROUP BY 1\"\n  \
        nft-analyzer sql rec/                  (interactive shell)\n  \
        echo 'SELECT count(*) FROM events;' | nft-analyzer sql rec/")]
    Sql {
        /// Recording directories, then the SQL (omit it with --query).
        #[arg(required = true)]
        args: Vec<String>,
        /// Run this query of the library (see `nft-analyzer queries`).
        #[arg(long)]
        query: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// List the query library: each query's name and what it answers.
    Queries,
    /// Compare two recordings (before/after a change): paths, rule and flow
    /// verdicts, drops, latency, and the losses that may explain them.
    /// `--fail-on` makes it a CI gate: exit 1 when such a difference is
    /// found, 0 when not, 2 on error, 3 when the input is partial (a gate
    /// does not pass on data with parts missing).
    #[command(after_help = "Examples:\n  \
        nft-analyzer diff before/ after/\n  \
        nft-analyzer diff before/ after/ --format markdown > diff.md\n  \
        nft-analyzer diff before/ after/ --fail-on new-drop,verdict-change --format json\n\n\
        Flows are matched by their service side: the lower port is kept and the other \
        (ephemeral) one shows as `*` (--exact-flows keeps both). Rules are matched by \
        table, chain and text (handles change on reload), then by text with verdicts \
        masked, so an edited verdict is still the same rule.")]
    Diff {
        /// The baseline recording.
        base: PathBuf,
        /// The recording after the change.
        new: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: DiffFormat,
        /// Write here instead of stdout (required for html).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Exit 1 when a difference of one of these kinds is found.
        #[arg(long, value_enum, value_delimiter = ',')]
        fail_on: Vec<diff::Kind>,
        /// Compare flows by their full 5-tuple.
        #[arg(long)]
        exact_flows: bool,
        /// A share (of a flow's paths or verdicts, of a rule's verdicts)
        /// must move by more than this to count.
        #[arg(long, default_value_t = 0.10)]
        share_tolerance: f64,
        /// A drop count must grow by more than this fraction to count.
        #[arg(long, default_value_t = 0.20)]
        count_tolerance: f64,
        /// A p50/p99 latency must move by more than this fraction...
        #[arg(long, default_value_t = 0.50)]
        latency_threshold: f64,
        /// ...and by more than this.
        #[arg(long, default_value = "5us", value_parser = humantime::parse_duration)]
        latency_floor: Duration,
        /// Compare latency only with at least this many samples on each side.
        #[arg(long, default_value_t = 20)]
        min_samples: usize,
        /// A path's or a drop's count must change by at least this many
        /// traces to count (1: every packet matters).
        #[arg(long, default_value_t = 2)]
        min_count: u64,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// Draw recordings as one self-contained HTML page (opens offline):
    /// header, packet path graph, verdicts, drops, latency, and a
    /// per-packet viewer over a bounded sample of traces.
    #[command(after_help = "Examples:\n  \
        nft-analyzer report rec/ -o report.html\n  \
        nft-analyzer diff before/ after/ --format html -o diff.html")]
    Report {
        /// Recording directories.
        #[arg(required = true)]
        recordings: Vec<PathBuf>,
        /// The HTML file to write.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        sample: SampleArgs,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// Serve the report page over HTTP, with `GET /api/traces` (filters:
    /// verdict, flow, function, recording, limit) and `GET /api/trace/{id}`
    /// for clicking through recordings too large for one file.
    Serve {
        /// Recording directories.
        #[arg(required = true)]
        recordings: Vec<PathBuf>,
        /// Address to listen on (loopback by default; port 0 picks one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        sample: SampleArgs,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// Summarise recordings: span, events by source and probe, probes
    /// attached and failed, losses, verdicts, drops, traces.
    Stats {
        /// Recording directories.
        #[arg(required = true)]
        recordings: Vec<PathBuf>,
        #[command(flatten)]
        tuning: Tuning,
    },
}

fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: usize = n.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        u => return Err(format!("unknown unit {u:?} (use B, KiB, MiB, GiB)")),
    };
    Ok(n * mult)
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let strict = cli.strict;
    let outcome = runtime.block_on(run_async(cli))?;
    Ok(outcome.exit_code(strict))
}

/// Opens the recordings; URLs among them are fetched first (`fleet`), and
/// errors about their copies name the URL.
async fn open(args: &[PathBuf], tuning: &Tuning) -> anyhow::Result<Catalog> {
    let resolved = nft_analyzer::fleet::resolve(args).await?;
    for f in &resolved.fetched {
        eprintln!(
            "fetched {} recording(s), {} file(s), {:.1} MiB from {}{}",
            f.recordings.len(),
            f.files,
            f.bytes as f64 / (1u64 << 20) as f64,
            f.url,
            match f.ignored {
                0 => String::new(),
                n => format!(" ({n} other object(s) left out)"),
            }
        );
    }
    let mut catalog = Catalog::open(&resolved.dirs, &tuning.settings())
        .await
        .map_err(|e| anyhow::anyhow!(resolved.in_urls(&e.to_string())))?;
    catalog.fetched = resolved.fetched;
    Ok(catalog)
}

/// [`open`], then the catalog's warnings on stderr (for commands whose
/// output does not carry them).
async fn open_warned(dirs: &[PathBuf], tuning: &Tuning) -> anyhow::Result<Catalog> {
    let catalog = open(dirs, tuning).await?;
    for w in catalog.warnings() {
        eprintln!("warning: {}", Shown(w));
    }
    Ok(catalog)
}

async fn run_async(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Queries => {
            let mut out = std::io::stdout().lock();
            for q in queries::QUERIES {
                use std::io::Write;
                writeln!(out, "{:<16} {}", q.name, q.summary())?;
            }
            Ok(Outcome::Complete)
        }
        Command::Sql {
            args,
            query,
            format,
            tuning,
        } => run_sql(&args, query.as_deref(), format, &tuning).await,
        Command::Traces {
            recordings,
            format,
            output,
            verdict,
            flow,
            function,
            limit,
            tuning,
        } => {
            let filter = Filter {
                verdict,
                flow,
                function,
                limit,
                ..Filter::default()
            };
            run_traces(&recordings, format, output.as_deref(), &filter, &tuning).await
        }
        Command::Stats { recordings, tuning } => {
            let catalog = open(&recordings, &tuning).await?;
            nft_analyzer::stats::run(&catalog, &tuning.options(), &mut std::io::stdout().lock())
                .await?;
            Ok(Outcome::of(&catalog))
        }
        Command::Diff {
            base,
            new,
            format,
            output,
            fail_on,
            exact_flows,
            share_tolerance,
            count_tolerance,
            latency_threshold,
            latency_floor,
            min_samples,
            min_count,
            tuning,
        } => {
            let want = DiffRun {
                format,
                output,
                exact_flows,
                tolerances: diff::Tolerances {
                    share: share_tolerance,
                    count: count_tolerance,
                    latency: latency_threshold,
                    latency_floor_ns: latency_floor.as_nanos() as u64,
                    min_samples,
                    min_count,
                },
            };
            let (report, partial) = run_diff(&[base, new], &tuning, &want).await?;
            Ok(Outcome::of_gate(&report, &fail_on, partial))
        }
        Command::Report {
            recordings,
            output,
            sample,
            tuning,
        } => {
            let catalog = open_warned(&recordings, &tuning).await?;
            let html = report_page(&catalog, &tuning, sample.limits(), None, false).await?;
            write_file(&output, html.as_bytes())?;
            eprintln!("wrote {} ({} bytes)", output.display(), html.len());
            Ok(Outcome::of(&catalog))
        }
        Command::Serve {
            recordings,
            listen,
            sample,
            tuning,
        } => run_serve(&recordings, listen, &sample, &tuning, cli.strict).await,
    }
}

async fn run_sql(
    args: &[String],
    query: Option<&str>,
    format: Format,
    tuning: &Tuning,
) -> anyhow::Result<Outcome> {
    let (dirs, sql) = split_sql_args(args, query.is_some())?;
    let params = tuning.params();
    let sql = match (query, sql) {
        (Some(name), None) => {
            let q = queries::find(name).with_context(|| {
                format!("no query named {name:?}; `nft-analyzer queries` lists them")
            })?;
            Some(params.bind(q.sql))
        }
        (None, Some(sql)) => Some(params.bind(&sql)),
        (Some(_), Some(_)) => anyhow::bail!("give either SQL or --query, not both"),
        (None, None) => None,
    };
    let catalog = open_warned(&dirs, tuning).await?;
    let stdout = std::io::stdout();
    match sql {
        Some(sql) => shell::execute(&catalog, &sql, format, &mut stdout.lock()).await?,
        None => {
            use std::io::IsTerminal;
            let stdin = std::io::stdin();
            let interactive = stdin.is_terminal();
            shell::run(
                &catalog,
                &params,
                format,
                &mut stdin.lock(),
                interactive,
                &mut stdout.lock(),
            )
            .await?;
        }
    }
    Ok(Outcome::of(&catalog))
}

async fn run_traces(
    recordings: &[PathBuf],
    format: TraceFormat,
    output: Option<&std::path::Path>,
    filter: &Filter,
    tuning: &Tuning,
) -> anyhow::Result<Outcome> {
    let catalog = open(recordings, tuning).await?;
    let out: Box<dyn std::io::Write + Send> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None if format == TraceFormat::Parquet => {
            anyhow::bail!("--format parquet needs --output FILE")
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let session: Vec<&str> = catalog.recordings.iter().map(|r| r.name.as_str()).collect();
    let mode = catalog
        .recordings
        .first()
        .map(|r| r.manifest.backend.clone())
        .unwrap_or_default();
    let mut sink: Box<dyn sinks::Sink> = match format {
        TraceFormat::Json => Box::new(sinks::JsonSink::new(out, &session.join(","), &mode)?),
        TraceFormat::Ndjson => Box::new(sinks::NdjsonSink(out)),
        TraceFormat::Table => Box::new(sinks::TableSink::new(out)),
        TraceFormat::Parquet => Box::new(sinks::ParquetSink::new(out)?),
    };
    let summary = traces::run(
        &catalog,
        &tuning.options(),
        filter,
        sink.as_mut(),
        &progress_bar(),
    )
    .await?;
    sink.finish(&summary)?;
    if format != TraceFormat::Table {
        for w in &summary.warnings {
            eprintln!("warning: {}", Shown(w));
        }
    }
    Ok(Outcome::of(&catalog))
}

async fn run_serve(
    recordings: &[PathBuf],
    listen: std::net::SocketAddr,
    sample: &SampleArgs,
    tuning: &Tuning,
    strict: bool,
) -> anyhow::Result<Outcome> {
    let catalog = open_warned(recordings, tuning).await?;
    if strict && catalog.is_partial() {
        return Ok(Outcome::of(&catalog));
    }
    let html = report_page(&catalog, tuning, sample.limits(), None, true).await?;
    report::serve::run(catalog, tuning.options(), html, listen, |addr| {
        eprintln!("serving http://{addr}/ (ctrl-c stops)")
    })
    .await
    .with_context(|| format!("serving on {listen}"))?;
    Ok(Outcome::Complete)
}

/// What `diff` was asked for besides the recordings.
struct DiffRun {
    format: DiffFormat,
    output: Option<PathBuf>,
    exact_flows: bool,
    tolerances: diff::Tolerances,
}

/// The diff's report, and whether its input was partial.
async fn run_diff(
    dirs: &[PathBuf],
    tuning: &Tuning,
    want: &DiffRun,
) -> anyhow::Result<(diff::Report, bool)> {
    if want.format == DiffFormat::Html && want.output.is_none() {
        anyhow::bail!("--format html needs --output FILE");
    }
    let catalog = open_warned(dirs, tuning).await?;
    let progress = progress_bar();
    let report = diff::run(
        &catalog,
        &tuning.options(),
        &want.tolerances,
        want.exact_flows,
        &progress,
    )
    .await?;
    let text = match want.format {
        DiffFormat::Text => diff::report::text(&report),
        DiffFormat::Markdown => diff::report::markdown(&report),
        DiffFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        DiffFormat::Html => {
            report_page(
                &catalog,
                tuning,
                Limits::default(),
                Some(report.clone()),
                false,
            )
            .await?
        }
    };
    match &want.output {
        Some(path) => write_file(path, text.as_bytes())?,
        None => {
            use std::io::Write;
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
    }
    Ok((report, catalog.is_partial()))
}

/// The report page of `catalog`'s recordings (and of a diff's findings).
async fn report_page(
    catalog: &Catalog,
    tuning: &Tuning,
    limits: Limits,
    diff: Option<diff::Report>,
    live: bool,
) -> anyhow::Result<String> {
    let recordings = report::build(catalog, &tuning.options(), limits, &progress_bar()).await?;
    let data = report::PageData {
        kind: if diff.is_some() { "diff" } else { "recording" },
        tool_version: env!("CARGO_PKG_VERSION"),
        recordings,
        diff,
        live,
    };
    Ok(report::page::html(&data)?)
}

fn write_file(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// A bar on stderr when it is a terminal (indicatif draws nothing
/// otherwise).
fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} {msg} [{bar:30}] {human_pos}/{human_len} events ({per_sec}, {elapsed})",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// `sql REC [REC...] [SQL]`: the last argument is the SQL unless it is a
/// directory (or `--query` was given).
fn split_sql_args(
    args: &[String],
    has_query: bool,
) -> anyhow::Result<(Vec<PathBuf>, Option<String>)> {
    let mut dirs: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
    let mut sql = None;
    if !has_query {
        if let Some(last) = args.last() {
            if !std::path::Path::new(last).is_dir() && !nft_schema::store::is_url(last) {
                sql = Some(last.clone());
                dirs.pop();
            }
        }
    }
    if dirs.is_empty() {
        anyhow::bail!("no recording given");
    }
    Ok((dirs, sql))
}
