//! Shared by every skb program: read the packet metadata through the
//! BTF-derived offsets in `KERNEL_OFFSETS`, apply the filters in `CONFIG`,
//! emit one `SkbEvent`. How kernel memory is read depends on the program
//! type ([`Read`]): direct loads where the verifier knows the pointer's BTF
//! type (tp_btf, fentry), `bpf_probe_read_kernel` where it does not
//! (kprobes).

use aya_ebpf::helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns, generated};
use aya_ebpf::programs::tracing::StackIdContext;
use nft_schema::raw::{
    filter_flags as ff, EventKind, LossReason, PacketFilter, ProbeConfig, SkbEvent, MAX_NETNS,
    OFFSET_MISSING,
};

use crate::maps::{count_loss, kernel_offset, wakeup_flags, CONFIG, EVENTS, STACKS, TRACKED};

/// `bpf_map_update_elem` flag: insert or update.
const BPF_ANY: u64 = 0;
/// `-E2BIG`: the map is full.
const E2BIG: i32 = -7;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
/// `sk_buff.network_header` (and `mac_header`) when unset.
pub const HEADER_UNSET: u16 = 0xffff;

/// How a program reads a `T` at `base + offset` in kernel memory: zero
/// when the offset is missing or the read faults.
pub trait Read {
    fn at<T: Default + Copy>(base: u64, offset: u32) -> T;
}

/// Through `bpf_probe_read_kernel` ([`read_at`]): for kprobes, whose
/// arguments are plain numbers to the verifier.
pub struct ProbeRead;

impl Read for ProbeRead {
    #[inline(always)]
    fn at<T: Default + Copy>(base: u64, offset: u32) -> T {
        read_at(base, offset)
    }
}

/// Direct loads, for tp_btf and fentry programs: there the verifier knows
/// `base` is a `struct sk_buff *` (or a pointer reached from one through
/// its BTF), and `offset` comes from the frozen read-only global
/// `KERNEL_OFFSETS`, so it is a constant to the verifier, which checks the
/// access against the struct's BTF and lets the JIT emit one load guarded
/// against faults (a NULL pointer reads 0). A helper call per field cost
/// about 45 ns on the benchmark machine; a load costs about one.
pub struct BtfRead;

impl Read for BtfRead {
    #[inline(always)]
    fn at<T: Default + Copy>(base: u64, offset: u32) -> T {
        if offset == OFFSET_MISSING {
            return T::default();
        }
        // SAFETY: `base` is a BTF-typed kernel pointer (see above); the
        // verifier checks the access and the JIT guards it.
        unsafe { core::ptr::read_volatile(base.wrapping_add(offset as u64) as *const T) }
    }
}

/// Reads a `T` at `base + offset` in kernel memory with
/// `bpf_probe_read_kernel`; zero when the offset is missing or the read
/// faults. No branch on the read's result: the helper
/// zeroes the destination on a fault, and a branch per read (Ok vs Err, or
/// a null check) doubled the verifier's states at each read, which the 6.1
/// verifier could not afford in the function programs.
#[inline(always)]
pub fn read_at<T: Default>(base: u64, offset: u32) -> T {
    let mut v = T::default();
    if offset == OFFSET_MISSING {
        return v;
    }
    // SAFETY: bpf_probe_read_kernel checks the address and zeroes `v` when
    // the read faults; `v` is a plain-data local of the right size.
    unsafe {
        generated::bpf_probe_read_kernel(
            (&mut v as *mut T).cast(),
            core::mem::size_of::<T>() as u32,
            (base.wrapping_add(offset as u64)) as *const core::ffi::c_void,
        );
    }
    v
}

/// What the optional extras of one event are.
pub struct Extra {
    pub probe_id: u32,
    pub kind: EventKind,
    pub location: u64,
    pub drop_reason: u32,
    /// The skb is freed here: stop tracking it.
    pub frees_skb: bool,
    /// The hook's entry already reported this skb (a chain exit): report
    /// it whatever the filters say now, so an exit never goes missing
    /// because the chain changed the mark or NAT rewrote the headers.
    pub reported_before: bool,
    /// The packet's `struct net *` when the hook knows it (nf_tables'
    /// hook state), for an skb with neither a device nor a socket; else 0.
    pub net: u64,
}

