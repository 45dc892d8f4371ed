//! The `chains` and `rules` tables, from a recording's ruleset snapshots:
//! structure (chains, hooks, priorities, policies, handles, positions,
//! counters) from `nft -j -a list ruleset`, rule text from `nft -s -a list
//! ruleset` (the line that ends in `# handle N`).

use crate::safe_read::{read_small, MAX_SNAPSHOT_BYTES};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow::error::ArrowError;
use nft_schema::tables::{chains_schema, rules_schema, ruleset_label};
use serde_json::Value;

use crate::recording::Recording;

/// One chain of a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub family: String,
    pub table: String,
    pub name: String,
    pub handle: u64,
    pub kind: Option<String>,
    pub hook: Option<String>,
    pub priority: Option<i32>,
    pub policy: Option<String>,
}

/// One rule of a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    /// From 1, in chain order.
    pub position: u32,
    pub text: Option<String>,
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
}

/// A parsed snapshot.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub chains: Vec<Chain>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct RulesetError {
    pub path: String,
    pub reason: String,
}

/// Parses `nft -j -a list ruleset` output, and takes rule text from the
/// matching `nft -s -a list ruleset` output when there is one.
pub fn parse(json: &str, text: Option<&str>) -> Result<Snapshot, String> {
    let root: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let items = root
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("no \"nftables\" array")?;
    let texts = text.map(rule_texts).unwrap_or_default();
    let mut snap = Snapshot::default();
    let mut positions: HashMap<(String, String, String), u32> = HashMap::new();
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    for item in items {
        if let Some(c) = item.get("chain") {
            snap.chains.push(Chain {
                family: s(c, "family").unwrap_or_default(),
                table: s(c, "table").unwrap_or_default(),
                name: s(c, "name").unwrap_or_default(),
                handle: c.get("handle").and_then(Value::as_u64).unwrap_or(0),
                kind: s(c, "type"),
                hook: s(c, "hook"),
                priority: c
                    .get("prio")
                    .and_then(Value::as_i64)
                    .and_then(|p| i32::try_from(p).ok()),
                policy: s(c, "policy"),
            });
        } else if let Some(r) = item.get("rule") {
            let family = s(r, "family").unwrap_or_default();
            let table = s(r, "table").unwrap_or_default();
            let chain = s(r, "chain").unwrap_or_default();
            let handle = r.get("handle").and_then(Value::as_u64).unwrap_or(0);
            let pos = positions
                .entry((family.clone(), table.clone(), chain.clone()))
                .or_insert(0);
            *pos += 1;
            let counter = r
                .get("expr")
                .and_then(Value::as_array)
                .and_then(|exprs| exprs.iter().find_map(|e| e.get("counter")));
            let text = texts
                .get(&(family.clone(), table.clone(), chain.clone(), handle))
                .cloned();
            snap.rules.push(Rule {
                position: *pos,
                text,
                packets: counter.and_then(|c| c.get("packets")?.as_u64()),
                bytes: counter.and_then(|c| c.get("bytes")?.as_u64()),
                family,
                table,
                chain,
                handle,
            });
        }
    }
    Ok(snap)
}

/// Rule lines of `nft -a list ruleset` text, by (family, table, chain,
/// handle). Only lines directly inside a `chain` block are rules; set, map,
/// flowtable and object blocks are skipped.
pub fn rule_texts(text: &str) -> HashMap<(String, String, String, u64), String> {
    let mut out = HashMap::new();
    // Block stack: ("table", family, name) / ("chain", name) / ("other").
    let mut table: Option<(String, String)> = None;
    let mut stack: Vec<(&str, String)> = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        let (body, handle) = match line.rsplit_once(" # handle ") {
            Some((body, h)) => (body.trim_end(), h.trim().parse::<u64>().ok()),
            None => (line, None),
        };
        if body == "}" {
            if let Some((kind, _)) = stack.pop() {
                if kind == "table" {
                    table = None;
                }
            }
            continue;
        }
        if let Some(head) = body.strip_suffix('{') {
            let words: Vec<&str> = head.split_whitespace().collect();
            match words.as_slice() {
                ["table", family, name] => {
                    table = Some(((*family).to_owned(), (*name).to_owned()));
                    stack.push(("table", (*name).to_owned()));
                }
                ["chain", name] => stack.push(("chain", (*name).to_owned())),
                _ if stack.last().is_some_and(|(k, _)| *k == "chain") && handle.is_some() => {
                    // A rule whose text ends in `{`: does not happen with
                    // nft's printer; treated as a rule.
                    insert_rule(&mut out, &table, &stack, body, handle);
                }
                _ => stack.push(("other", String::new())),
            }
            continue;
        }
        if handle.is_some() && stack.last().is_some_and(|(k, _)| *k == "chain") {
            insert_rule(&mut out, &table, &stack, body, handle);
        }
    }
    out
}

