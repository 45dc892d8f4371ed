//! Raw `SkbEvent`s -> one Arrow `RecordBatch` of the `events` schema.
//!
//! Names (probe, drop reason, location symbol) and addresses repeat across
//! events, so they are built as dictionary columns directly: each distinct
//! value is formatted once per batch, not once per event.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::Ipv6Addr;
use std::sync::Arc;

use arrow::array::{
    new_null_array, ArrayRef, DictionaryArray, Int32Array, PrimitiveArray, StringArray,
    UInt32Array, UInt64Array,
};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::{ArrowPrimitiveType, Int32Type};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use nft_schema::raw::{nft_event, EventKind, NftPart, SkbEvent, PROBE_KFREE_SKB};
use nft_schema::tables::events_schema;

use super::kallsyms::Kallsyms;
use super::nft_names::{hook_name, NftNames};
use crate::sources::nftrace::message::{family_name, verdict_name};

/// What the writer knows about names, resolved once at start.
#[derive(Default)]
pub struct Names {
    /// probe id -> probe name (`net:netif_receive_skb`).
    pub probes: HashMap<u32, String>,
    /// drop reason code -> name (`NETFILTER_DROP`).
    pub drop_reasons: HashMap<u32, String>,
    pub kallsyms: Option<Kallsyms>,
    /// Table, chain and rule names of the nft hook's handles.
    pub nft: NftNames,
}

/// Builds a dictionary column from keys, formatting each distinct key once.
/// Keys are hashed with foldhash (not SipHash: no untrusted input here, and
/// this runs for every event), and a run of equal keys (the events of one
/// packet) skips the hash entirely.
pub(crate) struct DictColumn<K> {
    index: HashMap<K, i32, foldhash::fast::FixedState>,
    last: Option<(K, i32)>,
    values: Vec<String>,
    /// Keys, -1 for null: the validity is derived once at the end, only
    /// for columns that have nulls (a `Vec<Option<i32>>` cost a second pass
    /// and twice the instructions to become an array).
    keys: Vec<i32>,
    nulls: usize,
}

impl<K: Hash + Eq + Copy> DictColumn<K> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            index: HashMap::with_hasher(foldhash::fast::FixedState::default()),
            last: None,
            values: Vec::new(),
            keys: Vec::with_capacity(n),
            nulls: 0,
        }
    }

    pub(crate) fn push(&mut self, key: Option<K>, format: impl FnOnce(K) -> String) {
        let Some(key) = key else {
            self.keys.push(-1);
            self.nulls += 1;
            return;
        };
        if let Some((last, i)) = self.last {
            if last == key {
                self.keys.push(i);
                return;
            }
        }
        let next = self.values.len() as i32;
        let values = &mut self.values;
        let i = *self.index.entry(key).or_insert_with(|| {
            values.push(format(key));
            next
        });
        self.last = Some((key, i));
        self.keys.push(i);
    }

    pub(crate) fn finish(self) -> ArrayRef {
        debug_assert!(self.keys.iter().all(|&k| k < self.values.len() as i32));
        let nulls = (self.nulls > 0).then(|| {
            let keys = &self.keys;
            NullBuffer::new(BooleanBuffer::collect_bool(keys.len(), |i| keys[i] >= 0))
        });
        let keys = Int32Array::new(self.keys.into(), nulls);
        let values = Arc::new(StringArray::from(self.values));
        // SAFETY: every valid key is the index of a value pushed in `push`
        // (nulls are -1 under the null mask). Skips `try_new`'s check of
        // every key, 3 % of the writer's instructions (callgrind).
        Arc::new(unsafe { DictionaryArray::<Int32Type>::new_unchecked(keys, values) })
    }
}

fn column<T: ArrowPrimitiveType>(values: Vec<T::Native>) -> ArrayRef {
    // The vector becomes the array's buffer, without a copy.
    Arc::new(PrimitiveArray::<T>::new(values.into(), None))
}

