//! Command-line interface of `nft-recorder`: every subcommand and flag is
//! documented here, which is also what `--help` prints.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use nft_recorder::record::{
    filter::FilterArgs,
    functions::{BackendChoice, Mode},
    NftHooks, Ready, RecordOptions, Session,
};
use nft_recorder::stop::StopSignal;
use nft_schema::tables::values;

#[derive(Parser, Debug)]
#[command(
    name = "nft-recorder",
    version,
    about = "Record what the Linux kernel does to packets, into compact Parquet recordings",
    long_about = "Record what the Linux kernel does to packets: kernel functions, tracepoints, \
                  nftables chains and rule verdicts, and drops with their reason, into a \
                  recording directory of zstd Parquet files. Analyse it anywhere with nft-analyzer."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Record packets into a recording directory: every skb tracepoint
    /// (with drop reasons from skb:kfree_skb), as zstd Parquet segments.
    ///
    /// Stops on SIGINT/SIGTERM, after --duration, or at --max-bytes. A
    /// recorder killed with SIGKILL leaves every closed segment readable and
    /// the open one readable up to the last flush.
    ///
    /// Capacity: on a 2-core VM, the default tracepoints lost nothing at
    /// about 0.5 M events/s (a ping flood between namespaces, 60 s); every
    /// lost event is counted and the log says when losses start and stop.
    /// Above that: filter (--netns, --host, --port), record fewer probes
    /// (--tracepoint, --mode), or give a bigger --ringbuf-size
    /// (docs/benchmarks.md).
    Record(Box<RecordArgs>),
    /// List the kernel functions that take a `struct sk_buff *`, from BTF,
    /// with their priority and layer.
    ///
    /// Reads the running kernel's vmlinux and module BTF and keeps the
    /// functions ftrace can attach to (when available_filter_functions can be
    /// read). With --btf it reads another kernel's BTF file and needs no root.
    ///
    /// Examples:
    ///   nft-recorder discover
    ///   nft-recorder discover --priority 0 --list
    ///   nft-recorder discover --btf vmlinux-6.1.btf --output functions.json
    Discover(DiscoverArgs),
    /// Serve the recording session over HTTP: start sessions with a POST,
    /// watch their events live over a WebSocket, stop them with a DELETE
    /// that returns the recording (docs/api.md).
    ///
    /// Every request needs `Authorization: Bearer <token>`; the token is
    /// read from --token-file, or generated into it (default
    /// <data>/api-token, mode 0600). SIGINT/SIGTERM stop every session
    /// cleanly before the server exits.
    ///
    /// Example:
    ///   nft-recorder serve --listen 127.0.0.1:5000 --data /var/lib/nft-tracer
    Serve(ServeArgs),
    /// Say what the running kernel allows for each backend (BTF, tp_btf
    /// tracepoints, kprobe, kprobe.multi, fentry, nftrace), by trying each for
    /// real.
    ///
    /// Exits 0 when at least tracepoints work, 1 otherwise. Needs root for
    /// the eBPF checks.
    Check,
    /// Ship a finished (or interrupted) recording to object storage, into
    /// the fleet layout URL/host=<host>/date=<YYYY-MM-DD>/<recording-id>/.
    ///
    /// Tables and segments first, the manifest last; a file already there
    /// with the same size and content is skipped, so an interrupted push
    /// resumes and a second push uploads nothing. s3:// URLs take the usual
    /// AWS_* variables (AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP=true for a local server).
    /// Prints the recording's URL.
    ///
    /// Examples:
    ///   nft-recorder push /var/lib/nft-tracer/rec1 s3://fleet/recordings
    ///   nft-recorder push rec1 file:///mnt/shared/recordings
    Push(PushArgs),
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The recording directory.
    #[arg(value_name = "REC")]
    recording: PathBuf,
    /// Where the fleet's recordings are: s3://BUCKET/PREFIX or file:///DIR.
    #[arg(value_name = "URL")]
    url: String,
    /// Seconds one request may go unanswered (a stalled server).
    #[arg(long, default_value_t = 60, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    request_timeout: u64,
    /// Seconds each request is retried (with backoff) before the push fails.
    #[arg(long, default_value_t = 30, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    retry_timeout: u64,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on (loopback unless --token-file is given).
    #[arg(long, default_value = "127.0.0.1:5000", value_name = "ADDR:PORT")]
    listen: std::net::SocketAddr,
    /// Directory holding one recording per session.
    #[arg(long, default_value = "/var/lib/nft-tracer", value_name = "DIR")]
    data: PathBuf,
    /// File holding the bearer token (created with a random one if absent).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Sessions that may run at once; one more is refused with 429.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    max_sessions: u16,
}

