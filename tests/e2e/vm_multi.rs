//! Function tracing at scale and through NAT (issue 5), checked on the host
//! from what tests/vm/guest/multi.sh left in the guest's /out: 300
//! discovered functions per backend give the echo request's ordered path
//! through the stack and the TCP connection's, the filter cuts out other
//! traffic, `--backend auto` puts module functions on kprobe, and skb
//! tracking follows a packet whose destination DNAT rewrote.

use nft_tests::{analyzer_ndjson, duckdb_i64};
use serde_json::Value;
use std::path::Path;

fn manifest(rec: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(rec.join("recording.json")).unwrap()).unwrap()
}

/// `nft-analyzer traces` of a recording, as JSON values.
fn traces(rec: &Path) -> Vec<Value> {
    analyzer_ndjson(&["traces", rec.to_str().unwrap(), "--format", "ndjson"])
}

/// The functions of a trace, in order.
fn path(t: &Value) -> Vec<String> {
    serde_json::from_value(t["functions_path"].clone()).unwrap()
}

/// Whether `want` appear in `path` in this order (each after the one
/// before, not necessarily adjacent).
fn in_order(path: &[String], want: &[&[&str]]) -> bool {
    let mut at = 0;
    for alternatives in want {
        match path[at..]
            .iter()
            .position(|f| alternatives.contains(&f.as_str()))
        {
            Some(i) => at += i + 1,
            None => return false,
        }
    }
    true
}

/// One `--mode multi --max-functions 300` recording with `backend`.
fn multi(kernel: &str, out: &Path, backend: &str) {
    let rec = out.join(format!("multi-{backend}"));
    let m = manifest(&rec);
    let what = format!("{kernel} {backend}");
    assert_eq!(m["mode"], "multi", "{what}");
    // 300, and the free functions tracking adds.
    let requested = m["functions_requested"].as_u64().unwrap();
    assert!((300..=310).contains(&requested), "{what}: {requested}");
    let plan = m["attach_plan"].as_array().unwrap();
    let functions: Vec<&Value> = plan.iter().filter(|a| a["backend"].is_string()).collect();
    let by = |b: &str| functions.iter().filter(|a| a["backend"] == b).count();
    let failed: Vec<&Value> = plan
        .iter()
        .filter(|a| a["attached"] == false && !a["probe"].as_str().unwrap().contains(':'))
        .collect();
    match backend {
        "kprobe" => {
            assert_eq!(m["backend"], "kprobe", "{what}");
            assert_eq!(by("kprobe") as u64, requested, "{what}: {failed:?}");
        }
        // fentry for vmlinux functions, kprobe for those of modules.
        _ => {
            assert_eq!(m["backend"], "fentry+kprobe", "{what}: {failed:?}");
            assert_eq!(
                (by("fentry") + by("kprobe")) as u64,
                requested,
                "{what}: {failed:?}"
            );
            assert!(by("kprobe") >= 1 && by("fentry") >= 250, "{what}");
        }
    }
    assert_eq!(
        m["functions_attached"].as_u64(),
        Some(requested),
        "{what}: {failed:?}"
    );
    assert_eq!(m["lost_events"], 0, "{what}");
    assert!(m["attach_seconds"].as_f64().unwrap() > 0.0, "{what}");

    // The filter (--host 10.9.0.1) cut out b's pings to itself.
    let other = duckdb_i64(
        &rec,
        "SELECT count(*) FROM read_parquet('{dir}/events-*.parquet') \
         WHERE ip_version = 4 AND saddr <> '10.9.0.1' AND daddr <> '10.9.0.1'",
    )
    .unwrap();
    assert_eq!(other, 0, "{what}: events of other traffic");

    let traces = traces(&rec);
    let from_a = |t: &&Value| t["packet_info"]["src_ip"] == "10.9.0.1";
    let echo: Vec<Vec<String>> = traces
        .iter()
        .filter(from_a)
        .filter(|t| t["packet_info"]["icmp_type"] == 8)
        .map(path)
        .filter(|p| p.iter().any(|f| f == "icmp_rcv"))
        .collect();
    assert_eq!(echo.len(), 2, "{what}: {echo:?}");
    for p in &echo {
        assert!(
            in_order(
                p,
                &[
                    &[
                        "__netif_receive_skb_core",
                        "__netif_receive_skb_one_core",
                        "__netif_receive_skb"
                    ],
                    &["ip_rcv"],
                    &["nf_hook_slow"],
                    &["ip_local_deliver"],
                    &["icmp_rcv"],
                ]
            ),
            "{what}: echo request path {p:?}"
        );
        assert!(p.len() >= 15, "{what}: only {} functions: {p:?}", p.len());
    }
    let syn = traces
        .iter()
        .filter(from_a)
        .map(path)
        .find(|p| p.iter().any(|f| f == "tcp_v4_rcv"))
        .unwrap_or_else(|| panic!("{what}: no TCP trace"));
    assert!(
        in_order(&syn, &[&["ip_rcv"], &["ip_local_deliver"], &["tcp_v4_rcv"]]),
        "{what}: {syn:?}"
    );
}

pub fn check(kernel: &str, out: &Path, backends: &[&str]) {
    for backend in backends {
        multi(kernel, out, backend);
    }

    // NAT: recorded with --dst-ip 10.9.7.7; b's prerouting DNATs it to
    // 10.9.0.2, so from there on only tracking keeps the echo requests.
    let rec = out.join("nat");
    let at = |probe: &str, daddr: &str| {
        duckdb_i64(
            &rec,
            &format!(
                "SELECT count(*) FROM read_parquet('{{dir}}/events-*.parquet') \
                 WHERE probe = '{probe}' AND icmp_type = 8 AND daddr = '{daddr}'"
            ),
        )
        .unwrap()
    };
    assert_eq!(at("ip_rcv", "10.9.7.7"), 2, "{kernel}: before DNAT");
    assert_eq!(
        at("ip_local_deliver", "10.9.0.2"),
        2,
        "{kernel}: after DNAT"
    );
    assert_eq!(at("icmp_rcv", "10.9.0.2"), 2, "{kernel}: after DNAT");
    let natted: Vec<Vec<String>> = traces(&rec)
        .iter()
        .filter(|t| t["packet_info"]["icmp_type"] == 8)
        .map(path)
        .filter(|p| in_order(p, &[&["ip_rcv"], &["nf_hook_slow"], &["icmp_rcv"]]))
        .collect();
    assert_eq!(natted.len(), 2, "{kernel}: one trace per NATed request");
}
