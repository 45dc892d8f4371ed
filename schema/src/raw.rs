//! Raw kernel -> user layouts, shared by the eBPF programs and the recorder.
//!
//! These are `#[repr(C)]` with explicit padding so the byte layout is the same
//! on both sides of the ring buffer; a test pins their sizes.

/// Marks a field offset that the running kernel's BTF does not have; the eBPF
/// side skips reading it and leaves the event field zero.
pub const OFFSET_MISSING: u32 = u32::MAX;

/// What kind of hook produced an event.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A `tp_btf` tracepoint (`net:*`, `skb:*`).
    Tracepoint = 1,
    /// A kernel function entry (kprobe or fentry).
    Function = 2,
    /// An nftables rule verdict or chain policy seen by the nft hook; the
    /// record is an [`NftRecord`].
    Nft = 3,
}

/// What the nft hook adds to an [`SkbEvent`]: the rule, chain and table by
/// handle (the recorder names them from the ruleset snapshot), the verdict
/// and the kernel's trace id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NftPart {
    /// `nft_table.handle` of the rule's table.
    pub table_handle: u64,
    /// `nft_chain.handle` of the rule's chain; 0 when the kernel does not
    /// pass it (ABI 2, a rule that is not the chain's end): the rule handle
    /// (unique per table) names it then.
    pub chain_handle: u64,
    /// `nft_rule_dp.handle`; 0 for a policy or the end of a chain.
    pub rule_handle: u64,
    /// Handle of the jump/goto target chain; 0 otherwise.
    pub target_handle: u64,
    /// nf_tables verdict code (NF_DROP 0, NF_ACCEPT 1, NF_STOLEN 2, NF_QUEUE
    /// 3, NFT_CONTINUE -1, NFT_BREAK -2, NFT_JUMP -3, NFT_GOTO -4,
    /// NFT_RETURN -5); for a policy, the base chain's policy.
    pub verdict: i32,
    /// `nft_traceinfo.skbid`: what `nft monitor trace` prints as `trace id`.
    /// 0 on chain entries and exits: the kernel computes it only while
    /// tracing a rule (a keyed hash), after the chain is entered.
    pub trace_id: u32,
    /// What happened, one of [`nft_event`]: the `enum nft_trace_types`
    /// values for rule verdicts, policies and returns, ours for chain entry
    /// and exit.
    pub trace_type: u8,
    /// `NFPROTO_*` of the table (1 inet, 2 ipv4, 10 ipv6, ...).
    pub family: u8,
    /// Netfilter hook number of the packet (`nf_hook_state.hook`).
    pub hook: u8,
    /// The packet's `nf_trace` bit (set by `meta nftrace set 1`); 0 on
    /// chain entries and exits (not read there).
    pub nf_trace: u8,
    /// Chain entries and exits: the base chain's priority
    /// (`nft_base_chain.ops.priority`); 0 otherwise.
    pub priority: i32,
}

/// [`NftPart::trace_type`] values.
pub mod nft_event {
    /// `NFT_TRACETYPE_POLICY`: the base chain's policy decided.
    pub const POLICY: u8 = 1;
    /// `NFT_TRACETYPE_RETURN`: a regular chain ran out of rules.
    pub const RETURN: u8 = 2;
    /// `NFT_TRACETYPE_RULE`: a rule decided (or continued).
    pub const RULE: u8 = 3;
    /// `nft_do_chain` entered a base chain (not a `enum nft_trace_types`
    /// value: the kernel has no trace message for it).
    pub const CHAIN_ENTRY: u8 = 16;
    /// `nft_do_chain` returned the base chain's verdict.
    pub const CHAIN_EXIT: u8 = 17;
}

/// The ring buffer record of an [`EventKind::Nft`] event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NftRecord {
    pub skb: SkbEvent,
    pub nft: NftPart,
}