/// Fills, filters and submits one event for `skb`. Returns 0 (tracing
/// programs' return values are ignored by the kernel).
#[inline(always)]
pub fn emit<R: Read, C: StackIdContext>(ctx: &C, skb: u64, extra: Extra) -> u32 {
    // Some tracepoints pass an skb that may be NULL (`skb__nullable` in
    // their BTF prototype: `tcp_send_reset`, `qdisc_dequeue`,
    // `tcp_sendmsg_locked`); the verifier refuses arithmetic on such a
    // pointer until it is checked, and there is no packet to report.
    if skb == 0 {
        return 0;
    }
    let probe_id = extra.probe_id;
    let Some(ev) = prepare::<R, C>(ctx, skb, extra) else {
        return 0;
    };
    let Some(mut entry) = EVENTS.reserve::<SkbEvent>(0) else {
        count_loss(probe_id, LossReason::RingbufFull);
        return 0;
    };
    let slot = entry.as_mut_ptr();
    // SAFETY: `slot` is our reserved, exclusively owned ring buffer record.
    unsafe {
        slot.write(ev);
        core::ptr::addr_of_mut!((*slot).skb).write(skb);
    }
    entry.submit(wakeup_flags(core::mem::size_of::<SkbEvent>()));
    0
}

/// The event for `skb` with its metadata, time, CPU and (`--stack`) the
/// kernel stack seen from `ctx`, or `None` when the filters (and tracking)
/// leave it out. Its `skb` field is left 0: the
/// caller writes it into the ring buffer record itself.
#[inline(always)]
pub fn prepare<R: Read, C: StackIdContext>(ctx: &C, skb: u64, extra: Extra) -> Option<SkbEvent> {
    let Some(config) = CONFIG.get(0) else {
        count_loss(extra.probe_id, LossReason::NoConfig);
        return None;
    };
    let config: &ProbeConfig = config;

    let dev: u64 = R::at(skb, kernel_offset!(skb_dev));
    let (netns, ifindex) = netns_and_ifindex::<R>(skb, dev, extra.net);

    // `skb` stays out of the stack copy: in tp_btf/fentry it is a typed
    // kernel pointer, and the verifier refuses byte-wise copies of a spilled
    // pointer; it is stored into the ring buffer as one 8-byte write.
    let mut ev = SkbEvent {
        skb: 0,
        probe_id: extra.probe_id,
        location: extra.location,
        drop_reason: extra.drop_reason,
        kind: extra.kind as u8,
        netns,
        ifindex,
        mark: R::at(skb, kernel_offset!(skb_mark)),
        len: R::at(skb, kernel_offset!(skb_len)),
        protocol: u16::from_be(R::at(skb, kernel_offset!(skb_protocol))),
        ..SkbEvent::default()
    };
    parse_headers::<R>(skb, &mut ev);
    // Every check is taken after the headers are parsed, so the verifier
    // walks the parsing once: branching on tracking (or on the namespace)
    // first made it walk the parsing once per branch, doubling load time.
    let pass = extra.reported_before
        || (netns_allowed(config, netns)
            && matches(&config.filter, &ev)
            && crate::pcap::matches::<R>(skb));
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if config.track_skbs != 0 {
        // Tracked: matched earlier and seen within the last `track_ttl_ns`
        // (an entry whose free no probe saw goes stale instead of claiming
        // the next skb at that address).
        let key = skb;
        let seen = TRACKED.get_ptr_mut(key);
        let fresh = match seen {
            // SAFETY: a u64 in our own map.
            Some(seen) => now.wrapping_sub(unsafe { *seen }) <= config.track_ttl_ns,
            None => false,
        };
        if !pass && !fresh {
            return None;
        }
        if extra.frees_skb {
            let _ = TRACKED.remove(key);
        } else if let Some(seen) = seen {
            // Already followed: refresh its time in place (an update
            // through the helper would allocate a new element each time).
            // SAFETY: a u64 in our own map; a racing writer writes a time too.
            unsafe { *seen = now };
        } else if let Err(E2BIG) = TRACKED.insert(key, now, BPF_ANY) {
            count_loss(extra.probe_id, LossReason::TrackFull);
        }
    } else if !pass {
        return None;
    }
    if config.stacks != 0 {
        // The kernel keeps each distinct stack once in STACKS; the event
        // holds its id (+1, so 0 means none).
        match ctx.get_stackid(&STACKS, 0) {
            Ok(id) => ev.stack = id as u32 + 1,
            Err(_) => count_loss(extra.probe_id, LossReason::StackMissing),
        }
    }
    // SAFETY: helper without preconditions.
    ev.cpu = unsafe { bpf_get_smp_processor_id() };
    ev.ts_ns = now;
    Some(ev)
}

