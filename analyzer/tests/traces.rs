//! Exact traces on small hand-built recordings: address reuse after a free,
//! reuse without a seen free, idle gaps, in-flight packets, duplicate rule
//! verdicts, loss windows, and nftrace messages attached by headers.

mod common;

use common::*;
use nft_analyzer::queries::Params;
use serde_json::json;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

fn sessions_fixture() -> Fixture {
    let (a, b, c, d) = (0xa000u64, 0xb000u64, 0xc000u64, 0xd000u64);
    let t = START_NS;
    let mut f = Fixture::new("sessions");
    let mut free = tcp(t + 3 * MS, a, "skb:kfree_skb", 1);
    free["drop_reason"] = json!("NETFILTER_DROP");
    free["location_sym"] = json!("nft_do_chain+0x10");
    let mut func = tcp(t + 2 * MS, a, "ip_rcv", 1);
    func["kind"] = json!("function");
    // In time order across segments, as the recorder writes them (within
    // a segment, the ring buffer may reorder a little: `func` comes first).
    f.events(&[
        func,
        tcp(t + MS, a, "net:netif_receive_skb", 1),
        free,
        tcp(t + 4 * MS, a, "net:netif_receive_skb", 2),
        tcp(t + 5 * MS, a, "skb:consume_skb", 2),
        tcp(t + 10 * S, b, "net:netif_receive_skb", 3),
        tcp(t + 11 * S, b, "net:net_dev_queue", 3),
    ])
    // A second segment: traces span segments (B's, with a long timeout).
    .events(&[
        tcp(t + 20 * S, b, "net:netif_receive_skb", 3),
        tcp(t + 30 * S, d, "net:netif_receive_skb", 7),
        tcp(t + 30 * S + MS, d, "net:netif_receive_skb", 8),
        tcp(t + 58 * S, c, "net:netif_receive_skb", 5),
    ]);
    f
}

#[test]
fn reuse_gaps_and_in_flight_split_traces_exactly() {
    let f = sessions_fixture();
    let dir = f.finish();
    let (traces, summary) = run_traces(&[&dir], Params::default());
    let got: Vec<_> = traces
        .iter()
        .map(|t| {
            (
                t.skb_addr.as_str(),
                t.first_seen_ns - START_NS,
                t.duration_ns,
                t.functions_path.join(","),
                t.end,
                t.flags.clone(),
            )
        })
        .collect();
    let rx = "net:netif_receive_skb";
    assert_eq!(
        got,
        vec![
            (
                "0xa000",
                MS,
                2 * MS,
                format!("{rx},ip_rcv,skb:kfree_skb"),
                "dropped",
                vec![]
            ),
            (
                "0xa000",
                4 * MS,
                MS,
                format!("{rx},skb:consume_skb"),
                "consumed",
                vec![]
            ),
            (
                "0xb000",
                10 * S,
                S,
                format!("{rx},net:net_dev_queue"),
                "idle",
                vec![]
            ),
            ("0xb000", 20 * S, 0, rx.to_owned(), "idle", vec![]),
            ("0xd000", 30 * S, 0, rx.to_owned(), "idle", vec![]),
            ("0xd000", 30 * S + MS, 0, rx.to_owned(), "idle", vec![]),
            (
                "0xc000",
                58 * S,
                0,
                rx.to_owned(),
                "in_flight",
                vec!["in_flight"]
            ),
        ]
    );
    assert_eq!(traces[0].drop_reason.as_deref(), Some("NETFILTER_DROP"));
    assert_eq!(
        traces[0].drop_location.as_deref(),
        Some("nft_do_chain+0x10")
    );
    assert_eq!(traces[0].packet_info.dst_port, Some(80));
    assert_eq!(traces[0].packet_info.protocol.as_deref(), Some("tcp"));
    let ids: Vec<u64> = traces.iter().map(|t| t.trace_id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(
        (summary.traces, summary.events, summary.in_flight),
        (7, 11, 1)
    );
    assert!(!summary.partial);

    // A longer timeout joins B's two visits and makes more traces in flight.
    let (traces, _) = traces_with_timeout(&dir, 15 * S);
    let b: Vec<_> = traces.iter().filter(|t| t.skb_addr == "0xb000").collect();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].duration_ns, 10 * S);
}

