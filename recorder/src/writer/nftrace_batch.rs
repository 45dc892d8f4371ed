//! nftrace messages -> one Arrow `RecordBatch` of the `nftrace` schema.

use std::sync::Arc;

use arrow::array::{ArrayRef, UInt16Array, UInt32Array, UInt64Array, UInt8Array};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use nft_schema::tables::nftrace_schema;

use super::batch::{addr_text, DictColumn};
use crate::sources::nftrace::message::{family_name, kind_name, verdict_name, NftraceEvent};

/// One received message with where and when it was received.
#[derive(Clone, Debug)]
pub struct NftraceRow {
    pub ts_ns: u64,
    pub netns: u32,
    pub event: NftraceEvent,
}

pub fn nftrace_batch(rows: &[NftraceRow]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut kind = DictColumn::with_capacity(n);
    let mut family = DictColumn::with_capacity(n);
    let mut verdict = DictColumn::with_capacity(n);
    let mut policy = DictColumn::with_capacity(n);
    let mut saddr = DictColumn::with_capacity(n);
    let mut daddr = DictColumn::with_capacity(n);
    // Strings repeat too: key them by themselves.
    let mut table = DictColumn::with_capacity(n);
    let mut chain = DictColumn::with_capacity(n);
    let mut target = DictColumn::with_capacity(n);
    for r in rows {
        let e = &r.event;
        kind.push(Some(e.kind), |k| kind_name(k).to_string());
        family.push(Some(e.family), family_name);
        verdict.push(e.verdict, verdict_name);
        policy.push(e.policy.map(|p| p as i32), verdict_name);
        let ip = e.headers.ip_version != 0;
        saddr.push(ip.then_some(e.headers.saddr), addr_text);
        daddr.push(ip.then_some(e.headers.daddr), addr_text);
        table.push(Some(e.table.as_str()), str::to_string);
        chain.push(Some(e.chain.as_str()), str::to_string);
        target.push(e.target.as_deref(), str::to_string);
    }
    let h = |f: &dyn Fn(&NftraceRow) -> bool| -> Vec<bool> { rows.iter().map(f).collect() };
    let ip = h(&|r| r.event.headers.ip_version != 0);
    let l4 = h(&|r| r.event.headers.has_l4 && matches!(r.event.headers.l4_proto, 6 | 17));
    let icmp = h(&|r| r.event.headers.has_l4 && matches!(r.event.headers.l4_proto, 1 | 58));
    let pick8 = |mask: &[bool], f: fn(&NftraceRow) -> u8| -> ArrayRef {
        Arc::new(UInt8Array::from_iter(
            rows.iter().zip(mask).map(|(r, m)| m.then(|| f(r))),
        ))
    };
    let pick16 = |mask: &[bool], f: fn(&NftraceRow) -> u16| -> ArrayRef {
        Arc::new(UInt16Array::from_iter(
            rows.iter().zip(mask).map(|(r, m)| m.then(|| f(r))),
        ))
    };
    let v4: Vec<bool> = h(&|r| r.event.headers.ip_version == 4);
    let tcp: Vec<bool> = h(&|r| r.event.headers.has_l4 && r.event.headers.l4_proto == 6);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.ts_ns))),
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.netns))),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| r.event.trace_id),
        )),
        kind.finish(),
        family.finish(),
        table.finish(),
        chain.finish(),
        Arc::new(UInt64Array::from_iter(
            rows.iter().map(|r| r.event.rule_handle),
        )),
        verdict.finish(),
        target.finish(),
        policy.finish(),
        Arc::new(UInt32Array::from_iter(rows.iter().map(|r| r.event.iif))),
        Arc::new(UInt32Array::from_iter(rows.iter().map(|r| r.event.oif))),
        Arc::new(UInt32Array::from_iter(rows.iter().map(|r| r.event.mark))),
        pick8(&ip, |r| r.event.headers.ip_version),
        saddr.finish(),
        daddr.finish(),
        pick8(&ip, |r| r.event.headers.l4_proto),
        pick16(&l4, |r| r.event.headers.sport),
        pick16(&l4, |r| r.event.headers.dport),
        pick8(&tcp, |r| r.event.headers.tcp_flags),
        pick8(&icmp, |r| r.event.headers.icmp_type),
        pick8(&icmp, |r| r.event.headers.icmp_code),
        pick16(&v4, |r| r.event.headers.ip_id),
    ];
    RecordBatch::try_new(nftrace_schema(), columns)
}