/// One skb seen at one probe. Written by every skb program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkbEvent {
    /// `bpf_ktime_get_ns()`: kernel CLOCK_MONOTONIC in ns. The manifest holds
    /// the offset to wall time.
    pub ts_ns: u64,
    /// Address of the `struct sk_buff`: the key that ties events into traces.
    pub skb: u64,
    /// `skb:kfree_skb`: the kernel address that freed the skb (`location`);
    /// functions: the traced function's address. 0 otherwise.
    pub location: u64,
    /// Source and destination address; IPv4 as IPv4-mapped IPv6
    /// (`::ffff:a.b.c.d`). Zero when the packet is not IP or the network
    /// header is not set at this probe.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// Index into the recording's `probes` table (which program and target).
    pub probe_id: u32,
    /// CPU the event was emitted on.
    pub cpu: u32,
    /// Inode number of the skb's device's network namespace (0 if no device).
    pub netns: u32,
    /// `skb->dev->ifindex` (0 if no device).
    pub ifindex: u32,
    /// `skb->mark`.
    pub mark: u32,
    /// `skb->len`.
    pub len: u32,
    /// `skb:kfree_skb`: `enum skb_drop_reason` value (names in the
    /// `drop_reasons` table). 0 otherwise.
    pub drop_reason: u32,
    /// `skb->protocol`, converted to host byte order (ETH_P_IP = 0x0800, ...).
    pub protocol: u16,
    /// TCP/UDP ports, host byte order.
    pub sport: u16,
    pub dport: u16,
    /// IPv4 identification (host order); 0 for IPv6.
    pub ip_id: u16,
    /// IP protocol / IPv6 next header (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    pub l4_proto: u8,
    /// TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, ...).
    pub tcp_flags: u8,
    /// ICMP / ICMPv6 type and code.
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// 4, 6, or 0 when no IP header was parsed.
    pub ip_version: u8,
    /// [`EventKind`] as u8.
    pub kind: u8,
    pub _pad: [u8; 2],
    /// `record --stack`: 1 + the id of the kernel stack at the probe in the
    /// `STACKS` map (the recording's `stacks` table); 0 when not taken.
    pub stack: u32,
}

/// Byte offsets of the kernel struct fields the programs read, taken from the
/// running kernel's BTF at start-up (never hard-coded). [`OFFSET_MISSING`]
/// where the kernel lacks a field. The loader writes them into the
/// programs' read-only global [`names::GLOBAL_KERNEL_OFFSETS`], not into
/// `CONFIG`: the verifier treats a frozen read-only global as constants,
/// so tp_btf and fentry programs read the fields with direct loads through
/// their BTF-typed pointers instead of a helper call per field.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `sk_buff.len`
    pub skb_len: u32,
    /// `sk_buff.mark`
    pub skb_mark: u32,
    /// `sk_buff.protocol`
    pub skb_protocol: u32,
    /// `sk_buff.dev`
    pub skb_dev: u32,
    /// `sk_buff.head`
    pub skb_head: u32,
    /// `sk_buff.network_header` (u16 offset from head; 0xffff = unset)
    pub skb_network_header: u32,
    /// `net_device.ifindex`
    pub dev_ifindex: u32,
    /// `net_device.nd_net` (a `possible_net_t` whose first field is `net`)
    pub dev_nd_net: u32,
    /// `net.ns.inum`
    pub net_inum: u32,
    /// `sk_buff.sk`
    pub skb_sk: u32,
    /// `sock.__sk_common.skc_net` (a `possible_net_t`): the namespace of an
    /// skb that has no device yet (local output).
    pub sk_net: u32,
    /// `sk_buff.mac_header` (u16 offset from head; 0xffff = unset): where
    /// `--filter`'s link-layer program starts reading.
    pub skb_mac_header: u32,
    /// `sk_buff.tail` (u32 offset from head on 64-bit kernels): the end of
    /// the linear data `--filter` may read.
    pub skb_tail: u32,
    /// `sk_buff.data` (a pointer): how far the packet has been pulled, so
    /// `--filter`'s `len` is the length from the layer it reads.
    pub skb_data: u32,
}

