//! What makes two traces from different recordings "the same" for a diff:
//! function names without the compiler's clone suffixes, paths with
//! consecutive repeats collapsed and the way the packet ended, and flows
//! keyed by their service side (ephemeral ports and ICMP ids differ between
//! two runs of the same traffic).

use crate::traces::model::Trace;
use crate::traces::sinks::flow_text_with_ports;

/// Suffixes GCC and LLVM add to clones of a function (`ip_rcv.isra.0`,
/// `tcp_v4_rcv.cold`, `foo.constprop.0.isra.0`): one function for a diff.
const CLONE_SUFFIXES: &[&str] = &["isra", "constprop", "part", "cold", "llvm", "lto_priv"];

/// `name` without its clone suffixes. (Hand-written rather than a regex:
/// the rule is three lines, and the analyzer has no regex dependency.)
pub fn function(name: &str) -> &str {
    let mut name = name;
    loop {
        let Some(dot) = name.rfind('.') else {
            return name;
        };
        let (head, tail) = (&name[..dot], &name[dot + 1..]);
        if CLONE_SUFFIXES.contains(&tail) {
            name = head;
        } else if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
            // `.N` belongs to the suffix before it (`.isra.0`).
            match head.rfind('.') {
                Some(d) if CLONE_SUFFIXES.contains(&&head[d + 1..]) => name = &head[..d],
                _ => return name,
            }
        } else {
            return name;
        }
    }
}

/// The trace's functions, normalised, with consecutive repeats collapsed;
/// each with its time offset (the first of a run of repeats).
pub fn path(t: &Trace) -> Vec<(&str, u64)> {
    let mut out: Vec<(&str, u64)> = Vec::with_capacity(t.functions_path.len());
    for (i, f) in t.functions_path.iter().enumerate() {
        let f = function(f);
        if out.last().is_some_and(|(last, _)| *last == f) {
            continue;
        }
        out.push((f, t.path_offsets_ns.get(i).copied().unwrap_or(0)));
    }
    out
}

/// The path signature: the normalised path and how the packet ended
/// (`... > skb:kfree_skb [dropped NETFILTER_DROP]`).
pub fn signature(t: &Trace) -> String {
    let mut s = path(t)
        .iter()
        .map(|(f, _)| *f)
        .collect::<Vec<_>>()
        .join(" > ");
    if s.is_empty() {
        s.push_str("(no functions)");
    }
    match &t.drop_reason {
        Some(r) => s.push_str(&format!(" [{} {r}]", t.end)),
        None => s.push_str(&format!(" [{}]", t.end)),
    }
    s
}

/// The flow a trace belongs to, for matching across recordings. With
/// `exact`, the full 5-tuple. Otherwise the service side only: of two
/// ports, the lower one is the service and the other (ephemeral, chosen anew
/// by each run) is `*`; ICMP keeps its type. Direction stays: a request and
/// its reply are two flows.
pub fn flow(t: &Trace, exact: bool) -> String {
    let p = &t.packet_info;
    let (sport, dport) = match (p.src_port, p.dst_port) {
        (Some(s), Some(d)) if !exact && s < d => (Some(s.to_string()), Some("*".into())),
        (Some(s), Some(d)) if !exact && d < s => (Some("*".into()), Some(d.to_string())),
        (s, d) => (s.map(|s| s.to_string()), d.map(|d| d.to_string())),
    };
    let mut s = flow_text_with_ports(t, sport, dport);
    let icmp = p.protocol.as_deref().is_some_and(|p| p.starts_with("icmp"));
    if let Some(ty) = p.icmp_type.filter(|_| icmp && p.ip_version.is_some()) {
        s.push_str(&format!(" type {ty}"));
    }
    s
}

/// The function part of a kernel location (`nft_do_chain+0x3e8` →
/// `nft_do_chain`), normalised.
pub fn location_function(location: &str) -> &str {
    function(location.split('+').next().unwrap_or(location))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::model::{PacketInfo, TraceStats};
    use std::sync::Arc;

    #[test]
    fn clone_suffixes_are_stripped_and_nothing_else() {
        assert_eq!(function("ip_rcv"), "ip_rcv");
        assert_eq!(function("ip_rcv.isra.0"), "ip_rcv");
        assert_eq!(function("tcp_v4_rcv.cold"), "tcp_v4_rcv");
        assert_eq!(function("foo.constprop.0.isra.0"), "foo");
        assert_eq!(function("bar.part.3.cold"), "bar");
        assert_eq!(function("net:netif_rx"), "net:netif_rx");
        assert_eq!(function("v1.2"), "v1.2");
        assert_eq!(function("x.cold.1"), "x");
        assert_eq!(location_function("nft_do_chain+0x3e8"), "nft_do_chain");
        assert_eq!(location_function("ip_rcv.isra.0+0x10"), "ip_rcv");
    }

    fn trace(path: &[&str], sport: u16, dport: u16) -> Trace {
        Trace {
            skb_addr: "0x1".into(),
            first_seen_ns: 0,
            duration_ns: 0,
            functions_path: path.iter().map(|s| Arc::from(*s)).collect(),
            path_offsets_ns: (0..path.len() as u64).map(|i| i * 10).collect(),
            nft_events: vec![],
            packet_info: PacketInfo {
                src_ip: Some("10.0.0.1".into()),
                dst_ip: Some("10.0.0.2".into()),
                src_port: Some(sport),
                dst_port: Some(dport),
                protocol: Some("tcp".into()),
                ip_version: Some(4),
                ..PacketInfo::default()
            },
            stats: TraceStats {
                total_functions: path.len(),
                total_rules_evaluated: 0,
                final_verdict: None,
            },
            recording: "r".into(),
            trace_id: 1,
            end: "dropped",
            drop_reason: Some("NETFILTER_DROP".into()),
            drop_location: None,
            flags: vec![],
            duplicates_removed: 0,
            cpus: vec![],
        }
    }

    #[test]
    fn paths_collapse_repeats_and_keep_the_first_time() {
        let t = trace(&["a", "b.isra.0", "b", "c", "b"], 1, 2);
        assert_eq!(path(&t), vec![("a", 0), ("b", 10), ("c", 30), ("b", 40)]);
        assert_eq!(signature(&t), "a > b > c > b [dropped NETFILTER_DROP]");
    }

    #[test]
    fn flows_keep_the_service_port_only() {
        assert_eq!(
            flow(&trace(&[], 40000, 80), false),
            "tcp 10.0.0.1:* > 10.0.0.2:80"
        );
        assert_eq!(
            flow(&trace(&[], 80, 40000), false),
            "tcp 10.0.0.1:80 > 10.0.0.2:*"
        );
        assert_eq!(
            flow(&trace(&[], 40000, 80), true),
            "tcp 10.0.0.1:40000 > 10.0.0.2:80"
        );
    }
}
