//! nft hooks on `nft_do_chain`, kernel side: a kprobe reports each base
//! chain a packet enters (table, chain, hook, priority), a kretprobe the
//! verdict the chain returns. A kretprobe sees only the return value, so
//! the entry pushes what the exit needs onto a per-CPU stack of entered
//! chains, and the exit pops it: chains nest on one CPU (`reject` sends its
//! reset through the output hooks inside the forward chain; an interrupt
//! can run another hook), but an entry and its exit always run on the same
//! CPU with everything nested between them finished (softirq and hook code
//! do not sleep or migrate). Jumps and gotos stay inside one `nft_do_chain`
//! call: the rule hook (`nft.rs`) reports them. Handles only, no names: the
//! recorder names them from the ruleset snapshot.

use aya_ebpf::{
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns},
    macros::{kprobe, kretprobe, map},
    maps::PerCpuArray,
    programs::{ProbeContext, RetProbeContext},
};
use nft_schema::raw::{
    nft_event, EventKind, LossReason, NftOffsets, NftPart, NftRecord, SkbEvent, NFT_CHAIN_STACK,
    PROBE_NFT_CHAIN_ENTRY, PROBE_NFT_CHAIN_EXIT,
};

use crate::maps::{count_loss, wakeup_flags, CONFIG, EVENTS};
use crate::skb::{prepare, read_at, Extra, ProbeRead};

/// One entered chain, as its exit will report it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Frame {
    skb: u64,
    /// The entry's event: the exit reports the packet as it entered the
    /// chain, with its own time. (Parsing the headers again in the
    /// kretprobe does not fit its 512-byte stack next to the record.)
    ev: SkbEvent,
    nft: NftPart,
    /// The entry was reported (passed the filters): so is the exit.
    reported: u32,
    _pad: u32,
}

/// The chains entered and not yet returned from on one CPU.
#[repr(C)]
pub struct ChainStack {
    /// Entries pushed; may exceed [`NFT_CHAIN_STACK`], whose deeper
    /// entries were counted as lost and are not stored.
    depth: u32,
    _pad: u32,
    frames: [Frame; NFT_CHAIN_STACK],
}

#[map]
static NFT_CHAINS: PerCpuArray<ChainStack> = PerCpuArray::with_max_entries(1, 0);

/// Writes the frame's event and nft part into the ring buffer; on an
/// exit, with the exit's time, CPU, probe and verdict. Copied from the map,
/// never through the stack, which has no room for another record.
#[inline(always)]
fn submit(probe_id: u32, frame: *const Frame, exit_verdict: Option<i32>) {
    let Some(mut entry) = EVENTS.reserve::<NftRecord>(0) else {
        count_loss(probe_id, LossReason::RingbufFull);
        return;
    };
    let slot = entry.as_mut_ptr();
    // SAFETY: `slot` is our reserved, exclusively owned ring buffer record;
    // `frame` points into this CPU's stack map entry.
    unsafe {
        core::ptr::copy_nonoverlapping(
            core::ptr::addr_of!((*frame).ev),
            core::ptr::addr_of_mut!((*slot).skb),
            1,
        );
        core::ptr::addr_of_mut!((*slot).skb.skb).write((*frame).skb);
        core::ptr::copy_nonoverlapping(
            core::ptr::addr_of!((*frame).nft),
            core::ptr::addr_of_mut!((*slot).nft),
            1,
        );
        if let Some(v) = exit_verdict {
            core::ptr::addr_of_mut!((*slot).skb.ts_ns).write(bpf_ktime_get_ns());
            core::ptr::addr_of_mut!((*slot).skb.cpu).write(bpf_get_smp_processor_id());
            core::ptr::addr_of_mut!((*slot).skb.probe_id).write(probe_id);
            core::ptr::addr_of_mut!((*slot).nft.verdict).write(v);
            core::ptr::addr_of_mut!((*slot).nft.trace_type).write(nft_event::CHAIN_EXIT);
        }
    }
    entry.submit(wakeup_flags(core::mem::size_of::<NftRecord>()));
}

