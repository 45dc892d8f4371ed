//! Rule verdicts on both sides, with each rule matched across the two
//! rulesets. Handles change whenever a ruleset is reloaded, so a rule is
//! matched by family, table, chain and text; a rule whose text differs only
//! in its verdicts (`9 : drop` edited to `9 : accept`) is then matched to
//! its edited self. What is left is a rule added or removed.

use std::collections::{BTreeMap, HashMap, VecDeque};

use arrow::array::RecordBatch;
use serde::Serialize;

use super::DiffError;
use crate::catalog::Catalog;
use crate::queries::query;
use crate::result_columns::{strs, u64s, Interner};

/// The library query the counts come from, and the names of its output
/// columns that are read here (`queries/rule_verdicts.sql`).
const QUERY: &str = "rule_verdicts";
mod col {
    pub const RECORDING: &str = nft_schema::columns::RECORDING;
    pub const SOURCE: &str = "source";
    pub const FAMILY: &str = "family";
    pub const TABLE: &str = "table";
    pub const CHAIN: &str = "chain";
    pub const POSITION: &str = "rule_position";
    pub const TYPE: &str = "type";
    pub const VERDICT: &str = "verdict";
    pub const PACKETS: &str = "packets";
    pub const TEXT: &str = "rule_text";
    pub const HANDLE: &str = "rule_handle";
}

/// Words of a rule's text that are verdicts.
const VERDICT_WORDS: &[&str] = &["accept", "drop", "reject", "return", "continue", "queue"];

/// One rule (or a chain's policy) of one side, with its verdict counts.
#[derive(Debug, Clone, Default)]
struct Rule {
    family: String,
    table: String,
    chain: String,
    /// `rule` or `policy`.
    kind: String,
    /// The rule's text (`policy` for a chain policy; `handle N` when the
    /// snapshot had no text for it).
    text: String,
    position: Option<u32>,
    verdicts: BTreeMap<String, u64>,
}

/// A rule of either side and its counterpart, if any.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RulePair {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub kind: String,
    pub base_text: Option<String>,
    pub new_text: Option<String>,
    pub base_position: Option<u32>,
    pub new_position: Option<u32>,
    pub base: BTreeMap<String, u64>,
    pub new: BTreeMap<String, u64>,
}

impl RulePair {
    /// `fw/input: tcp dport 9 drop`, with `a → b` for an edited text.
    pub fn subject(&self) -> String {
        let text = match (&self.base_text, &self.new_text) {
            (Some(b), Some(n)) if b != n => format!("{b}  →  {n}"),
            (Some(t), _) | (None, Some(t)) => t.clone(),
            (None, None) => String::new(),
        };
        format!("{} {}/{}: {text}", self.family, self.table, self.chain)
    }
}

/// Every rule's verdict counts on both sides, matched.
pub async fn load(catalog: &Catalog, base: &str, new: &str) -> Result<Vec<RulePair>, DiffError> {
    let batches = catalog.collect(query(QUERY), QUERY).await?;
    let mut rows: Vec<(String, String, Rule, u64, String)> = Vec::new();
    let mut interner = Interner::default();
    for b in &batches {
        read(b, &mut interner, &mut rows)?;
    }
    let side = |name: &str| {
        // One source per side: the eBPF hooks when the recording has them
        // (they see every packet), else the kernel's nftrace.
        let has_ebpf = rows.iter().any(|r| r.0 == name && r.1 == "ebpf");
        let source = if has_ebpf { "ebpf" } else { "nftrace" };
        let mut rules: BTreeMap<(String, String, String, String, String), Rule> = BTreeMap::new();
        for (rec, src, rule, packets, verdict) in &rows {
            if rec != name || src != source {
                continue;
            }
            let key = (
                rule.family.clone(),
                rule.table.clone(),
                rule.chain.clone(),
                rule.kind.clone(),
                rule.text.clone(),
            );
            let r = rules.entry(key).or_insert_with(|| Rule {
                verdicts: BTreeMap::new(),
                ..rule.clone()
            });
            *r.verdicts.entry(verdict.clone()).or_default() += packets;
        }
        rules.into_values().collect::<Vec<_>>()
    };
    Ok(pair(side(base), side(new)))
}

