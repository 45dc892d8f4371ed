//! The kernel-function source's part in one recording: the plan from
//! `function_plan.rs`, attached with the chosen backend, every function's
//! outcome in the ledger, and the fentry links held until the stop.

use std::time::Instant;

use nft_schema::raw::PROBE_FUNCTION_BASE;
use nft_schema::tables::values;

use super::function::{FunctionLinks, FunctionProbe};
use super::function_plan::{self, BackendChoice};
use super::{SessionSource, StartContext, StartError};
use crate::writer::dims::ProbeRow;
use crate::writer::kallsyms::Kallsyms;

pub struct FunctionRecording {
    plan: Vec<FunctionProbe>,
    choice: BackendChoice,
    links: Option<FunctionLinks>,
    /// What ran: `fentry`, `kprobe`, `fentry+kprobe`, or `tracepoint`.
    pub backend: &'static str,
    /// Why that one (the manifest's `backend_reason`).
    pub backend_reason: String,
    pub attached: u64,
    pub attach_seconds: f64,
}

impl FunctionRecording {
    pub fn new(plan: Vec<FunctionProbe>, choice: BackendChoice) -> Self {
        Self {
            plan,
            choice,
            links: None,
            backend: "tracepoint",
            backend_reason: String::new(),
            attached: 0,
            attach_seconds: 0.0,
        }
    }

    pub fn requested(&self) -> u64 {
        self.plan.len() as u64
    }
}

impl SessionSource for FunctionRecording {
    fn name(&self) -> &'static str {
        "functions"
    }

    fn start(&mut self, ctx: &mut StartContext<'_>) -> Result<(), StartError> {
        let started = Instant::now();
        let addresses = ctx
            .names
            .kallsyms
            .as_ref()
            .map(Kallsyms::addresses_by_name)
            .unwrap_or_default();
        let fns = match function_plan::attach(
            ctx.obj,
            &self.plan,
            self.choice,
            ctx.btf,
            &addresses,
            ctx.stop,
        ) {
            Err(_) if ctx.stop.requested() => return Err(StartError::Interrupted),
            r => r?,
        };
        // Held now, so an interrupted attach still detaches what it made.
        self.links = Some(fns.links);
        if ctx.stop.requested() {
            return Err(StartError::Interrupted);
        }
        self.backend = fns.backend;
        self.backend_reason = fns.reason;
        self.attach_seconds = started.elapsed().as_secs_f64();
        for (probe, result) in fns.results {
            match result {
                Ok(backend) => {
                    self.attached += 1;
                    ctx.ledger.attached(
                        ProbeRow {
                            probe_id: probe.probe_id,
                            kind: values::KIND_FUNCTION.into(),
                            name: probe.name,
                            skb_arg: probe.skb_pos - 1,
                        },
                        Some(backend),
                    );
                }
                Err(why) => ctx.ledger.failed(&probe.name, why),
            }
        }
        if self.attached > 0 {
            // The loss bucket every function shares.
            ctx.ledger.bucket(ProbeRow {
                probe_id: PROBE_FUNCTION_BASE,
                kind: values::KIND_FUNCTIONS.into(),
                name: "(all functions)".into(),
                skb_arg: 0,
            });
        }
        if self.attached < self.requested() {
            tracing::warn!(
                "{} of {} kernel functions attached with backend {}",
                self.attached,
                self.requested(),
                self.backend
            );
        }
        Ok(())
    }

    /// Closes the fentry links; kprobes go with the object.
    fn stop(&mut self) -> Vec<String> {
        self.links = None;
        Vec::new()
    }
}
