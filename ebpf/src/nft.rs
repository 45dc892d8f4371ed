//! nft hook, kernel side: a kprobe on `__nft_trace_packet`, which nf_tables
//! calls for every rule that decides (immediate verdicts, verdict maps,
//! reject, queue, jump/goto/return, the end of a regular chain) and every
//! base-chain policy while its `nft_trace_enabled` key is on. The probe runs
//! before the function's own `nf_trace` check, so it sees every packet and
//! applies the recorder's filters (and skb tracking) itself. It reads
//! handles and the verdict, never names: the recorder names tables, chains
//! and rules from the ruleset snapshot. The two ABIs (`nft_trace_abi`, from
//! BTF) differ in where pkt, rule and verdict are passed; see
//! `recorder/src/kernel/nft_layout.rs` and docs/backends.md.

use aya_ebpf::{macros::kprobe, programs::ProbeContext};
use nft_schema::raw::{
    nft_event, nft_trace_abi, EventKind, LossReason, NftPart, NftRecord, PROBE_NFT_RULE,
};

use crate::maps::{count_loss, wakeup_flags, CONFIG, EVENTS};
use crate::skb::{prepare, read_at, Extra, ProbeRead};

/// Verdict codes with a target chain.
const NFT_JUMP: i32 = -3;
const NFT_GOTO: i32 = -4;

#[kprobe]
pub fn kprobe_nft_rule(ctx: ProbeContext) -> u32 {
    let Some(config) = CONFIG.get(0) else {
        count_loss(PROBE_NFT_RULE, LossReason::NoConfig);
        return 0;
    };
    let o = &config.nft;
    // Every argument register is loaded once, from ctx at a constant
    // offset, before any choice: when the choice came first, the compiler
    // picked a ctx pointer instead of a value, and the verifier refuses a
    // load through a ctx pointer that was moved ("dereference of modified
    // ctx ptr").
    let regs = ctx.regs;
    // SAFETY: `regs` is the probe's pt_regs; volatile keeps each load as
    // written.
    let args: [u64; 5] = unsafe {
        [
            core::ptr::read_volatile(&(*regs).rdi),
            core::ptr::read_volatile(&(*regs).rsi),
            core::ptr::read_volatile(&(*regs).rdx),
            core::ptr::read_volatile(&(*regs).rcx),
            core::ptr::read_volatile(&(*regs).r8),
        ]
    };
    let arg = |n: usize| -> u64 { args[n] };
    // ABI 1: (info, chain, type), pkt/rule/verdict inside info.
    // ABI 2: (pkt, verdict, rule, info, type).
    let v1 = o.abi == nft_trace_abi::INFO_CHAIN_TYPE;
    let info = if v1 { arg(0) } else { arg(3) };
    let pkt = if v1 {
        read_at::<u64>(info, o.info_pkt)
    } else {
        arg(0)
    };
    // The packet first, everything else after: the verifier walks the
    // header parsing once, not once per combination of the branches below
    // (the 6.1 verifier gave up at a million instructions otherwise).
    let skb: u64 = read_at(pkt, o.pkt_skb);
    let state: u64 = read_at(pkt, o.pkt_state);
    let extra = Extra {
        probe_id: PROBE_NFT_RULE,
        kind: EventKind::Nft,
        location: 0,
        drop_reason: 0,
        frees_skb: false,
        reported_before: false,
        net: read_at(state, o.state_net),
    };
    let Some(ev) = prepare::<ProbeRead, _>(&ctx, skb, extra) else {
        return 0;
    };
    // Into the ring buffer at once: the event leaves the stack (512 bytes)
    // before the nft fields are read.
    let Some(mut entry) = EVENTS.reserve::<NftRecord>(0) else {
        count_loss(PROBE_NFT_RULE, LossReason::RingbufFull);
        return 0;
    };
    let slot = entry.as_mut_ptr();
    // SAFETY: `slot` is our reserved, exclusively owned ring buffer record.
    unsafe {
        core::ptr::addr_of_mut!((*slot).skb).write(ev);
        core::ptr::addr_of_mut!((*slot).skb.skb).write(skb);
    }

    let (verdict, rule, trace_type, given_chain) = if v1 {
        (
            read_at::<u64>(info, o.info_verdict),
            read_at::<u64>(info, o.info_rule),
            arg(2) as u8,
            arg(1),
        )
    } else {
        (arg(1), arg(2), arg(4) as u8, 0)
    };

    // The base chain (an nft_base_chain embedding its nft_chain) and its
    // table: the same table as the rule's (jumps stay within a table).
    let basechain: u64 = read_at(info, o.info_basechain);
    let base_chain = basechain.wrapping_add(o.base_chain_chain as u64);
    let table: u64 = read_at(base_chain, o.chain_table);
    let family_byte: u8 = read_at(table, o.table_family_bit / 8);
    let family = (family_byte >> (o.table_family_bit & 7))
        & (((1u16 << (o.table_family_bits & 7)) - 1) as u8);

    // The rule's first word holds is_last and the handle (bitfields).
    let word: u64 = read_at(rule, 0);
    let is_last = rule != 0 && (word >> (o.rule_is_last_bit & 63)) & 1 == 1;
    let handle = (word >> (o.rule_handle_bit & 63)) & ((1u64 << (o.rule_handle_bits & 63)) - 1);
    let chain = if v1 {
        given_chain
    } else if rule == 0 {
        base_chain
    } else if is_last {
        // The end-of-chain marker knows its chain.
        read_at(rule, o.rule_last_chain)
    } else {
        // Named from the rule handle by the recorder.
        0
    };
    let mut code: i32 = read_at(verdict, o.verdict_code);
    if trace_type == nft_event::POLICY {
        code = read_at::<u8>(basechain, o.base_chain_policy) as i32;
    }
    let mut target_handle = 0u64;
    if code == NFT_JUMP || code == NFT_GOTO {
        let target: u64 = read_at(verdict, o.verdict_chain);
        target_handle = read_at(target, o.chain_handle);
    }
    let nft = NftPart {
        table_handle: read_at(table, o.table_handle),
        chain_handle: if chain == 0 {
            0
        } else {
            read_at(chain, o.chain_handle)
        },
        rule_handle: if rule == 0 || is_last { 0 } else { handle },
        target_handle,
        verdict: code,
        trace_id: read_at(info, o.info_skbid),
        trace_type,
        family,
        hook: read_at(state, o.state_hook),
        nf_trace: read_at(info, o.info_nf_trace),
        priority: 0,
    };
    // SAFETY: as above.
    unsafe {
        core::ptr::addr_of_mut!((*slot).nft).write(nft);
    }
    entry.submit(wakeup_flags(core::mem::size_of::<NftRecord>()));
    0
}
