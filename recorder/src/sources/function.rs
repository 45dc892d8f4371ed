//! Function source, userspace side: kprobe and fentry programs
//! (`ebpf/src/function.rs`) on kernel functions taking an skb.
//!
//! A kprobe program per skb position loads once and attaches to every
//! function of that position, one kprobe each; a kprobe.multi program too,
//! with one link for all of them (`kprobe_multi.rs`), which is what makes
//! 1500 functions attach in about a second; an fentry program fixes its
//! target at load time, so it is loaded once per function (load, attach,
//! keep the link, unload, load again), which costs more at start-up and
//! less per hit. kprobe and fentry find their function's probe id in
//! `FUNC_IDS` by address, so the map is filled from `/proc/kallsyms`
//! before anything is attached; kprobe.multi gets it as the link's cookie.

use std::collections::HashMap;

use aya::maps::HashMap as BpfHashMap;
use aya::programs::{fentry::FEntryLink, FEntry, KProbe, ProgramError};
use nft_schema::raw::{
    names::{fentry_program, kprobe_multi_program, kprobe_program, MAP_FUNC_IDS},
    FUNC_FREES_SKB,
};

use super::{chain, AttachError, KernelContext, Source};
use crate::loader::{LoadError, LoadOptions, LoadedObject};
use crate::stop::StopSignal;

/// The function `check` attaches to: a landmark of the IPv4 receive path
/// that every kernel has.
pub const CHECK_FUNCTION: &str = "ip_rcv";

/// Functions after which an skb's memory is gone: they end its tracking.
/// (`kfree_skbmem` on the normal path, `napi_skb_cache_put` when the skb
/// goes back to the per-CPU cache; the `kfree_skb` and `consume_skb`
/// tracepoints do the same.)
pub const FREEING_FUNCTIONS: &[&str] = &["kfree_skbmem", "napi_skb_cache_put"];

/// Which function-tracing mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionBackend {
    Kprobe,
    KprobeMulti,
    Fentry,
}

impl FunctionBackend {
    pub fn name(self) -> &'static str {
        match self {
            FunctionBackend::Kprobe => "kprobe",
            FunctionBackend::KprobeMulti => "kprobe-multi",
            FunctionBackend::Fentry => "fentry",
        }
    }
}

/// One function of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionProbe {
    pub name: String,
    /// 1-based position of the skb parameter.
    pub skb_pos: u8,
    pub probe_id: u32,
}

/// Links that do not live in the object: fentry's, one per function.
/// Dropping them detaches.
#[derive(Default)]
pub struct FunctionLinks {
    fentry: Vec<FEntryLink>,
    /// kprobe.multi links, each for many functions.
    multi: Vec<std::os::fd::OwnedFd>,
}

impl FunctionLinks {
    pub fn extend(&mut self, other: FunctionLinks) {
        self.fentry.extend(other.fentry);
        self.multi.extend(other.multi);
    }
}

/// A function's value in `FUNC_IDS` and its kprobe.multi cookie: its probe
/// id, and whether it frees the skb.
fn function_value(p: &FunctionProbe) -> u32 {
    if FREEING_FUNCTIONS.contains(&p.name.as_str()) {
        p.probe_id | FUNC_FREES_SKB
    } else {
        p.probe_id
    }
}

/// Writes every planned function's addresses into `FUNC_IDS`. Returns the
/// functions that cannot be traced because kallsyms does not list them
/// (with the reason); the others are ready to attach.
pub fn register_ids(
    obj: &mut LoadedObject,
    probes: &[FunctionProbe],
    addresses: &HashMap<&str, Vec<u64>>,
) -> Result<Vec<(String, String)>, LoadError> {
    let map_err = |source| LoadError::Map {
        name: MAP_FUNC_IDS,
        source,
    };
    let map = obj
        .ebpf
        .map_mut(MAP_FUNC_IDS)
        .ok_or(LoadError::NoMap(MAP_FUNC_IDS))?;
    let mut ids: BpfHashMap<_, u64, u32> = BpfHashMap::try_from(map).map_err(map_err)?;
    let mut missing = Vec::new();
    for p in probes {
        let Some(addrs) = addresses.get(p.name.as_str()) else {
            missing.push((p.name.clone(), "not in /proc/kallsyms".to_string()));
            continue;
        };
        let value = function_value(p);
        for &addr in addrs {
            // A kprobe reports the function's address or the one after its
            // `endbr64`, depending on the kernel: register both.
            for a in [addr, addr + 4] {
                ids.insert(a, value, 0).map_err(map_err)?;
            }
        }
    }
    Ok(missing)
}

