//! Step 1 of a recording: check every argument, namespace and the kernel's
//! BTF, and work out what will be attached, before anything is touched.
//! Nothing here changes the kernel or the disk (the open-file limit aside).

use std::collections::BTreeMap;

use nft_schema::manifest::NetnsRef;
use nft_schema::raw::{KernelOffsets, PacketFilter, MAX_NETNS};

use super::{RecordError, RecordOptions};
use crate::filter::parse_filter;
use crate::kernel::btf::{KernelBtf, SkbTracepoint};
use crate::kernel::netns::{netns_inode, netns_path, own_netns_inode};
use crate::kernel::nft_layout::NftLayout;
use crate::pcap::PcapFilter;
use crate::sources::function::FunctionProbe;
use crate::sources::function_plan::{self, BackendChoice, Mode};
use crate::sources::nft_hook::NftHooks;
use crate::sources::nftrace::{table, NftraceTarget};

/// What was checked, ready to be started.
pub struct Plan {
    pub filter: PacketFilter,
    /// `--filter`, compiled and translated.
    pub pcap: Option<PcapFilter>,
    pub filters_given: BTreeMap<String, String>,
    pub netns: Vec<NetnsRef>,
    pub offsets: KernelOffsets,
    pub tracepoints: Vec<SkbTracepoint>,
    pub drop_reasons: Vec<(u32, String)>,
    pub aya_btf: aya::Btf,
    pub functions: Vec<FunctionProbe>,
    pub tracking: bool,
    /// `None`: the nft hook is off; else its layout, or why there is none.
    pub nft_layout: Option<Result<NftLayout, String>>,
    /// Namespaces that get the nftrace table (empty: nftrace is off), and
    /// the table's rules for the filter.
    pub nftrace_targets: Vec<NftraceTarget>,
    pub nftrace_marking: table::Marking,
}

fn resolve_netns(names: &[String]) -> Result<Vec<NetnsRef>, RecordError> {
    if names.len() > MAX_NETNS {
        return Err(RecordError::TooManyNetns);
    }
    names
        .iter()
        .map(|name| {
            let path = netns_path(name);
            let inode = netns_inode(&path).map_err(|source| RecordError::Netns {
                name: name.clone(),
                path: path.clone(),
                source,
            })?;
            Ok(NetnsRef {
                name: name.clone(),
                inode,
            })
        })
        .collect()
}

fn select_tracepoints(
    btf: &KernelBtf,
    wanted: &[String],
) -> Result<Vec<SkbTracepoint>, RecordError> {
    let mut tracepoints = btf.skb_tracepoints()?;
    if !wanted.is_empty() {
        if let Some(unknown) = wanted
            .iter()
            .find(|w| !tracepoints.iter().any(|t| &t.name == *w))
        {
            return Err(RecordError::UnknownTracepoint(unknown.clone()));
        }
        tracepoints.retain(|t| wanted.contains(&t.name));
    }
    Ok(tracepoints)
}

/// The nft hook's layout, before anything is loaded (CONFIG holds it).
fn nft_layout(
    opts: &RecordOptions,
    btf: &KernelBtf,
) -> Result<Option<Result<NftLayout, String>>, RecordError> {
    let layout = match opts.nft_hooks {
        NftHooks::Off => None,
        _ if !opts.nftrace => Some(Err(
            "the nft hook needs the nftrace source's tables (they turn nf_tables' trace key on); \
             --no-nftrace turns both off"
                .to_string(),
        )),
        _ => Some(NftLayout::running(btf).map_err(|e| e.to_string())),
    };
    if let (NftHooks::On, Some(Err(why))) = (opts.nft_hooks, &layout) {
        return Err(RecordError::NftHooks(why.clone()));
    }
    Ok(layout)
}