fn traces_with_timeout(
    dir: &std::path::Path,
    timeout_ns: u64,
) -> (
    Vec<nft_analyzer::traces::model::Trace>,
    nft_analyzer::traces::model::Summary,
) {
    run_traces(
        &[dir],
        Params {
            timeout_ns,
            ..Params::default()
        },
    )
}

const RULESET_JSON: &str = r#"{"nftables": [
  {"table": {"family": "inet", "name": "fw", "handle": 1}},
  {"chain": {"family": "inet", "table": "fw", "name": "input", "handle": 1,
             "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
  {"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 2, "expr": []}},
  {"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 3, "expr": []}}]}"#;
const RULESET_TEXT: &str = "table inet fw { # handle 1
\tchain input { # handle 1
\t\ttype filter hook input priority filter; policy accept;
\t\tip saddr 10.9.9.9 counter accept # handle 2
\t\ttcp dport 80 counter drop # handle 3
\t}
}
";

fn nft(
    ts: u64,
    skb: u64,
    event: &str,
    handle: Option<u64>,
    verdict: Option<&str>,
) -> serde_json::Value {
    let mut e = tcp(ts, skb, "nft_do_chain", 9);
    e["nft_event"] = json!(event);
    e["nft_family"] = json!("inet");
    e["nft_table"] = json!("fw");
    e["nft_chain"] = json!("input");
    e["nft_hook"] = json!("input");
    e["nft_rule_handle"] = json!(handle);
    e["nft_verdict"] = json!(verdict);
    e
}

/// One packet (skb `e`, from `t`) through a chain whose first rule's
/// verdict is repeated twice within 5 µs and once after it.
fn dedup_packet(e: u64, t: u64) -> Vec<serde_json::Value> {
    let mut free = tcp(t + 30_000, e, "skb:kfree_skb", 9);
    free["drop_reason"] = json!("NETFILTER_DROP");
    vec![
        tcp(t, e, "net:netif_receive_skb", 9),
        nft(t + 500, e, "chain_entry", None, None),
        nft(t + 1_000, e, "rule_eval", Some(2), Some("continue")),
        nft(t + 3_000, e, "rule_eval", Some(2), Some("continue")), // dup (2 µs)
        nft(t + 7_000, e, "rule_eval", Some(2), Some("continue")), // dup (4 µs)
        nft(t + 20_000, e, "rule_eval", Some(2), Some("continue")), // 13 µs: kept
        nft(t + 21_000, e, "rule_eval", Some(3), Some("drop")),
        nft(t + 22_000, e, "chain_exit", None, Some("drop")),
        free,
    ]
}

#[test]
fn duplicate_verdicts_within_the_window_are_removed_and_counted() {
    let mut f = Fixture::new("dedup");
    f.ruleset(RULESET_JSON, RULESET_TEXT)
        .events(&dedup_packet(0xe000, START_NS + S));
    let dir = f.finish();
    let (traces, summary) = run_traces(&[&dir], Params::default());
    assert_eq!(traces.len(), 1);
    let tr = &traces[0];
    assert_eq!(tr.duplicates_removed, 2);
    assert_eq!(summary.duplicates_removed, 2);
    let nft: Vec<_> = tr
        .nft_events
        .iter()
        .map(|n| (&*n.kind, n.rule_handle, n.verdict.as_deref(), n.rule_seq))
        .collect();
    assert_eq!(
        nft,
        [
            ("chain_entry", None, None, None),
            ("rule_eval", Some(2), Some("continue"), Some(1)),
            ("rule_eval", Some(2), Some("continue"), Some(1)),
            ("rule_eval", Some(3), Some("drop"), Some(2)),
            ("chain_exit", None, Some("drop"), None),
        ]
    );
    assert_eq!(
        tr.nft_events[3].rule_text.as_deref(),
        Some("tcp dport 80 counter drop")
    );
    assert_eq!(tr.nft_events[3].hook.as_deref(), Some("input"));
    assert_eq!(tr.stats.total_rules_evaluated, 3);
    assert_eq!(tr.stats.final_verdict.as_deref(), Some("drop"));
    assert_eq!(
        tr.functions_path.join(","),
        "net:netif_receive_skb,skb:kfree_skb"
    );

    // With no window nothing is a duplicate.
    let (traces, summary) = run_traces(
        &[&dir],
        Params {
            dedup_ns: 0,
            ..Params::default()
        },
    );
    assert_eq!(summary.duplicates_removed, 0);
    assert_eq!(traces[0].stats.total_rules_evaluated, 5);
}

#[test]
fn traces_overlapping_a_loss_window_are_flagged() {
    let mut f = sessions_fixture();
    f.losses(&[json!({"window_start_ns": START_NS + 10 * S + 500 * MS,
                      "window_end_ns": START_NS + 10 * S + 700 * MS,
                      "cpu": 1, "probe_id": 1, "reason": "ringbuf_full", "count": 5})]);
    let dir = f.finish();
    let (traces, summary) = run_traces(&[&dir], Params::default());
    let flagged: Vec<_> = traces
        .iter()
        .filter(|t| t.flags.contains(&"incomplete_due_to_loss"))
        .map(|t| (t.skb_addr.as_str(), t.first_seen_ns - START_NS))
        .collect();
    assert_eq!(flagged, [("0xb000", 10 * S)]);
    assert_eq!(summary.incomplete_due_to_loss, 1);
    assert!(summary.partial);
    assert!(summary
        .warnings
        .iter()
        .any(|w| w.contains("5 events were lost")));
}

#[test]
fn nftrace_messages_attach_to_their_packet_by_headers() {
    let (p, q) = (0xf000u64, 0xf100u64);
    let t = START_NS + 2 * S;
    let mut f = Fixture::new("nftrace");
    let mut other = tcp(t + 10 * MS, q, "net:netif_receive_skb", 10);
    other["sport"] = json!(40001);
    f.ruleset(RULESET_JSON, RULESET_TEXT)
        .events(&[
            tcp(t, p, "net:netif_receive_skb", 9),
            tcp(t + 50_000, p, "skb:consume_skb", 9),
            other,
        ])
        .nftrace(&[
            // The kernel sends headers only with the first message of a trace.
            json!({"ts_ns": t + 100_000, "netns": 4026531840u64, "trace_id": 77, "type": "rule",
                   "family": "inet", "table": "fw", "chain": "input", "rule_handle": 2,
                   "verdict": "continue", "iif": 2, "ip_version": 4, "saddr": "10.0.0.1",
                   "daddr": "10.0.0.2", "l4_proto": 6, "sport": 40000, "dport": 80, "ip_id": 9}),
            // Handle-less "rule continue" at the chain's end: not a rule.
            json!({"ts_ns": t + 101_000, "netns": 4026531840u64, "trace_id": 77, "type": "rule",
                   "family": "inet", "table": "fw", "chain": "input", "verdict": "continue"}),
            json!({"ts_ns": t + 102_000, "netns": 4026531840u64, "trace_id": 77, "type": "policy",
                   "family": "inet", "table": "fw", "chain": "input", "policy": "accept"}),
            // A packet the recording has no event for.
            json!({"ts_ns": t + 200_000, "netns": 4026531840u64, "trace_id": 78, "type": "rule",
                   "family": "inet", "table": "fw", "chain": "input", "rule_handle": 3,
                   "verdict": "drop", "ip_version": 4, "saddr": "10.0.0.7",
                   "daddr": "10.0.0.2", "l4_proto": 6, "sport": 1, "dport": 80, "ip_id": 1}),
        ]);
    let dir = f.finish();
    let (traces, summary) = run_traces(&[&dir], Params::default());
    assert_eq!(traces.len(), 2);
    let tr = traces.iter().find(|t| t.skb_addr == "0xf000").unwrap();
    let nft: Vec<_> = tr
        .nft_events
        .iter()
        .map(|n| {
            (
                &*n.kind,
                n.rule_handle,
                n.verdict.as_deref(),
                n.hook.as_deref(),
                n.rule_text.as_deref(),
                n.source,
            )
        })
        .collect();
    assert_eq!(
        nft,
        [
            (
                "rule_eval",
                Some(2),
                Some("continue"),
                Some("input"),
                Some("ip saddr 10.9.9.9 counter accept"),
                "nftrace"
            ),
            (
                "policy",
                None,
                Some("accept"),
                Some("input"),
                None,
                "nftrace"
            ),
        ]
    );
    assert_eq!(tr.stats.final_verdict.as_deref(), Some("accept"));
    let other = traces.iter().find(|t| t.skb_addr == "0xf100").unwrap();
    assert!(other.nft_events.is_empty());
    assert_eq!(
        (summary.nftrace_attached, summary.nftrace_unmatched),
        (2, 1)
    );
}

#[test]
fn several_recordings_are_queried_together() {
    let a = sessions_fixture();
    let a_dir = a.finish();
    let mut b = Fixture::new("sessions");
    b.events(&[tcp(START_NS, 0x1, "net:netif_receive_skb", 1)]);
    let b_dir = b.finish();
    let batches = sql(
        &[&a_dir, &b_dir],
        "SELECT recording, count(*) AS n FROM events GROUP BY recording ORDER BY recording",
    );
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(text.contains("| sessions   | 11 |"), "{text}");
    assert!(text.contains("| sessions#2 | 1  |"), "{text}");
    let (traces, _) = run_traces(&[&a_dir, &b_dir], Params::default());
    assert_eq!(traces.len(), 8);
    assert_eq!(
        traces
            .iter()
            .filter(|t| t.recording == "sessions#2")
            .count(),
        1
    );
}

/// The shipped queries (and views) give the same rows in DuckDB as in the
/// analyzer, on a recording with every kind of row: nft events with
/// duplicates, nftrace messages, losses, reuse.
#[test]
fn shipped_queries_equal_duckdb_on_a_hand_built_recording() {
    let mut f = sessions_fixture();
    let (e, t) = (0xe000u64, START_NS + S);
    f.ruleset(RULESET_JSON, RULESET_TEXT)
        .events(&dedup_packet(e, t))
        .nftrace(&[
            json!({"ts_ns": t + 100_000, "netns": 4026531840u64, "trace_id": 5,
                          "type": "rule", "family": "inet", "table": "fw", "chain": "input",
                          "rule_handle": 3, "verdict": "drop", "iif": 2, "ip_version": 4,
                          "saddr": "10.0.0.1", "daddr": "10.0.0.2", "l4_proto": 6,
                          "sport": 40000, "dport": 80, "ip_id": 9}),
        ])
        .losses(&[
            json!({"window_start_ns": START_NS, "window_end_ns": START_NS + S,
                         "cpu": 0, "probe_id": 1, "reason": "ringbuf_full", "count": 3}),
        ]);
    let dir = f.finish();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = std::process::Command::new("python3")
        .arg(format!("{root}/tests/duckdb_queries.py"))
        .arg(env!("CARGO_BIN_EXE_nft-analyzer"))
        .arg(&dir)
        .arg(format!("{root}/queries"))
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("trace_events: 20 rows equal"), "{text}");
    // Rule verdicts and policies (chain exits are in chain_verdicts).
    assert!(text.contains("rule_verdicts: 3 rows equal"), "{text}");
    assert!(text.contains("chain_verdicts: 1 rows equal"), "{text}");
}

/// At scale, on the benchmark's synthetic mix (interleaved packets, reused
/// addresses, duplicates): one trace per generated packet, every generated
/// duplicate removed, every drop found.
#[test]
fn synthetic_recording_gives_one_trace_per_packet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("synth");
    let spec = nft_analyzer::synth::Spec {
        events: 200_000,
        skb_pool: 300,
        concurrency: 64,
        segment_rows: 50_000,
        seed: 7,
        ..Default::default()
    };
    let g = nft_analyzer::synth::generate(&dir, &spec).unwrap();
    let (traces, summary) = run_traces(&[&dir], Params::default());
    assert_eq!(summary.traces, g.packets);
    assert_eq!(summary.duplicates_removed, g.duplicates);
    assert_eq!(summary.events, g.events);
    let dropped = traces.iter().filter(|t| t.end == "dropped").count() as u64;
    assert_eq!(dropped, g.drops);
    assert!(traces
        .iter()
        .all(|t| t.end == "dropped" || t.end == "consumed"));
    let reused = {
        let mut skbs: Vec<&str> = traces.iter().map(|t| t.skb_addr.as_str()).collect();
        skbs.sort();
        skbs.dedup();
        skbs.len()
    };
    assert!(reused <= 300 && (g.packets as usize) > 5 * reused);
}

/// A free more than the free gap (100 ms) after a free on the same address
/// is another packet's: the address was reused and its other events were
/// not seen. Frees close together stay one trace.
#[test]
fn a_late_free_on_a_freed_address_is_another_packet() {
    let a = 0xa000u64;
    let t = START_NS;
    let mut f = Fixture::new("free_gap");
    let mut release = tcp(t + MS + 1_000, a, "kfree_skbmem", 1);
    release["kind"] = json!("function");
    f.events(&[
        tcp(t + MS, a, "skb:consume_skb", 1),
        release,
        tcp(t + S, a, "skb:consume_skb", 1),
    ]);
    let dir = f.finish();
    let (traces, _) = run_traces(&[&dir], Params::default());
    let paths: Vec<String> = traces.iter().map(|t| t.functions_path.join(",")).collect();
    assert_eq!(paths, ["skb:consume_skb,kfree_skbmem", "skb:consume_skb"]);
}

/// Since 6.8 a drop frees the skb inside nf_tables, before `nft_do_chain`
/// returns: the chain's exit comes after the free. It stays in the dropped
/// packet's trace, and the next packet at the same address still gets its
/// own.
#[test]
fn a_chain_exit_after_the_free_stays_in_the_dropped_packets_trace() {
    let (e, t) = (0xe100u64, START_NS + S);
    let mut free = tcp(t + 3_000, e, "skb:kfree_skb", 9);
    free["drop_reason"] = json!("NETFILTER_DROP");
    let mut f = Fixture::new("exit-after-free");
    f.ruleset(RULESET_JSON, RULESET_TEXT).events(&[
        tcp(t, e, "net:netif_receive_skb", 9),
        nft(t + 1_000, e, "chain_entry", None, None),
        nft(t + 2_000, e, "rule_eval", Some(3), Some("drop")),
        free,
        nft(t + 4_000, e, "chain_exit", None, Some("drop")),
        // The next packet at the same address, 1 ms later.
        tcp(t + MS, e, "net:netif_receive_skb", 10),
        tcp(t + MS + 1_000, e, "skb:consume_skb", 10),
    ]);
    let dir = f.finish();
    let (traces, _) = run_traces(&[&dir], Params::default());
    let got: Vec<_> = traces
        .iter()
        .map(|t| {
            (
                t.first_seen_ns - START_NS - S,
                t.duration_ns,
                t.nft_events.iter().map(|n| &*n.kind).collect::<Vec<_>>(),
                t.end,
                t.stats.final_verdict.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                0,
                4_000,
                vec!["chain_entry", "rule_eval", "chain_exit"],
                "dropped",
                Some("drop".to_string())
            ),
            (MS, 1_000, vec![], "consumed", None),
        ]
    );
}
