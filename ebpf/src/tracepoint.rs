//! Tracepoint source, kernel side: `tp_btf` programs on tracepoints that pass
//! a `struct sk_buff *`. The target is chosen at load time by the recorder
//! (`recorder/src/sources/tracepoint.rs`).

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use nft_schema::raw::EventKind;

use crate::skb::emit;

/// For tracepoints whose first argument is the skb (`net:netif_receive_skb`,
/// `net:net_dev_queue`, `skb:kfree_skb`, ...).
#[btf_tracepoint]
pub fn tp_skb_arg0(ctx: BtfTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    emit(skb, EventKind::Tracepoint) as i32
}
