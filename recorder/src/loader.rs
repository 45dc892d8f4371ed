//! Loads the embedded eBPF object and writes its `CONFIG`. Programs are
//! loaded later, one by one, by the sources that attach them.

use aya::{
    maps::{Array, MapError},
    Btf, Ebpf, EbpfError, EbpfLoader,
};
use nft_schema::raw::{names, KernelOffsets, ProbeConfig};

use crate::ebpf_object::EBPF_OBJECT;
use crate::pcap::{patch, PcapFilter};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("loading the eBPF object failed: {0}")]
    Ebpf(#[from] EbpfError),
    #[error("eBPF object has no map {0}")]
    NoMap(&'static str),
    #[error("{0}")]
    Filter(#[from] patch::PatchError),
    #[error("duplicating a map fd: {0}")]
    Fd(std::io::Error),
    #[error("writing map {name} failed: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
}

/// One load of the eBPF object, configured.
pub struct LoadedObject {
    pub ebpf: Ebpf,
    /// Every map's fd, kept from the load (the recorder takes some maps out
    /// of `ebpf` later), for the programs it loads itself
    /// (`sources::kprobe_multi`).
    pub map_fds: Vec<(String, OwnedFd)>,
    /// The object as loaded: with `--filter`, the embedded one with the
    /// filter written in (`pcap::patch`).
    pub object: Option<patch::ObjectBytes>,
}

impl LoadedObject {
    /// The ELF bytes this object was loaded from.
    pub fn object_bytes(&self) -> &[u8] {
        self.object.as_ref().map_or(EBPF_OBJECT, |o| o.bytes())
    }
}

/// What to load with.
pub struct LoadOptions<'a> {
    /// Field offsets from BTF (the programs' read-only global).
    pub offsets: KernelOffsets,
    pub config: ProbeConfig,
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    pub ringbuf_bytes: u32,
    /// The running kernel's BTF as aya needs it (for tp_btf/fentry targets).
    pub btf: Option<&'a Btf>,
    /// Size of the `TRACKED` map (at least 1; tracking itself is switched
    /// by `ProbeConfig::track_skbs`).
    pub tracked_skbs: u32,
    /// Size of the `STACKS` map (at least 1: the kernel allocates it up
    /// front; stacks are switched by `ProbeConfig::stacks`).
    pub stacks: u32,
    /// `--filter`, written into the object before it is loaded.
    pub filter: Option<&'a PcapFilter>,
}

impl LoadedObject {
    pub fn load(opts: &LoadOptions<'_>) -> Result<Self, LoadError> {
        let object = opts
            .filter
            .map(|f| patch::patched(EBPF_OBJECT, f))
            .transpose()?;
        let layers = opts.filter.map(PcapFilter::layers).unwrap_or_default();
        let mut loader = EbpfLoader::new();
        loader
            .btf(opts.btf)
            .override_global(names::GLOBAL_KERNEL_OFFSETS, &opts.offsets, true)
            .override_global(names::GLOBAL_PCAP_LAYERS, &layers, true)
            .map_max_entries(names::MAP_EVENTS, opts.ringbuf_bytes)
            .map_max_entries(names::MAP_TRACKED, opts.tracked_skbs.max(1))
            .map_max_entries(names::MAP_STACKS, opts.stacks.max(1));
        // For whoever debugs a program the verifier refuses: the full log.
        if std::env::var_os("NFT_TRACER_VERIFIER_LOG").is_some() {
            loader
                .verifier_log_level(aya::VerifierLogLevel::VERBOSE | aya::VerifierLogLevel::STATS);
        }
        let mut ebpf = loader.load(object.as_ref().map_or(EBPF_OBJECT, |o| o.bytes()))?;
        let map = ebpf
            .map_mut(names::MAP_CONFIG)
            .ok_or(LoadError::NoMap(names::MAP_CONFIG))?;
        let mut config: Array<_, ProbeConfig> =
            Array::try_from(map).map_err(|source| LoadError::Map {
                name: names::MAP_CONFIG,
                source,
            })?;
        config
            .set(0, opts.config, 0)
            .map_err(|source| LoadError::Map {
                name: names::MAP_CONFIG,
                source,
            })?;
        let mut map_fds = Vec::new();
        for (name, map) in ebpf.maps() {
            if let Some(fd) = map_fd(map) {
                map_fds.push((
                    name.to_string(),
                    fd.try_clone_to_owned().map_err(LoadError::Fd)?,
                ));
            }
        }
        Ok(Self {
            ebpf,
            map_fds,
            object,
        })
    }
}

/// The fd of the kinds of map our object has (aya has no accessor for
/// any map).
fn map_fd(map: &aya::maps::Map) -> Option<BorrowedFd<'_>> {
    use aya::maps::Map;
    let data = match map {
        Map::Array(d)
        | Map::HashMap(d)
        | Map::PerCpuArray(d)
        | Map::RingBuf(d)
        | Map::StackTraceMap(d)
        | Map::LruHashMap(d)
        | Map::PerCpuHashMap(d) => d,
        _ => return None,
    };
    Some(data.fd().as_fd())
}
