//! What a recording is asked to do (`RecordOptions`), how it can fail
//! (`RecordError`), and what it gives back (`RecordSummary`).

use std::path::PathBuf;
use std::time::Duration;

use nft_schema::raw::MAX_NETNS;

use crate::filter::{self, FilterArgs};
use crate::sources::function_plan::{BackendChoice, Mode};
use crate::sources::nft_hook::NftHooks;

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
    /// Wake the reader every this many bytes of unread events (a power of
    /// two, at most the ring's size); 0 wakes it on every record, as the
    /// kernel does by default. `None`: an eighth of the ring.
    pub ring_wakeup_bytes: Option<u32>,
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
            ring_wakeup_bytes: None,
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

    /// The wake-up step the programs use (`ProbeConfig::ring_wakeup_bytes`).
    pub fn ring_wakeup(&self) -> u32 {
        self.ring_wakeup_bytes.unwrap_or(self.ringbuf_bytes / 8)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Filter(#[from] filter::FilterError),
    #[error(transparent)]
    PcapFilter(#[from] crate::pcap::PcapFilterError),
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
    #[error("--ring-wakeup-bytes {0}: must be 0 or a power of two no larger than --ringbuf-size")]
    RingWakeup(u32),
    #[error("--backend kprobe-multi: {0}")]
    KprobeMulti(String),
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
    #[error("no probe could be attached: {0}")]
    NothingAttached(String),
    #[error("--nft-hooks on: {0}")]
    NftHooks(String),
    #[error(transparent)]
    Start(#[from] crate::sources::StartError),
    #[error("network namespace {netns} is already being recorded ({holder}); one recorder per namespace, since a second would remove the first one's nftables table (or use --no-nftrace)")]
    Busy { netns: String, holder: String },
    #[error("namespace lock {0}")]
    Lock(String),
    #[error("{0}")]
    Runtime(String),
}

impl RecordError {
    /// The caller's mistake (a bad flag, filter, namespace or output
    /// directory), as opposed to the box's: `record` exits 2 for it (as
    /// for a flag it cannot parse), the API answers 400.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::Filter(_)
                | Self::PcapFilter(_)
                | Self::Netns { .. }
                | Self::TooManyNetns
                | Self::RingbufSize(_)
                | Self::RingWakeup(_)
                | Self::UnknownTracepoint(_)
                | Self::Output { .. }
                | Self::FunctionCache(_)
                | Self::NftHooks(_)
        )
    }
}

/// What a finished recording holds.
#[derive(Clone, Debug)]
pub struct RecordSummary {
    pub dir: PathBuf,
    pub events: u64,
    pub lost: u64,
    pub segments: Vec<String>,
    pub probes_attached: usize,
    pub probes_failed: usize,
    pub end: String,
}

impl RecordSummary {
    /// The recording ended by an error (`end` is `error: ...`): what was
    /// written is readable, but the command should fail.
    pub fn failed(&self) -> bool {
        self.end
            .starts_with(nft_schema::tables::values::END_ERROR_PREFIX)
    }
}