/// A nullable column: `value` of every event, null where `valid` is false.
/// Values and validity are built apart, each in one tight pass; collecting
/// `Option`s into an array was the most expensive part of building a batch
/// (callgrind, docs/benchmarks.md).
fn opt_column<T: ArrowPrimitiveType>(
    events: &[SkbEvent],
    valid: impl Fn(&SkbEvent) -> bool,
    value: impl Fn(&SkbEvent) -> T::Native,
) -> ArrayRef {
    // Most columns are all valid or all null in a batch: no bitmap then.
    if !events.iter().any(&valid) {
        return new_null_array(&T::DATA_TYPE, events.len());
    }
    let values: Vec<T::Native> = events.iter().map(value).collect();
    let nulls = (!events.iter().all(&valid)).then(|| {
        NullBuffer::new(BooleanBuffer::collect_bool(events.len(), |i| {
            valid(&events[i])
        }))
    });
    Arc::new(PrimitiveArray::<T>::new(values.into(), nulls))
}

/// Address as text: IPv4-mapped addresses print as dotted quads.
pub fn addr_text(addr: [u8; 16]) -> String {
    let v6 = Ipv6Addr::from(addr);
    match v6.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => v6.to_string(),
    }
}

/// One batch of the `events` table. `nft` holds the nft hook's part of the
/// events that have one, by index into `events`.
pub fn events_batch(
    events: &[SkbEvent],
    nft: &[(u32, NftPart)],
    names: &Names,
) -> Result<RecordBatch, ArrowError> {
    use arrow::datatypes::{
        UInt16Type as U16, UInt32Type as U32, UInt64Type as U64, UInt8Type as U8,
    };
    let n = events.len();
    let mut probe = DictColumn::with_capacity(n);
    let mut kind = DictColumn::with_capacity(n);
    let mut saddr = DictColumn::with_capacity(n);
    let mut daddr = DictColumn::with_capacity(n);
    let mut drop_reason = DictColumn::with_capacity(n);
    let mut location_sym = DictColumn::with_capacity(n);
    for e in events {
        probe.push(Some(e.probe_id), |id| {
            names
                .probes
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("probe#{id}"))
        });
        kind.push(Some(e.kind), |k| match k {
            k if k == EventKind::Tracepoint as u8 => "tracepoint".into(),
            k if k == EventKind::Function as u8 => "function".into(),
            k if k == EventKind::Nft as u8 => "nft".into(),
            k => format!("kind#{k}"),
        });
        let ip = e.ip_version != 0;
        saddr.push(ip.then_some(e.saddr), addr_text);
        daddr.push(ip.then_some(e.daddr), addr_text);
        let dropped = e.probe_id == PROBE_KFREE_SKB;
        drop_reason.push(dropped.then_some(e.drop_reason), |code| {
            names
                .drop_reasons
                .get(&code)
                .cloned()
                .unwrap_or_else(|| format!("reason#{code}"))
        });
        let loc = (e.location != 0).then_some(e.location);
        location_sym.push(loc, |addr| match &names.kallsyms {
            Some(k) => k.resolve(addr),
            None => format!("{addr:#x}"),
        });
    }
    let ip = |e: &SkbEvent| e.ip_version != 0;
    let l4 = |e: &SkbEvent| e.ip_version != 0 && matches!(e.l4_proto, 6 | 17);
    let icmp = |e: &SkbEvent| e.ip_version != 0 && matches!(e.l4_proto, 1 | 58);
    let columns: Vec<ArrayRef> = vec![
        column::<U64>(events.iter().map(|e| e.ts_ns).collect()),
        column::<U64>(events.iter().map(|e| e.skb).collect()),
        column::<U32>(events.iter().map(|e| e.probe_id).collect()),
        probe.finish(),
        kind.finish(),
        column::<U32>(events.iter().map(|e| e.cpu).collect()),
        column::<U32>(events.iter().map(|e| e.netns).collect()),
        column::<U32>(events.iter().map(|e| e.ifindex).collect()),
        column::<U32>(events.iter().map(|e| e.mark).collect()),
        column::<U32>(events.iter().map(|e| e.len).collect()),
        column::<U16>(events.iter().map(|e| e.protocol).collect()),
        opt_column::<U8>(events, ip, |e| e.ip_version),
        saddr.finish(),
        daddr.finish(),
        opt_column::<U8>(events, ip, |e| e.l4_proto),
        opt_column::<U16>(events, l4, |e| e.sport),
        opt_column::<U16>(events, l4, |e| e.dport),
        opt_column::<U8>(events, |e| l4(e) && e.l4_proto == 6, |e| e.tcp_flags),
        opt_column::<U8>(events, icmp, |e| e.icmp_type),
        opt_column::<U8>(events, icmp, |e| e.icmp_code),
        opt_column::<U16>(events, |e| e.ip_version == 4, |e| e.ip_id),
        drop_reason.finish(),
        opt_column::<U64>(events, |e| e.location != 0, |e| e.location),
        location_sym.finish(),
    ];
    let mut columns = columns;
    columns.extend(nft_columns(events, nft, names));
    // `--stack`: the id in the stacks table (the event holds it + 1).
    columns.push(opt_column::<U32>(
        events,
        |e| e.stack != 0,
        |e| e.stack.wrapping_sub(1),
    ));
    let schema = events_schema();
    RecordBatch::try_new(schema, columns)
}

