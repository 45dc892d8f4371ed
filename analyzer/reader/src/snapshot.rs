//! A ruleset snapshot as the recorder stored it: structure (chains, hooks,
//! priorities, policies, handles, positions, counters) from `nft -j -a list
//! ruleset`, rule text from `nft -s -a list ruleset` (the line that ends in
//! `# handle N`). Both come from another box: malformed input is an error,
//! never a panic.

use std::collections::HashMap;
use std::path::Path;

use nft_schema::files::{self, Form};
use nft_schema::manifest::Manifest;
use serde_json::Value;

use crate::notes::Notes;
use crate::safe_read::{read_small, MAX_SNAPSHOT_BYTES};

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

/// A snapshot of one namespace's ruleset, read from a recording.
#[derive(Debug)]
pub struct LoadedSnapshot {
    /// The namespace's label in the file name (`self`, a netns name).
    pub label: String,
    /// `start` or `stop`.
    pub when: &'static str,
    pub snapshot: Snapshot,
}

/// Every snapshot the manifest lists, with the rule text of its `.nft`
/// twin. A damaged or missing one is left out and named: its chains and
/// rules (or their text) are missing. A recorder killed before stopping
/// has no stop snapshot; that is the unclean end, said already.
pub fn load_all(dir: &Path, manifest: &Manifest, notes: &mut Notes) -> Vec<LoadedSnapshot> {
    let mut out = Vec::new();
    for file in &manifest.rulesets {
        let files::File::Ruleset {
            label,
            when,
            form: Form::Json,
        } = files::parse(file)
        else {
            continue;
        };
        let path = dir.join(file);
        let json = match read_small(&path, MAX_SNAPSHOT_BYTES) {
            Ok(j) => j,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !manifest.ended_cleanly => {
                continue
            }
            Err(e) => {
                notes.missing(format!(
                    "{}: {e}: the {} ruleset's chains and rules are left out",
                    path.display(),
                    when.name()
                ));
                continue;
            }
        };
        let text_file = files::ruleset(label, when, Form::Text);
        let text = rule_text(dir, &text_file, manifest, notes);
        match parse(&json, text.as_deref()) {
            Ok(snapshot) => out.push(LoadedSnapshot {
                label: label.to_owned(),
                when: when.name(),
                snapshot,
            }),
            Err(why) => notes.missing(format!(
                "{}: damaged ({why}): the {} ruleset's chains and rules are left out",
                path.display(),
                when.name()
            )),
        }
    }
    out
}

/// The `.nft` text of a snapshot, when the manifest lists it.
fn rule_text(dir: &Path, file: &str, manifest: &Manifest, notes: &mut Notes) -> Option<String> {
    if !manifest.rulesets.iter().any(|f| f == file) {
        return None;
    }
    let path = dir.join(file);
    match read_small(&path, MAX_SNAPSHOT_BYTES) {
        Ok(text) => Some(text),
        Err(e) => {
            notes.missing(format!(
                "{}: {e}: rule text is missing for its snapshot",
                path.display()
            ));
            None
        }
    }
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
