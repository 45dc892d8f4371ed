//! The `chains` and `rules` tables, from a recording's ruleset snapshots
//! (parsed by [`nft_reader::snapshot`]), labelled with their namespace and
//! `start`/`stop`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow::error::ArrowError;
use nft_reader::snapshot::{Chain, Rule};
use nft_schema::tables::{chains_schema, rules_schema, ruleset_label};

use crate::recording::Recording;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct RulesetError {
    pub path: String,
    pub reason: String,
}

/// The `chains` and `rules` batches of one recording: every snapshot that
/// could be read, labelled with its namespace inode and `start`/`stop`.
pub fn tables(rec: &Recording) -> Result<(RecordBatch, RecordBatch), RulesetError> {
    let mut chains: Vec<(Option<u32>, &'static str, &Chain)> = Vec::new();
    let mut rules: Vec<(Option<u32>, &'static str, &Rule)> = Vec::new();
    let labels: HashMap<String, u32> = rec
        .manifest
        .netns
        .iter()
        .map(|n| (ruleset_label(Some(&n.name)), n.inode))
        .collect();
    for loaded in &rec.snapshots {
        let netns = labels.get(&loaded.label).copied();
        let snap = &loaded.snapshot;
        chains.extend(snap.chains.iter().map(|c| (netns, loaded.when, c)));
        rules.extend(snap.rules.iter().map(|r| (netns, loaded.when, r)));
    }
    let wrap = |e: ArrowError| RulesetError {
        path: rec.dir.display().to_string(),
        reason: e.to_string(),
    };
    let name = |n: usize| -> ArrayRef { Arc::new(StringArray::from(vec![rec.name.as_str(); n])) };
    let strs = |v: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
    let chains_batch = RecordBatch::try_new(
        chains_schema(),
        vec![
            name(chains.len()),
            Arc::new(UInt32Array::from_iter(chains.iter().map(|c| c.0))),
            strs(chains.iter().map(|c| Some(c.1)).collect()),
            strs(chains.iter().map(|c| Some(c.2.family.as_str())).collect()),
            strs(chains.iter().map(|c| Some(c.2.table.as_str())).collect()),
            strs(chains.iter().map(|c| Some(c.2.name.as_str())).collect()),
            Arc::new(UInt64Array::from_iter_values(
                chains.iter().map(|c| c.2.handle),
            )),
            strs(chains.iter().map(|c| c.2.kind.as_deref()).collect()),
            strs(chains.iter().map(|c| c.2.hook.as_deref()).collect()),
            Arc::new(Int32Array::from_iter(chains.iter().map(|c| c.2.priority))),
            strs(chains.iter().map(|c| c.2.policy.as_deref()).collect()),
        ],
    )
    .map_err(wrap)?;
    let rules_batch = RecordBatch::try_new(
        rules_schema(),
        vec![
            name(rules.len()),
            Arc::new(UInt32Array::from_iter(rules.iter().map(|r| r.0))),
            strs(rules.iter().map(|r| Some(r.1)).collect()),
            strs(rules.iter().map(|r| Some(r.2.family.as_str())).collect()),
            strs(rules.iter().map(|r| Some(r.2.table.as_str())).collect()),
            strs(rules.iter().map(|r| Some(r.2.chain.as_str())).collect()),
            Arc::new(UInt64Array::from_iter_values(
                rules.iter().map(|r| r.2.handle),
            )),
            Arc::new(UInt32Array::from_iter_values(
                rules.iter().map(|r| r.2.position),
            )),
            strs(rules.iter().map(|r| r.2.text.as_deref()).collect()),
            Arc::new(UInt64Array::from_iter(rules.iter().map(|r| r.2.packets))),
            Arc::new(UInt64Array::from_iter(rules.iter().map(|r| r.2.bytes))),
        ],
    )
    .map_err(wrap)?;
    Ok((chains_batch, rules_batch))
}