/// `nft_event` of an nft hook event, the same on every kernel: a message
/// about a rule (it has a handle) is `rule_eval`, whatever its kernel type
/// (6.1 sends an explicit `return` rule as a RETURN message, 6.12 as a
/// rule); one about a chain's end marker (no handle) is `return`: the chain
/// ran out of rules (6.1 sends a RETURN message, 6.12 a rule message; a
/// base chain's policy follows).
pub fn nft_event_name(p: &NftPart) -> &'static str {
    match p.trace_type {
        nft_event::POLICY => "policy",
        nft_event::CHAIN_ENTRY => "chain_entry",
        nft_event::CHAIN_EXIT => "chain_exit",
        _ if p.rule_handle == 0 => "return",
        _ => "rule_eval",
    }
}

/// The verdict of an nft hook event (none on a chain entry): a chain
/// exit's is what `nft_do_chain` returned; the others' as `nft` prints
/// them.
pub fn nft_verdict_name(p: &NftPart) -> Option<String> {
    match p.trace_type {
        nft_event::CHAIN_ENTRY => None,
        nft_event::CHAIN_EXIT => Some(exit_verdict_name(p.verdict)),
        _ => Some(verdict_name(p.verdict)),
    }
}

/// The verdict `nft_do_chain` returned. Since 6.8 a drop inside nf_tables
/// frees the skb there and returns NF_STOLEN with the errno in the upper
/// bits (`NF_DROP_REASON`): that is a drop.
fn exit_verdict_name(code: i32) -> String {
    const NF_STOLEN: i32 = 2;
    if code & 0xff == NF_STOLEN && (code as u32) >> 16 != 0 {
        "drop".into()
    } else {
        verdict_name(code)
    }
}

