//! Turns the rows of `queries/trace_events.sql` (every event with its trace
//! key, in time order per skb) into [`Trace`]s: one pass, one trace in
//! memory at a time. The SQL decides which events form a trace; this file
//! only shapes each trace and looks up what the rows do not carry (rule
//! text, chain hooks, nftrace verdicts, loss windows).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
use nft_schema::columns::{events as ev, RECORDING};

use super::lookups::Lookups;
use super::model::{protocol_name, NftEvent, PacketInfo, Trace, TraceStats};
use crate::result_columns::{bools, i64s, strs, u64s, Interner, Strs};

/// Column names the trace query adds to the `events` columns.
pub const TRACE_SEQ: &str = "trace_seq";
pub const IS_FREE: &str = "is_free";
pub const IS_DUP: &str = "is_dup";

/// The columns of one batch of trace rows.
struct Rows {
    recording: Strs,
    skb: Vec<Option<u64>>,
    seq: Vec<Option<u64>>,
    ts: Vec<Option<u64>>,
    probe: Strs,
    cpu: Vec<Option<u64>>,
    netns: Vec<Option<u64>>,
    ifindex: Vec<Option<u64>>,
    mark: Vec<Option<u64>>,
    len: Vec<Option<u64>>,
    ip_version: Vec<Option<u64>>,
    saddr: Strs,
    daddr: Strs,
    l4_proto: Vec<Option<u64>>,
    sport: Vec<Option<u64>>,
    dport: Vec<Option<u64>>,
    icmp_type: Vec<Option<u64>>,
    ip_id: Vec<Option<u64>>,
    drop_reason: Strs,
    location_sym: Strs,
    nft_event: Strs,
    nft_family: Strs,
    nft_table: Strs,
    nft_chain: Strs,
    nft_hook: Strs,
    nft_rule_handle: Vec<Option<u64>>,
    nft_rule_seq: Vec<Option<u64>>,
    nft_verdict: Strs,
    nft_target: Strs,
    is_free: Vec<bool>,
    is_dup: Vec<bool>,
}

impl Rows {
    fn new(b: &RecordBatch, i: &mut Interner) -> Result<Self, ArrowError> {
        Ok(Self {
            recording: strs(b, RECORDING, i)?,
            skb: u64s(b, ev::SKB)?,
            seq: i64s(b, TRACE_SEQ)?
                .into_iter()
                .map(|v| v.map(|v| v as u64))
                .collect(),
            ts: u64s(b, ev::TS_NS)?,
            probe: strs(b, ev::PROBE, i)?,
            cpu: u64s(b, ev::CPU)?,
            netns: u64s(b, ev::NETNS)?,
            ifindex: u64s(b, ev::IFINDEX)?,
            mark: u64s(b, ev::MARK)?,
            len: u64s(b, ev::LEN)?,
            ip_version: u64s(b, ev::IP_VERSION)?,
            saddr: strs(b, ev::SADDR, i)?,
            daddr: strs(b, ev::DADDR, i)?,
            l4_proto: u64s(b, ev::L4_PROTO)?,
            sport: u64s(b, ev::SPORT)?,
            dport: u64s(b, ev::DPORT)?,
            icmp_type: u64s(b, ev::ICMP_TYPE)?,
            ip_id: u64s(b, ev::IP_ID)?,
            drop_reason: strs(b, ev::DROP_REASON, i)?,
            location_sym: strs(b, ev::LOCATION_SYM, i)?,
            nft_event: strs(b, ev::NFT_EVENT, i)?,
            nft_family: strs(b, ev::NFT_FAMILY, i)?,
            nft_table: strs(b, ev::NFT_TABLE, i)?,
            nft_chain: strs(b, ev::NFT_CHAIN, i)?,
            nft_hook: strs(b, ev::NFT_HOOK, i)?,
            nft_rule_handle: u64s(b, ev::NFT_RULE_HANDLE)?,
            nft_rule_seq: u64s(b, ev::NFT_RULE_SEQ)?,
            nft_verdict: strs(b, ev::NFT_VERDICT, i)?,
            nft_target: strs(b, ev::NFT_TARGET, i)?,
            is_free: bools(b, IS_FREE)?,
            is_dup: bools(b, IS_DUP)?,
        })
    }
}

