//! Shapes events into [`Trace`]s. [`Open`] is a trace being built and
//! [`finish`] turns it into a [`Trace`], looking up what the rows do not
//! carry (rule text, chain hooks, nftrace verdicts, loss windows); both
//! engines share them. [`Assembler`] is the SQL engine's side: it turns the
//! rows of `queries/trace_events.sql` (every event with its trace key, in
//! trace order) into traces, one trace in memory at a time; there the SQL
//! decides which events form a trace. The streaming engine decides that
//! itself (`stream.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
use nft_schema::columns::{events as ev, RECORDING};

use super::lookups::Lookups;
use super::model::{protocol_name, NftEvent, PacketInfo, Trace, TraceStats};
use crate::result_columns::{bools, i64s, strs, Interner, Strs, U64Col};

/// Column names the trace query adds to the `events` columns.
pub const TRACE_SEQ: &str = "trace_seq";
pub const IS_FREE: &str = "is_free";
pub const IS_DUP: &str = "is_dup";

/// The event columns [`Rows`] reads: the streaming engine decodes only
/// these.
pub(super) const ROW_COLUMNS: [&str; 29] = [
    ev::SKB,
    ev::TS_NS,
    ev::PROBE,
    ev::KIND,
    ev::CPU,
    ev::NETNS,
    ev::IFINDEX,
    ev::MARK,
    ev::LEN,
    ev::IP_VERSION,
    ev::SADDR,
    ev::DADDR,
    ev::L4_PROTO,
    ev::SPORT,
    ev::DPORT,
    ev::ICMP_TYPE,
    ev::IP_ID,
    ev::DROP_REASON,
    ev::LOCATION_SYM,
    ev::NFT_EVENT,
    ev::NFT_FAMILY,
    ev::NFT_TABLE,
    ev::NFT_CHAIN,
    ev::NFT_HOOK,
    ev::NFT_RULE_HANDLE,
    ev::NFT_RULE_SEQ,
    ev::NFT_VERDICT,
    ev::NFT_TARGET,
    ev::NFT_TRACE_ID,
];

/// The event columns of one batch ([`ROW_COLUMNS`]), typed once per batch.
pub(super) struct Rows {
    pub skb: U64Col,
    pub ts: U64Col,
    pub probe: Strs,
    pub kind: Strs,
    pub cpu: U64Col,
    pub netns: U64Col,
    pub ifindex: U64Col,
    pub mark: U64Col,
    pub len: U64Col,
    pub ip_version: U64Col,
    pub saddr: Strs,
    pub daddr: Strs,
    pub l4_proto: U64Col,
    pub sport: U64Col,
    pub dport: U64Col,
    pub icmp_type: U64Col,
    pub ip_id: U64Col,
    pub drop_reason: Strs,
    pub location_sym: Strs,
    pub nft_event: Strs,
    pub nft_family: Strs,
    pub nft_table: Strs,
    pub nft_chain: Strs,
    pub nft_hook: Strs,
    pub nft_rule_handle: U64Col,
    pub nft_rule_seq: U64Col,
    pub nft_verdict: Strs,
    pub nft_target: Strs,
    pub nft_trace_id: U64Col,
}

impl Rows {
    pub fn new(b: &RecordBatch, i: &mut Interner) -> Result<Self, ArrowError> {
        Ok(Self {
            skb: U64Col::new(b, ev::SKB)?,
            ts: U64Col::new(b, ev::TS_NS)?,
            probe: strs(b, ev::PROBE, i)?,
            kind: strs(b, ev::KIND, i)?,
            cpu: U64Col::new(b, ev::CPU)?,
            netns: U64Col::new(b, ev::NETNS)?,
            ifindex: U64Col::new(b, ev::IFINDEX)?,
            mark: U64Col::new(b, ev::MARK)?,
            len: U64Col::new(b, ev::LEN)?,
            ip_version: U64Col::new(b, ev::IP_VERSION)?,
            saddr: strs(b, ev::SADDR, i)?,
            daddr: strs(b, ev::DADDR, i)?,
            l4_proto: U64Col::new(b, ev::L4_PROTO)?,
            sport: U64Col::new(b, ev::SPORT)?,
            dport: U64Col::new(b, ev::DPORT)?,
            icmp_type: U64Col::new(b, ev::ICMP_TYPE)?,
            ip_id: U64Col::new(b, ev::IP_ID)?,
            drop_reason: strs(b, ev::DROP_REASON, i)?,
            location_sym: strs(b, ev::LOCATION_SYM, i)?,
            nft_event: strs(b, ev::NFT_EVENT, i)?,
            nft_family: strs(b, ev::NFT_FAMILY, i)?,
            nft_table: strs(b, ev::NFT_TABLE, i)?,
            nft_chain: strs(b, ev::NFT_CHAIN, i)?,
            nft_hook: strs(b, ev::NFT_HOOK, i)?,
            nft_rule_handle: U64Col::new(b, ev::NFT_RULE_HANDLE)?,
            nft_rule_seq: U64Col::new(b, ev::NFT_RULE_SEQ)?,
            nft_verdict: strs(b, ev::NFT_VERDICT, i)?,
            nft_target: strs(b, ev::NFT_TARGET, i)?,
            nft_trace_id: U64Col::new(b, ev::NFT_TRACE_ID)?,
        })
    }
}

