//! Step 2 of a recording: load the eBPF object with the plan's
//! configuration, start the sources in order (tracepoints, functions, nft
//! hooks, nftrace), and write the recording's fixed parts and first
//! manifest (`end: running`), which is the readiness mark on disk.

use crate::pcap::PcapFilter;
use std::path::{Path, PathBuf};

use nft_schema::manifest::Manifest;
use nft_schema::raw::ProbeConfig;
use nft_schema::tables::values;
use nft_schema::SCHEMA_VERSION;

use super::outdir::Reserve;
use super::validate::Plan;
use super::{RecordError, RecordOptions};
use crate::drain::{EventReader, LossCounters};
use crate::kernel::clock::{monotonic_ns, now_ns};
use crate::kernel::netns::{netns_path, own_netns_inode};
use crate::loader::{LoadOptions, LoadedObject};
use crate::sources::function_plan::BackendChoice;
use crate::sources::function_recording::FunctionRecording;
use crate::sources::ledger::Ledger;
use crate::sources::nft_hook::{NftHookRecording, NftHooks};
use crate::sources::nftrace::recording::NftraceRecording;
use crate::sources::tracepoint::TracepointRecording;
use crate::sources::{SessionSource, StartContext, StartError};
use crate::stop::StopSignal;
use crate::writer::batch::Names;
use crate::writer::dims::{self, InterfaceRow};
use crate::writer::kallsyms::Kallsyms;
use crate::writer::manifest::write_manifest;
use crate::writer::stacks::StackMap;

/// Every source of one recording, in start order.
pub struct Sources {
    pub tracepoints: TracepointRecording,
    pub functions: FunctionRecording,
    pub nft_hooks: NftHookRecording,
    pub nftrace: NftraceRecording,
}

impl Sources {
    fn in_start_order(&mut self) -> [&mut dyn SessionSource; 4] {
        [
            &mut self.tracepoints,
            &mut self.functions,
            &mut self.nft_hooks,
            &mut self.nftrace,
        ]
    }

    /// Starts each source in order; if one fails, stops them all (a
    /// source that did not start has nothing to stop).
    fn start(&mut self, ctx: &mut StartContext<'_>) -> Result<(), StartError> {
        let started = self
            .in_start_order()
            .into_iter()
            .try_for_each(|source| source.start(ctx));
        if started.is_err() {
            for e in self.stop() {
                tracing::error!("stopping after a failed start: {e}");
            }
        }
        started
    }

    /// Stops every source in reverse start order: nftrace first, whose
    /// tables go at once, then the probes.
    pub fn stop(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        for source in self.in_start_order().into_iter().rev() {
            errors.extend(source.stop());
        }
        errors
    }
}

/// The maps the drain thread and the loss sampler read.
pub struct Taps {
    pub reader: EventReader,
    pub losses: LossCounters,
}

/// A recording that has started: everything the run and the stop need.
pub struct Started {
    pub dir: PathBuf,
    /// Released first thing at the stop.
    pub reserve: Reserve,
    /// Taken (and so detached) at the stop.
    pub obj: Option<LoadedObject>,
    pub sources: Sources,
    pub ledger: Ledger,
    pub stack_map: Option<StackMap>,
    pub names: Names,
    pub manifest: Manifest,
    /// Namespaces whose interfaces are listed at start and stop.
    pub interface_targets: Vec<(Option<PathBuf>, u32)>,
    pub interface_rows: Vec<InterfaceRow>,
}

fn load(opts: &RecordOptions, plan: &Plan) -> Result<LoadedObject, RecordError> {
    let mut config = ProbeConfig::unfiltered();
    config.filter = plan.filter;
    config.netns_count = plan.netns.len() as u32;
    config.track_skbs = plan.tracking as u32;
    config.track_ttl_ns = opts.track_ttl.as_nanos() as u64;
    for (slot, ns) in config.netns.iter_mut().zip(&plan.netns) {
        *slot = ns.inode;
    }
    if let Some(Ok(layout)) = &plan.nft_layout {
        config.nft = layout.offsets;
    }
    config.stacks = opts.stacks as u32;
    config.ring_wakeup_bytes = opts.ring_wakeup();
    Ok(LoadedObject::load(&LoadOptions {
        offsets: plan.offsets,
        config,
        ringbuf_bytes: opts.ringbuf_bytes,
        btf: Some(&plan.aya_btf),
        tracked_skbs: opts.tracked_skbs,
        stacks: if opts.stacks {
            nft_schema::raw::DEFAULT_STACKS
        } else {
            1
        },
        filter: plan.pcap.as_ref(),
    })?)
}

