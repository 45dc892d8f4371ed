//! The streaming trace engine (the default): one pass over each recording's
//! events in the order the recorder wrote them, which is time order up to
//! the ring buffer's small reordering, with a map of open skbs. It applies
//! exactly the rules `queries/trace_events.sql` defines (free, idle gap,
//! IPv4 id change, verdict dedup; tests hold the two engines equal), without
//! the sorts and windows that made the SQL engine 24 times too slow
//! (docs/benchmarks.md).
//!
//! Traces come out ordered by (recording, first event, skb), like the SQL's
//! ORDER BY: a finished trace waits until every trace that started before it
//! has finished. A trace closes when its skb's next event starts another,
//! when the events have moved `--timeout` past its last one (the free gap,
//! 100 ms, past a free), or at the end.
//! Finished traces waiting behind one long-open trace are bounded
//! ([`MAX_WAITING`]); past that they are written anyway and the summary
//! counts traces written out of order. Parquet decoding runs on its own
//! thread, so the two cores overlap reading and assembling.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

use super::assemble::{finish, Numbering, Open, Rows, CONSUME_SKB, KFREE_SKB};
use super::lookups::Lookups;
use super::model::Trace;
use super::TracesError;
use crate::catalog::Catalog;
use crate::queries::Params;
use crate::recording::Recording;

/// Release functions that end a trace, as `queries/trace_events.sql` lists
/// them (a test holds the two lists equal).
pub const FREE_FUNCTIONS: [&str; 15] = [
    "kfree_skb_reason",
    "sk_skb_reason_drop",
    "kfree_skb_list_reason",
    "__kfree_skb",
    "kfree_skbmem",
    "kfree_skb_partial",
    "consume_skb",
    "__consume_stateless_skb",
    "napi_consume_skb",
    "__napi_kfree_skb",
    "skb_attempt_defer_free",
    "skb_release_all",
    "skb_release_head_state",
    "skb_release_data",
    "skb_free_head",
];

/// Finished traces that may wait behind an open one before they are
/// written out of order (about 300 MiB of traces of 60 events).
pub const MAX_WAITING: usize = 200_000;

/// What the pass saw that the SQL engine would have handled differently.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamNotes {
    /// Events older than an earlier event of the same skb, or more than
    /// `--timeout` older than the newest event (traces they belong to may
    /// have been closed). The SQL sorts them; here they join traces in
    /// arrival order.
    pub late_events: u64,
    /// Traces written after a trace that started later ([`MAX_WAITING`]).
    pub out_of_order: u64,
}

/// A rule verdict's identity for dedup: family, table, chain, verdict (as
/// interned pointers; 0 = null) and rule handle.
type RuleId = (usize, usize, usize, usize, Option<u64>);

/// What the pass remembers about one skb address.
struct SkbState {
    last_ts: u64,
    last_free: bool,
    ip_id: Option<u64>,
    l4_proto: Option<u64>,
    sport: Option<u64>,
    dport: Option<u64>,
    /// The open trace's number on this skb.
    seq: u64,
    /// Boxed, as in `done`: a trace is a few hundred bytes, and map
    /// entries and B-tree nodes move their values (memmove was a tenth of
    /// the pass).
    open: Option<Box<Open>>,
    /// Recent rule verdicts, for dedup (pruned to the dedup window).
    rules: Vec<(RuleId, u64)>,
}

/// Trace order: (first event, skb, trace number on the skb).
type Key = (u64, u64, u64);

/// One recording's pass.
struct Pass<'a> {
    lk: &'a Lookups,
    params: &'a Params,
    recording: Arc<str>,
    /// foldhash: one lookup per event, keys are kernel addresses.
    skbs: HashMap<u64, SkbState, foldhash::fast::FixedState>,
    /// Open traces, in trace order.
    open: BTreeSet<Key>,
    /// When each open trace may have gone idle: (last event + timeout, skb,
    /// seq); stale entries are re-pushed or dropped when they come up.
    deadlines: BinaryHeap<Reverse<(u64, u64, u64)>>,
    /// Finished traces waiting for earlier ones (shaped when written).
    done: BTreeMap<Key, Box<Open>>,
    /// The latest event time seen.
    watermark: u64,
    last_written: Option<Key>,
    notes: StreamNotes,
}

fn ptr(s: Option<&Arc<str>>) -> usize {
    s.map_or(0, |s| Arc::as_ptr(s) as *const u8 as usize)
}

impl<'a> Pass<'a> {
    fn new(lk: &'a Lookups, params: &'a Params, recording: Arc<str>) -> Self {
        Self {
            lk,
            params,
            recording,
            skbs: HashMap::default(),
            open: BTreeSet::new(),
            deadlines: BinaryHeap::new(),
            done: BTreeMap::new(),
            watermark: 0,
            last_written: None,
            notes: StreamNotes::default(),
        }
    }