impl KernelOffsets {
    /// Every field missing: the programs read nothing but the skb address.
    pub const MISSING: Self = Self {
        skb_len: OFFSET_MISSING,
        skb_mark: OFFSET_MISSING,
        skb_protocol: OFFSET_MISSING,
        skb_dev: OFFSET_MISSING,
        skb_head: OFFSET_MISSING,
        skb_network_header: OFFSET_MISSING,
        dev_ifindex: OFFSET_MISSING,
        dev_nd_net: OFFSET_MISSING,
        net_inum: OFFSET_MISSING,
        skb_sk: OFFSET_MISSING,
        sk_net: OFFSET_MISSING,
        skb_mac_header: OFFSET_MISSING,
        skb_tail: OFFSET_MISSING,
        skb_data: OFFSET_MISSING,
    };
}

/// Which `__nft_trace_packet` the kernel has: its parameter list in BTF
/// decides, never the kernel version.
pub mod nft_trace_abi {
    /// `(struct nft_traceinfo *info, const struct nft_chain *chain, int
    /// type)`, with pkt, rule and verdict inside `info` (Linux 5.x-6.3; 6.1).
    pub const INFO_CHAIN_TYPE: u32 = 1;
    /// `(const struct nft_pktinfo *pkt, const struct nft_verdict *verdict,
    /// const struct nft_rule_dp *rule, struct nft_traceinfo *info, int type)`
    /// (6.4 and later; 6.12).
    pub const PKT_VERDICT_RULE_INFO_TYPE: u32 = 2;
}

/// Where the nf_tables structures keep what the nft hooks read: byte
/// offsets, except the `*_bit` fields (bit offsets) and `*_bits` (widths)
/// of bitfields. Read from BTF (module BTF when nf_tables is a module).
/// [`OFFSET_MISSING`] where the ABI has no such field.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NftOffsets {
    /// One of [`nft_trace_abi`].
    pub abi: u32,
    /// `nft_traceinfo.nf_trace` (bool)
    pub info_nf_trace: u32,
    /// `nft_traceinfo.type` (an 8-bit bitfield on a byte boundary)
    pub info_type: u32,
    /// `nft_traceinfo.skbid`: the id `nft monitor trace` prints.
    pub info_skbid: u32,
    /// `nft_traceinfo.basechain`
    pub info_basechain: u32,
    /// ABI 1 only: `nft_traceinfo.pkt`, `.rule`, `.verdict`.
    pub info_pkt: u32,
    pub info_rule: u32,
    pub info_verdict: u32,
    /// `nft_pktinfo.skb`, `nft_pktinfo.state`
    pub pkt_skb: u32,
    pub pkt_state: u32,
    /// `nf_hook_state.hook`, `.pf` (u8 each)
    pub state_hook: u32,
    pub state_pf: u32,
    /// `nf_hook_state.net`: the namespace of a packet that has neither a
    /// device nor a socket yet (the reset `reject` sends).
    pub state_net: u32,
    /// `nft_chain.table`, `.handle`, `.name`
    pub chain_table: u32,
    pub chain_handle: u32,
    pub chain_name: u32,
    /// `nft_table.name`
    pub table_name: u32,
    /// `nft_table.family` (bitfield)
    pub table_family_bit: u32,
    pub table_family_bits: u32,
    /// `nft_base_chain.chain`, `.policy`, `.ops.priority`
    pub base_chain_chain: u32,
    pub base_chain_policy: u32,
    pub base_chain_priority: u32,
    /// `nft_rule_dp.handle` and `.is_last` (bitfields)
    pub rule_handle_bit: u32,
    pub rule_handle_bits: u32,
    pub rule_is_last_bit: u32,
    /// ABI 2 only: `nft_rule_dp_last.chain`, the chain of the end-of-chain
    /// marker.
    pub rule_last_chain: u32,
    /// `nft_verdict.code`, `.chain`
    pub verdict_code: u32,
    pub verdict_chain: u32,
    /// `nft_table.handle`
    pub table_handle: u32,
}