fn nftrace_targets(opts: &RecordOptions, netns: &[NetnsRef]) -> Vec<NftraceTarget> {
    if !opts.nftrace {
        return Vec::new();
    }
    if netns.is_empty() {
        return vec![NftraceTarget {
            label: nft_schema::tables::ruleset_label(None),
            netns_path: None,
            inode: own_netns_inode().unwrap_or(0),
        }];
    }
    netns
        .iter()
        .map(|n| NftraceTarget {
            label: nft_schema::tables::ruleset_label(Some(&n.name)),
            netns_path: Some(netns_path(&n.name)),
            inode: n.inode,
        })
        .collect()
}

fn function_plan(opts: &RecordOptions, tracking: bool) -> Result<Vec<FunctionProbe>, RecordError> {
    if opts.mode == Mode::Nft || opts.backend == BackendChoice::Tracepoint {
        return Ok(Vec::new());
    }
    if opts.backend == BackendChoice::KprobeMulti {
        // Asked for by name: say now, before anything is attached, when
        // the kernel cannot (`auto` moves on to another backend instead).
        crate::sources::kprobe_multi::supported().map_err(RecordError::KprobeMulti)?;
    }
    let discovered = match &opts.functions_file {
        Some(path) => crate::discover::cache::read(path)?.functions,
        None => crate::discover::discover(&crate::discover::DiscoverOptions::default())?.functions,
    };
    Ok(function_plan::plan(
        &discovered,
        opts.mode,
        opts.max_functions,
        tracking,
    ))
}

pub fn validate(opts: &RecordOptions) -> Result<Plan, RecordError> {
    let (filter, filters_given) = parse_filter(&opts.filter)?;
    let pcap = opts
        .filter
        .pcap
        .as_deref()
        .map(PcapFilter::compile)
        .transpose()?;
    let netns = resolve_netns(&opts.netns)?;
    if !opts.ringbuf_bytes.is_power_of_two() || opts.ringbuf_bytes < 4096 {
        return Err(RecordError::RingbufSize(opts.ringbuf_bytes));
    }
    let wakeup = opts.ring_wakeup();
    if wakeup != 0 && (!wakeup.is_power_of_two() || wakeup > opts.ringbuf_bytes) {
        return Err(RecordError::RingWakeup(wakeup));
    }
    let btf = KernelBtf::running()?;
    let (offsets, missing) = btf.kernel_offsets()?;
    if !missing.is_empty() {
        tracing::warn!(
            "fields missing from BTF, left empty: {}",
            missing.join(", ")
        );
    }
    let tracepoints = select_tracepoints(&btf, &opts.tracepoints)?;
    let drop_reasons = btf.drop_reasons()?;
    let nft_layout = nft_layout(opts, &btf)?;
    // Tracking must see frees, or a freed skb's address would keep
    // reporting whatever skb comes next: it needs both free tracepoints.
    let frees_seen = ["kfree_skb", "consume_skb"]
        .iter()
        .all(|name| tracepoints.iter().any(|t| t.name == *name));
    let filtered = filter.flags != 0 || pcap.is_some() || !netns.is_empty();
    let tracking = opts.tracked_skbs > 0 && filtered && frees_seen;
    if opts.tracked_skbs > 0 && filtered && !frees_seen {
        tracing::warn!(
            "skb tracking is off: it needs the skb:kfree_skb and skb:consume_skb tracepoints \
             to see skbs freed"
        );
    }
    let functions = function_plan(opts, tracking)?;
    // Room for one descriptor per attached function and the segment files.
    let wanted = 1024 + 2 * functions.len() as u64;
    let limit = crate::kernel::rlimit::raise_open_files(wanted);
    if limit < wanted {
        tracing::warn!(
            "open-file limit {limit} is below the {wanted} this plan may need; \
             attaching may fail for the last functions (each failure is recorded)"
        );
    }
    let aya_btf = aya::Btf::from_sys_fs().map_err(|e| RecordError::AyaBtf(e.to_string()))?;
    Ok(Plan {
        nftrace_targets: nftrace_targets(opts, &netns),
        nftrace_marking: table::marking(&opts.filter),
        filter,
        pcap,
        filters_given,
        netns,
        offsets,
        tracepoints,
        drop_reasons,
        aya_btf,
        functions,
        tracking,
        nft_layout,
    })
}