fn sources(opts: &RecordOptions, plan: &mut Plan, dir: &Path) -> Sources {
    // `--mode nft` traces no function but still wants the hooks; where
    // kprobes are missing, attaching says so.
    let usable = plan.nft_layout.as_ref().map(|layout| match layout {
        Err(why) => Err(why.clone()),
        Ok(_) if opts.backend == BackendChoice::Tracepoint && opts.nft_hooks == NftHooks::Auto => {
            Err("--backend tracepoint: no kprobes, rule verdicts come from nftrace alone".into())
        }
        Ok(_) => Ok(()),
    });
    Sources {
        tracepoints: TracepointRecording::new(&plan.tracepoints),
        functions: FunctionRecording::new(std::mem::take(&mut plan.functions), opts.backend),
        nft_hooks: NftHookRecording::new(opts.nft_hooks, usable),
        nftrace: NftraceRecording::new(
            std::mem::take(&mut plan.nftrace_targets),
            std::mem::take(&mut plan.nftrace_marking),
            dir.to_owned(),
            opts.flush_interval,
        ),
    }
}

/// Interface names, so ifindex can be shown by name anywhere.
pub fn snap_interfaces(
    targets: &[(Option<PathBuf>, u32)],
    seen: &'static str,
    rows: &mut Vec<InterfaceRow>,
) {
    for (path, inode) in targets {
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
}

fn first_manifest(
    opts: &RecordOptions,
    plan: &Plan,
    sources: &Sources,
    ledger: &Ledger,
) -> Manifest {
    let (host, kernel_release) = crate::kernel::uname::uname();
    let started_ns = monotonic_ns();
    Manifest {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        host,
        kernel_release,
        monotonic_to_unix_ns: now_ns(libc::CLOCK_REALTIME) - started_ns as i64,
        started_ns,
        command_line: opts.command_line.clone(),
        backend: sources.functions.backend.into(),
        backend_reason: sources.functions.backend_reason.clone(),
        mode: opts.mode.name().into(),
        skb_tracking: plan.tracking,
        functions_requested: sources.functions.requested(),
        functions_attached: sources.functions.attached,
        attach_seconds: sources.functions.attach_seconds,
        netns: plan.netns.clone(),
        filters: plan.filters_given.clone(),
        filter_program: plan.pcap.as_ref().map(PcapFilter::manifest),
        attach_plan: ledger.plan().to_vec(),
        rulesets: sources.nftrace.rulesets.clone(),
        end: values::END_RUNNING.into(),
        ..Manifest::default()
    }
}

pub fn start(
    opts: &RecordOptions,
    mut plan: Plan,
    dir: &Path,
    stop: &StopSignal,
) -> Result<(Started, Taps), RecordError> {
    let reserve = Reserve::take(dir)?;
    let mut obj = load(opts, &plan)?;
    let stack_map = opts.stacks.then(|| StackMap::take(&mut obj)).transpose()?;
    let reader = EventReader::take(&mut obj)?;
    let losses = LossCounters::take(&mut obj)?;
    let mut names = Names {
        drop_reasons: plan.drop_reasons.iter().cloned().collect(),
        kallsyms: Kallsyms::load(),
        ..Names::default()
    };
    let mut sources = sources(opts, &mut plan, dir);
    let mut ledger = Ledger::default();
    sources.start(&mut StartContext {
        obj: &mut obj,
        btf: &plan.aya_btf,
        ledger: &mut ledger,
        names: &mut names,
        stop,
    })?;
    if ledger.rows().is_empty() {
        sources.stop();
        let why = ledger
            .first_failure()
            .unwrap_or("no skb tracepoints selected");
        return Err(RecordError::NothingAttached(why.to_string()));
    }
    names.probes = ledger.names().clone();
    let interface_targets: Vec<(Option<PathBuf>, u32)> = if plan.netns.is_empty() {
        vec![(None, own_netns_inode().unwrap_or(0))]
    } else {
        plan.netns
            .iter()
            .map(|n| (Some(netns_path(&n.name)), n.inode))
            .collect()
    };
    let mut interface_rows = Vec::new();
    snap_interfaces(&interface_targets, "start", &mut interface_rows);
    let manifest = first_manifest(opts, &plan, &sources, &ledger);
    let written = dims::write_probes(dir, ledger.rows())
        .and_then(|()| dims::write_drop_reasons(dir, &plan.drop_reasons))
        .and_then(|()| write_manifest(dir, &manifest));
    if let Err(e) = written {
        sources.stop();
        return Err(e.into());
    }
    let started = Started {
        dir: dir.to_owned(),
        reserve,
        obj: Some(obj),
        sources,
        ledger,
        stack_map,
        names,
        manifest,
        interface_targets,
        interface_rows,
    };
    Ok((started, Taps { reader, losses }))
}
