//! Tracepoint source, userspace side: every tracepoint whose BTF prototype
//! takes a `struct sk_buff *`, each attached through a slot program
//! (`ebpf/src/tracepoint.rs`) whose number is the probe id. Works on every
//! kernel with BTF, including where kprobes and ftrace are locked down.

use aya::programs::BtfTracePoint;
use nft_schema::raw::{
    names::{tp_slot_program, PROG_TP_KFREE_SKB},
    tp_slot_base, PROBE_KFREE_SKB, TP_SLOTS,
};

use nft_schema::tables::values;

use super::{
    chain, load_retrying, AttachError, KernelContext, SessionSource, Source, StartContext,
    StartError,
};
use crate::kernel::btf::SkbTracepoint;
use crate::loader::{LoadOptions, LoadedObject};
use crate::writer::dims::ProbeRow;

/// The tracepoint `check` attaches to: on every receive path.
pub const CHECK_TRACEPOINT: &str = "netif_receive_skb";

/// One tracepoint of the plan: which program serves it, under which id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracepointProbe {
    /// BTF name (`netif_receive_skb`).
    pub tracepoint: String,
    pub skb_arg: u8,
    pub probe_id: u32,
    pub program: String,
}

/// Human name with the tracepoint's system, as `perf list` shows it.
pub fn display_name(tracepoint: &str) -> String {
    let system = if tracepoint == "kfree_skb"
        || tracepoint == "consume_skb"
        || tracepoint.starts_with("skb_")
    {
        "skb"
    } else if tracepoint.starts_with("net_")
        || tracepoint.starts_with("netif_")
        || tracepoint.starts_with("napi_")
    {
        "net"
    } else {
        "tp"
    };
    format!("{system}:{tracepoint}")
}

/// Assigns a program slot to each tracepoint. Tracepoints beyond the slots
/// of their argument position are returned separately (with the reason) so
/// the manifest can say what is not covered.
pub fn plan(tracepoints: &[SkbTracepoint]) -> (Vec<TracepointProbe>, Vec<(String, String)>) {
    // Slot 0 of argument 0 is `skb:consume_skb`'s: its program ends skb
    // tracking (`ebpf/src/tracepoint.rs`).
    let mut used = [0u32; TP_SLOTS.len()];
    used[0] = 1;
    let mut probes = Vec::new();
    let mut skipped = Vec::new();
    for tp in tracepoints {
        if tp.name == "consume_skb" && tp.skb_arg == 0 {
            probes.push(TracepointProbe {
                tracepoint: tp.name.clone(),
                skb_arg: 0,
                probe_id: tp_slot_base(0),
                program: tp_slot_program(0, 0),
            });
            continue;
        }
        if tp.name == "kfree_skb" {
            probes.push(TracepointProbe {
                tracepoint: tp.name.clone(),
                skb_arg: tp.skb_arg,
                probe_id: PROBE_KFREE_SKB,
                program: PROG_TP_KFREE_SKB.to_string(),
            });
            continue;
        }
        let arg = tp.skb_arg as usize;
        if arg >= TP_SLOTS.len() {
            skipped.push((
                tp.name.clone(),
                format!(
                    "skb is argument {arg}; programs exist for 0..{}",
                    TP_SLOTS.len()
                ),
            ));
            continue;
        }
        if used[arg] == TP_SLOTS[arg] {
            skipped.push((
                tp.name.clone(),
                format!(
                    "all {} slot programs for skb argument {arg} are in use",
                    TP_SLOTS[arg]
                ),
            ));
            continue;
        }
        let index = used[arg];
        used[arg] += 1;
        probes.push(TracepointProbe {
            tracepoint: tp.name.clone(),
            skb_arg: tp.skb_arg,
            probe_id: tp_slot_base(arg) + index,
            program: tp_slot_program(arg, index),
        });
    }
    (probes, skipped)
}

