//! Live events over WebSocket. The session's drain thread offers each event
//! to a bounded broadcast channel, as one JSON text, only while someone
//! listens; it never waits. A client that reads too slowly misses what
//! the channel dropped for it, and is told how much
//! (`{"type":"dropped","count":N}`); the recording keeps every event.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use tokio::sync::broadcast;

use crate::record::pipeline::{LiveEvent, LiveSink};
use crate::sources::nftrace::message::family_name;
use crate::writer::batch::{addr_text, nft_event_name, nft_verdict_name};
use crate::writer::nft_names::hook_name;

/// Events held for the slowest client before it starts missing some.
pub const CHANNEL_EVENTS: usize = 8192;
/// A client that takes longer than this to take one message is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

pub type LiveTx = broadcast::Sender<Arc<str>>;

/// The sender goes to the session's drain thread, which drops it when the
/// session ends (clients then get `{"type":"end"}`); the registry keeps a
/// weak handle to subscribe clients with.
pub fn channel() -> (LiveTx, broadcast::WeakSender<Arc<str>>) {
    let tx = broadcast::channel(CHANNEL_EVENTS).0;
    let weak = tx.downgrade();
    (tx, weak)
}

/// One event as the live clients get it.
pub fn event_json(live: &LiveEvent<'_>) -> String {
    let (e, probe) = (live.event, live.probe);
    let mut v = serde_json::json!({
        "type": "event",
        "ts_ns": e.ts_ns,
        "cpu": e.cpu,
        "probe": probe,
        "skb": format!("{:#x}", e.skb),
        "len": e.len,
        "ifindex": e.ifindex,
        "netns": e.netns,
        "mark": e.mark,
        "protocol": e.protocol,
        "ip_version": e.ip_version,
        "l4_proto": e.l4_proto,
    });
    if e.ip_version != 0 {
        v["saddr"] = addr_text(e.saddr).into();
        v["daddr"] = addr_text(e.daddr).into();
        v["sport"] = e.sport.into();
        v["dport"] = e.dport.into();
    }
    if e.drop_reason != 0 {
        v["drop_reason"] = e.drop_reason.into();
        v["location"] = format!("{:#x}", e.location).into();
    }
    if let Some(p) = live.nft {
        // Handles as the kernel has them; the recording's ruleset snapshots
        // name them (the analyzer joins them).
        v["nft_event"] = nft_event_name(p).into();
        v["nft_family"] = family_name(p.family).into();
        v["nft_hook"] = hook_name(p.family, p.hook).into();
        v["nft_table_handle"] = p.table_handle.into();
        v["nft_chain_handle"] = p.chain_handle.into();
        v["nft_rule_handle"] = p.rule_handle.into();
        if let Some(verdict) = nft_verdict_name(p) {
            v["nft_verdict"] = verdict.into();
        }
        if p.trace_id != 0 {
            v["nft_trace_id"] = p.trace_id.into();
        }
    }
    v.to_string()
}

/// The session's live sink: publishes while anyone listens.
pub fn sink(tx: LiveTx) -> LiveSink {
    Box::new(move |e: &LiveEvent<'_>| {
        if tx.receiver_count() > 0 {
            let _ = tx.send(event_json(e).into());
        }
        true
    })
}

async fn send(socket: &mut WebSocket, text: String) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

/// Streams a session's events to one client until the session ends or the
/// client goes.
pub async fn stream(mut socket: WebSocket, mut rx: broadcast::Receiver<Arc<str>>) {
    loop {
        let text = match rx.recv().await {
            Ok(text) => text.to_string(),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                serde_json::json!({"type": "dropped", "count": n}).to_string()
            }
            Err(broadcast::error::RecvError::Closed) => {
                let end = serde_json::json!({"type": "end"}).to_string();
                let _ = send(&mut socket, end).await;
                break;
            }
        };
        if !send(&mut socket, text).await {
            break;
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use nft_schema::raw::{nft_event, NftPart, SkbEvent};

    #[test]
    fn nft_hook_events_carry_their_verdict() {
        let event = SkbEvent {
            ip_version: 4,
            l4_proto: 6,
            dport: 9,
            ..SkbEvent::default()
        };
        let drop = NftPart {
            table_handle: 1,
            chain_handle: 2,
            rule_handle: 5,
            verdict: 0,
            trace_id: 77,
            trace_type: 3,
            family: 1,
            hook: 1,
            ..NftPart::default()
        };
        let v: serde_json::Value = serde_json::from_str(&event_json(&LiveEvent {
            event: &event,
            nft: Some(&drop),
            probe: "nft:__nft_trace_packet",
        }))
        .unwrap();
        assert_eq!(v["nft_event"], "rule_eval");
        assert_eq!(v["nft_verdict"], "drop");
        assert_eq!(v["nft_rule_handle"], 5);
        assert_eq!(v["nft_hook"], "input");
        assert_eq!(v["nft_trace_id"], 77);
        assert_eq!(v["dport"], 9);
        let entry = NftPart {
            trace_type: nft_event::CHAIN_ENTRY,
            ..drop
        };
        let v: serde_json::Value = serde_json::from_str(&event_json(&LiveEvent {
            event: &event,
            nft: Some(&entry),
            probe: "nft:nft_do_chain",
        }))
        .unwrap();
        assert_eq!(v["nft_event"], "chain_entry");
        assert!(v.get("nft_verdict").is_none(), "{v}");
        let plain = event_json(&LiveEvent {
            event: &event,
            nft: None,
            probe: "net:netif_receive_skb",
        });
        assert!(!plain.contains("nft_"), "{plain}");
    }
}
