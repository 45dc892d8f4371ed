//! `--live`: one line per event while recording, pwru-style. Printed on the
//! drain thread from events already in memory; the writer is not slowed.
//! When the reader of stdout goes away (`| head -1`), the recording stops
//! cleanly (`end: stdout-closed`) instead of dying on the closed pipe.

use std::io::Write;
use std::sync::Arc;

use nft_schema::raw::SkbEvent;
use nft_schema::tables::values;

use crate::record::pipeline::LiveSink;
use crate::stop::StopSignal;
use crate::writer::batch::addr_text;

/// The `--live` sink: one line per event on stdout.
pub fn stdout_sink(stop: Arc<StopSignal>) -> LiveSink {
    let mut out = std::io::LineWriter::new(std::io::stdout());
    Box::new(move |e, probe| {
        if writeln!(out, "{}", line(e, probe)).is_ok() {
            return true;
        }
        stop.request(values::END_STDOUT_CLOSED);
        false
    })
}

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
pub fn line(e: &SkbEvent, probe: &str) -> String {
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
