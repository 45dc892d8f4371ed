//! Live events over WebSocket. The session's drain thread offers each event
//! to a bounded broadcast channel, as one JSON text, only while someone
//! listens; it never waits. A client that reads too slowly misses what
//! the channel dropped for it, and is told how much
//! (`{"type":"dropped","count":N}`); the recording keeps every event.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use nft_schema::raw::SkbEvent;
use tokio::sync::broadcast;

use crate::record::pipeline::LiveSink;
use crate::writer::batch::addr_text;

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
pub fn event_json(e: &SkbEvent, probe: &str) -> String {
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
    v.to_string()
}

/// The session's live sink: publishes while anyone listens.
pub fn sink(tx: LiveTx) -> LiveSink {
    Box::new(move |e, probe| {
        if tx.receiver_count() > 0 {
            let _ = tx.send(event_json(e, probe).into());
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