impl NftOffsets {
    /// No layout: the nft hook reads nothing.
    pub const MISSING: Self = Self {
        abi: 0,
        info_nf_trace: OFFSET_MISSING,
        info_type: OFFSET_MISSING,
        info_skbid: OFFSET_MISSING,
        info_basechain: OFFSET_MISSING,
        info_pkt: OFFSET_MISSING,
        info_rule: OFFSET_MISSING,
        info_verdict: OFFSET_MISSING,
        pkt_skb: OFFSET_MISSING,
        pkt_state: OFFSET_MISSING,
        state_hook: OFFSET_MISSING,
        state_pf: OFFSET_MISSING,
        state_net: OFFSET_MISSING,
        chain_table: OFFSET_MISSING,
        chain_handle: OFFSET_MISSING,
        chain_name: OFFSET_MISSING,
        table_name: OFFSET_MISSING,
        table_family_bit: OFFSET_MISSING,
        table_family_bits: 0,
        base_chain_chain: OFFSET_MISSING,
        base_chain_policy: OFFSET_MISSING,
        base_chain_priority: OFFSET_MISSING,
        rule_handle_bit: OFFSET_MISSING,
        rule_handle_bits: 0,
        rule_is_last_bit: OFFSET_MISSING,
        rule_last_chain: OFFSET_MISSING,
        verdict_code: OFFSET_MISSING,
        verdict_chain: OFFSET_MISSING,
        table_handle: OFFSET_MISSING,
    };
}

/// Most network namespaces one recording can be limited to (`--netns`).
pub const MAX_NETNS: usize = 8;

/// Bits of [`PacketFilter::flags`]: which filters are set.
pub mod filter_flags {
    pub const SRC_IP: u32 = 1 << 0;
    pub const DST_IP: u32 = 1 << 1;
    pub const HOST: u32 = 1 << 2;
    pub const SRC_PORT: u32 = 1 << 3;
    pub const DST_PORT: u32 = 1 << 4;
    pub const PORT: u32 = 1 << 5;
    pub const PROTO: u32 = 1 << 6;
    pub const MARK: u32 = 1 << 7;
}

/// The packet filter, applied in the programs after parsing headers. An
/// address filter is an IPv6 (or IPv4-mapped) prefix.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketFilter {
    /// [`filter_flags`] bits.
    pub flags: u32,
    pub mark: u32,
    pub src_ip: [u8; 16],
    pub dst_ip: [u8; 16],
    pub host: [u8; 16],
    pub src_prefix: u8,
    pub dst_prefix: u8,
    pub host_prefix: u8,
    /// L4 protocol number.
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
    pub port: u16,
    pub _pad: [u8; 2],
}

/// Configuration handed to every program through the `CONFIG` array map
/// (one entry, index 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// When `netns_count` > 0, only skbs whose device is in one of these
    /// network namespaces (inodes) are reported.
    pub netns: [u32; MAX_NETNS],
    pub netns_count: u32,
    pub filter: PacketFilter,
    /// 1: once an skb passes the filters it is reported at every probe until
    /// it is freed (the `TRACKED` map), even where its headers are not
    /// parsed or were rewritten by NAT. 0: each event is filtered alone.
    pub track_skbs: u32,
    pub _pad_track: u32,
    /// A tracked skb not reported for this long is forgotten: its free was
    /// not seen, and the address may belong to another skb now.
    pub track_ttl_ns: u64,
    /// The nf_tables layout for the nft hook ([`NftOffsets::MISSING`] when
    /// the hook is not used).
    pub nft: NftOffsets,
    /// 1: take the kernel stack of every reported event (`--stack`).
    pub stacks: u32,
    /// Wake the reader each time this many bytes (a power of two) have
    /// piled up in the ring buffer; between those, records are submitted
    /// without a wake-up and the reader polls on a short timer. 0: wake on
    /// every record the reader is waiting for (the kernel's default), whose
    /// interrupt cost ~5 µs per event on a VM (docs/benchmarks.md).
    pub ring_wakeup_bytes: u32,
    pub _pad_wakeup: u32,
}