/// The trace being built.
struct Open {
    recording: Arc<str>,
    skb: u64,
    seq: u64,
    first_ns: u64,
    last_ns: u64,
    path: Vec<Arc<str>>,
    path_ts: Vec<u64>,
    nft: Vec<NftEvent>,
    packet: Option<PacketInfo>,
    fallback_packet: PacketInfo,
    drop_reason: Option<Arc<str>>,
    drop_location: Option<Arc<str>>,
    consumed: bool,
    last_free: bool,
    dups: u64,
    cpus: Vec<u32>,
}

/// Builds traces from batches of trace rows, handing each finished one to
/// `emit` (with the number of events it had).
pub struct Assembler<'a> {
    lookups: &'a Lookups,
    interner: Interner,
    open: Option<Open>,
    next_id: HashMap<Arc<str>, u64>,
}

const KFREE_SKB: &str = "skb:kfree_skb";
const CONSUME_SKB: &str = "skb:consume_skb";

impl<'a> Assembler<'a> {
    pub fn new(lookups: &'a Lookups) -> Self {
        Self {
            lookups,
            interner: Interner::default(),
            open: None,
            next_id: HashMap::new(),
        }
    }

    pub fn push_batch(
        &mut self,
        batch: &RecordBatch,
        emit: &mut dyn FnMut(Trace),
    ) -> Result<(), ArrowError> {
        let r = Rows::new(batch, &mut self.interner)?;
        for row in 0..batch.num_rows() {
            let rec = r.recording.get(row).cloned().unwrap_or_else(|| "".into());
            let skb = r.skb[row].unwrap_or(0);
            let seq = r.seq[row].unwrap_or(0);
            let ts = r.ts[row].unwrap_or(0);
            let same = self
                .open
                .as_ref()
                .is_some_and(|o| o.skb == skb && o.seq == seq && o.recording == rec);
            if !same {
                if let Some(done) = self.open.take() {
                    emit(self.finish(done));
                }
                self.open = Some(Open {
                    recording: rec,
                    skb,
                    seq,
                    first_ns: ts,
                    last_ns: ts,
                    path: Vec::new(),
                    path_ts: Vec::new(),
                    nft: Vec::new(),
                    packet: None,
                    fallback_packet: packet_info(&r, row),
                    drop_reason: None,
                    drop_location: None,
                    consumed: false,
                    last_free: false,
                    dups: 0,
                    cpus: Vec::new(),
                });
            }
            let o = self.open.as_mut().expect("opened above");
            o.last_ns = ts;
            o.last_free = r.is_free[row];
            if r.is_dup[row] {
                o.dups += 1;
                continue;
            }
            if let Some(cpu) = r.cpu[row] {
                let cpu = cpu as u32;
                if !o.cpus.contains(&cpu) {
                    o.cpus.push(cpu);
                }
            }
            if o.packet.is_none() && r.ip_version[row].is_some() {
                o.packet = Some(packet_info(&r, row));
            }
            if let Some(kind) = r.nft_event.get(row) {
                o.nft
                    .push(nft_event(&r, row, kind, ts, &o.recording, self.lookups));
                continue;
            }
            let probe = r.probe.get(row).cloned().unwrap_or_else(|| "".into());
            if &*probe == KFREE_SKB {
                o.drop_reason = r.drop_reason.get(row).cloned();
                o.drop_location = r.location_sym.get(row).cloned();
            } else if &*probe == CONSUME_SKB {
                o.consumed = true;
            }
            o.path.push(probe);
            o.path_ts.push(ts);
        }
        Ok(())
    }

    /// Emits the last open trace.
    pub fn finish_all(&mut self, emit: &mut dyn FnMut(Trace)) {
        if let Some(done) = self.open.take() {
            emit(self.finish(done));
        }
    }