#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// Read this vmlinux BTF file instead of the running kernel's.
    #[arg(long, value_name = "FILE")]
    btf: Option<PathBuf>,
    /// Keep functions of this priority or more important: 0 (landmarks),
    /// 1 (important) or 2 (all).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=2))]
    priority: Option<u8>,
    /// Write the list as a function cache (JSON) for `record --functions`.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Print every function (name, skb parameter position, priority, layer,
    /// module) after the summary.
    #[arg(long)]
    list: bool,
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Recording directory to create (must not exist or be empty).
    #[arg(short, long)]
    output: PathBuf,
    /// Limit to this network namespace (NAME under /run/netns, or a path
    /// such as /proc/PID/ns/net). Repeatable, up to 8.
    #[arg(long, value_name = "NAME|PATH")]
    netns: Vec<String>,
    /// Source address or prefix (IPv4 or IPv6, ADDR[/LEN]).
    #[arg(long, value_name = "ADDR[/LEN]")]
    src_ip: Option<String>,
    /// Destination address or prefix.
    #[arg(long, value_name = "ADDR[/LEN]")]
    dst_ip: Option<String>,
    /// Source or destination address or prefix.
    #[arg(long, value_name = "ADDR[/LEN]")]
    host: Option<String>,
    /// TCP/UDP source port.
    #[arg(long)]
    src_port: Option<String>,
    /// TCP/UDP destination port.
    #[arg(long)]
    dst_port: Option<String>,
    /// TCP/UDP source or destination port.
    #[arg(long)]
    port: Option<String>,
    /// L4 protocol: tcp, udp, icmp, icmpv6.
    #[arg(long)]
    proto: Option<String>,
    /// skb->mark (decimal or 0x hex).
    #[arg(long)]
    mark: Option<String>,
    /// A pcap-filter expression, as tcpdump takes (e.g. 'tcp and (port 80
    /// or port 443) and not net 10.0.0.0/8'): compiled by libpcap, run in
    /// every probe on the packet's first 256 bytes, from the MAC header
    /// where the skb has one, else from the IP header; combined with the
    /// flags above (all must match). docs/recording.md#filters.
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
    /// Record only this tracepoint (BTF name, e.g. kfree_skb); repeatable.
    /// Default: every tracepoint that passes a struct sk_buff *.
    #[arg(long = "tracepoint", value_name = "NAME")]
    tracepoints: Vec<String>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Stop cleanly when the recording reaches this many bytes on disk.
    #[arg(long, value_name = "BYTES")]
    max_bytes: Option<u64>,
    /// With --max-bytes: delete the oldest segments instead of stopping.
    #[arg(long, requires = "max_bytes")]
    ring: bool,
    /// Kernel ring buffer size in bytes (a power of two).
    #[arg(long, default_value_t = 8 << 20, value_name = "BYTES")]
    ringbuf_size: u32,
    /// Wake the reader each time this many bytes of events are waiting
    /// (a power of two; default an eighth of --ringbuf-size; the reader
    /// also looks every 20 ms). 0 wakes it for every event, which costs
    /// several µs per event on a VM.
    #[arg(long, value_name = "BYTES")]
    ring_wakeup_bytes: Option<u32>,
    /// Flush the open segment this often (what a SIGKILL can lose).
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    flush_interval: f64,
    /// Close a segment into Parquet after this many seconds.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    segment_seconds: f64,
    /// Print one line per event while recording.
    #[arg(long)]
    live: bool,
    /// Ship each segment to object storage as it closes, and the whole
    /// recording when it ends (as `nft-recorder push`; s3://BUCKET/PREFIX or
    /// file:///DIR). The URL is checked before anything is attached. Not
    /// with --ring (a segment could be deleted before its upload).
    #[arg(long, value_name = "URL", conflicts_with = "ring")]
    push: Option<String>,
    /// Do not record the kernel's nftrace messages (and do not install the
    /// temporary `inet nft_tracer` table that enables them).
    #[arg(long)]
    no_nftrace: bool,
    /// What to trace: nft (tracepoints and nftables only), full (plus the
    /// ~35 landmark functions), multi (plus discovered functions by
    /// priority, up to --max-functions).
    #[arg(long, value_enum, default_value = "full")]
    mode: Mode,
    /// How to trace kernel functions: auto picks by cost (more than 64
    /// functions: kprobe-multi, one link for all; else fentry, cheapest per
    /// hit, with kprobe for what fentry refuses), falls back to the others,
    /// then tracepoints only, and records the choice in the manifest.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendChoice,
    /// With --mode multi: trace at most N functions, most important first
    /// (0 = every discovered function).
    #[arg(long, default_value_t = 0, value_name = "N")]
    max_functions: usize,
    /// Take the functions from this cache (`discover --output`) instead of
    /// discovering them now.
    #[arg(long, value_name = "FILE")]
    functions: Option<PathBuf>,
    /// With filters: follow up to N matching skbs by address until they are
    /// freed, so they are reported where their headers are not parsed or
    /// were rewritten (NAT). 0 turns this off. A full map is counted as a
    /// loss.
    #[arg(long, default_value_t = nft_schema::raw::DEFAULT_TRACKED_SKBS, value_name = "N")]
    track_skbs: u32,
    /// Forget a tracked skb not seen for this long (its free was missed and
    /// the address may be another skb's by now).
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    track_ttl: f64,
    /// The eBPF nft hooks (kprobes on nft_do_chain and __nft_trace_packet):
    /// every chain entered, rule verdict and chain verdict on the skb
    /// itself. auto: where kprobes work; on: or fail; off.
    #[arg(long, value_enum, default_value = "auto")]
    nft_hooks: NftHooks,
    /// Take the kernel stack of every event: events get a stack id, and the
    /// recording a `stacks` table (each distinct stack once, symbolised).
    /// Costs a stack walk per event and 4 MiB of kernel memory.
    #[arg(long)]
    stack: bool,
}

