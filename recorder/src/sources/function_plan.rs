//! Which kernel functions a recording traces (`--mode`, `--max-functions`,
//! `--functions`) and with which backend (`--backend`), and attaching them.
//! The mechanisms themselves are in `function.rs`; the source's part in a
//! recording is `function_recording.rs`.

use std::collections::HashMap;

use nft_schema::raw::{MAX_FUNCTIONS, PROBE_FUNCTION_BASE};

use crate::discover::DiscoveredFunction;
use crate::loader::LoadedObject;
use crate::sources::function::{
    attach_all, register_ids, FunctionBackend, FunctionLinks, FunctionProbe, FREEING_FUNCTIONS,
};
use crate::stop::StopSignal;

/// `record --mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// nftables events and tracepoints only.
    Nft,
    /// Plus the priority-0 functions (the landmarks of every path).
    Full,
    /// Plus discovered functions by priority, up to --max-functions.
    Multi,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Nft => "nft",
            Mode::Full => "full",
            Mode::Multi => "multi",
        }
    }
}

/// `record --backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// By cost: above `AUTO_MULTI_ABOVE` functions kprobe.multi, else
    /// fentry (and kprobe for what fentry refuses); then the others; else
    /// tracepoints only.
    Auto,
    Fentry,
    Kprobe,
    /// One kprobe.multi link per skb position for all its functions.
    KprobeMulti,
    /// Tracepoints only: no kernel functions.
    Tracepoint,
}

/// The functions to trace, each with its probe id. `max_functions` 0 means
/// all (multi mode). When `tracking`, the functions that free skbs are added
/// so tracked skbs are forgotten when freed.
pub fn plan(
    discovered: &[DiscoveredFunction],
    mode: Mode,
    max_functions: usize,
    tracking: bool,
) -> Vec<FunctionProbe> {
    let mut chosen: Vec<&DiscoveredFunction> = match mode {
        Mode::Nft => return Vec::new(),
        Mode::Full => discovered.iter().filter(|f| f.priority == 0).collect(),
        Mode::Multi => {
            let mut all: Vec<&DiscoveredFunction> = discovered.iter().collect();
            // Most important first, so --max-functions keeps those.
            all.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
            if max_functions > 0 {
                all.truncate(max_functions);
            }
            all
        }
    };
    if tracking {
        for name in FREEING_FUNCTIONS {
            if !chosen.iter().any(|f| f.name == *name) {
                if let Some(f) = discovered.iter().find(|f| f.name == *name) {
                    chosen.push(f);
                }
            }
        }
    }
    chosen.truncate(MAX_FUNCTIONS as usize);
    chosen
        .into_iter()
        .enumerate()
        .map(|(i, f)| FunctionProbe {
            name: f.name.clone(),
            skb_pos: f.skb_pos,
            probe_id: PROBE_FUNCTION_BASE + 1 + i as u32,
        })
        .collect()
}

