//! `nft-recorder record`: validate everything, attach, record until told to
//! stop, detach, and leave a complete recording directory.
//!
//! Order matters: every argument, namespace and the BTF are checked before
//! anything is attached; the programs are detached before the last losses
//! are read and the last events drained, so the totals are final.

pub mod filter;
pub mod functions;
pub mod pipeline;

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nft_schema::manifest::{AttachResult, Manifest, NetnsRef};
use nft_schema::raw::{ProbeConfig, MAX_NETNS, PROBE_FUNCTION_BASE};

use crate::kernel::nft_layout::NftLayout;
use crate::sources::nft_hook;
pub use crate::sources::nft_hook::NftHooks;
use nft_schema::SCHEMA_VERSION;

use crate::drain::{loss_reason_name, EventReader, LossCounters};
use crate::kernel::btf::KernelBtf;
use crate::kernel::clock::{monotonic_ns, now_ns};
use crate::kernel::netns::{netns_inode, netns_path};
use crate::loader::{LoadOptions, LoadedObject};
use crate::sources::nftrace::{self, NftraceTarget, NftraceWriter};
use crate::sources::{chain, tracepoint};
use crate::writer::batch::Names;
use crate::writer::dims::{self, InterfaceRow, LossRow, ProbeRow};
use crate::writer::kallsyms::Kallsyms;
use crate::writer::manifest::write_manifest;
use crate::writer::segments::SegmentWriter;
use crate::writer::stacks::StackMap;
use filter::{parse_filter, FilterArgs};
use functions::{BackendChoice, Mode};
use pipeline::{WriterLimits, WriterResult};

/// Everything `record` needs, already parsed from the command line.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    pub output: PathBuf,
    pub netns: Vec<String>,
    pub filter: FilterArgs,
    /// Record only these tracepoints (BTF names); all skb tracepoints if
    /// empty.
    pub tracepoints: Vec<String>,
    pub duration: Option<Duration>,
    pub max_bytes: Option<u64>,
    pub ring: bool,
    pub ringbuf_bytes: u32,
    pub flush_interval: Duration,
    pub segment_interval: Duration,
    pub segment_rows: u64,
    pub live: bool,
    /// Record the kernel's nftrace messages (and install the marking table).
    pub nftrace: bool,
    pub mode: Mode,
    pub backend: BackendChoice,
    /// Multi mode: at most this many functions (0 = all).
    pub max_functions: usize,
    /// A function cache from `discover --output` instead of discovering.
    pub functions_file: Option<PathBuf>,
    /// Size of the skb tracking map; 0 turns tracking off.
    pub tracked_skbs: u32,
    /// Take the kernel stack of every event (`--stack`).
    pub stacks: bool,
    /// A tracked skb not seen for this long is forgotten.
    pub track_ttl: Duration,
    /// The eBPF nft hook (rule verdicts on the skb).
    pub nft_hooks: NftHooks,
    pub command_line: Vec<String>,
}