impl ProbeConfig {
    /// No filters at all.
    pub const fn unfiltered() -> Self {
        Self {
            netns: [0; MAX_NETNS],
            netns_count: 0,
            filter: PacketFilter {
                flags: 0,
                mark: 0,
                src_ip: [0; 16],
                dst_ip: [0; 16],
                host: [0; 16],
                src_prefix: 0,
                dst_prefix: 0,
                host_prefix: 0,
                proto: 0,
                src_port: 0,
                dst_port: 0,
                port: 0,
                _pad: [0; 2],
            },
            track_skbs: 0,
            _pad_track: 0,
            track_ttl_ns: 0,
            nft: NftOffsets::MISSING,
            stacks: 0,
            ring_wakeup_bytes: 0,
            _pad_wakeup: 0,
        }
    }
}

/// Tracepoint programs: tp_btf fixes the target of a program at load time
/// and a tracing program cannot learn which tracepoint it runs on, so the
/// object holds numbered "slot" programs per skb argument position; each slot
/// is loaded against one tracepoint and its events carry the slot number as
/// `probe_id`. `TP_SLOTS[arg]` slots exist for skb at argument `arg`.
pub const TP_SLOTS: [u32; 4] = [24, 16, 8, 4];

/// First probe id of the slots for skb argument `arg`.
pub const fn tp_slot_base(arg: usize) -> u32 {
    let mut base = 0;
    let mut i = 0;
    while i < arg {
        base += TP_SLOTS[i];
        i += 1;
    }
    base
}

/// The dedicated `skb:kfree_skb` program (skb, location, drop reason).
pub const PROBE_KFREE_SKB: u32 = tp_slot_base(TP_SLOTS.len());

/// Probe ids above this are kernel functions (recorder part 2): function
/// number `i` of the recording's plan is `PROBE_FUNCTION_BASE + 1 + i`.
/// `PROBE_FUNCTION_BASE` itself is "a function", used for the shared loss
/// bucket of all functions and for an address missing from `FUNC_IDS`.
pub const PROBE_FUNCTION_BASE: u32 = 1024;

/// The nft hook on `__nft_trace_packet` (rule verdicts and policies).
pub const PROBE_NFT_RULE: u32 = PROBE_FUNCTION_BASE - 1;
/// The nft hooks on `nft_do_chain`: entry (kprobe) and exit (kretprobe).
pub const PROBE_NFT_CHAIN_ENTRY: u32 = PROBE_FUNCTION_BASE - 2;
pub const PROBE_NFT_CHAIN_EXIT: u32 = PROBE_FUNCTION_BASE - 3;

/// Depth of the per-CPU stack of entered chains the `nft_do_chain` hooks
/// keep between entry and exit. Chains nest when a verdict sends a packet
/// of its own (`reject` runs the output hooks inside the forward chain) or
/// an interrupt runs another hook on the same CPU.
pub const NFT_CHAIN_STACK: usize = 8;

/// Most functions one recording attaches to (the `FUNC_IDS` map holds two
/// addresses per function, see there).
pub const MAX_FUNCTIONS: u32 = 8192;

/// Bit of a `FUNC_IDS` value: the function frees the skb, so it ends the
/// skb's tracking.
pub const FUNC_FREES_SKB: u32 = 1 << 31;

/// Default size of the `TRACKED` map (skbs being followed at once).
pub const DEFAULT_TRACKED_SKBS: u32 = 65536;

/// Default size of the `STACKS` map with `--stack` (distinct kernel
/// stacks; each takes about 1 KiB of kernel memory, allocated up front).
pub const DEFAULT_STACKS: u32 = 4096;

/// `probe_id` of the overhead benchmark's yardstick programs (never in a
/// recording).
pub const PROBE_BENCH: u32 = PROBE_FUNCTION_BASE - 4;

/// `probe_id` of losses in the nftrace source (netlink overruns).
pub const PROBE_NFTRACE: u32 = u32::MAX - 1;