/// What attaching the plan gave.
pub struct FunctionsAttached {
    /// `fentry`, `kprobe`, `fentry+kprobe` (auto: fentry, and kprobe for
    /// the functions fentry could not take, such as module functions), or
    /// `tracepoint` when no function could be traced.
    pub backend: &'static str,
    /// Why that backend (`auto`'s rule, and what those tried before said).
    pub reason: String,
    /// Per function: the backend that attached it, or why none did.
    pub results: Vec<(FunctionProbe, Result<&'static str, String>)>,
    pub links: FunctionLinks,
}

#[derive(Debug, thiserror::Error)]
pub enum FunctionsError {
    #[error("--backend {backend}: no function could be attached ({why})")]
    Backend { backend: &'static str, why: String },
    #[error(transparent)]
    Load(#[from] crate::loader::LoadError),
}

/// Fills `FUNC_IDS` and attaches the plan. `auto` tries fentry, then
/// kprobe, on the first function, and keeps the first that works; if
/// neither does, no function is traced and every one says why.
pub fn attach(
    obj: &mut LoadedObject,
    plan: &[FunctionProbe],
    choice: BackendChoice,
    btf: &aya::Btf,
    addresses: &HashMap<&str, Vec<u64>>,
    stop: &StopSignal,
) -> Result<FunctionsAttached, FunctionsError> {
    let none = |backend, results| FunctionsAttached {
        backend,
        reason: String::new(),
        results,
        links: FunctionLinks::default(),
    };
    if plan.is_empty() || choice == BackendChoice::Tracepoint {
        return Ok(none("tracepoint", Vec::new()));
    }
    let missing: HashMap<String, String> =
        register_ids(obj, plan, addresses)?.into_iter().collect();
    let (ready, unnamed): (Vec<FunctionProbe>, Vec<FunctionProbe>) = plan
        .iter()
        .cloned()
        .partition(|p| !missing.contains_key(&p.name));
    let mut results: Vec<(FunctionProbe, Result<&'static str, String>)> = unnamed
        .into_iter()
        .map(|p| {
            let why = missing[&p.name].clone();
            (p, Err(why))
        })
        .collect();
    if ready.is_empty() {
        return Ok(none("tracepoint", results));
    }

    let candidates = candidates(choice, ready.len());
    let mut tried = Vec::new();
    for &backend in candidates {
        match try_backend(obj, backend, &ready, btf, stop) {
            Ok(attached) => {
                let (mut all, mut links) = attached;
                let mut name = backend.name();
                if backend == FunctionBackend::Fentry && choice == BackendChoice::Auto {
                    links.extend(kprobe_for_the_rest(obj, &mut all, btf, stop));
                    if all.iter().any(|(_, r)| *r == Ok("kprobe")) {
                        name = "fentry+kprobe";
                    }
                }
                results.extend(all);
                let mut reason = choice_rule(choice, ready.len());
                for t in &tried {
                    reason.push_str(&format!("; {t}"));
                }
                return Ok(FunctionsAttached {
                    backend: name,
                    reason,
                    results,
                    links,
                });
            }
            Err(why) => tried.push(format!("{}: {why}", backend.name())),
        }
    }
    let why = tried.join("; ");
    if choice != BackendChoice::Auto {
        return Err(FunctionsError::Backend {
            backend: candidates[0].name(),
            why,
        });
    }
    results.extend(
        ready
            .into_iter()
            .map(|p| (p, Err(format!("no function backend works here ({why})")))),
    );
    Ok(none("tracepoint", results))
}

/// Above this many functions `auto` tries kprobe.multi first: one link
/// attaches them all in about a second, where fentry loads a program per
/// function (minutes for 1500 under TCG, docs/benchmarks.md); at or below
/// it fentry goes first, the cheapest per hit and quick enough to attach.
pub const AUTO_MULTI_ABOVE: usize = 64;

/// `auto`'s rule as applied to `count` functions, for the manifest.
fn choice_rule(choice: BackendChoice, count: usize) -> String {
    match choice {
        BackendChoice::Auto if count > AUTO_MULTI_ABOVE => format!(
            "auto: {count} functions (more than {AUTO_MULTI_ABOVE}): kprobe-multi first, one link for all"
        ),
        BackendChoice::Auto => format!(
            "auto: {count} functions (at most {AUTO_MULTI_ABOVE}): fentry first, cheapest per hit"
        ),
        _ => "asked for with --backend".into(),
    }
}

/// The backends `choice` tries, in order, for `count` functions.
fn candidates(choice: BackendChoice, count: usize) -> &'static [FunctionBackend] {
    use FunctionBackend::{Fentry, Kprobe, KprobeMulti};
    match choice {
        BackendChoice::Auto if count > AUTO_MULTI_ABOVE => &[KprobeMulti, Fentry, Kprobe],
        BackendChoice::Auto => &[Fentry, Kprobe],
        BackendChoice::Fentry => &[Fentry],
        BackendChoice::Kprobe => &[Kprobe],
        BackendChoice::KprobeMulti => &[KprobeMulti],
        BackendChoice::Tracepoint => &[],
    }
}

type BackendResults = (
    Vec<(FunctionProbe, Result<&'static str, String>)>,
    FunctionLinks,
);

/// Attaches `ready` with `backend`, or says why the backend does not work
/// here. kprobe.multi goes all at once (its program loads once, its links
/// cover many functions); the others try the first function alone, so a
/// backend that cannot work costs one attempt, not one per function.
fn try_backend(
    obj: &mut LoadedObject,
    backend: FunctionBackend,
    ready: &[FunctionProbe],
    btf: &aya::Btf,
    stop: &StopSignal,
) -> Result<BackendResults, String> {
    let tag = |r: Result<(), String>| r.map(|()| backend.name());
    if backend == FunctionBackend::KprobeMulti {
        // A trial link first: a kernel without fprobe costs one syscall,
        // not a program load per skb position.
        super::kprobe_multi::supported()?;
        let all = attach_all(obj, backend, ready, Some(btf), stop);
        if all.results.iter().all(|(_, r)| r.is_err()) {
            return Err(match all.results.first() {
                Some((_, Err(why))) => why.clone(),
                _ => "nothing attached".into(),
            });
        }
        let results = all.results.into_iter().map(|(p, r)| (p, tag(r))).collect();
        return Ok((results, all.links));
    }
    let first = &ready[..1];
    let probe = attach_all(obj, backend, first, Some(btf), stop);
    match probe.results.into_iter().next() {
        Some((_, Ok(()))) => {
            let rest = attach_all(obj, backend, &ready[1..], Some(btf), stop);
            let mut links = probe.links;
            links.extend(rest.links);
            let mut all = vec![(ready[0].clone(), Ok(backend.name()))];
            all.extend(rest.results.into_iter().map(|(p, r)| (p, tag(r))));
            Ok((all, links))
        }
        Some((_, Err(why))) => Err(why),
        None => Err("nothing attached".into()),
    }
}

/// `--backend auto` with fentry working: the functions fentry refused get a
/// kprobe. aya resolves fentry targets in vmlinux BTF only, so functions of
/// modules (nf_tables, veth, ...) always land here; a function neither
/// takes keeps both reasons.
fn kprobe_for_the_rest(
    obj: &mut LoadedObject,
    all: &mut [(FunctionProbe, Result<&'static str, String>)],
    btf: &aya::Btf,
    stop: &StopSignal,
) -> FunctionLinks {
    let failed: Vec<FunctionProbe> = all
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(p, _)| p.clone())
        .collect();
    if failed.is_empty() {
        return FunctionLinks::default();
    }
    let retry = attach_all(obj, FunctionBackend::Kprobe, &failed, Some(btf), stop);
    let mut by_name: HashMap<String, Result<(), String>> = retry
        .results
        .into_iter()
        .map(|(p, r)| (p.name, r))
        .collect();
    for (p, r) in all.iter_mut() {
        let Err(fentry_why) = r else {
            continue;
        };
        if let Some(kprobe) = by_name.remove(&p.name) {
            *r = match kprobe {
                Ok(()) => Ok("kprobe"),
                Err(kprobe_why) => Err(format!("fentry: {fentry_why}; kprobe: {kprobe_why}")),
            };
        }
    }
    retry.links
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::Layer;

    fn f(name: &str, priority: u8) -> DiscoveredFunction {
        DiscoveredFunction {
            name: name.into(),
            skb_pos: 1,
            priority,
            layer: Layer::Other,
            module: None,
        }
    }

    #[test]
    fn modes_choose_by_priority_and_tracking_adds_the_frees() {
        let found = [
            f("ip_rcv", 0),
            f("tcp_ack", 1),
            f("kfree_skbmem", 2),
            f("zz_other", 2),
            f("dev_queue_xmit", 0),
        ];
        let names = |p: Vec<FunctionProbe>| p.into_iter().map(|p| p.name).collect::<Vec<_>>();
        assert!(plan(&found, Mode::Nft, 0, true).is_empty());
        assert_eq!(
            names(plan(&found, Mode::Full, 0, false)),
            ["ip_rcv", "dev_queue_xmit"]
        );
        assert_eq!(
            names(plan(&found, Mode::Full, 0, true)),
            ["ip_rcv", "dev_queue_xmit", "kfree_skbmem"]
        );
        assert_eq!(
            names(plan(&found, Mode::Multi, 3, false)),
            ["dev_queue_xmit", "ip_rcv", "tcp_ack"]
        );
        let all = plan(&found, Mode::Multi, 0, false);
        assert_eq!(all.len(), 5);
        assert_eq!(all[0].probe_id, PROBE_FUNCTION_BASE + 1);
        assert_eq!(all[4].probe_id, PROBE_FUNCTION_BASE + 5);
    }
}