/// The packet's network namespace (inode) and interface: its device's;
/// before the skb has a device (local output), its socket's namespace;
/// without either, the hook's (`hook_net`, from nf_tables, read by probe:
/// it is not a BTF pointer here). A branch per case: past `dev == 0` the
/// verifier sees `dev` as the number 0, which [`BtfRead`] cannot load from.
#[inline(always)]
fn netns_and_ifindex<R: Read>(skb: u64, dev: u64, hook_net: u64) -> (u32, u32) {
    let inum = kernel_offset!(net_inum);
    if dev != 0 {
        let net: u64 = R::at(dev, kernel_offset!(dev_nd_net));
        return (R::at(net, inum), R::at(dev, kernel_offset!(dev_ifindex)));
    }
    let sk: u64 = R::at(skb, kernel_offset!(skb_sk));
    if sk != 0 {
        let net: u64 = R::at(sk, kernel_offset!(sk_net));
        return (R::at(net, inum), 0);
    }
    (read_at(hook_net, inum), 0)
}

#[inline(always)]
fn netns_allowed(config: &ProbeConfig, netns: u32) -> bool {
    if config.netns_count == 0 {
        return true;
    }
    for i in 0..MAX_NETNS {
        if (i as u32) < config.netns_count && config.netns[i] == netns {
            return true;
        }
    }
    false
}

/// IPv4 header fields we keep, as laid out on the wire.
#[repr(C)]
#[derive(Default)]
struct Ipv4Hdr {
    ver_ihl: u8,
    tos: u8,
    tot_len: u16,
    id: u16,
    frag_off: u16,
    ttl: u8,
    protocol: u8,
    check: u16,
    saddr: [u8; 4],
    daddr: [u8; 4],
}

#[repr(C)]
#[derive(Default)]
struct Ipv6Hdr {
    ver_tc_flow: u32,
    payload_len: u16,
    nexthdr: u8,
    hop_limit: u8,
    saddr: [u8; 16],
    daddr: [u8; 16],
}

/// What one read at the network header brings: an IPv6 header, or an IPv4
/// header without options, and the first 14 bytes after it (TCP ports and
/// flags at 13; UDP and ICMP use a prefix). One read instead of two: the
/// skb's head buffer always extends past its headers (`skb_shared_info`
/// follows the data), so reading a little past a short packet's end stays
/// inside it.
#[repr(C)]
#[derive(Clone, Copy)]
struct Headers {
    bytes: [u8; 56],
}

impl Default for Headers {
    fn default() -> Self {
        Self { bytes: [0; 56] }
    }
}

/// The L4 bytes `Headers` holds at `at`, or read on their own when an IPv4
/// header has options.
#[inline(always)]
fn l4_bytes(h: &Headers, l3: u64, ihl: u64) -> [u8; 14] {
    let mut out = [0u8; 14];
    if ihl == 20 {
        out.copy_from_slice(&h.bytes[20..34]);
        return out;
    }
    read_at(l3 + ihl, 0)
}