/// What attaching a plan gave: per function, attached or why not.
pub struct Attached {
    pub results: Vec<(FunctionProbe, Result<(), String>)>,
    pub links: FunctionLinks,
}

/// Attaches every function of `probes` with `backend`. Never stops at a
/// failure: each one is reported with its reason. Stops early, leaving the
/// rest out of the results, once `stop` is requested (a long attach must
/// not outlast a Ctrl-C).
pub fn attach_all(
    obj: &mut LoadedObject,
    backend: FunctionBackend,
    probes: &[FunctionProbe],
    btf: Option<&aya::Btf>,
    stop: &StopSignal,
) -> Attached {
    let mut results = Vec::with_capacity(probes.len());
    let mut links = FunctionLinks::default();
    match backend {
        FunctionBackend::Kprobe => {
            for pos in 1..=5u8 {
                let group: Vec<&FunctionProbe> =
                    probes.iter().filter(|p| p.skb_pos == pos).collect();
                if group.is_empty() {
                    continue;
                }
                let program = kprobe_program(pos);
                match load_kprobe(obj, &program) {
                    Ok(prog) => {
                        for p in group.into_iter().take_while(|_| !stop.requested()) {
                            let r = prog
                                .attach(&p.name, 0)
                                .map(drop)
                                .map_err(|e| chain(&program_error(&program, &p.name, e)));
                            results.push((p.clone(), r));
                        }
                    }
                    Err(e) => {
                        let why = chain(&e);
                        results.extend(group.iter().map(|p| ((*p).clone(), Err(why.clone()))));
                    }
                }
            }
        }
        FunctionBackend::KprobeMulti => attach_multi(obj, probes, &mut results, &mut links, stop),
        FunctionBackend::Fentry => {
            for p in probes.iter().take_while(|_| !stop.requested()) {
                let r = match btf {
                    None => Err(AttachError::NoBtf("fentry").to_string()),
                    Some(btf) => attach_fentry(obj, p, btf)
                        .map(|link| links.fentry.push(link))
                        .map_err(|e| chain(&e)),
                };
                results.push((p.clone(), r));
            }
        }
    }
    Attached { results, links }
}

/// kprobe.multi: per skb position, the program loaded once and linked to
/// all its functions ([`link_bisecting`]); functions ftrace does not list
/// are refused up front.
fn attach_multi(
    obj: &LoadedObject,
    probes: &[FunctionProbe],
    results: &mut Vec<(FunctionProbe, Result<(), String>)>,
    links: &mut FunctionLinks,
    stop: &StopSignal,
) {
    // Found before linking: one refused function fails a whole link.
    let traceable = crate::discover::traceable::read().ok();
    let (probes, untraceable): (Vec<&FunctionProbe>, Vec<&FunctionProbe>) = probes
        .iter()
        .partition(|p| traceable.as_ref().is_none_or(|t| t.names.contains(&p.name)));
    results.extend(untraceable.into_iter().map(|p| {
        let why = "not in available_filter_functions: ftrace cannot attach to it \
                   (notrace, or inlined everywhere)";
        (p.clone(), Err(why.to_string()))
    }));
    // Parsed and relocated once for the five programs.
    let relocated = super::kprobe_multi::Relocated::new(obj);
    for pos in 1..=5u8 {
        let group: Vec<&FunctionProbe> = probes
            .iter()
            .copied()
            .filter(|p| p.skb_pos == pos)
            .collect();
        if group.is_empty() || stop.requested() {
            continue;
        }
        let program = kprobe_multi_program(pos);
        let loaded = match &relocated {
            Ok(r) => r.load(&program),
            Err(e) => Err(super::kprobe_multi::KprobeMultiError::Relocate { why: e.to_string() }),
        };
        match loaded {
            Ok(prog) => link_bisecting(&prog, &group, &mut links.multi, results),
            Err(e) => {
                let why = chain(&e);
                results.extend(group.iter().map(|p| ((*p).clone(), Err(why.clone()))));
            }
        }
    }
}

