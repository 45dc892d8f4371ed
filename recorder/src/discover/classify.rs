//! Priority and layer of a discovered function, from its name alone, so the
//! same function gets the same class on every kernel. The rules are listed
//! in `docs/discovery.md`; the tests below pin them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// 0: critical landmarks of the packet paths, 1: important (core IPv4/IPv6,
/// TCP/UDP, netfilter, device and routing code), 2: optional (the rest).
pub type Priority = u8;

/// The functions every trace should show when they run: the receive,
/// forward, local-out and transmit paths and the frees. Priority 0.
pub const LANDMARKS: &[&str] = &[
    // receive
    "__netif_receive_skb_core",
    "__netif_receive_skb",
    "netif_receive_skb",
    "napi_gro_receive",
    "netif_rx",
    "ip_rcv",
    "ip_rcv_core",
    "ip_rcv_finish",
    "ip_route_input_noref",
    "ip_local_deliver",
    "ip_local_deliver_finish",
    "ipv6_rcv",
    "ip6_rcv_finish",
    "ip6_input",
    // netfilter
    "nf_hook_slow",
    // forward
    "ip_forward",
    "ip_forward_finish",
    "ip6_forward",
    // L4 delivery
    "tcp_v4_rcv",
    "tcp_v6_rcv",
    "udp_rcv",
    "udpv6_rcv",
    "icmp_rcv",
    "icmpv6_rcv",
    // local out and output
    "__ip_local_out",
    "ip_local_out",
    "ip_output",
    "ip_finish_output",
    "ip_finish_output2",
    "ip6_output",
    "ip6_finish_output2",
    "neigh_resolve_output",
    // transmit
    "__dev_queue_xmit",
    "dev_queue_xmit",
    "dev_hard_start_xmit",
    // frees
    "kfree_skb_reason",
    "sk_skb_reason_drop",
    "consume_skb",
];

/// Name prefixes of the code a packet trace usually needs. Priority 1.
const IMPORTANT_PREFIXES: &[&str] = &[
    "ip_", "__ip_", "ip6_", "__ip6_", "ipv6_", "tcp_", "__tcp_", "udp", "__udp", "icmp", "nf_",
    "__nf_", "nft_", "netif_", "__netif_", "dev_", "__dev_", "neigh_", "fib", "skb_", "__skb_",
    "napi_", "inet_", "sch_", "qdisc_",
];

/// Where in the stack a function sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Layer {
    Device,
    #[serde(rename = "GRO")]
    Gro,
    Netfilter,
    IPv4,
    IPv6,
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    Routing,
    Xmit,
    #[serde(rename = "SoftIRQ")]
    SoftIrq,
    Other,
}