    fn finish(&mut self, o: Open) -> Trace {
        let lk = self.lookups;
        let mut nft = o.nft;
        if let Some(matched) = lk.nftrace.get(&(o.recording.clone(), o.skb)) {
            let before = nft.len();
            nft.extend(
                matched
                    .iter()
                    .filter(|(event_ts, _)| (o.first_ns..=o.last_ns).contains(event_ts))
                    .map(|(_, e)| e.clone()),
            );
            if nft.len() > before {
                nft.sort_by_key(|e| e.timestamp_ns);
            }
        }
        let final_verdict = nft
            .iter()
            .filter(|e| e.kind != "chain_entry")
            .filter_map(|e| e.verdict.as_deref())
            .rfind(|v| matches!(*v, "accept" | "drop" | "queue" | "stolen" | "reject"))
            .map(str::to_owned);
        let end_ns = lk.end_ns.get(&o.recording).copied().unwrap_or(0);
        let end = if o.drop_reason.is_some() {
            "dropped"
        } else if o.consumed {
            "consumed"
        } else if o.last_free {
            "freed"
        } else if o.last_ns.saturating_add(lk.timeout_ns) > end_ns {
            "in_flight"
        } else {
            "idle"
        };
        let mut flags = Vec::new();
        if end == "in_flight" {
            flags.push("in_flight");
        }
        if lk.lost_between(&o.recording, o.first_ns, o.last_ns) {
            flags.push("incomplete_due_to_loss");
        }
        let id = self.next_id.entry(o.recording.clone()).or_insert(0);
        *id += 1;
        Trace {
            skb_addr: format!("{:#x}", o.skb),
            first_seen_ns: o.first_ns,
            duration_ns: o.last_ns - o.first_ns,
            stats: TraceStats {
                total_functions: o.path.len(),
                total_rules_evaluated: nft.iter().filter(|e| e.kind == "rule_eval").count(),
                final_verdict,
            },
            functions_path: o.path.iter().map(|p| p.to_string()).collect(),
            path_offsets_ns: o.path_ts.iter().map(|t| t - o.first_ns).collect(),
            nft_events: nft,
            packet_info: o.packet.unwrap_or(o.fallback_packet),
            recording: o.recording.to_string(),
            trace_id: *id,
            end,
            drop_reason: o.drop_reason.map(|s| s.to_string()),
            drop_location: o.drop_location.map(|s| s.to_string()),
            flags,
            duplicates_removed: o.dups,
            cpus: o.cpus,
        }
    }
}

fn packet_info(r: &Rows, row: usize) -> PacketInfo {
    let s = |v: Option<&Arc<str>>| v.map(|s| s.to_string());
    PacketInfo {
        src_ip: s(r.saddr.get(row)),
        dst_ip: s(r.daddr.get(row)),
        src_port: r.sport[row].map(|v| v as u16),
        dst_port: r.dport[row].map(|v| v as u16),
        protocol: r.l4_proto[row].map(|p| protocol_name(p as u8)),
        ip_version: r.ip_version[row].map(|v| v as u8),
        length: r.len[row].unwrap_or(0) as u32,
        ip_id: r.ip_id[row].map(|v| v as u16),
        icmp_type: r.icmp_type[row].map(|v| v as u8),
        ifindex: r.ifindex[row].unwrap_or(0) as u32,
        netns: r.netns[row].unwrap_or(0) as u32,
        mark: r.mark[row].unwrap_or(0) as u32,
    }
}

fn nft_event(
    r: &Rows,
    row: usize,
    kind: &Arc<str>,
    ts: u64,
    rec: &Arc<str>,
    lk: &Lookups,
) -> NftEvent {
    let family = r.nft_family.get(row).cloned();
    let table = r.nft_table.get(row).cloned();
    let chain = r.nft_chain.get(row).cloned();
    let handle = r.nft_rule_handle[row];
    let rule = match (&family, &table, &chain, handle) {
        (Some(f), Some(t), Some(c), Some(h)) => lk
            .rules
            .get(&(rec.clone(), (f.clone(), t.clone(), c.clone(), h))),
        _ => None,
    };
    let s = |v: Option<&Arc<str>>| v.map(|s| s.to_string());
    NftEvent {
        kind: kind.to_string(),
        hook: s(r.nft_hook.get(row)),
        rule_seq: r.nft_rule_seq[row].map(|v| v as u32).or(rule.map(|r| r.0)),
        rule_handle: handle,
        verdict: s(r.nft_verdict.get(row)),
        target: s(r.nft_target.get(row)),
        timestamp_ns: ts,
        rule_text: rule.and_then(|r| r.1.clone()),
        source: "ebpf",
        nftrace_id: None,
        family: family.map(|s| s.to_string()),
        table: table.map(|s| s.to_string()),
        chain: chain.map(|s| s.to_string()),
    }
}