/// `probe_id` of losses in the recorder's writer (events after
/// `--max-bytes`).
pub const PROBE_WRITER: u32 = u32::MAX;

/// Why an event could not be delivered. Index into the per-CPU `LOSSES` map.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossReason {
    /// `bpf_ringbuf_reserve` failed: the ring buffer was full.
    RingbufFull = 0,
    /// The `CONFIG` map could not be read (should never happen).
    NoConfig = 1,
    /// The `TRACKED` map was full: this skb passed the filters but its later
    /// events at probes where it no longer matches will be missed.
    TrackFull = 2,
    /// A function program ran at an address missing from `FUNC_IDS`.
    UnknownFunction = 3,
    /// `nft_do_chain` nested deeper than [`NFT_CHAIN_STACK`] on one CPU:
    /// the chain's entry and exit were not reported.
    NftStackFull = 4,
    /// `--stack`: the event was reported without its stack
    /// (`bpf_get_stackid` failed: the `STACKS` map is full, or two stacks
    /// hashed alike).
    StackMissing = 5,
}

impl LossReason {
    pub const ALL: [LossReason; 6] = [
        LossReason::RingbufFull,
        LossReason::NoConfig,
        LossReason::TrackFull,
        LossReason::UnknownFunction,
        LossReason::NftStackFull,
        LossReason::StackMissing,
    ];
}

/// Number of [`LossReason`] values.
pub const LOSS_REASONS: u32 = LossReason::ALL.len() as u32;

/// Probes counted separately in `LOSSES`; function probes beyond share the
/// last bucket.
pub const LOSS_PROBES: u32 = PROBE_FUNCTION_BASE + 1;

/// Index into the per-CPU `LOSSES` map for a probe and a reason.
pub const fn loss_index(probe_id: u32, reason: LossReason) -> u32 {
    let probe = if probe_id < LOSS_PROBES {
        probe_id
    } else {
        LOSS_PROBES - 1
    };
    reason as u32 * LOSS_PROBES + probe
}

/// Names of the maps and programs in the eBPF object, so the recorder and
/// the eBPF crate agree on them.
pub mod names {
    /// The read-only global holding [`super::PcapLayers`].
    pub const GLOBAL_PCAP_LAYERS: &str = "PCAP_LAYERS";
    /// The placeholder functions whose instructions the recorder replaces
    /// with `--filter`'s program for each layer (their symbols are mangled:
    /// found by this part of the name).
    pub const FUNC_PCAP_L2: &str = "nft_pcap_l2";
    pub const FUNC_PCAP_L3: &str = "nft_pcap_l3";
    pub const MAP_EVENTS: &str = "EVENTS";
    pub const MAP_CONFIG: &str = "CONFIG";
    /// The read-only global holding [`super::KernelOffsets`].
    pub const GLOBAL_KERNEL_OFFSETS: &str = "KERNEL_OFFSETS";
    pub const MAP_LOSSES: &str = "LOSSES";
    /// The `skb:kfree_skb` program.
    pub const PROG_TP_KFREE_SKB: &str = "tp_kfree_skb";
    /// Name of tracepoint slot program `index` for skb argument `arg` (the
    /// eBPF crate's `tp_slots!` spells the same names).
    #[cfg(feature = "std")]
    pub fn tp_slot_program(arg: usize, index: u32) -> std::string::String {
        std::format!("tp_a{arg}_{index:02}")
    }
    /// Function address -> probe id (and [`super::FUNC_FREES_SKB`]).
    pub const MAP_FUNC_IDS: &str = "FUNC_IDS";
    /// skbs that passed the filters, followed until freed.
    pub const MAP_TRACKED: &str = "TRACKED";
    /// Kernel stacks of `--stack`.
    pub const MAP_STACKS: &str = "STACKS";
    /// kprobe program for functions whose skb is parameter `pos` (1..=5).
    #[cfg(feature = "std")]
    pub fn kprobe_program(pos: u8) -> std::string::String {
        std::format!("kprobe_skb_{pos}")
    }
    /// kprobe.multi program for functions whose skb is parameter `pos`
    /// (1..=5); the recorder loads it itself (aya 0.14 has no kprobe.multi).
    #[cfg(feature = "std")]
    pub fn kprobe_multi_program(pos: u8) -> std::string::String {
        std::format!("kpm_skb_{pos}")
    }
    /// fentry program for functions whose skb is parameter `pos` (1..=5).
    #[cfg(feature = "std")]
    pub fn fentry_program(pos: u8) -> std::string::String {
        std::format!("fentry_skb_{pos}")
    }
    /// The nft hook: a kprobe on `__nft_trace_packet`.
    pub const PROG_NFT_RULE: &str = "kprobe_nft_rule";
    /// The nft hooks on `nft_do_chain`: kprobe (entry), kretprobe (exit).
    pub const PROG_NFT_CHAIN_ENTRY: &str = "kprobe_nft_chain";
    pub const PROG_NFT_CHAIN_EXIT: &str = "kretprobe_nft_chain";
}