impl Layer {
    pub const ALL: [Layer; 11] = [
        Layer::Device,
        Layer::Gro,
        Layer::Netfilter,
        Layer::IPv4,
        Layer::IPv6,
        Layer::Tcp,
        Layer::Udp,
        Layer::Routing,
        Layer::Xmit,
        Layer::SoftIrq,
        Layer::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Layer::Device => "Device",
            Layer::Gro => "GRO",
            Layer::Netfilter => "Netfilter",
            Layer::IPv4 => "IPv4",
            Layer::IPv6 => "IPv6",
            Layer::Tcp => "TCP",
            Layer::Udp => "UDP",
            Layer::Routing => "Routing",
            Layer::Xmit => "Xmit",
            Layer::SoftIrq => "SoftIRQ",
            Layer::Other => "Other",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The priority of `name`.
pub fn priority(name: &str) -> Priority {
    let base = base_name(name);
    if LANDMARKS.contains(&base) {
        0
    } else if IMPORTANT_PREFIXES.iter().any(|p| base.starts_with(p)) {
        1
    } else {
        2
    }
}

/// The layer of `name`. Rules are tried in order, the most specific first:
/// a name that mentions GRO is GRO even when it also says `tcp`, a route
/// lookup is Routing even when it says `ip_`.
pub fn layer(name: &str) -> Layer {
    let n = base_name(name);
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| n.starts_with(p));
    let has = |parts: &[&str]| parts.iter().any(|p| n.contains(p));
    if has(&["gro_", "_gro"]) {
        Layer::Gro
    } else if starts(&[
        "nf_",
        "__nf_",
        "nft_",
        "__nft_",
        "nfnl",
        "nfqnl",
        "xt_",
        "ipt_",
        "ip6t_",
        "ebt_",
        "arpt_",
        "nf_conntrack",
        "nf_nat",
        "ipv4_conntrack",
        "ipv6_conntrack",
        "br_nf",
    ]) || has(&["_nf_", "netfilter", "conntrack", "nat_"])
    {
        Layer::Netfilter
    } else if has(&["xmit", "qdisc", "sch_", "_queue_xmit"]) || starts(&["tc_", "tcf_"]) {
        Layer::Xmit
    } else if has(&["route", "fib", "rt_", "dst_"]) || starts(&["rt6_", "ip_mkroute", "neigh"]) {
        Layer::Routing
    } else if starts(&["tcp", "__tcp", "inet_csk", "mptcp"]) {
        Layer::Tcp
    } else if starts(&["udp", "__udp", "udpv6", "udp6"]) {
        Layer::Udp
    } else if starts(&["ip6", "__ip6", "ipv6", "icmpv6", "ndisc", "mld_", "igmp6"])
        || has(&["_ipv6", "inet6"])
    {
        Layer::IPv6
    } else if starts(&[
        "ip_", "__ip_", "ipv4", "icmp", "igmp", "arp", "inet_", "raw_", "ping_",
    ]) {
        Layer::IPv4
    } else if starts(&["net_rx", "napi_", "__napi", "process_backlog", "do_softirq"])
        || has(&["softirq", "_poll"])
    {
        Layer::SoftIrq
    } else if starts(&[
        "netif_", "__netif_", "dev_", "__dev_", "eth", "veth_", "loopback", "br_", "vlan_",
        "macvlan", "bond_", "tun_", "virtnet", "e1000", "rtnl_",
    ]) {
        Layer::Device
    } else {
        Layer::Other
    }
}

/// `name` without the compiler's clone suffixes (`.isra.0`, `.constprop.0`,
/// `.cold`, `.part.0`), which kallsyms and some BTF versions show.
pub fn base_name(name: &str) -> &str {
    name.split_once('.').map_or(name, |(base, _)| base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landmarks_are_priority_zero_and_in_their_layer() {
        for (name, want) in [
            ("__netif_receive_skb_core", Layer::Device),
            ("ip_rcv", Layer::IPv4),
            ("ip_rcv_finish", Layer::IPv4),
            ("nf_hook_slow", Layer::Netfilter),
            ("ip_route_input_noref", Layer::Routing),
            ("ip_local_deliver", Layer::IPv4),
            ("tcp_v4_rcv", Layer::Tcp),
            ("udp_rcv", Layer::Udp),
            ("ipv6_rcv", Layer::IPv6),
            ("ip_output", Layer::IPv4),
            ("dev_queue_xmit", Layer::Xmit),
            ("dev_hard_start_xmit", Layer::Xmit),
            ("napi_gro_receive", Layer::Gro),
        ] {
            assert_eq!(priority(name), 0, "{name}");
            assert_eq!(layer(name), want, "{name}");
        }
    }

    #[test]
    fn other_functions_by_prefix() {
        assert_eq!(priority("tcp_ack"), 1);
        assert_eq!(priority("nft_meta_get_eval"), 1);
        assert_eq!(priority("ip_rcv.cold"), 0);
        assert_eq!(priority("bpf_skb_load_bytes"), 2);
        assert_eq!(layer("tcp_gro_receive"), Layer::Gro);
        assert_eq!(layer("nf_conntrack_in"), Layer::Netfilter);
        assert_eq!(layer("ipv4_conntrack_defrag"), Layer::Netfilter);
        assert_eq!(layer("fib_validate_source"), Layer::Routing);
        assert_eq!(layer("icmpv6_rcv"), Layer::IPv6);
        assert_eq!(layer("ip6_input"), Layer::IPv6);
        assert_eq!(layer("veth_xmit"), Layer::Xmit);
        assert_eq!(layer("neigh_resolve_output"), Layer::Routing);
        assert_eq!(layer("veth_forward_skb"), Layer::Device);
        assert_eq!(layer("bpf_skb_load_bytes"), Layer::Other);
        assert_eq!(base_name("ip_rcv.isra.0"), "ip_rcv");
    }
}
