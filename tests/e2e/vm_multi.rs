//! Function tracing at scale and through NAT (issue 5), checked on the host
//! from what tests/vm/guest/multi.sh left in the guest's /out: 300
//! discovered functions per backend give the echo request's ordered path
//! through the stack and the TCP connection's, the filter cuts out other
//! traffic, `--backend auto` puts module functions on kprobe, and skb
//! tracking follows a packet whose destination DNAT rewrote.

use nft_tests::{analyzer_ndjson, duckdb_i64};
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;

fn manifest(rec: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(rec.join("recording.json")).unwrap()).unwrap()
}

/// `nft-analyzer traces` of a recording, as JSON values.
pub fn traces(rec: &Path) -> Vec<Value> {
    analyzer_ndjson(&["traces", rec.to_str().unwrap(), "--format", "ndjson"])
}

/// The functions of a trace, in order.
pub fn path(t: &Value) -> Vec<String> {
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

/// One `--mode multi --max-functions 300` recording with `backend` (100
/// for fentry on a kernel with kprobe.multi: see multi.sh); on a kernel
/// with kprobe.multi, `auto` is kprobe-multi there (more than
/// `AUTO_MULTI_ABOVE` functions). Returns the echo requests' paths.
fn multi(kernel: &str, out: &Path, backend: &str, kprobe_multi: bool) -> Vec<Vec<String>> {
    let rec = out.join(format!("multi-{backend}"));
    let m = manifest(&rec);
    let what = format!("{kernel} {backend}");
    assert_eq!(m["mode"], "multi", "{what}");
    // 300 (or 100), and the free functions tracking adds.
    let asked = if backend == "fentry" && kprobe_multi {
        100
    } else {
        300
    };
    let requested = m["functions_requested"].as_u64().unwrap();
    assert!(
        (asked..=asked + 10).contains(&requested),
        "{what}: {requested}"
    );
    let plan = m["attach_plan"].as_array().unwrap();
    let functions: Vec<&Value> = plan.iter().filter(|a| a["backend"].is_string()).collect();
    let by = |b: &str| functions.iter().filter(|a| a["backend"] == b).count();
    let failed: Vec<&Value> = plan
        .iter()
        .filter(|a| a["attached"] == false && !a["probe"].as_str().unwrap().contains(':'))
        .collect();
    let attached = m["functions_attached"].as_u64().unwrap();
    match backend {
        "kprobe" => {
            assert_eq!(m["backend"], "kprobe", "{what}");
            assert_eq!(by("kprobe") as u64, requested, "{what}: {failed:?}");
        }
        "auto" if kprobe_multi => {
            assert_eq!(m["backend"], "kprobe-multi", "{what}: {failed:?}");
            assert_eq!(by("kprobe-multi") as u64, requested, "{what}: {failed:?}");
        }
        // Explicit fentry: vmlinux functions only (aya resolves fentry
        // targets in vmlinux BTF), the module ones refused with a reason.
        "fentry" => {
            assert_eq!(m["backend"], "fentry", "{what}");
            assert_eq!(by("fentry") as u64, attached, "{what}");
            // 282 of 300 on 6.12: the rest are module functions.
            assert!(attached >= requested * 5 / 6, "{what}: {attached}");
            assert!(
                failed.iter().all(|f| f["error"].is_string()),
                "{what}: {failed:?}"
            );
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
    if backend != "fentry" {
        assert_eq!(attached, requested, "{what}: {failed:?}");
    }
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
    echo
}

/// The functions `backend` attached in its `multi-<backend>` recording.
fn attached_with(out: &Path, backend: &str) -> HashSet<String> {
    let m = manifest(&out.join(format!("multi-{backend}")));
    m["attach_plan"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["backend"] == backend)
        .map(|a| a["probe"].as_str().unwrap().to_string())
        .collect()
}

/// kprobe-multi saw each echo request pass the same functions as fentry,
/// among the functions both traced (fentry has no module functions; the
/// tracepoints are in both recordings and left out).
fn kprobe_multi_paths_match_fentry(
    kernel: &str,
    out: &Path,
    kpm: &[Vec<String>],
    fentry: &[Vec<String>],
) {
    let both = attached_with(out, "fentry");
    assert_eq!(kpm.len(), fentry.len(), "{kernel}");
    for (k, f) in kpm.iter().zip(fentry) {
        let k: HashSet<&String> = k.iter().filter(|n| both.contains(*n)).collect();
        let f: HashSet<&String> = f.iter().filter(|n| both.contains(*n)).collect();
        assert_eq!(
            k, f,
            "{kernel}: kprobe-multi vs fentry echo request functions"
        );
    }
}

/// Every function of an unfiltered BTF list with kprobe-multi (6.12): the
/// ones ftrace cannot take are refused with a reason, all the others
/// attach, and attaching and detaching took seconds, not minutes.
fn kprobe_multi_every_function(kernel: &str, out: &Path) {
    let m = manifest(&out.join("kpm-all"));
    let requested = m["functions_requested"].as_u64().unwrap();
    let attached = m["functions_attached"].as_u64().unwrap();
    assert_eq!(m["backend"], "kprobe-multi", "{kernel}");
    assert!(requested > 1000, "{kernel}: {requested}");
    let refused: Vec<&Value> = m["attach_plan"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["attached"] == false && !a["probe"].as_str().unwrap().contains(':'))
        .collect();
    assert!(
        !refused.is_empty(),
        "{kernel}: an unfiltered list has untraceable functions"
    );
    assert!(
        refused.iter().all(|a| a["error"].is_string()),
        "{kernel}: {refused:?}"
    );
    assert_eq!(attached + refused.len() as u64, requested, "{kernel}");
    assert!(
        attached * 10 > requested * 8,
        "{kernel}: {attached} of {requested}"
    );
    let (attach, detach) = (
        m["attach_seconds"].as_f64().unwrap(),
        m["detach_seconds"].as_f64().unwrap(),
    );
    eprintln!(
        "{kernel}: kprobe-multi {attached} functions: attach {attach:.2} s, detach {detach:.2} s"
    );
    assert!(
        attach + detach < 60.0,
        "{kernel}: attach {attach} s, detach {detach} s"
    );
}

/// `--mode full --filter 'icmp and host 10.9.0.1'`: every function event
/// is of a matching packet (its own headers match, or the same skb matched
/// earlier and is tracked), the echo requests reach `icmp_rcv`, and the
/// UDP and TCP sent alongside are absent.
fn pcap_filter_with_functions(kernel: &str, out: &Path) {
    let rec = out.join("pcap-full");
    let count = |filter: &str| {
        duckdb_i64(
            &rec,
            &format!(
                "WITH e AS (SELECT * FROM read_parquet('{{dir}}/events-*.parquet')), \
                 matching AS (SELECT * FROM e WHERE l4_proto = 1 \
                   AND '10.9.0.1' IN (saddr, daddr)) \
                 SELECT count(*) FROM e WHERE {filter}"
            ),
        )
        .unwrap()
    };
    let functions = count("kind = 'function'");
    assert!(functions >= 20, "{kernel}: {functions} function events");
    let stray = count(
        "kind = 'function' AND skb NOT IN (SELECT skb FROM matching) \
         AND NOT (l4_proto = 1 AND '10.9.0.1' IN (saddr, daddr))",
    );
    assert_eq!(stray, 0, "{kernel}: function events of other packets");
    assert_eq!(
        count("l4_proto IN (6, 17)"),
        0,
        "{kernel}: TCP/UDP recorded"
    );
    assert_eq!(
        count("probe = 'icmp_rcv' AND icmp_type = 8"),
        3,
        "{kernel}: echo requests at icmp_rcv"
    );
    let m = manifest(&rec);
    assert_eq!(m["filters"]["filter"], "icmp and host 10.9.0.1", "{kernel}");
    let layers = m["filter_program"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{kernel}: {layers:?}");
}

pub fn check(kernel: &str, out: &Path, backends: &[&str], kprobe_multi: bool) {
    let mut echo = std::collections::HashMap::new();
    for backend in backends {
        echo.insert(*backend, multi(kernel, out, backend, kprobe_multi));
    }
    if kprobe_multi {
        kprobe_multi_paths_match_fentry(kernel, out, &echo["auto"], &echo["fentry"]);
        kprobe_multi_every_function(kernel, out);
    } else {
        let refused = std::fs::read_to_string(out.join("kpm-refused.txt")).unwrap();
        assert!(
            refused.contains("--backend kprobe-multi") && refused.contains("fprobe"),
            "{kernel}: {refused}"
        );
        assert!(!out.join("kpm-refused/recording.json").exists(), "{kernel}");
    }

    pcap_filter_with_functions(kernel, out);

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