/// The `nft_*` columns: null except on the nft hook's events.
fn nft_columns(events: &[SkbEvent], nft: &[(u32, NftPart)], names: &Names) -> Vec<ArrayRef> {
    let n = events.len();
    if nft.is_empty() {
        // Most batches: no nft hook events, ten null columns at no cost
        // per row.
        let schema = events_schema();
        let index = |name| {
            schema
                .index_of(name)
                .expect("the events schema has the nft columns")
        };
        let first = index(nft_schema::columns::events::NFT_EVENT);
        let last = index(nft_schema::columns::events::NFT_TRACE_ID);
        return schema.fields()[first..=last]
            .iter()
            .map(|f| new_null_array(f.data_type(), n))
            .collect();
    }
    let mut event = DictColumn::<&str>::with_capacity(n);
    let mut family = DictColumn::<u8>::with_capacity(n);
    let mut table = DictColumn::<&str>::with_capacity(n);
    let mut chain = DictColumn::<&str>::with_capacity(n);
    let mut hook = DictColumn::<&str>::with_capacity(n);
    let mut verdict = DictColumn::<i32>::with_capacity(n);
    let mut target = DictColumn::<&str>::with_capacity(n);
    let mut priority = Vec::with_capacity(n);
    let mut handle = Vec::with_capacity(n);
    let mut seq = Vec::with_capacity(n);
    let mut trace_id = Vec::with_capacity(n);
    let mut parts = nft.iter().peekable();
    for (i, e) in events.iter().enumerate() {
        let part = match parts.peek() {
            Some((at, p)) if *at as usize == i => {
                parts.next();
                Some(p)
            }
            _ => None,
        };
        let Some(p) = part else {
            for c in [&mut table, &mut chain, &mut hook, &mut target] {
                c.push(None, |_| String::new());
            }
            event.push(None, |_| String::new());
            family.push(None, |_| String::new());
            verdict.push(None, |_| String::new());
            priority.push(None);
            handle.push(None);
            seq.push(None);
            trace_id.push(None);
            continue;
        };
        let r = names.nft.resolve(e.netns, p);
        let on_chain = matches!(p.trace_type, nft_event::CHAIN_ENTRY | nft_event::CHAIN_EXIT);
        event.push(Some(nft_event_name(p)), str::to_owned);
        family.push(Some(p.family), family_name);
        table.push(r.table, str::to_owned);
        chain.push(r.chain, str::to_owned);
        hook.push(Some(hook_name(p.family, p.hook)), str::to_owned);
        match p.trace_type {
            nft_event::CHAIN_ENTRY => verdict.push(None, verdict_name),
            nft_event::CHAIN_EXIT => verdict.push(Some(p.verdict), exit_verdict_name),
            _ => verdict.push(Some(p.verdict), verdict_name),
        }
        target.push(r.target, str::to_owned);
        // The chain hooks read the priority from the kernel; the rule hook
        // has it from the snapshot only.
        priority.push(if on_chain {
            Some(p.priority)
        } else {
            r.priority
        });
        handle.push((p.rule_handle != 0).then_some(p.rule_handle));
        seq.push(r.rule_seq);
        // The kernel keeps the id as the bytes it sends in NFTA_TRACE_ID
        // (big-endian on the wire); read as such it is what `nft monitor
        // trace` prints and what the nftrace table holds.
        trace_id.push((!on_chain).then_some(u32::from_be_bytes(p.trace_id.to_ne_bytes())));
    }
    vec![
        event.finish(),
        family.finish(),
        table.finish(),
        chain.finish(),
        hook.finish(),
        Arc::new(Int32Array::from(priority)),
        Arc::new(UInt64Array::from(handle)),
        Arc::new(UInt32Array::from(seq)),
        verdict.finish(),
        target.finish(),
        Arc::new(UInt32Array::from(trace_id)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    fn event(probe_id: u32, v4: [u8; 4]) -> SkbEvent {
        let mut saddr = [0u8; 16];
        saddr[10] = 0xff;
        saddr[11] = 0xff;
        saddr[12..].copy_from_slice(&v4);
        SkbEvent {
            ts_ns: 1,
            skb: 0xffff_8880_0000_1000,
            probe_id,
            ip_version: 4,
            l4_proto: 6,
            sport: 443,
            dport: 50000,
            tcp_flags: 0x12,
            saddr,
            daddr: saddr,
            kind: EventKind::Tracepoint as u8,
            ..Default::default()
        }
    }

    #[test]
    fn names_and_addresses_are_dictionary_columns() {
        let mut names = Names::default();
        names.probes.insert(3, "net:netif_receive_skb".into());
        let batch = events_batch(
            &[
                event(3, [10, 0, 0, 1]),
                event(3, [10, 0, 0, 1]),
                event(9, [10, 0, 0, 2]),
            ],
            &[],
            &names,
        )
        .unwrap();
        assert_eq!(batch.num_rows(), 3);
        let saddr = batch
            .column_by_name("saddr")
            .unwrap()
            .as_dictionary::<Int32Type>();
        assert_eq!(saddr.values().len(), 2, "each address formatted once");
        let values = saddr.values().as_string::<i32>();
        assert_eq!(values.value(saddr.keys().value(2) as usize), "10.0.0.2");
        let probe = batch
            .column_by_name("probe")
            .unwrap()
            .as_dictionary::<Int32Type>();
        let pv = probe.values().as_string::<i32>();
        assert_eq!(
            pv.value(probe.keys().value(0) as usize),
            "net:netif_receive_skb"
        );
        assert_eq!(pv.value(probe.keys().value(2) as usize), "probe#9");
        // Not a kfree_skb event: no drop reason.
        assert!(batch.column_by_name("drop_reason").unwrap().is_null(0));
    }

    #[test]
    fn ipv6_and_non_ip_events() {
        let mut e = event(1, [0; 4]);
        e.ip_version = 6;
        e.saddr = "fd00::1".parse::<Ipv6Addr>().unwrap().octets();
        let raw = SkbEvent {
            protocol: 0x0806,
            ..Default::default()
        };
        let batch = events_batch(&[e, raw], &[], &Names::default()).unwrap();
        let saddr = batch
            .column_by_name("saddr")
            .unwrap()
            .as_dictionary::<Int32Type>();
        assert_eq!(saddr.values().as_string::<i32>().value(0), "fd00::1");
        assert!(saddr.is_null(1));
        assert!(batch.column_by_name("sport").unwrap().is_null(1));
    }

    /// The nft hooks' events: names of events and verdicts the same on
    /// every kernel, the trace id as nft prints it, the kernel's priority on
    /// chain events.
    #[test]
    fn nft_hook_columns() {
        let part = |trace_type, rule_handle, verdict| NftPart {
            trace_type,
            rule_handle,
            verdict,
            trace_id: u32::from_ne_bytes(0x2fc2_7c6a_u32.to_be_bytes()),
            priority: -150,
            ..NftPart::default()
        };
        let parts = [
            part(nft_event::CHAIN_ENTRY, 0, 0),
            part(nft_event::RULE, 11, -3),
            part(nft_event::RETURN, 18, -5), // 6.1's explicit `return` rule
            part(nft_event::RULE, 0, -1),    // 6.12's end of chain
            part(nft_event::RETURN, 0, -1),  // 6.1's end of chain
            part(nft_event::POLICY, 0, 0),
            // 6.8+: dropped inside nf_tables (NF_STOLEN, EPERM << 16).
            part(nft_event::CHAIN_EXIT, 0, (1 << 16) | 2),
            part(nft_event::CHAIN_EXIT, 0, 1),
        ];
        let events = vec![event(PROBE_KFREE_SKB + 1, [10, 0, 0, 1]); parts.len()];
        let nft: Vec<(u32, NftPart)> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| (i as u32, *p))
            .collect();
        let batch = events_batch(&events, &nft, &Names::default()).unwrap();
        let strings = |name: &str| -> Vec<Option<String>> {
            let col = batch
                .column_by_name(name)
                .unwrap()
                .as_dictionary::<Int32Type>();
            let values = col.values().as_string::<i32>();
            (0..col.len())
                .map(|i| {
                    col.is_valid(i)
                        .then(|| values.value(col.keys().value(i) as usize).to_owned())
                })
                .collect()
        };
        let some = |v: &[&str]| {
            v.iter()
                .map(|s| (!s.is_empty()).then(|| s.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            strings("nft_event"),
            some(&[
                "chain_entry",
                "rule_eval",
                "rule_eval",
                "return",
                "return",
                "policy",
                "chain_exit",
                "chain_exit"
            ])
        );
        assert_eq!(
            strings("nft_verdict"),
            some(&["", "jump", "return", "continue", "continue", "drop", "drop", "accept"])
        );
        let ids = batch
            .column_by_name("nft_trace_id")
            .unwrap()
            .as_primitive::<arrow::datatypes::UInt32Type>();
        assert!(ids.is_null(0) && ids.is_null(6));
        assert_eq!(ids.value(1), 0x2fc2_7c6a);
        let prio = batch
            .column_by_name("nft_priority")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int32Type>();
        assert_eq!((prio.value(0), prio.value(7)), (-150, -150));
        assert!(prio.is_null(1), "no snapshot: no priority for a rule");
    }
}
