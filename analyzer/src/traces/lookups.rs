//! What trace rows do not carry, loaded before the pass over the events:
//! rule text and positions, chain hooks, loss windows, when each recording
//! ended, and the nftrace messages matched to skbs. All small next to the
//! events.

use std::collections::HashMap;
use std::sync::Arc;

use nft_schema::columns::{self, losses, nftrace, rules, RECORDING};
use nft_schema::tables::names;

use super::model::NftEvent;
use super::TracesError;
use crate::catalog::Catalog;
use crate::queries::{self, Params};
use crate::result_columns::{strs, u64s, Interner};

/// Rule identity within a recording: (family, table, chain, handle).
pub type RuleKey = (Arc<str>, Arc<str>, Arc<str>, u64);
/// Chain identity: (recording, family, table, chain).
pub type ChainKey = (Arc<str>, Arc<str>, Arc<str>, Arc<str>);
/// An nftrace message matched to an event, with that event's time.
pub type Matched = (u64, NftEvent);

/// A rule's position in its chain and its text.
pub type RuleInfo = (u32, Option<Arc<str>>);

/// What the trace rows do not carry, loaded before the pass.
#[derive(Default)]
pub struct Lookups {
    /// (recording, rule) -> (position, text), from the start snapshot.
    pub rules: HashMap<(Arc<str>, RuleKey), RuleInfo>,
    /// (recording, family, table, chain) -> hook of the base chain.
    pub hooks: HashMap<ChainKey, Arc<str>>,
    /// Per recording: disjoint loss windows, sorted.
    pub losses: HashMap<Arc<str>, Vec<(u64, u64)>>,
    /// Per recording: when it ended (kernel monotonic ns).
    pub end_ns: HashMap<Arc<str>, u64>,
    /// nftrace messages matched to an skb, per (recording, skb), in time
    /// order, each with the time of the event it matched.
    pub nftrace: HashMap<(Arc<str>, u64), Vec<Matched>>,
    /// nftrace messages that belong to a packet (matched or not).
    pub nftrace_eligible: u64,
    pub timeout_ns: u64,
}

impl Lookups {
    pub fn lost_between(&self, rec: &Arc<str>, from: u64, to: u64) -> bool {
        let Some(windows) = self.losses.get(rec) else {
            return false;
        };
        // First window ending at or after `from`; it overlaps if it starts
        // by `to`.
        let i = windows.partition_point(|w| w.1 < from);
        windows.get(i).is_some_and(|w| w.0 <= to)
    }
}