/// The trace being built.
pub(super) struct Open {
    pub recording: Arc<str>,
    pub skb: u64,
    pub first_ns: u64,
    pub last_ns: u64,
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

impl Open {
    /// A trace whose first event is `row`.
    pub fn start(recording: Arc<str>, skb: u64, r: &Rows, row: usize) -> Self {
        let ts = r.ts.get(row).unwrap_or(0);
        Self {
            recording,
            skb,
            first_ns: ts,
            last_ns: ts,
            path: Vec::new(),
            path_ts: Vec::new(),
            nft: Vec::new(),
            packet: None,
            fallback_packet: packet_info(r, row),
            drop_reason: None,
            drop_location: None,
            consumed: false,
            last_free: false,
            dups: 0,
            cpus: Vec::new(),
        }
    }

    /// Adds event `row` (a duplicate verdict is only counted).
    pub fn push(&mut self, r: &Rows, row: usize, is_free: bool, is_dup: bool, lk: &Lookups) {
        let ts = r.ts.get(row).unwrap_or(0);
        self.last_ns = self.last_ns.max(ts);
        self.last_free = is_free;
        if is_dup {
            self.dups += 1;
            return;
        }
        if let Some(cpu) = r.cpu.get(row) {
            let cpu = cpu as u32;
            if !self.cpus.contains(&cpu) {
                self.cpus.push(cpu);
            }
        }
        if self.packet.is_none() && r.ip_version.get(row).is_some() {
            self.packet = Some(packet_info(r, row));
        }
        if let Some(kind) = r.nft_event.get(row) {
            self.nft
                .push(nft_event(r, row, kind, ts, &self.recording, lk));
            return;
        }
        let probe = r.probe.get(row).cloned().unwrap_or_else(|| "".into());
        if &*probe == KFREE_SKB {
            self.drop_reason = r.drop_reason.get(row).cloned();
            self.drop_location = r.location_sym.get(row).cloned();
        } else if &*probe == CONSUME_SKB {
            self.consumed = true;
        }
        self.path.push(probe);
        self.path_ts.push(ts);
    }
}

/// Builds traces from batches of `trace_events.sql` rows, handing each
/// finished one to `emit`.
pub struct Assembler<'a> {
    lookups: &'a Lookups,
    interner: Interner,
    /// The open trace and its (recording, skb, trace_seq) key.
    open: Option<(Open, u64)>,
    numbering: Numbering,
}

/// Trace ids: 1, 2, ... per recording, in output order.
#[derive(Default)]
pub(super) struct Numbering(HashMap<Arc<str>, u64>);

impl Numbering {
    pub fn next(&mut self, recording: &Arc<str>) -> u64 {
        let id = self.0.entry(recording.clone()).or_insert(0);
        *id += 1;
        *id
    }
}

pub(super) const KFREE_SKB: &str = "skb:kfree_skb";
pub(super) const CONSUME_SKB: &str = "skb:consume_skb";

impl<'a> Assembler<'a> {
    pub fn new(lookups: &'a Lookups) -> Self {
        Self {
            lookups,
            interner: Interner::default(),
            open: None,
            numbering: Numbering::default(),
        }
    }

