//! nftrace messages matched to their packets over IPv6, where packets carry
//! no IP id: every rule message of an IPv6 ping run is attached to a trace
//! of its kind of packet, the messages agree
//! with ping and the kernel's counter, and DuckDB agrees with DataFusion on
//! every shipped query. The ignored benchmark times the shipped as-of match
//! (`queries/nftrace_matches.sql`) against the window join it replaced, on
//! an IPv6 flood: run it with
//! `cargo test -p nft-tests --test e2e -- --ignored bench_nftrace_matches_ipv6 --nocapture`.

use std::path::Path;
use std::time::Instant;

use nft_tests::{analyzer_ndjson, kernel_lock, recording_dir, run_bin, start_recorder, TwoHosts};
use serde_json::Value;

/// The join the shipped query replaced (session 12): each message joined
/// with every event of its flow within the window, then ranked. Kept only
/// as the benchmark's baseline.
const WINDOW_JOIN: &str = include_str!("fixtures/nftrace_matches_window_join.sql");
const AS_OF: &str = include_str!("../../queries/nftrace_matches.sql");

/// Two hosts with IPv6 addresses and a counting input chain in b.
fn ipv6_hosts(subnet: u8) -> (TwoHosts, String) {
    let hosts = TwoHosts::new(subnet).unwrap();
    let (a6, b6) = (format!("fd00:{subnet}::1"), format!("fd00:{subnet}::2"));
    for (ns, dev, addr) in [(&hosts.a, &hosts.a_dev, &a6), (&hosts.b, &hosts.b_dev, &b6)] {
        let sysctl = format!("net.ipv6.conf.{dev}.disable_ipv6=0");
        ns.exec("sysctl", &["-qw", &sysctl]).unwrap();
        let cidr = format!("{addr}/64");
        ns.exec("ip", &["addr", "add", &cidr, "dev", dev, "nodad"])
            .unwrap();
    }
    hosts.b.add_counting_input_chain();
    // Neighbour discovery before the recording.
    hosts
        .a
        .exec("ping", &["-q", "-c", "1", "-W", "2", &b6])
        .unwrap();
    (hosts, b6)
}

/// The packets b's counting rule has counted.
fn counted(hosts: &TwoHosts) -> u64 {
    let out = hosts
        .b
        .exec("nft", &["-j", "list", "chain", "inet", "fw", "input"])
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["rule"]["expr"].as_array())
        .flatten()
        .find_map(|e| e["counter"]["packets"].as_u64())
        .expect("the counter rule")
}

/// Records b while a pings b's IPv6 address with `ping_args`.
fn record_ping(hosts: &TwoHosts, b6: &str, tag: &str, ping_args: &[&str]) -> std::path::PathBuf {
    let dir = recording_dir(tag);
    let mut recorder = start_recorder(&dir, &["--netns", &hosts.b.name, "--duration", "4"]);
    let mut args = vec!["-q"];
    args.extend_from_slice(ping_args);
    args.push(b6);
    hosts.a.exec("ping", &args).unwrap();
    assert!(recorder.wait().unwrap().success());
    dir
}

/// `SELECT count(*)` over `sql`'s rows, by the analyzer.
fn sql_count(rec: &Path, sql: &str) -> u64 {
    // The comment lines go: a leading `--` would read as a flag.
    let body: Vec<&str> = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    let rows = analyzer_ndjson(&[
        "sql",
        rec.to_str().unwrap(),
        &format!("SELECT count(*) AS n FROM ({}) t", body.join("\n")),
        "--format",
        "json",
    ]);
    rows[0]["n"].as_u64().unwrap()
}

/// Rule messages of b's `fw` table, with `extra` conditions.
fn rule_messages(rec: &Path, extra: &str) -> u64 {
    sql_count(
        rec,
        &format!(
            "SELECT * FROM nftrace WHERE type = 'rule' AND rule_handle IS NOT NULL \
             AND \"table\" = 'fw' {extra}"
        ),
    )
}

