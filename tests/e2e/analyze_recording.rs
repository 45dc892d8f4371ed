//! nft-analyzer on a real recording of the firewall scenario: traces against
//! `nft monitor trace` (every verdict attached to the right packet), drops
//! against the kernel's drop reasons, and every shipped query against DuckDB
//! on the same files.

use nft_tests::{kernel_lock, parse_monitor, record_firewall, TraceRow, TwoHosts};
use serde_json::Value;

fn analyzer(args: &[&str]) -> String {
    nft_tests::run_bin("nft-analyzer", args)
}

#[test]
fn traces_of_a_real_recording_match_nft_monitor_trace_and_duckdb() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(207).unwrap();
    // Both namespaces: packets b sends are freed in a, and a trace ends
    // where its skb is freed.
    let (dir, monitor) = record_firewall(&hosts, "analyze", &[&hosts.a.name, &hosts.b.name]);
    let rec = dir.to_str().unwrap();

    // Tracepoints do not see TCP free its own skbs (`__kfree_skb`), so with
    // the default 5 s timeout a packet that reuses such an address (the slab
    // hands it to the next packet) would join the TCP packet's trace. The
    // traffic steps are 200 ms apart (`firewall_traffic`); a 100 ms timeout
    // keeps one packet per trace. With functions (kprobe/fentry) the free is
    // seen and the default is enough.
    const TIMEOUT: &str = "100ms";
    let doc: Value = serde_json::from_str(&analyzer(&[
        "traces",
        rec,
        "--format",
        "json",
        "--timeout",
        TIMEOUT,
    ]))
    .unwrap();
    let traces = doc["traces"].as_array().unwrap();
    // The streaming engine (default) builds exactly the traces the SQL
    // definition does, on a real recording.
    let by_sql: Value = serde_json::from_str(&analyzer(&[
        "traces",
        rec,
        "--format",
        "json",
        "--engine",
        "sql",
        "--timeout",
        TIMEOUT,
    ]))
    .unwrap();
    assert_eq!(doc["traces"], by_sql["traces"], "streaming vs SQL engine");
    assert_eq!(doc["summary"], by_sql["summary"], "streaming vs SQL engine");
    assert_eq!(doc["mode"], "tracepoint");
    assert_eq!(doc["summary"]["nftrace_unmatched"], 0, "{}", doc["summary"]);
    assert_eq!(doc["summary"]["partial"], false);

    // Every verdict nft monitor printed is in exactly one trace, as printed.
    let mut expected: Vec<TraceRow> = parse_monitor(&monitor)
        .into_iter()
        .filter(|r| r.1 == "fw")
        .collect();
    expected.sort();
    let mut ours: Vec<TraceRow> = traces
        .iter()
        .flat_map(|t| t["nft_events"].as_array().unwrap())
        .map(|e| {
            let kind = match e["type"].as_str().unwrap() {
                "rule_eval" => "rule",
                k => k,
            };
            (
                e["nftrace_id"].as_u64().unwrap() as u32,
                e["table"].as_str().unwrap().to_owned(),
                e["chain"].as_str().unwrap().to_owned(),
                kind.to_owned(),
                e["rule_handle"].as_u64(),
                e["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    ours.sort();
    assert!(!expected.is_empty(), "nft monitor saw nothing:\n{monitor}");
    assert_eq!(ours, expected, "nft monitor trace said:\n{monitor}");

    let flow = |t: &Value| {
        let p = &t["packet_info"];
        (
            p["protocol"].as_str().unwrap_or("").to_owned(),
            p["dst_port"].as_u64(),
        )
    };
    // The pings: 3 echo requests received by b, each jumped to icmp_chain
    // and accepted there by its rule (text from the ruleset snapshot), then
    // consumed. (The first one's ARP wait adds a short trace of its own.)
    let received = |t: &&Value| {
        t["functions_path"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "net:netif_receive_skb")
    };
    let pings: Vec<&Value> = traces
        .iter()
        .filter(|t| t["packet_info"]["icmp_type"] == 8)
        .filter(received)
        .collect();
    assert_eq!(pings.len(), 3, "{pings:#?}");
    for p in &pings {
        assert_eq!(p["end"], "consumed", "{p:#}");
        assert_eq!(p["stats"]["final_verdict"], "accept", "{p:#}");
        let nft = p["nft_events"].as_array().unwrap();
        assert_eq!(nft[0]["verdict"], "jump", "{p:#}");
        assert_eq!(nft[0]["hook"], "input", "{p:#}");
        assert_eq!(nft[1]["chain"], "icmp_chain", "{p:#}");
        assert_eq!(
            nft[1]["rule_text"], "icmp type echo-request counter accept",
            "{p:#}"
        );
        assert_eq!(nft[1]["rule_seq"], 1, "{p:#}");
    }
    // TCP to port 9: dropped by the verdict map, freed with NETFILTER_DROP.
    let port9: Vec<&Value> = traces
        .iter()
        .filter(|t| flow(t) == ("tcp".into(), Some(9)))
        .collect();
    assert!(!port9.is_empty());
    for t in &port9 {
        assert_eq!(t["end"], "dropped", "{t:#}");
        assert_eq!(t["drop_reason"], "NETFILTER_DROP", "{t:#}");
        assert_eq!(t["stats"]["final_verdict"], "drop", "{t:#}");
        let rule = t["nft_events"][0]["rule_text"].as_str().unwrap();
        assert!(rule.contains("vmap"), "{t:#}");
    }
    // TCP to the open port 80: accepted by the verdict map and taken by the
    // listening socket, never dropped.
    let port80: Vec<&Value> = traces
        .iter()
        .filter(|t| flow(t) == ("tcp".into(), Some(80)))
        .filter(received)
        .collect();
    assert!(
        port80.len() >= 2,
        "SYN and the handshake's ACK: {port80:#?}"
    );
    for t in &port80 {
        assert_eq!(t["stats"]["final_verdict"], "accept", "{t:#}");
        assert_eq!(t["drop_reason"], Value::Null, "{t:#}");
    }
    // UDP to 5353 is rejected: a drop verdict and a drop reason.
    let udp: Vec<&Value> = traces
        .iter()
        .filter(|t| flow(t) == ("udp".into(), Some(5353)))
        .collect();
    assert_eq!(udp.len(), 1, "{udp:#?}");
    assert_eq!(udp[0]["stats"]["final_verdict"], "drop");
    assert_eq!(udp[0]["end"], "dropped");

    // --verdict drop selects exactly those.
    let dropped = analyzer(&[
        "traces",
        rec,
        "--format",
        "ndjson",
        "--verdict",
        "drop",
        "--timeout",
        TIMEOUT,
    ]);
    assert_eq!(dropped.lines().count(), port9.len() + 1, "{dropped}");

    // The shipped queries: DataFusion and DuckDB agree on the same files.
    nft_tests::duckdb_oracle(&dir);

    let stats = analyzer(&["stats", rec]);
    assert!(
        stats.contains("NETFILTER_DROP") && stats.contains("== traces"),
        "{stats}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
