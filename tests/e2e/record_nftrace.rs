//! The nftrace source against its oracles: what `nft monitor trace` prints
//! for the same packets in the same namespace, and nft's own rule counters.

use std::collections::BTreeMap;
use std::process::Command;

use nft_tests::{
    duckdb, kernel_lock, parse_monitor, record_firewall, recording_dir, workspace_bin, Netns,
    TraceRow, TwoHosts,
};

#[test]
fn nftrace_verdicts_equal_nft_monitor_trace_and_counters() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(206).unwrap();
    let (dir, text) = record_firewall(&hosts, "nftrace", &[&hosts.b.name]);

    // Oracle 1: the same messages as nft monitor trace, in the user's table.
    let mut expected: Vec<TraceRow> = parse_monitor(&text)
        .into_iter()
        .filter(|r| r.1 == "fw")
        .collect();
    expected.sort();
    let ours: Vec<TraceRow> = duckdb(
        &dir,
        "SELECT trace_id, \"table\", chain, type, rule_handle, coalesce(verdict, policy) \
         FROM read_parquet('{dir}/nftrace-*.parquet') \
         WHERE type = 'policy' OR (type = 'rule' AND rule_handle IS NOT NULL) ORDER BY ALL",
    )
    .unwrap()
    .into_iter()
    .map(|r| {
        (
            r[0].as_u64().unwrap() as u32,
            r[1].as_str().unwrap().to_string(),
            r[2].as_str().unwrap().to_string(),
            r[3].as_str().unwrap().to_string(),
            r[4].as_u64(),
            r[5].as_str().unwrap().to_string(),
        )
    })
    .collect();
    assert!(!expected.is_empty(), "nft monitor saw nothing:\n{text}");
    assert_eq!(ours, expected, "nft monitor trace said:\n{text}");
    // The kernel also sends a handle-less `rule` message (verdict continue)
    // when a packet falls off the end of a chain; nft monitor does not print
    // it. We keep it, and it is always followed by that chain's policy.
    let fell_through = duckdb(
        &dir,
        "SELECT count(*), count(*) FILTER (WHERE verdict = 'continue' AND EXISTS ( \
           SELECT 1 FROM read_parquet('{dir}/nftrace-*.parquet') p WHERE p.type = 'policy' \
           AND p.trace_id = r.trace_id AND p.chain = r.chain)) \
         FROM read_parquet('{dir}/nftrace-*.parquet') r WHERE type = 'rule' AND rule_handle IS NULL",
    )
    .unwrap();
    assert!(
        fell_through[0][0].as_u64().unwrap() >= 1,
        "TCP to port 81 falls through"
    );
    assert_eq!(fell_through[0][0], fell_through[0][1]);
    let verdicts: Vec<&str> = ours.iter().map(|r| r.5.as_str()).collect();
    for v in ["accept", "drop", "jump"] {
        assert!(verdicts.contains(&v), "no {v} in {ours:?}");
    }

    // Oracle 2: nft's counters equal our per-rule counts.
    let listing = hosts
        .b
        .exec("nft", &["-j", "-a", "list", "table", "inet", "fw"])
        .unwrap();
    let listing: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    let mut counters = BTreeMap::new();
    for item in listing["nftables"].as_array().unwrap() {
        let Some(rule) = item.get("rule") else {
            continue;
        };
        for expr in rule["expr"].as_array().unwrap() {
            if let Some(c) = expr.get("counter") {
                counters.insert(
                    rule["handle"].as_u64().unwrap(),
                    c["packets"].as_u64().unwrap(),
                );
            }
        }
    }
    assert_eq!(counters.len(), 3, "{listing}");
    for (handle, packets) in counters {
        let ours = ours.iter().filter(|r| r.4 == Some(handle)).count() as u64;
        assert_eq!(ours, packets, "rule handle {handle}");
    }

    // The temporary table is gone, and the ruleset snapshots (JSON and
    // text, at start and stop) are saved.
    let tables = hosts.b.exec("nft", &["list", "tables"]).unwrap();
    assert!(!String::from_utf8_lossy(&tables.stdout).contains("nft_tracer"));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("recording.json")).unwrap()).unwrap();
    let snaps = m["rulesets"].as_array().unwrap();
    assert_eq!(snaps.len(), 4, "{snaps:?}");
    for snap in snaps {
        let snap = snap.as_str().unwrap();
        let text = std::fs::read_to_string(dir.join(snap)).unwrap();
        if snap.ends_with(".json") {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert!(
                json["nftables"].to_string().contains("icmp_chain"),
                "{snap}"
            );
        } else {
            assert!(
                text.contains("icmp type echo-request counter accept # handle"),
                "{snap}: {text}"
            );
            assert!(
                !text.contains("packets"),
                "{snap}: stateless text has no counter values"
            );
        }
    }
    let total = duckdb(
        &dir,
        "SELECT count(*) FROM read_parquet('{dir}/nftrace-*.parquet')",
    )
    .unwrap();
    assert_eq!(m["nftrace_events"], total[0][0]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A table left by a killed recorder is removed at the next start.
#[test]
fn leftover_table_is_removed_at_start() {
    let _kernel = kernel_lock();
    let ns = Netns::new("left").unwrap();
    ns.exec(
        "nft",
        &["add table inet nft_tracer; add chain inet nft_tracer stale"],
    )
    .unwrap();
    let dir = recording_dir("left");
    let out = Command::new(workspace_bin("nft-recorder"))
        .args(["record", "-o"])
        .arg(&dir)
        .args(["--netns", &ns.name, "--duration", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tables = ns.exec("nft", &["list", "ruleset"]).unwrap();
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains("nft_tracer"),
        "{}",
        String::from_utf8_lossy(&tables.stdout)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