/// A flag value clap parsed but the recorder cannot use (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

fn seconds(flag: &str, v: f64) -> anyhow::Result<Duration> {
    if !(v.is_finite() && v > 0.0) {
        return Err(UsageError(format!(
            "--{flag} {v}: must be a positive number of seconds"
        ))
        .into());
    }
    Ok(Duration::from_secs_f64(v))
}

impl RecordArgs {
    fn into_options(self) -> anyhow::Result<RecordOptions> {
        let mut o = RecordOptions::new(self.output);
        o.netns = self.netns;
        o.filter = FilterArgs {
            src_ip: self.src_ip,
            dst_ip: self.dst_ip,
            host: self.host,
            src_port: self.src_port,
            dst_port: self.dst_port,
            port: self.port,
            proto: self.proto,
            mark: self.mark,
            pcap: self.filter,
        };
        o.tracepoints = self.tracepoints;
        o.duration = self.duration.map(|d| seconds("duration", d)).transpose()?;
        o.max_bytes = self.max_bytes;
        o.ring = self.ring;
        o.ringbuf_bytes = self.ringbuf_size;
        o.ring_wakeup_bytes = self.ring_wakeup_bytes;
        o.flush_interval = seconds("flush-interval", self.flush_interval)?;
        o.segment_interval = seconds("segment-seconds", self.segment_seconds)?;
        o.live = self.live;
        o.nftrace = !self.no_nftrace;
        o.mode = self.mode;
        o.backend = self.backend;
        o.max_functions = self.max_functions;
        o.functions_file = self.functions;
        o.tracked_skbs = self.track_skbs;
        o.track_ttl = seconds("track-ttl", self.track_ttl)?;
        o.nft_hooks = self.nft_hooks;
        o.stacks = self.stack;
        Ok(o)
    }
}

