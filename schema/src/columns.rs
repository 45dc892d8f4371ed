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
    /// nftables events seen by eBPF on the skb (kind `nft`): `chain_entry`,
    /// `rule_eval`, `policy`, `return` or `chain_exit`. Null for other
    /// kinds.
    pub const NFT_EVENT: &str = "nft_event";
    pub const NFT_FAMILY: &str = "nft_family";
    pub const NFT_TABLE: &str = "nft_table";
    pub const NFT_CHAIN: &str = "nft_chain";
    /// Netfilter hook of the base chain (`prerouting`, `input`, ...).
    pub const NFT_HOOK: &str = "nft_hook";
    pub const NFT_PRIORITY: &str = "nft_priority";
    /// Rule handle, as `nft -a list ruleset` prints it.
    pub const NFT_RULE_HANDLE: &str = "nft_rule_handle";
    /// Position of the rule in its chain, from 1.
    pub const NFT_RULE_SEQ: &str = "nft_rule_seq";
    /// `accept`, `drop`, `continue`, `jump`, `goto`, `return`, `queue`,
    /// `stolen`, `reject`.
    pub const NFT_VERDICT: &str = "nft_verdict";
    /// Target chain of a jump or goto.
    pub const NFT_TARGET: &str = "nft_target";
    /// The kernel's trace id of a rule verdict, policy or return (what
    /// `nft monitor trace` prints as `trace id`, and `nftrace.trace_id`):
    /// ties the event to the kernel's own trace message. Null on chain
    /// entries and exits.
    pub const NFT_TRACE_ID: &str = "nft_trace_id";
    /// `record --stack`: the kernel stack at the probe, an id into the
    /// `stacks` table. Null without `--stack` (or when the stack could not
    /// be taken: counted as a `stack_missing` loss).
    pub const STACK_ID: &str = "stack_id";
}

/// `stacks` table (`record --stack`): one row per frame of each distinct
/// kernel stack, symbolised through kallsyms at record time.
pub mod stacks {
    pub const STACK_ID: &str = "stack_id";
    /// Frame number, 0 = innermost (where the probe ran).
    pub const FRAME: &str = "frame";
    pub const ADDRESS: &str = "address";
    /// `symbol+0xoff`; null where kallsyms has no symbol.
    pub const SYMBOL: &str = "symbol";
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

/// Added by the analyzer to every table it serves, so several recordings can
/// be queried together: the recording's name (its directory name).
pub const RECORDING: &str = "recording";

/// `recordings` table (analyzer): one row per opened recording, from its
/// manifest.
pub mod recordings {
    pub const DIR: &str = "dir";
    pub const SCHEMA_VERSION: &str = "schema_version";
    pub const TOOL_VERSION: &str = "tool_version";
    pub const HOST: &str = "host";
    pub const KERNEL_RELEASE: &str = "kernel_release";
    pub const BACKEND: &str = "backend";
    pub const STARTED_NS: &str = "started_ns";
    pub const STOPPED_NS: &str = "stopped_ns";
    pub const MONOTONIC_TO_UNIX_NS: &str = "monotonic_to_unix_ns";
    pub const EVENTS: &str = "events";
    pub const NFTRACE_EVENTS: &str = "nftrace_events";
    pub const LOST_EVENTS: &str = "lost_events";
    pub const END: &str = "end";
    pub const ENDED_CLEANLY: &str = "ended_cleanly";
    pub const COMMAND_LINE: &str = "command_line";
}

/// `chains` table (analyzer): every nftables chain of the ruleset snapshots.
pub mod chains {
    /// Network namespace inode the snapshot was taken in (null: the
    /// recorder's own namespace).
    pub const NETNS: &str = "netns";
    /// `start` or `stop`.
    pub const SNAPSHOT: &str = "snapshot";
    pub const FAMILY: &str = "family";
    pub const TABLE: &str = "table";
    pub const CHAIN: &str = "chain";
    pub const HANDLE: &str = "handle";
    /// Base chains: `filter`, `nat`, `route`; null for regular chains.
    pub const TYPE: &str = "type";
    pub const HOOK: &str = "hook";
    pub const PRIORITY: &str = "priority";
    pub const POLICY: &str = "policy";
}

/// `rules` table (analyzer): every rule of the ruleset snapshots, with its
/// text as nft prints it.
pub mod rules {
    /// Where the rule is: the same columns as [`super::chains`].
    pub use super::chains::{CHAIN, FAMILY, HANDLE, NETNS, SNAPSHOT, TABLE};
    /// Position in the chain, from 1.
    pub const POSITION: &str = "position";
    /// Rule text (`tcp dport 9 counter drop`), without counter values.
    pub const TEXT: &str = "text";
    /// The rule's first counter at snapshot time, if it has one.
    pub const PACKETS: &str = "packets";
    pub const BYTES: &str = "bytes";
}

/// `traces` table (`nft-analyzer traces --format parquet`): one row per
/// per-packet trace.
pub mod traces {
    pub const TRACE_ID: &str = "trace_id";
    pub const SKB: &str = "skb";
    pub const FIRST_SEEN_NS: &str = "first_seen_ns";
    pub const DURATION_NS: &str = "duration_ns";
    /// `dropped`, `consumed`, `freed`, `in_flight`, `idle`.
    pub const END: &str = "end";
    pub const FINAL_VERDICT: &str = "final_verdict";
    pub const DROP_REASON: &str = "drop_reason";
    pub const DROP_LOCATION: &str = "drop_location";
    /// `in_flight`, `incomplete_due_to_loss`.
    pub const FLAGS: &str = "flags";
    /// Functions and tracepoints in order.
    pub const FUNCTIONS_PATH: &str = "functions_path";
    /// nftables events in order, as `type table/chain#handle verdict`.
    pub const NFT_PATH: &str = "nft_path";
    pub const TOTAL_FUNCTIONS: &str = "total_functions";
    pub const TOTAL_RULES_EVALUATED: &str = "total_rules_evaluated";
    pub const DUPLICATES_REMOVED: &str = "duplicates_removed";
    pub const L4_PROTO: &str = "l4_proto";
    pub const SADDR: &str = "saddr";
    pub const SPORT: &str = "sport";
    pub const DADDR: &str = "daddr";
    pub const DPORT: &str = "dport";
    pub const IP_ID: &str = "ip_id";
}