impl RecordOptions {
    /// Defaults for everything but the output directory.
    pub fn new(output: PathBuf) -> Self {
        Self {
            output,
            netns: Vec::new(),
            filter: FilterArgs::default(),
            tracepoints: Vec::new(),
            duration: None,
            max_bytes: None,
            ring: false,
            ringbuf_bytes: 8 << 20,
            flush_interval: Duration::from_secs(1),
            segment_interval: Duration::from_secs(30),
            segment_rows: 4 << 20,
            live: false,
            nftrace: true,
            mode: Mode::Full,
            backend: BackendChoice::Auto,
            max_functions: 0,
            functions_file: None,
            tracked_skbs: nft_schema::raw::DEFAULT_TRACKED_SKBS,
            stacks: false,
            track_ttl: Duration::from_secs(1),
            nft_hooks: NftHooks::Auto,
            command_line: std::env::args().collect(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Filter(#[from] filter::FilterError),
    #[error("--netns {name}: {path}: {source}")]
    Netns {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--netns: at most {MAX_NETNS} namespaces")]
    TooManyNetns,
    #[error("--ringbuf-size {0}: must be a power of two of at least 4096 bytes")]
    RingbufSize(u32),
    #[error("--tracepoint {0}: no such tracepoint with a struct sk_buff * argument in this kernel's BTF")]
    UnknownTracepoint(String),
    #[error("output directory {path}: {why}")]
    Output { path: PathBuf, why: String },
    #[error(transparent)]
    Btf(#[from] crate::kernel::btf::BtfError),
    #[error("the kernel's BTF could not be loaded by aya: {0}")]
    AyaBtf(String),
    #[error(transparent)]
    Load(#[from] crate::loader::LoadError),
    #[error(transparent)]
    Drain(#[from] crate::drain::DrainError),
    #[error(transparent)]
    Write(#[from] crate::writer::segments::SegmentError),
    #[error("discovering kernel functions: {0}")]
    Discover(#[from] crate::discover::DiscoverError),
    #[error("--functions: {0}")]
    FunctionCache(#[from] crate::discover::cache::CacheError),
    #[error(transparent)]
    Functions(#[from] functions::FunctionsError),
    #[error("no probe could be attached: {0}")]
    NothingAttached(String),
    #[error("--nft-hooks on: {0}")]
    NftHooks(String),
    #[error("{0}")]
    Runtime(String),
}

/// What a finished recording holds.
#[derive(Debug)]
pub struct RecordSummary {
    pub dir: PathBuf,
    pub events: u64,
    pub lost: u64,
    pub segments: Vec<String>,
    pub probes_attached: usize,
    pub probes_failed: usize,
    pub end: String,
}

fn output_dir(path: &Path) -> Result<(), RecordError> {
    let bad = |why: String| RecordError::Output {
        path: path.to_owned(),
        why,
    };
    if path.exists() {
        let mut entries = std::fs::read_dir(path).map_err(|e| bad(e.to_string()))?;
        if entries.next().is_some() {
            return Err(bad(
                "exists and is not empty (recordings are never overwritten)".into(),
            ));
        }
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| bad(e.to_string()))?;
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| bad(e.to_string()))
}

/// Records until `stop` is set (a signal), the duration passes, or the byte
/// limit is reached.
pub fn record(opts: &RecordOptions, stop: Arc<AtomicBool>) -> Result<RecordSummary, RecordError> {
    // --- validate everything before touching the kernel -------------------
    let (filter, filters_given) = parse_filter(&opts.filter)?;
    if opts.netns.len() > MAX_NETNS {
        return Err(RecordError::TooManyNetns);
    }
    let mut netns = Vec::new();
    for name in &opts.netns {
        let path = netns_path(name);
        let inode = netns_inode(&path).map_err(|source| RecordError::Netns {
            name: name.clone(),
            path: path.clone(),
            source,
        })?;
        netns.push(NetnsRef {
            name: name.clone(),
            inode,
        });
    }
    if !opts.ringbuf_bytes.is_power_of_two() || opts.ringbuf_bytes < 4096 {
        return Err(RecordError::RingbufSize(opts.ringbuf_bytes));
    }
    let btf = KernelBtf::running()?;
    let (offsets, missing) = btf.kernel_offsets()?;
    if !missing.is_empty() {
        tracing::warn!(
            "fields missing from BTF, left empty: {}",
            missing.join(", ")
        );
    }
    let mut tracepoints = btf.skb_tracepoints()?;
    if !opts.tracepoints.is_empty() {
        for want in &opts.tracepoints {
            if !tracepoints.iter().any(|t| &t.name == want) {
                return Err(RecordError::UnknownTracepoint(want.clone()));
            }
        }
        tracepoints.retain(|t| opts.tracepoints.contains(&t.name));
    }
    let drop_reasons = btf.drop_reasons()?;
    // The nft hook's layout, before anything is loaded (CONFIG holds it).
    let nft_layout = match opts.nft_hooks {
        NftHooks::Off => None,
        _ if !opts.nftrace => Some(Err(
            "the nft hook needs the nftrace source's tables (they turn nf_tables' trace key on); \
             --no-nftrace turns both off"
                .to_string(),
        )),
        _ => Some(NftLayout::running(&btf).map_err(|e| e.to_string())),
    };
    if let (NftHooks::On, Some(Err(why))) = (opts.nft_hooks, &nft_layout) {
        return Err(RecordError::NftHooks(why.clone()));
    }
    // Tracking must see frees, or a freed skb's address would keep
    // reporting whatever skb comes next: it needs both free tracepoints.
    let frees_seen = ["kfree_skb", "consume_skb"]
        .iter()
        .all(|name| tracepoints.iter().any(|t| t.name == *name));
    let filtered = filter.flags != 0 || !netns.is_empty();
    let tracking = opts.tracked_skbs > 0 && filtered && frees_seen;
    if opts.tracked_skbs > 0 && filtered && !frees_seen {
        tracing::warn!(
            "skb tracking is off: it needs the skb:kfree_skb and skb:consume_skb tracepoints \
             to see skbs freed"
        );
    }
    let function_plan = if opts.mode == Mode::Nft || opts.backend == BackendChoice::Tracepoint {
        Vec::new()
    } else {
        let discovered = match &opts.functions_file {
            Some(path) => crate::discover::cache::read(path)?.functions,
            None => {
                crate::discover::discover(&crate::discover::DiscoverOptions::default())?.functions
            }
        };
        functions::plan(&discovered, opts.mode, opts.max_functions, tracking)
    };
    // Room for one descriptor per attached function and the segment files.
    let wanted = 1024 + 2 * function_plan.len() as u64;
    let limit = crate::kernel::rlimit::raise_open_files(wanted);
    if limit < wanted {
        tracing::warn!(
            "open-file limit {limit} is below the {wanted} this plan may need; \
             attaching may fail for the last functions (each failure is recorded)"
        );
    }
    let aya_btf = aya::Btf::from_sys_fs().map_err(|e| RecordError::AyaBtf(e.to_string()))?;
    output_dir(&opts.output)?;
    let dir = opts.output.clone();
    let result = record_into(
        opts,
        stop,
        &dir,
        RecordInputs {
            filter,
            filters_given,
            netns,
            offsets,
            tracepoints,
            drop_reasons,
            aya_btf,
            function_plan,
            tracking,
            nft_layout,
        },
    );
    if result.is_err() {
        // Nothing was recorded if the directory is still empty: leave no
        // trace of the attempt.
        let _ = std::fs::remove_dir(&dir);
    }
    result
}

/// What `record` validated before creating the directory.
struct RecordInputs {
    filter: nft_schema::raw::PacketFilter,
    filters_given: BTreeMap<String, String>,
    netns: Vec<NetnsRef>,
    offsets: nft_schema::raw::KernelOffsets,
    tracepoints: Vec<crate::kernel::btf::SkbTracepoint>,
    drop_reasons: Vec<(u32, String)>,
    aya_btf: aya::Btf,
    function_plan: Vec<crate::sources::function::FunctionProbe>,
    tracking: bool,
    /// `None`: the nft hook is off; else its layout, or why there is none.
    nft_layout: Option<Result<NftLayout, String>>,
}

fn record_into(
    opts: &RecordOptions,
    stop: Arc<AtomicBool>,
    dir: &Path,
    inputs: RecordInputs,
) -> Result<RecordSummary, RecordError> {
    let RecordInputs {
        filter,
        filters_given,
        netns,
        offsets,
        tracepoints,
        drop_reasons,
        aya_btf,
        function_plan,
        tracking,
        nft_layout,
    } = inputs;
    let dir = dir.to_path_buf();

    // --- load and attach ---------------------------------------------------
    let mut config = ProbeConfig::unfiltered(offsets);
    config.filter = filter;
    config.netns_count = netns.len() as u32;
    config.track_skbs = tracking as u32;
    config.track_ttl_ns = opts.track_ttl.as_nanos() as u64;
    for (slot, ns) in config.netns.iter_mut().zip(&netns) {
        *slot = ns.inode;
    }
    if let Some(Ok(layout)) = &nft_layout {
        config.nft = layout.offsets;
    }
    config.stacks = opts.stacks as u32;
    let mut obj = LoadedObject::load(&LoadOptions {
        config,
        ringbuf_bytes: opts.ringbuf_bytes,
        btf: Some(&aya_btf),
        tracked_skbs: opts.tracked_skbs,
        stacks: if opts.stacks {
            nft_schema::raw::DEFAULT_STACKS
        } else {
            1
        },
    })?;
    let stack_map = opts.stacks.then(|| StackMap::take(&mut obj)).transpose()?;
    let attach_start = std::time::Instant::now();
    let reader = EventReader::take(&mut obj)?;
    let losses = LossCounters::take(&mut obj)?;

    let (plan, skipped) = tracepoint::plan(&tracepoints);
    let mut attach_plan = Vec::new();
    let mut probe_rows = Vec::new();
    let mut names = Names {
        drop_reasons: drop_reasons.iter().cloned().collect(),
        kallsyms: Kallsyms::load(),
        ..Names::default()
    };
    for probe in &plan {
        let shown = tracepoint::display_name(&probe.tracepoint);
        match tracepoint::attach(&mut obj, probe, &aya_btf) {
            Ok(()) => {
                attach_plan.push(AttachResult {
                    probe: shown.clone(),
                    attached: true,
                    error: None,
                    backend: None,
                });
                names.probes.insert(probe.probe_id, shown.clone());
                probe_rows.push(ProbeRow {
                    probe_id: probe.probe_id,
                    kind: "tracepoint".into(),
                    name: shown,
                    skb_arg: probe.skb_arg,
                });
            }
            Err(e) => {
                tracing::warn!("{shown}: {}", chain(&e));
                attach_plan.push(AttachResult {
                    probe: shown,
                    attached: false,
                    error: Some(chain(&e)),
                    backend: None,
                });
            }
        }
    }
    for (name, why) in skipped {
        attach_plan.push(AttachResult {
            probe: tracepoint::display_name(&name),
            attached: false,
            error: Some(why),
            backend: None,
        });
    }
    let fns = {
        let addresses = names
            .kallsyms
            .as_ref()
            .map(Kallsyms::addresses_by_name)
            .unwrap_or_default();
        functions::attach(&mut obj, &function_plan, opts.backend, &aya_btf, &addresses)?
    };
    let attach_seconds = attach_start.elapsed().as_secs_f64();
    let mut functions_attached = 0u64;
    for (probe, result) in &fns.results {
        attach_plan.push(AttachResult {
            probe: probe.name.clone(),
            attached: result.is_ok(),
            error: result.as_ref().err().cloned(),
            backend: result.as_ref().ok().map(|b| b.to_string()),
        });
        if result.is_ok() {
            functions_attached += 1;
            names.probes.insert(probe.probe_id, probe.name.clone());
            probe_rows.push(ProbeRow {
                probe_id: probe.probe_id,
                kind: "function".into(),
                name: probe.name.clone(),
                skb_arg: probe.skb_pos - 1,
            });
        }
    }
    if functions_attached > 0 {
        // The loss bucket every function shares.
        probe_rows.push(ProbeRow {
            probe_id: PROBE_FUNCTION_BASE,
            kind: "functions".into(),
            name: "(all functions)".into(),
            skb_arg: 0,
        });
    }
    if !function_plan.is_empty() && (functions_attached as usize) < function_plan.len() {
        let first_error = fns.results.iter().find_map(|(_, r)| r.as_ref().err());
        tracing::warn!(
            "{} of {} kernel functions attached with backend {} (first failure: {})",
            functions_attached,
            function_plan.len(),
            fns.backend,
            first_error.map_or("-", String::as_str)
        );
    }
    if probe_rows.is_empty() {
        let why = attach_plan
            .iter()
            .filter_map(|a| a.error.clone())
            .next()
            .unwrap_or_else(|| "no skb tracepoints selected".into());
        return Err(RecordError::NothingAttached(why));
    }

    // --- the nft hooks (before nftrace, so `--nft-hooks on` fails early) ---
    let mut nft_attached = false;
    if let Some(layout) = nft_layout {
        let usable = match layout {
            Err(why) => Err(why),
            // `--mode nft` traces no function but still wants the hooks;
            // where kprobes are missing, attaching says so.
            Ok(_)
                if opts.backend == BackendChoice::Tracepoint
                    && opts.nft_hooks == NftHooks::Auto =>
            {
                Err(
                    "--backend tracepoint: no kprobes, rule verdicts come from nftrace alone"
                        .to_string(),
                )
            }
            Ok(_) => Ok(()),
        };
        for hook in &nft_hook::HOOKS {
            let result = usable.clone().and_then(|()| {
                nft_hook::attach(&mut obj, hook).map_err(|e| nft_hook::describe(&e))
            });
            match result {
                Ok(()) => {
                    nft_attached = true;
                    attach_plan.push(AttachResult {
                        probe: hook.name.into(),
                        attached: true,
                        error: None,
                        backend: None,
                    });
                    names.probes.insert(hook.probe_id, hook.name.into());
                    probe_rows.push(ProbeRow {
                        probe_id: hook.probe_id,
                        kind: "nft".into(),
                        name: hook.name.into(),
                        skb_arg: 0,
                    });
                }
                Err(why) if opts.nft_hooks == NftHooks::On => {
                    return Err(RecordError::NftHooks(format!("{}: {why}", hook.name)));
                }
                Err(why) => {
                    tracing::info!("nft hook {} not attached: {why}", hook.name);
                    attach_plan.push(AttachResult {
                        probe: hook.name.into(),
                        attached: false,
                        error: Some(why),
                        backend: None,
                    });
                }
            }
        }
    }

    // --- nftrace: one thread per namespace -------------------------------------
    let nftrace_stop = Arc::new(AtomicBool::new(false));
    let nftrace_writer: NftraceWriter = Arc::new(Mutex::new(SegmentWriter::for_table(
        &dir,
        nft_schema::tables::names::NFTRACE,
        nft_schema::tables::nftrace_schema(),
    )));
    let mut nftrace_threads = Vec::new();
    let mut rulesets = Vec::new();
    // (label, netns inode) of each namespace whose ruleset is snapshotted.
    let mut snapshots: Vec<(String, u32)> = Vec::new();
    // (netns inode, `nft -j` listing) of the recorder's own table in each.
    let mut own_tables: Vec<(u32, String)> = Vec::new();
    if opts.nftrace {
        let targets: Vec<NftraceTarget> = if netns.is_empty() {
            vec![NftraceTarget {
                label: nft_schema::tables::ruleset_label(None),
                netns_path: None,
                inode: crate::kernel::netns::own_netns_inode().unwrap_or(0),
            }]
        } else {
            netns
                .iter()
                .map(|n| NftraceTarget {
                    label: nft_schema::tables::ruleset_label(Some(&n.name)),
                    netns_path: Some(netns_path(&n.name)),
                    inode: n.inode,
                })
                .collect()
        };
        for target in targets {
            names
                .nft
                .add_source(target.inode, target.netns_path.clone());
            snapshots.push((target.label.clone(), target.inode));
            let inode = target.inode;
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let label = target.label.clone();
            let handle = nftrace::spawn(
                target,
                nftrace::table::filter_rules(&opts.filter),
                dir.clone(),
                nftrace_writer.clone(),
                opts.flush_interval,
                nftrace_stop.clone(),
                ready_tx,
            );
            let probe = format!("nftrace:{label}");
            match ready_rx.recv_timeout(Duration::from_secs(15)) {
                Ok(Ok(own_table)) => {
                    own_tables.push((inode, own_table));
                    attach_plan.push(AttachResult {
                        probe,
                        attached: true,
                        error: None,
                        backend: None,
                    });
                    for when in ["start", "stop"] {
                        for ext in ["json", "nft"] {
                            rulesets.push(format!("ruleset-{label}-{when}.{ext}"));
                        }
                    }
                    nftrace_threads.push(handle);
                }
                Ok(Err(why)) => {
                    tracing::warn!("{probe}: {why}");
                    attach_plan.push(AttachResult {
                        probe,
                        attached: false,
                        error: Some(why),
                        backend: None,
                    });
                }
                Err(_) => {
                    attach_plan.push(AttachResult {
                        probe,
                        attached: false,
                        error: Some("did not start within 15 s".into()),
                        backend: None,
                    });
                    nftrace_threads.push(handle);
                }
            }
        }
    }

    // The nft hook sees nothing until nftrace's tables turn the trace key
    // on; its names come from their snapshots.
    if nft_attached {
        for (label, inode) in &snapshots {
            let path = dir.join(format!("ruleset-{label}-start.json"));
            let loaded = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|json| {
                    names
                        .nft
                        .add_snapshot(*inode, &json)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = loaded {
                tracing::warn!("nft hook names from {}: {e}", path.display());
            }
        }
        for (inode, json) in &own_tables {
            if let Err(e) = names.nft.add_snapshot(*inode, json) {
                tracing::warn!("nft hook names of the recorder's table: {e}");
            }
        }
    }

    // Interface names, so ifindex can be shown by name anywhere.
    let interface_targets: Vec<(Option<PathBuf>, u32)> = if netns.is_empty() {
        vec![(None, crate::kernel::netns::own_netns_inode().unwrap_or(0))]
    } else {
        netns
            .iter()
            .map(|n| (Some(netns_path(&n.name)), n.inode))
            .collect()
    };
    let snap_interfaces = |seen: &'static str, rows: &mut Vec<InterfaceRow>| {
        for (path, inode) in &interface_targets {
            match crate::kernel::interfaces::list(path.as_deref()) {
                Ok(list) => rows.extend(list.into_iter().map(|(ifindex, name)| InterfaceRow {
                    netns: *inode,
                    ifindex,
                    name,
                    seen,
                })),
                Err(e) => tracing::warn!("listing interfaces: {e}"),
            }
        }
    };
    let mut interface_rows = Vec::new();
    snap_interfaces("start", &mut interface_rows);

    // --- the recording's fixed parts ----------------------------------------
    let (host, kernel_release) = crate::kernel::uname::uname();
    let started_ns = monotonic_ns();
    let offset = now_ns(libc::CLOCK_REALTIME) - started_ns as i64;
    let manifest = Arc::new(Mutex::new(Manifest {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        host,
        kernel_release,
        monotonic_to_unix_ns: offset,
        started_ns,
        stopped_ns: None,
        command_line: opts.command_line.clone(),
        backend: fns.backend.into(),
        mode: opts.mode.name().into(),
        skb_tracking: tracking,
        functions_requested: function_plan.len() as u64,
        functions_attached,
        attach_seconds,
        detach_seconds: None,
        stacks: None,
        netns: netns.clone(),
        filters: filters_given,
        attach_plan,
        segments: Vec::new(),
        events: 0,
        deleted_segments: Vec::new(),
        nftrace_segments: Vec::new(),
        nftrace_events: 0,
        rulesets,
        lost_events: 0,
        end: "running".into(),
        ended_cleanly: false,
    }));
    dims::write_probes(&dir, &probe_rows)?;
    dims::write_drop_reasons(&dir, &drop_reasons)?;
    write_manifest(&dir, &manifest.lock().expect("manifest lock"))?;

    // --- run ------------------------------------------------------------------
    let (tx, rx) = pipeline::channel();
    let live: Option<pipeline::LiveSink> = if opts.live {
        let probes = names.probes.clone();
        Some(Box::new(move |e| {
            println!("{}", crate::live::line(e, &probes))
        }))
    } else {
        None
    };
    let drain_stop = Arc::new(AtomicBool::new(false));
    let drain = pipeline::spawn_drain(reader, tx, drain_stop.clone(), live);
    let on_segment_manifest = manifest.clone();
    let on_segment_dir = dir.clone();
    let writer = pipeline::spawn_writer(
        dir.clone(),
        names,
        WriterLimits {
            flush_interval: opts.flush_interval,
            segment_interval: opts.segment_interval,
            segment_rows: opts.segment_rows,
            max_bytes: opts.max_bytes,
            ring: opts.ring,
        },
        rx,
        stop.clone(),
        Box::new(move |segments| {
            let mut m = on_segment_manifest.lock().expect("manifest lock");
            m.segments = segments.to_vec();
            if let Err(e) = write_manifest(&on_segment_dir, &m) {
                tracing::error!("updating the manifest: {e}");
            }
        }),
    );

    // Only attached probes can count losses: read their slots, not all.
    // Functions share one bucket (`PROBE_FUNCTION_BASE`).
    let attached_probes: Vec<u32> = probe_rows
        .iter()
        .map(|p| p.probe_id)
        .filter(|&id| id <= PROBE_FUNCTION_BASE)
        .collect();
    let deadline = opts.duration.map(|d| std::time::Instant::now() + d);
    let mut loss_rows: Vec<LossRow> = Vec::new();
    let mut previous: BTreeMap<(u32, u32, &'static str), u64> = BTreeMap::new();
    let mut window_start = started_ns;
    let mut sample = |loss_rows: &mut Vec<LossRow>| -> Result<(), RecordError> {
        let now = monotonic_ns();
        for l in losses.read(&attached_probes)? {
            let key = (l.cpu, l.probe_id, loss_reason_name(l.reason));
            let before = previous.insert(key, l.count).unwrap_or(0);
            if l.count > before {
                loss_rows.push(LossRow {
                    window_start_ns: window_start,
                    window_end_ns: now,
                    cpu: l.cpu,
                    probe_id: l.probe_id,
                    reason: key.2.to_string(),
                    count: l.count - before,
                });
            }
        }
        window_start = now;
        Ok(())
    };
    let mut end = "signal".to_string();
    let mut tick = std::time::Instant::now();
    loop {
        if stop.load(Ordering::Acquire) {
            break;
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            end = "duration".into();
            break;
        }
        if drain.is_finished() || writer.is_finished() {
            end = "error: a recorder thread stopped".into();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if tick.elapsed() >= Duration::from_secs(1) {
            let before = loss_rows.len();
            sample(&mut loss_rows)?;
            if loss_rows.len() != before {
                // Losses are written as they happen, so a recording cut
                // short by SIGKILL still says what it lost.
                dims::write_losses(&dir, &loss_rows)?;
                let mut m = manifest.lock().expect("manifest lock");
                m.lost_events = loss_rows.iter().map(|l| l.count).sum();
                write_manifest(&dir, &m)?;
            }
            tick = std::time::Instant::now();
        }
    }

    // --- stop: detach, final counts, drain, close ---------------------------
    let detach_start = std::time::Instant::now();
    drop(fns.links);
    drop(obj); // detaches every program; maps we took stay readable
    let detach_seconds = detach_start.elapsed().as_secs_f64();
    sample(&mut loss_rows)?;
    drain_stop.store(true, Ordering::Release);
    let drained = drain
        .join()
        .map_err(|_| RecordError::Runtime("drain thread panicked".into()))??;
    let written: WriterResult = writer
        .join()
        .map_err(|_| RecordError::Runtime("writer thread panicked".into()))??;
    if written.hit_max_bytes {
        end = "max-bytes".into();
    }
    // nftrace: drain what the kernel queued, remove the tables, close.
    nftrace_stop.store(true, Ordering::Release);
    let mut nftrace_overruns = 0;
    for handle in nftrace_threads {
        match handle.join() {
            Ok(Ok(stats)) => nftrace_overruns += stats.overruns,
            Ok(Err(e)) => {
                tracing::error!("nftrace: {e}");
                end = format!("error: nftrace: {e}");
            }
            Err(_) => end = "error: nftrace thread panicked".into(),
        }
    }
    let (nftrace_segments, nftrace_events) = {
        let mut w = nftrace_writer.lock().expect("nftrace writer lock");
        if opts.nftrace && w.closed().is_empty() && !w.is_open() {
            // No message at all: still write the (empty) table, so every
            // recording has the same shape.
            let empty =
                arrow::record_batch::RecordBatch::new_empty(nft_schema::tables::nftrace_schema());
            w.write(&empty)?;
        }
        w.rotate()?;
        (w.closed(), w.rows_written())
    };
    if nftrace_overruns > 0 {
        loss_rows.push(LossRow {
            window_start_ns: started_ns,
            window_end_ns: monotonic_ns(),
            cpu: 0,
            probe_id: nft_schema::raw::PROBE_NFTRACE,
            reason: "nftrace_overrun".into(),
            count: nftrace_overruns,
        });
    }
    if written.dropped_after_limit > 0 {
        loss_rows.push(LossRow {
            window_start_ns: window_start,
            window_end_ns: monotonic_ns(),
            cpu: 0,
            probe_id: nft_schema::raw::PROBE_WRITER,
            reason: "max_bytes".into(),
            count: written.dropped_after_limit,
        });
    }
    debug_assert!(drained >= written.rows);
    dims::write_losses(&dir, &loss_rows)?;
    let stacks = match &stack_map {
        Some(map) => {
            let rows = map.rows(Kallsyms::load().as_ref());
            dims::write_stacks(&dir, &rows)?;
            Some(rows.iter().filter(|r| r.frame == 0).count() as u64)
        }
        None => None,
    };
    snap_interfaces("stop", &mut interface_rows);
    dims::write_interfaces(&dir, &interface_rows)?;
    let lost: u64 = loss_rows.iter().map(|l| l.count).sum();
    let mut m = manifest.lock().expect("manifest lock");
    m.segments = written.segments.clone();
    m.events = written.rows;
    m.deleted_segments = written.deleted_segments.clone();
    m.nftrace_segments = nftrace_segments;
    m.nftrace_events = nftrace_events;
    m.lost_events = lost;
    m.stopped_ns = Some(monotonic_ns());
    m.detach_seconds = Some(detach_seconds);
    m.stacks = stacks;
    m.end = end.clone();
    m.ended_cleanly = !end.starts_with("error");
    write_manifest(&dir, &m)?;
    Ok(RecordSummary {
        dir,
        events: written.rows,
        lost,
        segments: written.segments,
        probes_attached: probe_rows.len(),
        probes_failed: m.attach_plan.iter().filter(|a| !a.attached).count(),
        end,
    })
}