fn read(
    b: &RecordBatch,
    i: &mut Interner,
    out: &mut Vec<(String, String, Rule, u64, String)>,
) -> Result<(), DiffError> {
    let rec = strs(b, col::RECORDING, i)?;
    let source = strs(b, col::SOURCE, i)?;
    let family = strs(b, col::FAMILY, i)?;
    let table = strs(b, col::TABLE, i)?;
    let chain = strs(b, col::CHAIN, i)?;
    let kind = strs(b, col::TYPE, i)?;
    let verdict = strs(b, col::VERDICT, i)?;
    let text = strs(b, col::TEXT, i)?;
    let position = u64s(b, col::POSITION)?;
    let handle = u64s(b, col::HANDLE)?;
    let packets = u64s(b, col::PACKETS)?;
    let s = |v: Option<&std::sync::Arc<str>>| v.map(|s| s.to_string()).unwrap_or_default();
    for row in 0..b.num_rows() {
        let kind = s(kind.get(row));
        let text = match (kind.as_str(), text.get(row), handle[row]) {
            ("policy", _, _) => "policy".to_owned(),
            (_, Some(t), _) => t.to_string(),
            (_, None, Some(h)) => format!("handle {h}"),
            (_, None, None) => "?".to_owned(),
        };
        out.push((
            s(rec.get(row)),
            s(source.get(row)),
            Rule {
                family: s(family.get(row)),
                table: s(table.get(row)),
                chain: s(chain.get(row)),
                kind,
                text,
                position: position[row].map(|p| p as u32),
                verdicts: BTreeMap::new(),
            },
            packets[row].unwrap_or(0),
            s(verdict.get(row)),
        ));
    }
    Ok(())
}

