//! `--live`: one line per event while recording, pwru-style. Printed on the
//! drain thread from events already in memory; the writer is not slowed.

use std::collections::HashMap;

use nft_schema::raw::SkbEvent;

use crate::writer::batch::addr_text;

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        p => format!("proto{p}"),
    }
}

/// `ts cpu probe skb len ifindex tuple [reason]`
pub fn line(e: &SkbEvent, probes: &HashMap<u32, String>) -> String {
    let probe = probes.get(&e.probe_id).map(String::as_str).unwrap_or("?");
    let tuple = if e.ip_version == 0 {
        format!("proto={:#06x}", e.protocol)
    } else if matches!(e.l4_proto, 6 | 17) {
        format!(
            "{} {}:{} > {}:{}",
            proto_name(e.l4_proto),
            addr_text(e.saddr),
            e.sport,
            addr_text(e.daddr),
            e.dport
        )
    } else {
        format!(
            "{} {} > {}",
            proto_name(e.l4_proto),
            addr_text(e.saddr),
            addr_text(e.daddr)
        )
    };
    let mut out = format!(
        "{:>16} cpu{:<3} {:<28} skb={:#x} len={} if={} {}",
        e.ts_ns, e.cpu, probe, e.skb, e.len, e.ifindex, tuple
    );
    if e.drop_reason != 0 {
        out.push_str(&format!(" drop_reason={}", e.drop_reason));
    }
    out
}