    /// Per distinct probe name of a batch: 1 a free tracepoint, 2 a free
    /// function (if the event is a function's), 0 neither.
    fn free_probes(r: &Rows) -> Vec<u8> {
        r.probe
            .values()
            .iter()
            .map(|p| match &**p {
                KFREE_SKB | CONSUME_SKB => 1,
                p if FREE_FUNCTIONS.contains(&p) => 2,
                _ => 0,
            })
            .collect()
    }

    fn is_free(r: &Rows, row: usize, free_probes: &[u8]) -> bool {
        match r.probe.key(row).map(|k| free_probes[k as usize]) {
            Some(1) => true,
            Some(2) => r.kind.get(row).is_some_and(|k| &**k == "function"),
            _ => false,
        }
    }

    fn push_rows(&mut self, r: &Rows, order: &[u32], emit: &mut dyn FnMut(Trace)) {
        let timeout = self.params.timeout_ns;
        let dedup = self.params.dedup_ns;
        let free_gap = self.params.free_gap_ns;
        let free_probes = Self::free_probes(r);
        for &row in order {
            let row = row as usize;
            let skb = r.skb.get(row).unwrap_or(0);
            let ts = r.ts.get(row).unwrap_or(0);
            if ts.saturating_add(timeout) < self.watermark {
                self.notes.late_events += 1;
            }
            self.watermark = self.watermark.max(ts);
            let is_free = Self::is_free(r, row, &free_probes);
            let is_exit = r.nft_event.get(row).is_some_and(|k| &**k == "chain_exit");
            let state = self.skbs.entry(skb).or_insert_with(|| SkbState {
                last_ts: ts,
                last_free: false,
                ip_id: None,
                l4_proto: None,
                sport: None,
                dport: None,
                seq: 0,
                open: None,
                rules: Vec::new(),
            });
            if ts < state.last_ts && ts.saturating_add(timeout) >= self.watermark {
                self.notes.late_events += 1;
            }
            let is_dup = r.nft_event.get(row).is_some_and(|k| &**k == "rule_eval") && {
                let id = (
                    ptr(r.nft_family.get(row)),
                    ptr(r.nft_table.get(row)),
                    ptr(r.nft_chain.get(row)),
                    ptr(r.nft_verdict.get(row)),
                    r.nft_rule_handle.get(row),
                );
                state.rules.retain(|(_, t)| ts.saturating_sub(*t) <= dedup);
                match state.rules.iter_mut().find(|(i, _)| *i == id) {
                    Some((_, t)) => {
                        *t = ts;
                        true
                    }
                    None => {
                        state.rules.push((id, ts));
                        false
                    }
                }
            };
            let (ip_id, l4, sport, dport) = (
                r.ip_id.get(row),
                r.l4_proto.get(row),
                r.sport.get(row),
                r.dport.get(row),
            );
            // A base chain's exit may follow the free (a drop inside
            // nf_tables, 6.8+): it carries the free state before it and
            // never starts a trace (as in trace_events.sql).
            let is_free = if is_exit { state.last_free } else { is_free };
            let gap = ts.saturating_sub(state.last_ts);
            let starts = state.open.is_none()
                || !is_exit && gap > timeout
                || !is_exit && state.last_free && (!is_free || gap > free_gap)
                || (!is_exit
                    && ip_id.is_some()
                    && state.ip_id.is_some()
                    && ip_id != state.ip_id
                    && l4.is_some()
                    && l4 == state.l4_proto
                    && sport == state.sport
                    && dport == state.dport);
            if starts {
                if let Some(o) = state.open.take() {
                    let key = (o.first_ns, skb, state.seq);
                    self.open.remove(&key);
                    self.done.insert(key, o);
                }
                state.seq += 1;
                state.open = Some(Box::new(Open::start(self.recording.clone(), skb, r, row)));
                self.open.insert((ts, skb, state.seq));
                let soonest = ts.saturating_add(timeout.min(free_gap));
                self.deadlines.push(Reverse((soonest, skb, state.seq)));
            }
            state.last_ts = state.last_ts.max(ts);
            state.last_free = is_free;
            (state.ip_id, state.l4_proto, state.sport, state.dport) = (ip_id, l4, sport, dport);
            let o = state.open.as_mut().expect("opened above");
            o.push(r, row, is_free, is_dup, self.lk);
        }
        self.close_idle();
        self.write_ready(emit, false);
    }