/// The chain's identity: `nft_do_chain(pkt, priv)` is called with the base
/// chain's embedded `nft_chain` as `priv`.
#[inline(always)]
fn chain_part(o: &NftOffsets, pkt: u64, chain: u64) -> NftPart {
    let basechain = chain.wrapping_sub(o.base_chain_chain as u64);
    let table: u64 = read_at(chain, o.chain_table);
    let family_byte: u8 = read_at(table, o.table_family_bit / 8);
    let family = (family_byte >> (o.table_family_bit & 7))
        & (((1u16 << (o.table_family_bits & 7)) - 1) as u8);
    let state: u64 = read_at(pkt, o.pkt_state);
    NftPart {
        table_handle: read_at(table, o.table_handle),
        chain_handle: read_at(chain, o.chain_handle),
        trace_type: nft_event::CHAIN_ENTRY,
        family,
        hook: read_at(state, o.state_hook),
        priority: read_at(basechain, o.base_chain_priority),
        ..NftPart::default()
    }
}

#[kprobe]
pub fn kprobe_nft_chain(ctx: ProbeContext) -> u32 {
    let Some(config) = CONFIG.get(0) else {
        count_loss(PROBE_NFT_CHAIN_ENTRY, LossReason::NoConfig);
        return 0;
    };
    let Some(stack) = NFT_CHAINS.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's own slot; programs on one CPU do not interleave
    // (tracing programs do not nest).
    let stack = unsafe { &mut *stack };
    let depth = stack.depth as usize;
    stack.depth = stack.depth.wrapping_add(1);
    if depth >= NFT_CHAIN_STACK {
        count_loss(PROBE_NFT_CHAIN_ENTRY, LossReason::NftStackFull);
        return 0;
    }
    // Both argument registers are loaded before any choice (see nft.rs).
    let regs = ctx.regs;
    // SAFETY: `regs` is the probe's pt_regs.
    let (pkt, chain): (u64, u64) = unsafe {
        (
            core::ptr::read_volatile(&(*regs).rdi),
            core::ptr::read_volatile(&(*regs).rsi),
        )
    };
    let Some(frame) = stack.frames.get_mut(depth) else {
        return 0;
    };
    let skb: u64 = read_at(pkt, config.nft.pkt_skb);
    let state: u64 = read_at(pkt, config.nft.pkt_state);
    frame.skb = skb;
    frame.nft = chain_part(&config.nft, pkt, chain);
    frame.reported = 0;
    let Some(ev) = prepare::<ProbeRead, _>(
        &ctx,
        skb,
        Extra {
            probe_id: PROBE_NFT_CHAIN_ENTRY,
            kind: EventKind::Nft,
            location: 0,
            drop_reason: 0,
            frees_skb: false,
            reported_before: false,
            net: read_at(state, config.nft.state_net),
        },
    ) else {
        return 0;
    };
    frame.ev = ev;
    frame.reported = 1;
    submit(PROBE_NFT_CHAIN_ENTRY, frame, None);
    0
}

#[kretprobe]
pub fn kretprobe_nft_chain(ctx: RetProbeContext) -> u32 {
    let Some(stack) = NFT_CHAINS.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: as in the entry.
    let stack = unsafe { &mut *stack };
    if stack.depth == 0 {
        // A call entered before the entry probe was attached.
        return 0;
    }
    stack.depth -= 1;
    // Read back, so the bound is checked on the index itself: checked on
    // the depth before the decrement, the verifier (which does not learn
    // `depth != 0` from the test above) sees an index that may be -1.
    // SAFETY: a plain read of our own map value.
    let index = unsafe { core::ptr::read_volatile(&stack.depth) } as usize;
    let Some(frame) = stack.frames.get(index) else {
        return 0;
    };
    if frame.reported == 0 {
        return 0;
    }
    // The netfilter verdict, whole: NF_DROP 0, NF_ACCEPT 1, ... in the low
    // byte; a queue number, or (6.8+, a drop inside nf_tables: NF_STOLEN
    // with an errno) the error in the upper bits. The recorder names it.
    let verdict: u64 = ctx.ret();
    submit(PROBE_NFT_CHAIN_EXIT, frame, Some(verdict as u32 as i32));
    0
}
