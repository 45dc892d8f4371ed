//! `--filter` for nftrace messages. nft has no match for a pcap-filter
//! expression, so the recorder's table marks what the flag filters allow
//! and this keeps the messages of packets libpcap's own matcher accepts.
//! The kernel attaches a packet's headers to the first message of each
//! trace (one packet at one hook) only, so that message decides for the
//! trace id, and the rule, return and policy messages after it follow.

use std::collections::HashMap;

use super::message::NftraceEvent;
use crate::pcap::Program;

/// Decisions remembered; a trace's messages arrive together, so older
/// ones are forgotten wholesale when this many pile up.
const REMEMBERED: usize = 1 << 16;

pub struct TraceFilter {
    /// `None`: the expression has no network-layer program (nothing
    /// matches, as at the probes).
    program: Option<Program>,
    decided: HashMap<u32, bool>,
}

impl TraceFilter {
    pub fn new(expression: &str) -> Self {
        Self {
            program: crate::pcap::network_matcher(expression),
            decided: HashMap::new(),
        }
    }

    /// Whether the message is of a matching packet.
    pub fn keeps(&mut self, event: &NftraceEvent) -> bool {
        let Some(program) = &self.program else {
            return false;
        };
        if event.packet.is_empty() {
            return self.decided.get(&event.trace_id).copied().unwrap_or(false);
        }
        let keep = program.matches(&event.packet);
        if self.decided.len() >= REMEMBERED {
            self.decided.clear();
        }
        self.decided.insert(event.trace_id, keep);
        keep
    }
}
