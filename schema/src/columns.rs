//! Column names of the recording's Parquet tables. No other crate spells a
//! column name: the recorder writes with these and the analyzer (and the SQL
//! in `queries/`) reads with them.

/// `events` table: one row per [`crate::raw::SkbEvent`].
pub mod events {
    /// Kernel CLOCK_MONOTONIC ns (add the manifest's offset for wall time).
    pub const TS_NS: &str = "ts_ns";
    pub const SKB: &str = "skb";
    pub const PROBE_ID: &str = "probe_id";
    /// Probe name, e.g. `net:netif_receive_skb` (dictionary-encoded).
    pub const PROBE: &str = "probe";
    /// `tracepoint` or `function` (dictionary-encoded).
    pub const KIND: &str = "kind";
    pub const CPU: &str = "cpu";
    pub const NETNS: &str = "netns";
    pub const IFINDEX: &str = "ifindex";
    pub const MARK: &str = "mark";
    pub const LEN: &str = "len";
    /// EtherType, host order (2048 IPv4, 34525 IPv6).
    pub const PROTOCOL: &str = "protocol";
    /// 4, 6, or null when no IP header was parsed.
    pub const IP_VERSION: &str = "ip_version";
    /// Addresses as text (`10.0.0.1`, `fd00::1`), null when not IP.
    pub const SADDR: &str = "saddr";
    pub const DADDR: &str = "daddr";
    pub const L4_PROTO: &str = "l4_proto";
    pub const SPORT: &str = "sport";
    pub const DPORT: &str = "dport";
    pub const TCP_FLAGS: &str = "tcp_flags";
    pub const ICMP_TYPE: &str = "icmp_type";
    pub const ICMP_CODE: &str = "icmp_code";
    pub const IP_ID: &str = "ip_id";
    /// `skb:kfree_skb` only: the drop reason's name (e.g. `NETFILTER_DROP`).
    pub const DROP_REASON: &str = "drop_reason";
    /// `skb:kfree_skb`: address that dropped the skb; functions: function
    /// address. Null otherwise.
    pub const LOCATION: &str = "location";
    /// `location` resolved through kallsyms at record time (`sym+0xoff`).
    pub const LOCATION_SYM: &str = "location_sym";
}

/// `probes` table: what each `probe_id` is.
pub mod probes {
    pub const PROBE_ID: &str = "probe_id";
    pub const KIND: &str = "kind";
    pub const NAME: &str = "name";
    /// Position of the skb among the hook's arguments.
    pub const SKB_ARG: &str = "skb_arg";
}

/// `drop_reasons` table: this kernel's `enum skb_drop_reason`, from BTF.
pub mod drop_reasons {
    pub const CODE: &str = "code";
    pub const NAME: &str = "name";
}

/// `losses` table: events that could not be delivered, per CPU, probe and
/// reason, sampled over time windows.
pub mod losses {
    /// Window end, kernel CLOCK_MONOTONIC ns; the window starts at the
    /// previous sample (or the recording start).
    pub const WINDOW_START_NS: &str = "window_start_ns";
    pub const WINDOW_END_NS: &str = "window_end_ns";
    pub const CPU: &str = "cpu";
    pub const PROBE_ID: &str = "probe_id";
    pub const REASON: &str = "reason";
    pub const COUNT: &str = "count";
}

/// `nftrace` table: one row per kernel nftrace message (NFNLGRP_NFTRACE):
/// a rule that matched, a chain return, or a chain policy.
pub mod nftrace {
    /// Kernel CLOCK_MONOTONIC ns when the recorder received the message
    /// (the kernel puts no timestamp in it).
    pub const TS_NS: &str = "ts_ns";
    /// Inode of the network namespace the message came from.
    pub const NETNS: &str = "netns";
    /// The kernel's trace id: one per packet per hook.
    pub const TRACE_ID: &str = "trace_id";
    /// `rule`, `return` or `policy`.
    pub const TYPE: &str = "type";
    /// `ip`, `ip6`, `inet`, `bridge`, `arp`, `netdev`.
    pub const FAMILY: &str = "family";
    pub const TABLE: &str = "table";
    pub const CHAIN: &str = "chain";
    /// Rule handle, as `nft -a list ruleset` prints it (rule events).
    pub const RULE_HANDLE: &str = "rule_handle";
    /// `accept`, `drop`, `continue`, `jump`, `goto`, `return`, `queue`,
    /// `stolen`, `break`, `repeat`.
    pub const VERDICT: &str = "verdict";
    /// Target chain of a jump or goto.
    pub const TARGET: &str = "target";
    /// The chain's policy (policy events).
    pub const POLICY: &str = "policy";
    pub const IIF: &str = "iif";
    pub const OIF: &str = "oif";
    pub const MARK: &str = "mark";
    pub const IP_VERSION: &str = "ip_version";
    pub const SADDR: &str = "saddr";
    pub const DADDR: &str = "daddr";
    pub const L4_PROTO: &str = "l4_proto";
    pub const SPORT: &str = "sport";
    pub const DPORT: &str = "dport";
    pub const TCP_FLAGS: &str = "tcp_flags";
    pub const ICMP_TYPE: &str = "icmp_type";
    pub const ICMP_CODE: &str = "icmp_code";
    pub const IP_ID: &str = "ip_id";
}

/// `interfaces` table: interface names per namespace, at start and stop,
/// so `events.ifindex` and `nftrace.iif`/`oif` can be shown by name.
pub mod interfaces {
    pub const NETNS: &str = "netns";
    pub const IFINDEX: &str = "ifindex";
    pub const NAME: &str = "name";
    /// `start` or `stop`.
    pub const SEEN: &str = "seen";
}