#[inline(always)]
fn parse_headers<R: Read>(skb: u64, ev: &mut SkbEvent) {
    let head: u64 = R::at(skb, kernel_offset!(skb_head));
    let nh: u16 = R::at(skb, kernel_offset!(skb_network_header));
    if head == 0 || nh == HEADER_UNSET || kernel_offset!(skb_network_header) == OFFSET_MISSING {
        return;
    }
    let l3 = head + nh as u64;
    let h: Headers = read_at(l3, 0);
    let l4: [u8; 14];
    if ev.protocol == ETH_P_IP {
        // SAFETY: Headers is at least as large and any bytes are valid.
        let ip: Ipv4Hdr = unsafe { core::ptr::read_unaligned(h.bytes.as_ptr().cast()) };
        if ip.ver_ihl >> 4 != 4 {
            return;
        }
        ev.ip_version = 4;
        ev.l4_proto = ip.protocol;
        ev.ip_id = u16::from_be(ip.id);
        ev.saddr = mapped(ip.saddr);
        ev.daddr = mapped(ip.daddr);
        // Only the first fragment carries the L4 header.
        if u16::from_be(ip.frag_off) & 0x1fff != 0 {
            return;
        }
        l4 = l4_bytes(&h, l3, ((ip.ver_ihl & 0x0f) as u64) * 4);
    } else if ev.protocol == ETH_P_IPV6 {
        // SAFETY: as above.
        let ip: Ipv6Hdr = unsafe { core::ptr::read_unaligned(h.bytes.as_ptr().cast()) };
        if u32::from_be(ip.ver_tc_flow) >> 28 != 6 {
            return;
        }
        ev.ip_version = 6;
        ev.l4_proto = ip.nexthdr;
        ev.saddr = ip.saddr;
        ev.daddr = ip.daddr;
        let mut b = [0u8; 14];
        b.copy_from_slice(&h.bytes[40..54]);
        l4 = b;
    } else {
        return;
    }
    match ev.l4_proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            ev.sport = u16::from_be_bytes([l4[0], l4[1]]);
            ev.dport = u16::from_be_bytes([l4[2], l4[3]]);
            if ev.l4_proto == IPPROTO_TCP {
                ev.tcp_flags = l4[13];
            }
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            ev.icmp_type = l4[0];
            ev.icmp_code = l4[1];
        }
        _ => {}
    }
}

#[inline(always)]
fn mapped(v4: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, v4[0], v4[1], v4[2], v4[3],
    ]
}

/// True when `addr` is inside `prefix`/`len`.
#[inline(always)]
fn in_prefix(addr: &[u8; 16], prefix: &[u8; 16], len: u8) -> bool {
    for i in 0..16 {
        let bits = (len as i32) - (i as i32) * 8;
        if bits <= 0 {
            break;
        }
        let mask: u8 = if bits >= 8 {
            0xff
        } else {
            0xffu8 << (8 - bits)
        };
        if addr[i] & mask != prefix[i] & mask {
            return false;
        }
    }
    true
}

#[inline(always)]
fn matches(f: &PacketFilter, ev: &SkbEvent) -> bool {
    let set = |bit: u32| f.flags & bit != 0;
    if f.flags == 0 {
        return true;
    }
    if set(ff::MARK) && ev.mark != f.mark {
        return false;
    }
    if set(ff::PROTO) && ev.l4_proto != f.proto {
        return false;
    }
    let ip = ev.ip_version != 0;
    if set(ff::SRC_IP) && !(ip && in_prefix(&ev.saddr, &f.src_ip, f.src_prefix)) {
        return false;
    }
    if set(ff::DST_IP) && !(ip && in_prefix(&ev.daddr, &f.dst_ip, f.dst_prefix)) {
        return false;
    }
    if set(ff::HOST)
        && !(ip
            && (in_prefix(&ev.saddr, &f.host, f.host_prefix)
                || in_prefix(&ev.daddr, &f.host, f.host_prefix)))
    {
        return false;
    }
    let ports = ev.l4_proto == IPPROTO_TCP || ev.l4_proto == IPPROTO_UDP;
    if set(ff::SRC_PORT) && !(ports && ev.sport == f.src_port) {
        return false;
    }
    if set(ff::DST_PORT) && !(ports && ev.dport == f.dst_port) {
        return false;
    }
    if set(ff::PORT) && !(ports && (ev.sport == f.port || ev.dport == f.port)) {
        return false;
    }
    true
}