/// Sorts and merges loss windows into disjoint intervals.
pub fn merge_windows(mut windows: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    windows.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in windows {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Rule text and positions, chain hooks, loss windows, recording ends and
/// matched nftrace messages: all small next to the events.
pub async fn load(catalog: &Catalog, params: &Params) -> Result<Lookups, TracesError> {
    let mut lk = Lookups {
        timeout_ns: params.timeout_ns,
        ..Lookups::default()
    };
    let mut interner = Interner::default();

    let sql = format!(
        "SELECT {RECORDING}, {f}, {t}, {c}, {h}, {p}, {x} FROM {tbl} WHERE {s} = 'start'",
        f = rules::FAMILY,
        t = q(rules::TABLE),
        c = rules::CHAIN,
        h = rules::HANDLE,
        p = rules::POSITION,
        x = rules::TEXT,
        s = rules::SNAPSHOT,
        tbl = names::RULES,
    );
    for b in catalog.collect(&sql, "rules").await? {
        let rec = strs(&b, RECORDING, &mut interner)?;
        let fam = strs(&b, rules::FAMILY, &mut interner)?;
        let tab = strs(&b, rules::TABLE, &mut interner)?;
        let chain = strs(&b, rules::CHAIN, &mut interner)?;
        let handle = u64s(&b, rules::HANDLE)?;
        let pos = u64s(&b, rules::POSITION)?;
        let text = strs(&b, rules::TEXT, &mut interner)?;
        for i in 0..b.num_rows() {
            let (Some(r), Some(f), Some(t), Some(c), Some(h)) =
                (rec.get(i), fam.get(i), tab.get(i), chain.get(i), handle[i])
            else {
                continue;
            };
            lk.rules.insert(
                (r.clone(), (f.clone(), t.clone(), c.clone(), h)),
                (pos[i].unwrap_or(0) as u32, text.get(i).cloned()),
            );
        }
    }

    let sql = format!(
        "SELECT {RECORDING}, {f}, {t}, {c}, {h} FROM {tbl} WHERE {h} IS NOT NULL AND {s} = 'start'",
        f = columns::chains::FAMILY,
        t = q(columns::chains::TABLE),
        c = columns::chains::CHAIN,
        h = columns::chains::HOOK,
        s = columns::chains::SNAPSHOT,
        tbl = names::CHAINS,
    );
    for b in catalog.collect(&sql, "chains").await? {
        let rec = strs(&b, RECORDING, &mut interner)?;
        let fam = strs(&b, columns::chains::FAMILY, &mut interner)?;
        let tab = strs(&b, columns::chains::TABLE, &mut interner)?;
        let chain = strs(&b, columns::chains::CHAIN, &mut interner)?;
        let hook = strs(&b, columns::chains::HOOK, &mut interner)?;
        for i in 0..b.num_rows() {
            if let (Some(r), Some(f), Some(t), Some(c), Some(h)) = (
                rec.get(i),
                fam.get(i),
                tab.get(i),
                chain.get(i),
                hook.get(i),
            ) {
                lk.hooks
                    .insert((r.clone(), f.clone(), t.clone(), c.clone()), h.clone());
            }
        }
    }

    let sql = format!(
        "SELECT {RECORDING}, {s}, {e} FROM {tbl} WHERE {n} > 0",
        s = losses::WINDOW_START_NS,
        e = losses::WINDOW_END_NS,
        n = losses::COUNT,
        tbl = names::LOSSES,
    );
    let mut windows: HashMap<Arc<str>, Vec<(u64, u64)>> = HashMap::new();
    for b in catalog.collect(&sql, "losses").await? {
        let rec = strs(&b, RECORDING, &mut interner)?;
        let start = u64s(&b, losses::WINDOW_START_NS)?;
        let end = u64s(&b, losses::WINDOW_END_NS)?;
        for i in 0..b.num_rows() {
            if let (Some(r), Some(s), Some(e)) = (rec.get(i), start[i], end[i]) {
                windows.entry(r.clone()).or_default().push((s, e));
            }
        }
    }
    lk.losses = windows
        .into_iter()
        .map(|(r, w)| (r, merge_windows(w)))
        .collect();

    // A recording ends at its stop time (taken after the last event was
    // drained). An interrupted one has none: it ends at its last event,
    // which costs a scan of its `ts_ns`, so only those are scanned.
    let interrupted: Vec<String> = catalog
        .recordings
        .iter()
        .filter(|r| r.manifest.stopped_ns.is_none())
        .map(|r| crate::catalog::sql_string(&r.name))
        .collect();
    let mut last: HashMap<String, u64> = HashMap::new();
    if !interrupted.is_empty() {
        let sql = format!(
            "SELECT {RECORDING}, max({ts}) AS last_ns FROM {tbl} \
             WHERE {RECORDING} IN ({list}) GROUP BY {RECORDING}",
            ts = columns::events::TS_NS,
            tbl = names::EVENTS,
            list = interrupted.join(", "),
        );
        for b in catalog.collect(&sql, "recording ends").await? {
            let rec = strs(&b, RECORDING, &mut interner)?;
            for (i, ts) in u64s(&b, "last_ns")?.into_iter().enumerate() {
                if let (Some(r), Some(t)) = (rec.get(i), ts) {
                    last.insert(r.to_string(), t);
                }
            }
        }
    }
    for rec in &catalog.recordings {
        let end = rec.end_ns().max(last.get(&rec.name).copied().unwrap_or(0));
        lk.end_ns.insert(interner.get(&rec.name), end);
    }

    // Messages that belong to a packet: all but the handle-less "rule
    // continue" the kernel sends when a chain runs out of rules.
    let sql = format!(
        "SELECT count(*) AS n FROM {tbl} WHERE NOT ({t} = 'rule' AND {h} IS NULL) \
         AND {table} <> '{own}'",
        t = nftrace::TYPE,
        h = nftrace::RULE_HANDLE,
        table = q(nftrace::TABLE),
        own = nft_schema::tables::RECORDER_NFT_TABLE,
        tbl = names::NFTRACE,
    );
    for b in catalog.collect(&sql, "nftrace count").await? {
        lk.nftrace_eligible += u64s(&b, "n")?.into_iter().flatten().sum::<u64>();
    }
    if lk.nftrace_eligible > 0 {
        load_nftrace(catalog, params, &mut lk, &mut interner).await?;
    }
    Ok(lk)
}

async fn load_nftrace(
    catalog: &Catalog,
    params: &Params,
    lk: &mut Lookups,
    interner: &mut Interner,
) -> Result<(), TracesError> {
    let sql = params.bind(queries::query("nftrace_matches"));
    for b in catalog.collect(&sql, "nftrace_matches").await? {
        let rec = strs(&b, RECORDING, interner)?;
        let skb = u64s(&b, columns::events::SKB)?;
        let event_ts = u64s(&b, "event_ts_ns")?;
        let ts = u64s(&b, nftrace::TS_NS)?;
        let kind = strs(&b, nftrace::TYPE, interner)?;
        let fam = strs(&b, nftrace::FAMILY, interner)?;
        let tab = strs(&b, nftrace::TABLE, interner)?;
        let chain = strs(&b, nftrace::CHAIN, interner)?;
        let handle = u64s(&b, nftrace::RULE_HANDLE)?;
        let verdict = strs(&b, nftrace::VERDICT, interner)?;
        let target = strs(&b, nftrace::TARGET, interner)?;
        let policy = strs(&b, nftrace::POLICY, interner)?;
        let trace_id = u64s(&b, nftrace::TRACE_ID)?;
        for i in 0..b.num_rows() {
            let (Some(r), Some(s), Some(ets)) = (rec.get(i), skb[i], event_ts[i]) else {
                continue;
            };
            let (f, t, c) = (fam.get(i), tab.get(i), chain.get(i));
            let rule = match (f, t, c, handle[i]) {
                (Some(f), Some(t), Some(c), Some(h)) => lk
                    .rules
                    .get(&(r.clone(), (f.clone(), t.clone(), c.clone(), h))),
                _ => None,
            };
            let hook = match (f, t, c) {
                (Some(f), Some(t), Some(c)) => lk
                    .hooks
                    .get(&(r.clone(), f.clone(), t.clone(), c.clone()))
                    .cloned(),
                _ => None,
            };
            let kind = match kind.get(i) {
                Some(k) if &**k != "rule" => k.clone(),
                _ => interner.get("rule_eval"),
            };
            let verdict = verdict.get(i).or(policy.get(i)).cloned();
            let event = NftEvent {
                kind,
                family: f.cloned(),
                table: t.cloned(),
                chain: c.cloned(),
                hook,
                rule_seq: rule.map(|r| r.0),
                rule_handle: handle[i],
                verdict,
                target: target.get(i).cloned(),
                timestamp_ns: ts[i].unwrap_or(0),
                rule_text: rule.and_then(|r| r.1.clone()),
                source: "nftrace",
                nftrace_id: trace_id[i].map(|v| v as u32),
            };
            lk.nftrace
                .entry((r.clone(), s))
                .or_default()
                .push((ets, event));
        }
    }
    Ok(())
}

/// A quoted identifier (`table` is a keyword).
fn q(name: &str) -> String {
    format!("\"{name}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_windows_merge_and_overlap() {
        let w = merge_windows(vec![(10, 20), (15, 30), (50, 60)]);
        assert_eq!(w, [(10, 30), (50, 60)]);
        let mut lk = Lookups::default();
        let rec: Arc<str> = "r".into();
        lk.losses.insert(rec.clone(), w);
        assert!(lk.lost_between(&rec, 0, 10));
        assert!(lk.lost_between(&rec, 25, 40));
        assert!(!lk.lost_between(&rec, 31, 49));
        assert!(lk.lost_between(&rec, 31, 50));
        assert!(!lk.lost_between(&rec, 61, 100));
    }
}