/// Says the recording has started: stderr, and systemd's notify socket.
fn announce(ready: &Ready) {
    eprintln!(
        "nft-recorder: recording: {} probe(s) attached ({} not), functions by {} -> {}",
        ready.probes_attached,
        ready.probes_failed,
        ready.backend,
        ready.dir.display()
    );
    for group in ready.failures.iter().take(5) {
        eprintln!("nft-recorder:   {}", group.line(160));
    }
    if ready.failures.len() > 5 {
        eprintln!(
            "nft-recorder:   and {} more reasons (the manifest's attach_plan lists every probe)",
            ready.failures.len() - 5
        );
    }
    if let Err(e) = nft_recorder::sd_notify::notify("READY=1") {
        tracing::warn!("sd_notify READY=1: {e}");
    }
}

/// Runs the session on a blocking thread while tokio waits for signals.
/// SIGINT, SIGTERM and SIGHUP stop it (even during the attach); a second
/// one removes the nftables tables and exits at once: the kernel detaches
/// the probes when the process's descriptors close.
fn run_record(args: RecordArgs) -> anyhow::Result<ExitCode> {
    let push = args.push.clone();
    let opts = args.into_options()?;
    let follower = match push {
        Some(url) => Some(start_push(&opts.output, url)?),
        None => None,
    };
    let stop = Arc::new(StopSignal::new());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let summary = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut sighup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let task_stop = stop.clone();
        let mut task = tokio::task::spawn_blocking(move || {
            let live = opts.live.then(|| nft_recorder::live::stdout_sink(task_stop.clone()));
            let session = Session::start(opts, task_stop, live)?;
            announce(&session.ready);
            session.wait()
        });
        let mut signals = 0;
        let result = loop {
            tokio::select! {
                r = &mut task => break r,
                _ = sigint.recv() => {}
                _ = sigterm.recv() => {}
                _ = sighup.recv() => {}
            }
            signals += 1;
            if signals == 1 {
                stop.request(values::END_SIGNAL);
                let _ = nft_recorder::sd_notify::notify("STOPPING=1");
                eprintln!("nft-recorder: stopping (a second signal exits at once)");
            } else {
                let failed = nft_recorder::sources::nftrace::guard::remove_every_table();
                eprintln!(
                    "nft-recorder: second signal: nftables tables removed{}, exiting without finishing the recording",
                    if failed.is_empty() { String::new() } else { format!(" (failed: {})", failed.join("; ")) }
                );
                std::process::exit(130);
            }
        };
        anyhow::Ok(result.context("recorder task")?)
    })??;
    eprintln!(
        "nft-recorder: {} events, {} lost, {} segment(s), {} probe(s) attached ({} not), ended by {} -> {}",
        summary.events,
        summary.lost,
        summary.segments.len(),
        summary.probes_attached,
        summary.probes_failed,
        summary.end,
        summary.dir.display()
    );
    if let Some(f) = follower {
        let (report, during) = f.finish().context("pushing the recording")?;
        print_push(&report, Some(during));
    }
    Ok(if summary.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `record --push`: the URL checked with one request, then a thread that
/// follows the recording.
fn start_push(
    dir: &std::path::Path,
    url: String,
) -> anyhow::Result<nft_recorder::push::follow::Follower> {
    use nft_recorder::push::{follow, PushOptions};
    let options = PushOptions {
        request_timeout: Duration::from_secs(60),
        retry_timeout: Duration::from_secs(30),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime
        .block_on(follow::check(&url, &options))
        .map_err(|e| UsageError(format!("--push: {e}")))?;
    Ok(follow::follow(dir.to_path_buf(), url, options))
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check => {
            let report = nft_recorder::check::run();
            print!("{}", report.render());
            Ok(if report.auto_backend().is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Record(args) => run_record(*args),
        Command::Serve(args) => run_serve(args),
        Command::Discover(args) => run_discover(args),
        Command::Push(args) => run_push(args),
    }
}

/// Pushes one recording; the summary on stderr, its URL on stdout.
fn run_push(args: PushArgs) -> anyhow::Result<ExitCode> {
    let options = nft_recorder::push::PushOptions {
        retry_timeout: std::time::Duration::from_secs(args.retry_timeout),
        request_timeout: std::time::Duration::from_secs(args.request_timeout),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let pushed = runtime.block_on(nft_recorder::push::push(
        &args.recording,
        &args.url,
        &options,
    ));
    let report = match pushed {
        Ok(report) => report,
        Err(e) if e.is_bad_input() => return Err(UsageError(e.to_string()).into()),
        Err(e) => return Err(e).context(format!("pushing {}", args.recording.display())),
    };
    print_push(&report, None);
    println!("{}", report.url);
    Ok(ExitCode::SUCCESS)
}

/// A push's summary on stderr (with, for `record --push`, the segments
/// that went while recording).
fn print_push(report: &nft_recorder::push::PushReport, during: Option<usize>) {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    eprintln!(
        "nft-recorder: pushed {} file(s), {:.1} MiB in {:.1} s ({:.1} MiB/s); {} already there ({:.1} MiB){} -> {}",
        report.uploaded_files,
        mib(report.uploaded_bytes),
        report.seconds,
        mib(report.uploaded_bytes) / report.seconds.max(1e-3),
        report.skipped_files,
        mib(report.skipped_bytes),
        during.map_or(String::new(), |n| format!("; {n} segment(s) while recording")),
        report.url,
    );
    if !report.left_out.is_empty() {
        eprintln!(
            "nft-recorder: left out (not part of a recording): {}",
            report.left_out.join(", ")
        );
    }
}

/// Runs the API server until SIGINT or SIGTERM.
fn run_serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = nft_recorder::serve::ServeConfig {
        listen: args.listen,
        data: args.data,
        token_file: args.token_file,
        max_sessions: args.max_sessions as usize,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Session starts and stops run on blocking threads; idle ones go
        // after a second instead of tokio's ten.
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut sigint =
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut sigterm =
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = sigint.recv() => {}
                _ = sigterm.recv() => {}
            }
            eprintln!("nft-recorder: stopping every session, then exiting");
        };
        nft_recorder::serve::run(config, shutdown).await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

fn run_discover(args: DiscoverArgs) -> anyhow::Result<ExitCode> {
    use nft_recorder::discover::{cache, discover, DiscoverOptions};
    let found = discover(&DiscoverOptions {
        btf: args.btf.clone(),
        max_priority: args.priority,
    })
    .context("discovering functions")?;
    print!("{}", found.summary());
    if args.list {
        for f in &found.functions {
            println!(
                "{:<48} {} {} {:<9} {}",
                f.name,
                f.skb_pos,
                f.priority,
                f.layer,
                f.module.as_deref().unwrap_or("")
            );
        }
    }
    if let Some(path) = &args.output {
        let kernel = match &args.btf {
            Some(btf) => btf.display().to_string(),
            None => nft_recorder::kernel::uname::uname().1,
        };
        cache::write(path, &kernel, &found.functions)?;
        eprintln!(
            "wrote {} functions to {}",
            found.functions.len(),
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