/// Loads `probe.program` against its tracepoint and attaches it. The link
/// lives as long as `obj`.
pub fn attach(
    obj: &mut LoadedObject,
    probe: &TracepointProbe,
    btf: &aya::Btf,
) -> Result<(), AttachError> {
    let err = |source: aya::programs::ProgramError| AttachError::Program {
        program: probe.program.clone(),
        target: probe.tracepoint.clone(),
        source: Box::new(source),
    };
    let prog: &mut BtfTracePoint = obj
        .ebpf
        .program_mut(&probe.program)
        .ok_or_else(|| AttachError::NoProgram(probe.program.clone()))?
        .try_into()
        .map_err(err)?;
    load_retrying(|| prog.load(&probe.tracepoint, btf)).map_err(err)?;
    prog.attach().map_err(err)?;
    Ok(())
}

/// The tracepoints of one recording.
pub struct TracepointRecording {
    plan: Vec<TracepointProbe>,
    /// Tracepoints with no program slot left, and why.
    skipped: Vec<(String, String)>,
}

impl TracepointRecording {
    pub fn new(tracepoints: &[SkbTracepoint]) -> Self {
        let (plan, skipped) = plan(tracepoints);
        Self { plan, skipped }
    }
}

impl SessionSource for TracepointRecording {
    fn name(&self) -> &'static str {
        "tracepoints"
    }

    fn start(&mut self, ctx: &mut StartContext<'_>) -> Result<(), StartError> {
        for probe in &self.plan {
            if ctx.stop.requested() {
                return Err(StartError::Interrupted);
            }
            let shown = display_name(&probe.tracepoint);
            match attach(ctx.obj, probe, ctx.btf) {
                Ok(()) => ctx.ledger.attached(
                    ProbeRow {
                        probe_id: probe.probe_id,
                        kind: values::KIND_TRACEPOINT.into(),
                        name: shown,
                        skb_arg: probe.skb_arg,
                    },
                    None,
                ),
                Err(e) => ctx.ledger.failed(&shown, chain(&e)),
            }
        }
        for (name, why) in &self.skipped {
            ctx.ledger.failed(&display_name(name), why.clone());
        }
        Ok(())
    }

    /// Tracepoint programs belong to the object: they detach with it.
    fn stop(&mut self) -> Vec<String> {
        Vec::new()
    }
}

pub struct TracepointSource;

impl Source for TracepointSource {
    fn name(&self) -> &'static str {
        "tp_btf"
    }

    fn try_on_running_kernel(&self, kernel: &KernelContext) -> Result<String, String> {
        let btf = kernel
            .aya_btf
            .as_ref()
            .ok_or_else(|| AttachError::NoBtf("tp_btf").to_string())?;
        let mut obj = LoadedObject::load(&LoadOptions {
            offsets: kernel.offsets,
            config: nft_schema::raw::ProbeConfig::unfiltered(),
            ringbuf_bytes: 4096,
            btf: Some(btf),
            tracked_skbs: 1,
            stacks: 1,
            filter: None,
        })
        .map_err(|e| chain(&e))?;
        let probe = TracepointProbe {
            tracepoint: CHECK_TRACEPOINT.into(),
            skb_arg: 0,
            probe_id: 1,
            program: tp_slot_program(0, 1),
        };
        attach(&mut obj, &probe, btf).map_err(|e| chain(&e))?;
        // Dropping `obj` detaches and unloads.
        Ok(format!("attached tp_btf/{CHECK_TRACEPOINT}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(name: &str, skb_arg: u8) -> SkbTracepoint {
        SkbTracepoint {
            name: name.into(),
            skb_arg,
        }
    }

    #[test]
    fn slots_are_assigned_per_argument_and_kfree_skb_is_special() {
        let (probes, skipped) = plan(&[
            tp("kfree_skb", 0),
            tp("netif_rx", 0),
            tp("consume_skb", 0),
            tp("tcp_retransmit_skb", 1),
            tp("weird", 7),
        ]);
        let by = |n: &str| probes.iter().find(|p| p.tracepoint == n).unwrap();
        assert_eq!(by("consume_skb").program, "tp_a0_00");
        assert_eq!(by("netif_rx").probe_id, 1);
        assert_eq!(by("kfree_skb").probe_id, PROBE_KFREE_SKB);
        assert_eq!(by("tcp_retransmit_skb").program, "tp_a1_00");
        assert_eq!(by("tcp_retransmit_skb").probe_id, 24);
        assert_eq!(skipped.len(), 1);
        assert_eq!(display_name("kfree_skb"), "skb:kfree_skb");
        assert_eq!(display_name("net_dev_queue"), "net:net_dev_queue");
    }
}
