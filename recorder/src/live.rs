//! `--live`: one line per event while recording, pwru-style. Printed on the
//! drain thread from events already in memory; the writer is not slowed.
//! When the reader of stdout goes away (`| head -1`), the recording stops
//! cleanly (`end: stdout-closed`) instead of dying on the closed pipe.

use std::io::Write;
use std::sync::Arc;

use nft_schema::raw::{NftPart, SkbEvent};
use nft_schema::tables::values;

use crate::record::pipeline::{LiveEvent, LiveSink};
use crate::stop::StopSignal;
use crate::writer::batch::{addr_text, nft_event_name, nft_verdict_name};
use crate::writer::nft_names::hook_name;

/// The `--live` sink: one line per event on stdout.
pub fn stdout_sink(stop: Arc<StopSignal>) -> LiveSink {
    let mut out = std::io::LineWriter::new(std::io::stdout());
    Box::new(move |e: &LiveEvent<'_>| {
        if writeln!(out, "{}", line(e.event, e.nft, e.probe)).is_ok() {
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

/// `ts cpu probe skb len ifindex tuple [reason] [nft: event verdict …]`
pub fn line(e: &SkbEvent, nft: Option<&NftPart>, probe: &str) -> String {
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
    if let Some(p) = nft {
        out.push_str(&format!(
            " nft {} {} hook={} rule={} verdict={}",
            nft_event_name(p),
            crate::sources::nftrace::message::family_name(p.family),
            hook_name(p.family, p.hook),
            p.rule_handle,
            nft_verdict_name(p).unwrap_or_default()
        ));
    }
    out
}