    /// Closes traces the events have left behind: more than `--timeout`
    /// after their last event, or the free gap after a free. Their skb's
    /// next event would start a new trace anyway.
    fn close_idle(&mut self) {
        let (timeout, free_gap) = (self.params.timeout_ns, self.params.free_gap_ns);
        while let Some(&Reverse((deadline, skb, seq))) = self.deadlines.peek() {
            if deadline >= self.watermark {
                break;
            }
            self.deadlines.pop();
            let Some(state) = self.skbs.get_mut(&skb) else {
                continue;
            };
            if state.seq != seq || state.open.is_none() {
                continue;
            }
            let gap = if state.last_free {
                timeout.min(free_gap)
            } else {
                timeout
            };
            let closes_at = state.last_ts.saturating_add(gap);
            if closes_at >= self.watermark {
                self.deadlines.push(Reverse((closes_at, skb, seq)));
                continue;
            }
            let o = state.open.take().expect("checked above");
            if self.params.dedup_ns < gap {
                // Its verdicts are out of the dedup window too.
                self.skbs.remove(&skb);
            }
            let key = (o.first_ns, skb, seq);
            self.open.remove(&key);
            self.done.insert(key, o);
        }
    }

    /// Writes finished traces no open trace precedes (all of them at the
    /// end), and more if too many wait.
    fn write_ready(&mut self, emit: &mut dyn FnMut(Trace), all: bool) {
        while let Some((&key, _)) = self.done.first_key_value() {
            let blocked = self.open.first().is_some_and(|first| *first < key);
            if blocked && !all && self.done.len() <= MAX_WAITING {
                break;
            }
            let (key, done) = self.done.pop_first().expect("peeked");
            if self.last_written.is_some_and(|last| key < last) {
                self.notes.out_of_order += 1;
            }
            self.last_written = Some(self.last_written.map_or(key, |l| l.max(key)));
            emit(finish(self.lk, *done, 0));
        }
    }

    /// Closes every open trace and writes everything.
    fn finish(mut self, emit: &mut dyn FnMut(Trace)) -> StreamNotes {
        for (skb, state) in std::mem::take(&mut self.skbs) {
            if let Some(o) = state.open {
                self.done.insert((o.first_ns, skb, state.seq), o);
            }
        }
        self.open.clear();
        self.write_ready(emit, true);
        self.notes
    }
}

/// Row order for one batch: as written, or sorted by time (stable) when
/// the ring buffer reordered events within it.
fn time_order(r: &Rows) -> Vec<u32> {
    let ts = r.ts.values();
    let mut order: Vec<u32> = (0..ts.len() as u32).collect();
    if ts.windows(2).any(|w| w[1] < w[0]) {
        order.sort_by_key(|&i| ts[i as usize]);
    }
    order
}

/// Every trace of every recording (in recording name order, like the SQL's
/// ORDER BY), handed to `emit` numbered; `progress` gets each batch's rows.
pub fn run(
    catalog: &Catalog,
    lk: &Lookups,
    params: &Params,
    emit: &mut dyn FnMut(Trace),
    progress: &mut dyn FnMut(u64),
) -> Result<StreamNotes, TracesError> {
    let mut recordings: Vec<&Recording> = catalog.recordings.iter().collect();
    recordings.sort_by(|a, b| a.name.cmp(&b.name));
    let mut notes = StreamNotes::default();
    let mut numbering = Numbering::default();
    for rec in recordings {
        let name: Arc<str> = rec.name.as_str().into();
        let mut numbered = |mut t: Trace| {
            t.trace_id = numbering.next(&name);
            emit(t);
        };
        let mut pass = Pass::new(lk, params, name.clone());
        let events = super::decode::decode(rec);
        while let Some(rows) = super::decode::next(&events)? {
            progress(rows.ts.len() as u64);
            let order = time_order(&rows);
            pass.push_rows(&rows, &order, &mut numbered);
        }
        let n = pass.finish(&mut numbered);
        notes.late_events += n.late_events;
        notes.out_of_order += n.out_of_order;
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The free functions are spelled in the SQL that defines traces too:
    /// the two lists must agree.
    #[test]
    fn free_functions_equal_the_sql_definition() {
        let sql = crate::queries::query("trace_events");
        let list = sql
            .split("kind = 'function' AND probe IN (")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .expect("trace_events.sql lists the free functions");
        let in_sql: Vec<&str> = list
            .split(',')
            .map(|s| s.trim().trim_matches('\''))
            .collect();
        assert_eq!(in_sql, FREE_FUNCTIONS);
        assert!(sql.contains(&format!("probe IN ('{KFREE_SKB}', '{CONSUME_SKB}')")));
    }
}