/// Links `group` with as few kprobe.multi links as the kernel allows: all
/// at once, or, when it refuses, each half on its own, down to the single
/// functions it refuses, each reported with the kernel's reason (one bad
/// function among 1500 costs about 2 log2(1500) = 22 tries, not 1500).
fn link_bisecting(
    prog: &std::os::fd::OwnedFd,
    group: &[&FunctionProbe],
    links: &mut Vec<std::os::fd::OwnedFd>,
    results: &mut Vec<(FunctionProbe, Result<(), String>)>,
) {
    let functions: Vec<(&str, u64)> = group
        .iter()
        .map(|p| (p.name.as_str(), function_value(p) as u64))
        .collect();
    match super::kprobe_multi::link(prog, &functions) {
        Ok(link) => {
            links.push(link);
            results.extend(group.iter().map(|p| ((*p).clone(), Ok(()))));
        }
        // No fprobe in this kernel: no smaller link would do better.
        Err(e) if group.len() == 1 || e.kind() == std::io::ErrorKind::Unsupported => {
            let why = format!("kprobe.multi link: {e}");
            results.extend(group.iter().map(|p| ((*p).clone(), Err(why.clone()))));
        }
        Err(_) => {
            let (a, b) = group.split_at(group.len() / 2);
            link_bisecting(prog, a, links, results);
            link_bisecting(prog, b, links, results);
        }
    }
}

fn program_error(program: &str, target: &str, source: ProgramError) -> AttachError {
    AttachError::Program {
        program: program.to_string(),
        target: target.to_string(),
        source: Box::new(source),
    }
}

fn load_kprobe<'a>(
    obj: &'a mut LoadedObject,
    program: &str,
) -> Result<&'a mut KProbe, AttachError> {
    let prog: &mut KProbe = obj
        .ebpf
        .program_mut(program)
        .ok_or_else(|| AttachError::NoProgram(program.into()))?
        .try_into()
        .map_err(|e| program_error(program, "(load)", e))?;
    // `--backend auto` may have loaded it already, to try one function.
    if prog.fd().is_err() {
        super::load_retrying(|| prog.load()).map_err(|e| program_error(program, "(load)", e))?;
    }
    Ok(prog)
}

/// Loads the fentry program of `p`'s position against `p`, attaches it and
/// returns the link; the program is unloaded again so the next function can
/// load it (the link keeps this instance alive in the kernel).
fn attach_fentry(
    obj: &mut LoadedObject,
    p: &FunctionProbe,
    btf: &aya::Btf,
) -> Result<FEntryLink, AttachError> {
    let program = fentry_program(p.skb_pos);
    let err = |e| program_error(&program, &p.name, e);
    let prog: &mut FEntry = obj
        .ebpf
        .program_mut(&program)
        .ok_or_else(|| AttachError::NoProgram(program.clone()))?
        .try_into()
        .map_err(err)?;
    let result = prog
        .load(&p.name, btf)
        .and_then(|()| prog.attach())
        .and_then(|id| prog.take_link(id));
    // Unload whatever happened, so the next function starts clean.
    let _ = prog.unload();
    result.map_err(err)
}

pub struct FunctionSource(pub FunctionBackend);

impl Source for FunctionSource {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn try_on_running_kernel(&self, kernel: &KernelContext) -> Result<String, String> {
        let mut obj = LoadedObject::load(&LoadOptions {
            offsets: kernel.offsets,
            config: nft_schema::raw::ProbeConfig::unfiltered(),
            ringbuf_bytes: 4096,
            btf: kernel.aya_btf.as_ref(),
            tracked_skbs: 1,
            stacks: 1,
            filter: None,
        })
        .map_err(|e| chain(&e))?;
        let probe = FunctionProbe {
            name: CHECK_FUNCTION.into(),
            skb_pos: 1,
            probe_id: nft_schema::raw::PROBE_FUNCTION_BASE + 1,
        };
        let attached = attach_all(
            &mut obj,
            self.0,
            &[probe],
            kernel.aya_btf.as_ref(),
            &StopSignal::new(),
        );
        match attached.results.into_iter().next() {
            Some((_, Ok(()))) => Ok(format!("attached {}/{CHECK_FUNCTION}", self.name())),
            Some((_, Err(why))) => Err(why),
            None => Err("nothing attached".into()),
        }
    }
}