/// `--filter` (a pcap-filter expression): which layers have a program.
/// A read-only global: with no filter the verifier sees 0 and skips the
/// filter's code, so it costs nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcapLayers {
    /// [`pcap_layer`] bits.
    pub layers: u32,
}

/// The layers a `--filter` program reads a packet from.
pub mod pcap_layer {
    /// From the MAC header (libpcap's DLT_EN10MB): where the skb has one.
    pub const L2: u32 = 1;
    /// From the network header (DLT_RAW): before the skb has a MAC header
    /// (local output) or on devices without one.
    pub const L3: u32 = 2;
}

/// Bytes of a packet, from the layer's first header, that `--filter`'s
/// program can read (one copy per event; loads beyond are no match).
pub const PCAP_PACKET_BYTES: usize = 256;
/// The packet copy `--filter` runs on.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PcapPacket {
    pub bytes: [u8; PCAP_PACKET_BYTES],
}
/// eBPF instructions reserved for each layer's `--filter` program (the
/// placeholder's size; the recorder reads the exact size from the object).
pub const PCAP_FILTER_INSNS: usize = 1024;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` integers with explicit padding, valid for
    // any bit pattern.
    unsafe impl aya::Pod for super::SkbEvent {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::PcapLayers {}
    unsafe impl aya::Pod for super::ProbeConfig {}
    unsafe impl aya::Pod for super::PacketFilter {}
    unsafe impl aya::Pod for super::NftOffsets {}
    unsafe impl aya::Pod for super::NftRecord {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_pinned() {
        assert_eq!(core::mem::size_of::<SkbEvent>(), 104);
        assert_eq!(core::mem::align_of::<SkbEvent>(), 8);
        assert_eq!(core::mem::size_of::<KernelOffsets>(), 56);
        assert_eq!(core::mem::size_of::<PacketFilter>(), 68);
        assert_eq!(core::mem::size_of::<NftOffsets>(), 116);
        assert_eq!(core::mem::size_of::<NftPart>(), 48);
        assert_eq!(core::mem::size_of::<NftRecord>(), 152);
        assert_eq!(
            core::mem::size_of::<ProbeConfig>(),
            32 + 4 + 68 + 4 + 4 + 8 + 116 + 4 + 8
        );
    }

    #[test]
    fn tracepoint_slots_and_loss_buckets() {
        assert_eq!(tp_slot_base(0), 0);
        assert_eq!(tp_slot_base(1), 24);
        assert_eq!(tp_slot_base(3), 48);
        assert_eq!(PROBE_KFREE_SKB, 52);
        const { assert!(PROBE_KFREE_SKB < PROBE_FUNCTION_BASE) };
        assert_eq!(loss_index(3, LossReason::NoConfig), LOSS_PROBES + 3);
        assert_eq!(loss_index(5000, LossReason::RingbufFull), LOSS_PROBES - 1);
    }
}