fn insert_rule(
    out: &mut HashMap<(String, String, String, u64), String>,
    table: &Option<(String, String)>,
    stack: &[(&str, String)],
    body: &str,
    handle: Option<u64>,
) {
    if let (Some((family, table)), Some((_, chain)), Some(handle)) = (table, stack.last(), handle) {
        out.insert(
            (family.clone(), table.clone(), chain.clone(), handle),
            body.to_owned(),
        );
    }
}

/// The `chains` and `rules` batches of one recording: every snapshot the
/// manifest lists, labelled with its namespace inode and `start`/`stop`.
pub fn tables(rec: &Recording) -> Result<(RecordBatch, RecordBatch), RulesetError> {
    let mut chains: Vec<(Option<u32>, &'static str, Chain)> = Vec::new();
    let mut rules: Vec<(Option<u32>, &'static str, Rule)> = Vec::new();
    let labels: HashMap<String, u32> = rec
        .manifest
        .netns
        .iter()
        .map(|n| (ruleset_label(Some(&n.name)), n.inode))
        .collect();
    for file in rec
        .manifest
        .rulesets
        .iter()
        .filter(|f| f.ends_with(".json"))
    {
        let nft_schema::files::File::Ruleset {
            label,
            when,
            form: nft_schema::files::Form::Json,
        } = nft_schema::files::parse(file)
        else {
            continue;
        };
        let snapshot: &'static str = when.name();
        let json_path = rec.dir.join(file);
        let err = |reason: String| RulesetError {
            path: json_path.display().to_string(),
            reason,
        };
        let json = match read_small(&json_path, MAX_SNAPSHOT_BYTES) {
            Ok(j) => j,
            // A recorder killed before stopping has no stop snapshot.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && snapshot == "stop" => continue,
            Err(e) => return Err(err(e.to_string())),
        };
        let text = read_optional(&rec.dir.join(file.replace(".json", ".nft")));
        let snap = parse(&json, text.as_deref()).map_err(err)?;
        let netns = labels.get(label).copied();
        chains.extend(snap.chains.into_iter().map(|c| (netns, snapshot, c)));
        rules.extend(snap.rules.into_iter().map(|r| (netns, snapshot, r)));
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

fn read_optional(path: &Path) -> Option<String> {
    read_small(path, MAX_SNAPSHOT_BYTES).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Output of nft 1.0.6 for a small ruleset (`nft -s -a list ruleset`).
    const TEXT: &str = "table inet fw { # handle 7
\tset blocked { # handle 4
\t\ttype ipv4_addr
\t\telements = { 10.0.0.9 }
\t}

\tchain input { # handle 1
\t\ttype filter hook input priority filter; policy accept;
\t\ttcp dport 9 counter drop # handle 2
\t\tip saddr @blocked counter drop # handle 5
\t\ttcp dport vmap { 22 : accept, 23 : drop } # handle 6
\t}

\tchain sub { # handle 3
\t\tcounter return # handle 8
\t}
}
";

    #[test]
    fn rule_text_by_handle_skips_set_blocks() {
        let t = rule_texts(TEXT);
        let k = |c: &str, h| ("inet".to_owned(), "fw".to_owned(), c.to_owned(), h);
        assert_eq!(t.len(), 4, "{t:?}");
        assert_eq!(t[&k("input", 2)], "tcp dport 9 counter drop");
        assert_eq!(
            t[&k("input", 6)],
            "tcp dport vmap { 22 : accept, 23 : drop }"
        );
        assert_eq!(t[&k("sub", 8)], "counter return");
    }

    #[test]
    fn json_gives_positions_counters_and_chain_hooks() {
        let json = r#"{"nftables": [{"metainfo": {"json_schema_version": 1}},
          {"table": {"family": "inet", "name": "fw", "handle": 7}},
          {"chain": {"family": "inet", "table": "fw", "name": "input", "handle": 1,
                     "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
          {"chain": {"family": "inet", "table": "fw", "name": "sub", "handle": 3}},
          {"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 2,
                    "expr": [{"counter": {"packets": 4, "bytes": 240}}, {"drop": null}]}},
          {"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 6, "expr": []}},
          {"rule": {"family": "inet", "table": "fw", "chain": "sub", "handle": 8, "expr": []}}]}"#;
        let snap = parse(json, Some(TEXT)).unwrap();
        assert_eq!(snap.chains.len(), 2);
        assert_eq!(snap.chains[0].hook.as_deref(), Some("input"));
        assert_eq!(snap.chains[1].hook, None);
        let r: Vec<_> = snap
            .rules
            .iter()
            .map(|r| (r.chain.as_str(), r.handle, r.position, r.packets))
            .collect();
        assert_eq!(
            r,
            [
                ("input", 2, 1, Some(4)),
                ("input", 6, 2, None),
                ("sub", 8, 1, None)
            ]
        );
        assert_eq!(
            snap.rules[0].text.as_deref(),
            Some("tcp dport 9 counter drop")
        );
        assert!(parse("{}", None).is_err());
    }
}
