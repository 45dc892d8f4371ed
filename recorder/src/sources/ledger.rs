//! The ledger of one recording's attach outcomes. Every source reports each
//! probe it tried here, attached or not and why; the ledger alone builds the
//! manifest's attach plan, the `probes` table's rows and the probe names
//! events are shown with, so the three never disagree.

use std::collections::HashMap;

use nft_schema::manifest::{group_failures, AttachResult, FailureGroup};

use crate::writer::dims::ProbeRow;

#[derive(Debug, Default)]
pub struct Ledger {
    plan: Vec<AttachResult>,
    rows: Vec<ProbeRow>,
    names: HashMap<u32, String>,
}

impl Ledger {
    /// A probe that attached and emits events under `row.probe_id`.
    pub fn attached(&mut self, row: ProbeRow, backend: Option<&str>) {
        self.plan.push(AttachResult {
            probe: row.name.clone(),
            attached: true,
            error: None,
            backend: backend.map(str::to_string),
        });
        self.names.insert(row.probe_id, row.name.clone());
        self.rows.push(row);
    }

    /// A source that started but has no probe id of its own (nftrace).
    pub fn started(&mut self, probe: &str) {
        self.plan.push(AttachResult {
            probe: probe.to_string(),
            attached: true,
            error: None,
            backend: None,
        });
    }

    /// A row of the probes table that is not an attachment (the loss
    /// bucket every function shares).
    pub fn bucket(&mut self, row: ProbeRow) {
        self.rows.push(row);
    }

    pub fn failed(&mut self, probe: &str, why: String) {
        self.plan.push(AttachResult {
            probe: probe.to_string(),
            attached: false,
            error: Some(why),
            backend: None,
        });
    }

    pub fn plan(&self) -> &[AttachResult] {
        &self.plan
    }

    pub fn rows(&self) -> &[ProbeRow] {
        &self.rows
    }

    pub fn names(&self) -> &HashMap<u32, String> {
        &self.names
    }

    pub fn attached_count(&self) -> usize {
        self.plan.iter().filter(|a| a.attached).count()
    }

    pub fn failed_count(&self) -> usize {
        self.plan.iter().filter(|a| !a.attached).count()
    }

    /// The first failure's reason (for "nothing could be attached").
    pub fn first_failure(&self) -> Option<&str> {
        self.plan.iter().find_map(|a| a.error.as_deref())
    }

    /// Failures grouped by reason, the largest group first.
    pub fn failure_groups(&self) -> Vec<FailureGroup> {
        group_failures(&self.plan)
    }
}