/// The text with every verdict word replaced, so that a rule edited only in
/// its verdicts keeps its identity.
fn without_verdicts(text: &str) -> String {
    text.split_whitespace()
        .map(|w| {
            let core = w.trim_end_matches([',', '}', ';']);
            if VERDICT_WORDS.contains(&core) {
                w.replacen(core, "<verdict>", 1)
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A rule's chain, kind and (possibly masked) text: what pairs it.
type PairKey = (String, String, String, String, String);

fn pair_key(r: &Rule, text: String) -> PairKey {
    (
        r.family.clone(),
        r.table.clone(),
        r.chain.clone(),
        r.kind.clone(),
        text,
    )
}

/// The new side's rules by key, in chain order: one pass, so pairing stays
/// linear in the rules (a ruleset of 100 k rules pairs as fast as a small
/// one).
fn index(
    new: &[Option<Rule>],
    text: impl Fn(&Rule) -> String,
) -> HashMap<PairKey, VecDeque<usize>> {
    let mut out: HashMap<PairKey, VecDeque<usize>> = HashMap::new();
    for (i, r) in new.iter().enumerate() {
        if let Some(r) = r {
            out.entry(pair_key(r, text(r))).or_default().push_back(i);
        }
    }
    out
}

/// The first new rule under `key` not taken yet.
fn take(
    index: &mut HashMap<PairKey, VecDeque<usize>>,
    key: &PairKey,
    new: &mut [Option<Rule>],
) -> Option<Rule> {
    let queue = index.get_mut(key)?;
    while let Some(i) = queue.pop_front() {
        if let Some(r) = new[i].take() {
            return Some(r);
        }
    }
    None
}

/// Matches rules: same chain and text first, then same chain and text
/// without verdicts; the rest stand alone.
fn pair(base: Vec<Rule>, new: Vec<Rule>) -> Vec<RulePair> {
    let mut new: Vec<Option<Rule>> = new.into_iter().map(Some).collect();
    let mut exact = index(&new, |r| r.text.clone());
    let mut masked = index(&new, |r| without_verdicts(&r.text));
    let mut out = Vec::new();
    let mut unmatched_base = Vec::new();
    for b in base {
        match take(&mut exact, &pair_key(&b, b.text.clone()), &mut new) {
            Some(n) => out.push(joined(Some(b), Some(n))),
            None => unmatched_base.push(b),
        }
    }
    for b in unmatched_base {
        let n = take(
            &mut masked,
            &pair_key(&b, without_verdicts(&b.text)),
            &mut new,
        );
        out.push(joined(Some(b), n));
    }
    out.extend(new.into_iter().flatten().map(|n| joined(None, Some(n))));
    out.sort_by(|a, b| {
        (
            &a.family,
            &a.table,
            &a.chain,
            a.new_position.or(a.base_position),
            &a.kind,
        )
            .cmp(&(
                &b.family,
                &b.table,
                &b.chain,
                b.new_position.or(b.base_position),
                &b.kind,
            ))
    });
    out
}

fn joined(b: Option<Rule>, n: Option<Rule>) -> RulePair {
    let any = b
        .as_ref()
        .or(n.as_ref())
        .expect("one side at least")
        .clone();
    RulePair {
        family: any.family,
        table: any.table,
        chain: any.chain,
        kind: any.kind,
        base_text: b.as_ref().map(|r| r.text.clone()),
        new_text: n.as_ref().map(|r| r.text.clone()),
        base_position: b.as_ref().and_then(|r| r.position),
        new_position: n.as_ref().and_then(|r| r.position),
        base: b.map(|r| r.verdicts).unwrap_or_default(),
        new: n.map(|r| r.verdicts).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(chain: &str, text: &str, pos: u32, verdict: &str, n: u64) -> Rule {
        Rule {
            family: "inet".into(),
            table: "fw".into(),
            chain: chain.into(),
            kind: "rule".into(),
            text: text.into(),
            position: Some(pos),
            verdicts: [(verdict.to_owned(), n)].into(),
        }
    }

    #[test]
    fn verdict_words_are_masked_in_place() {
        assert_eq!(
            without_verdicts("tcp dport vmap { 9 : drop, 80 : accept }"),
            "tcp dport vmap { 9 : <verdict>, 80 : <verdict> }"
        );
        assert_eq!(
            without_verdicts("ip saddr 10.0.0.1 counter"),
            "ip saddr 10.0.0.1 counter"
        );
    }

    #[test]
    fn rules_match_by_text_then_by_text_without_verdicts() {
        let base = vec![
            rule("input", "tcp dport 9 drop", 1, "drop", 3),
            rule("input", "udp dport 53 accept", 2, "accept", 5),
        ];
        let new = vec![
            rule("input", "ip saddr 10.0.0.9 counter", 1, "continue", 8),
            rule("input", "tcp dport 9 accept", 2, "accept", 3),
            rule("input", "udp dport 53 accept", 3, "accept", 5),
        ];
        let pairs = pair(base, new);
        assert_eq!(pairs.len(), 3);
        let added = &pairs[0];
        assert_eq!(
            (added.base_text.as_deref(), added.new_position),
            (None, Some(1))
        );
        let edited = &pairs[1];
        assert_eq!(edited.base_text.as_deref(), Some("tcp dport 9 drop"));
        assert_eq!(edited.new_text.as_deref(), Some("tcp dport 9 accept"));
        assert_eq!(edited.base["drop"], 3);
        assert_eq!(edited.new["accept"], 3);
        let same = &pairs[2];
        assert_eq!((same.base_position, same.new_position), (Some(2), Some(3)));
        assert_eq!(same.base, same.new);
    }

    #[test]
    fn identical_rules_pair_in_chain_order() {
        let base = vec![
            rule("input", "counter", 1, "continue", 1),
            rule("input", "counter", 2, "continue", 2),
        ];
        let new = vec![
            rule("input", "counter", 1, "continue", 1),
            rule("input", "counter", 2, "continue", 2),
            rule("input", "counter", 3, "continue", 3),
        ];
        let pairs = pair(base, new);
        let got: Vec<_> = pairs
            .iter()
            .map(|p| (p.base_position, p.new_position))
            .collect();
        assert_eq!(
            got,
            [(Some(1), Some(1)), (Some(2), Some(2)), (None, Some(3))]
        );
    }
}