    pub fn push_batch(
        &mut self,
        batch: &RecordBatch,
        emit: &mut dyn FnMut(Trace),
    ) -> Result<(), ArrowError> {
        let r = Rows::new(batch, &mut self.interner)?;
        let recording = strs(batch, RECORDING, &mut self.interner)?;
        let seqs = i64s(batch, TRACE_SEQ)?;
        let is_free = bools(batch, IS_FREE)?;
        let is_dup = bools(batch, IS_DUP)?;
        for row in 0..batch.num_rows() {
            let rec = recording.get(row).cloned().unwrap_or_else(|| "".into());
            let skb = r.skb.get(row).unwrap_or(0);
            let seq = seqs[row].unwrap_or(0) as u64;
            let same = self
                .open
                .as_ref()
                .is_some_and(|(o, s)| o.skb == skb && *s == seq && o.recording == rec);
            if !same {
                self.finish_all(emit);
                self.open = Some((Open::start(rec, skb, &r, row), seq));
            }
            let (o, _) = self.open.as_mut().expect("opened above");
            o.push(&r, row, is_free[row], is_dup[row], self.lookups);
        }
        Ok(())
    }

    /// Emits the last open trace.
    pub fn finish_all(&mut self, emit: &mut dyn FnMut(Trace)) {
        if let Some((done, _)) = self.open.take() {
            let id = self.numbering.next(&done.recording);
            emit(finish(self.lookups, done, id));
        }
    }
}

/// The finished trace `o`, numbered `trace_id`.
pub(super) fn finish(lk: &Lookups, o: Open, trace_id: u64) -> Trace {
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
        .filter(|e| &*e.kind != "chain_entry")
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
    Trace {
        skb_addr: format!("{:#x}", o.skb),
        first_seen_ns: o.first_ns,
        duration_ns: o.last_ns - o.first_ns,
        stats: TraceStats {
            total_functions: o.path.len(),
            total_rules_evaluated: nft.iter().filter(|e| &*e.kind == "rule_eval").count(),
            final_verdict,
        },
        functions_path: o.path,
        // An event that arrived late (streaming engine) may precede the
        // trace's first one: its offset is 0.
        path_offsets_ns: o
            .path_ts
            .iter()
            .map(|t| t.saturating_sub(o.first_ns))
            .collect(),
        nft_events: nft,
        packet_info: o.packet.unwrap_or(o.fallback_packet),
        recording: o.recording.to_string(),
        trace_id,
        end,
        drop_reason: o.drop_reason.map(|s| s.to_string()),
        drop_location: o.drop_location.map(|s| s.to_string()),
        flags,
        duplicates_removed: o.dups,
        cpus: o.cpus,
    }
}

fn packet_info(r: &Rows, row: usize) -> PacketInfo {
    PacketInfo {
        src_ip: r.saddr.get(row).cloned(),
        dst_ip: r.daddr.get(row).cloned(),
        src_port: r.sport.get(row).map(|v| v as u16),
        dst_port: r.dport.get(row).map(|v| v as u16),
        protocol: r.l4_proto.get(row).map(|p| protocol_name(p as u8)),
        ip_version: r.ip_version.get(row).map(|v| v as u8),
        length: r.len.get(row).unwrap_or(0) as u32,
        ip_id: r.ip_id.get(row).map(|v| v as u16),
        icmp_type: r.icmp_type.get(row).map(|v| v as u8),
        ifindex: r.ifindex.get(row).unwrap_or(0) as u32,
        netns: r.netns.get(row).unwrap_or(0) as u32,
        mark: r.mark.get(row).unwrap_or(0) as u32,
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
    let handle = r.nft_rule_handle.get(row);
    let rule = match (&family, &table, &chain, handle) {
        (Some(f), Some(t), Some(c), Some(h)) => lk
            .rules
            .get(&(rec.clone(), (f.clone(), t.clone(), c.clone(), h))),
        _ => None,
    };
    NftEvent {
        kind: kind.clone(),
        hook: r.nft_hook.get(row).cloned(),
        rule_seq: r
            .nft_rule_seq
            .get(row)
            .map(|v| v as u32)
            .or(rule.map(|r| r.0)),
        rule_handle: handle,
        verdict: r.nft_verdict.get(row).cloned(),
        target: r.nft_target.get(row).cloned(),
        timestamp_ns: ts,
        rule_text: rule.and_then(|r| r.1.clone()),
        source: "ebpf",
        nftrace_id: r.nft_trace_id.get(row).map(|v| v as u32),
        family,
        table,
        chain,
    }
}