/// The `fw` rule verdicts nftrace attached to trace `t`.
fn nftrace_rules(t: &Value) -> usize {
    t["nft_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["source"] == "nftrace"
                && e["type"] == "rule_eval"
                && e["table"] == "fw"
                && e["rule_handle"].is_u64()
        })
        .count()
}

#[test]
fn ipv6_nftrace_messages_all_match_counters_and_duckdb() {
    let _kernel = kernel_lock();
    let (hosts, b6) = ipv6_hosts(226);
    let before = counted(&hosts);
    let dir = record_ping(&hosts, &b6, "nftrace-v6", &["-c", "200", "-i", "0.005"]);
    let counted = counted(&hosts) - before;

    // The oracles: ping's 200 echo requests each passed the counting rule
    // once, and the rule's messages are no more than the kernel counted
    // (which may add a neighbour solicitation or two).
    assert_eq!(rule_messages(&dir, "AND icmp_type = 128"), 200);
    let all = rule_messages(&dir, "");
    assert!(
        (200..=counted).contains(&all),
        "{all} messages, counter {counted}"
    );

    let rec = dir.to_str().unwrap();
    let doc: Value = serde_json::from_str(&run_bin(
        "nft-analyzer",
        ["traces", rec, "--format", "json", "--timeout", "100ms"],
    ))
    .unwrap();
    let summary = &doc["summary"];
    assert_eq!(summary["nftrace_unmatched"], 0, "{summary}");
    assert_eq!(summary["partial"], false, "{summary}");
    // Every rule message is in a trace of an IPv6 packet, and the echo
    // requests' messages in echo requests' traces (the ICMP type is part
    // of the match). Which request gets which message is decided by time
    // alone over IPv6 (no IP id): a message stamped when it reached the
    // recorder, milliseconds late, can go to the next request, so the test
    // does not ask for one per request.
    let (mut attached, mut request_verdicts) = (0, 0);
    for t in doc["traces"].as_array().unwrap() {
        let rules = nftrace_rules(t);
        if rules == 0 {
            continue;
        }
        attached += rules as u64;
        assert_eq!(t["packet_info"]["ip_version"], 6, "{t}");
        if t["packet_info"]["icmp_type"] == 128 {
            assert_eq!(t["packet_info"]["dst_ip"], b6.as_str(), "{t}");
            request_verdicts += rules;
        }
    }
    assert_eq!(attached, all, "rule verdicts in traces");
    assert_eq!(request_verdicts, 200, "echo requests' verdicts");

    nft_tests::duckdb_oracle(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn bench_nftrace_matches_ipv6() {
    let _kernel = kernel_lock();
    let (hosts, b6) = ipv6_hosts(227);
    let packets = std::env::var("NFT_BENCH_PACKETS").unwrap_or_else(|_| "3000".into());
    let dir = record_ping(
        &hosts,
        &b6,
        "nftrace-v6-bench",
        &["-c", &packets, "-i", "0.001"],
    );
    let messages = sql_count(&dir, "SELECT * FROM nftrace");
    let events = sql_count(&dir, "SELECT * FROM events");
    println!(
        "IPv6 ping, {packets} requests 1 ms apart: {events} events, {messages} nftrace messages"
    );
    // Interleaved A B A B: a drifting machine biases neither.
    let (mut join_s, mut asof_s) = (Vec::new(), Vec::new());
    let mut counts = (0, 0);
    for _ in 0..3 {
        let start = Instant::now();
        counts.0 = sql_count(&dir, WINDOW_JOIN);
        join_s.push(start.elapsed().as_secs_f64());
        let start = Instant::now();
        counts.1 = sql_count(&dir, AS_OF);
        asof_s.push(start.elapsed().as_secs_f64());
        println!(
            "  window join {} matches in {:.2} s; as-of {} in {:.2} s",
            counts.0,
            join_s.last().unwrap(),
            counts.1,
            asof_s.last().unwrap()
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (j, a) = (median(&mut join_s), median(&mut asof_s));
    println!(
        "median of 3: window join {j:.2} s, as-of {a:.2} s: the as-of match takes {:.3} of the join's time",
        a / j
    );
    assert_eq!(counts.0, counts.1, "both match every message");
    std::fs::remove_dir_all(&dir).unwrap();
}
