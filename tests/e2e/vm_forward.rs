//! The nft hooks in a forwarding topology (issue 6), checked on the host
//! from what tests/vm/guest/forward.sh left in the guest's /out: for every
//! packet, the chain entries and rule verdicts the eBPF hooks saw on the
//! skb equal what `nft monitor trace` printed for it in the same guest
//! (same handles, verdicts and targets, same order); each base chain's
//! exit carries the verdict that decided it; per-rule counts equal the nft
//! counters; no duplicate verdict exists for the analyzer to remove.

use nft_tests::{analyzer_ndjson, duckdb, monitor_lines};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One step of a packet through table fw: `entry` of a base chain, a
/// `rule` (handle, verdict with target) or a `policy`.
type Step = (String, String, Option<u64>, Option<String>);

/// A base chain's run on one skb: from `nft_do_chain` entry to return.
#[derive(Debug, Default)]
struct Run {
    chain: String,
    hook: String,
    priority: Option<i64>,
    trace_id: Option<u32>,
    steps: Vec<Step>,
    /// Handles of the rules evaluated, for the counters.
    handles: Vec<u64>,
    exit: Option<String>,
}

/// The nft hooks' events of table fw, in time order, cut into runs per skb.
fn runs(rec: &Path) -> Vec<Run> {
    let rows = duckdb(
        rec,
        "SELECT skb, nft_event, nft_chain, nft_hook, nft_priority, nft_rule_handle, \
                nft_verdict, nft_target, nft_trace_id \
         FROM read_parquet('{dir}/events-*.parquet') \
         WHERE kind = 'nft' AND nft_table = 'fw' ORDER BY ts_ns",
    )
    .unwrap();
    let mut open: BTreeMap<u64, Run> = BTreeMap::new();
    let mut done = Vec::new();
    let s = |v: &Value| v.as_str().map(str::to_owned);
    for r in rows {
        let skb = r[0].as_u64().unwrap();
        let (event, chain) = (r[1].as_str().unwrap(), s(&r[2]).unwrap());
        let verdict = s(&r[6]).map(|v| match s(&r[7]) {
            Some(target) => format!("{v} {target}"),
            None => v,
        });
        if event == "chain_entry" {
            assert!(!open.contains_key(&skb), "nested entry on {skb:#x}");
            open.insert(
                skb,
                Run {
                    steps: vec![("entry".into(), chain.clone(), None, None)],
                    chain,
                    hook: s(&r[3]).unwrap(),
                    priority: r[4].as_i64(),
                    ..Run::default()
                },
            );
            continue;
        }
        let run = open
            .get_mut(&skb)
            .unwrap_or_else(|| panic!("{event} outside a chain run on {skb:#x}"));
        match event {
            "chain_exit" => {
                run.exit = verdict;
                done.push(open.remove(&skb).unwrap());
                continue;
            }
            // A chain's end: 6.12's nft does not print it (6.1's prints
            // `verdict continue`, left out on that side).
            "return" => {}
            "rule_eval" => {
                let handle = r[5].as_u64().expect("a rule_eval has a handle");
                run.handles.push(handle);
                // 6.1 sends an explicit `return` rule as a RETURN message,
                // which nft prints without the handle.
                let shown = (verdict.as_deref() != Some("return")).then_some(handle);
                run.steps.push(("rule".into(), chain, shown, verdict));
            }
            "policy" => run.steps.push(("policy".into(), chain, None, verdict)),
            other => panic!("unexpected nft_event {other}"),
        }
        let id = r[8].as_u64().map(|v| v as u32);
        assert!(id.is_some(), "{event} without a trace id");
        assert!(run.trace_id.is_none() || run.trace_id == id, "{run:?}");
        run.trace_id = id;
    }
    assert!(open.is_empty(), "runs without an exit: {open:?}");
    done
}

pub fn check(kernel: &str, out: &Path) {
    let rec = out.join("fwd");
    let runs = runs(&rec);

    // Per packet (trace id): our steps in order == nft monitor trace's.
    let monitor = std::fs::read_to_string(out.join("fwd-monitor.txt")).unwrap();
    let mut expected: BTreeMap<u32, Vec<Step>> = BTreeMap::new();
    for l in monitor_lines(&monitor)
        .into_iter()
        .filter(|l| l.table == "fw")
    {
        let step = match (l.kind.as_str(), l.verdict.as_deref()) {
            ("packet", _) => ("entry".into(), l.chain, None, None),
            // 6.1's RETURN messages: a chain's end (as above, left out) or
            // an explicit `return` rule.
            ("return", Some("continue")) => continue,
            ("return", _) => ("rule".into(), l.chain, None, l.verdict),
            ("rule", Some("return")) => ("rule".into(), l.chain, None, l.verdict),
            (kind, _) => (kind.into(), l.chain, l.handle, l.verdict),
        };
        expected.entry(l.id).or_default().push(step);
    }
    let mut ours: BTreeMap<u32, Vec<Step>> = BTreeMap::new();
    for run in &runs {
        let id = run.trace_id.expect("every run has a traced rule or policy");
        ours.entry(id)
            .or_default()
            .extend(run.steps.iter().cloned());
    }
    assert!(
        expected.len() >= 14,
        "{kernel}: monitor saw {}",
        expected.len()
    );
    for (id, steps) in &expected {
        assert_eq!(
            ours.get(id),
            Some(steps),
            "{kernel}: trace id {id:08x}: eBPF vs nft monitor trace"
        );
    }
    assert_eq!(ours.len(), expected.len(), "{kernel}: packets");

    // Every rule kind of the ruleset was met.
    let all: Vec<&Step> = ours.values().flatten().collect();
    for want in [
        "jump icmp_chk",
        "jump web",
        "goto udp_chk",
        "return",
        "continue",
        "accept",
        "drop",
    ] {
        assert!(
            all.iter().any(|s| s.3.as_deref() == Some(want)),
            "{kernel}: no {want}"
        );
    }
    for hook in ["prerouting", "input", "forward", "output", "postrouting"] {
        assert!(runs.iter().any(|r| r.hook == hook), "{kernel}: {hook}");
    }

    // A run ends with the verdict that decided it: the last accept/drop of
    // a rule or the policy; its base chain is named by its hook here, with
    // the priority the kernel passed.
    for run in &runs {
        let decided = run
            .steps
            .iter()
            .rev()
            .find_map(|s| s.3.as_deref().filter(|v| matches!(*v, "accept" | "drop")));
        assert_eq!(run.exit.as_deref(), decided, "{kernel}: {run:?}");
        assert_eq!(
            (run.chain.as_str(), run.priority),
            (run.hook.as_str(), Some(0))
        );
    }

    // Per-rule verdict counts equal nft's counters.
    let table: Value =
        serde_json::from_slice(&std::fs::read(out.join("fwd-counters.json")).unwrap()).unwrap();
    let mut counters = 0;
    for rule in table["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.get("rule"))
    {
        let handle = rule["handle"].as_u64().unwrap();
        let packets = rule["expr"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|e| e.get("counter").map(|c| c["packets"].as_u64().unwrap()))
            .expect("a counter on every rule");
        let seen = runs
            .iter()
            .flat_map(|r| &r.handles)
            .filter(|&&h| h == handle)
            .count() as u64;
        assert_eq!(
            seen, packets,
            "{kernel}: rule {handle}: verdicts vs counter"
        );
        counters += 1;
    }
    assert_eq!(counters, 12, "{kernel}");

    // Every nft event is named, also those of the recorder's own table and
    // of table `late`, created during the recording.
    let unnamed = nft_tests::duckdb_i64(
        &rec,
        "SELECT count(*) FROM read_parquet('{dir}/events-*.parquet') \
         WHERE kind = 'nft' AND (nft_table IS NULL OR nft_chain IS NULL)",
    )
    .unwrap();
    assert_eq!(unnamed, 0, "{kernel}: nft events without names");
    let late = duckdb(
        &rec,
        "SELECT nft_event, nft_chain, nft_priority, count(*) FROM read_parquet('{dir}/events-*.parquet') \
         WHERE nft_table = 'late' AND nft_event IN ('chain_entry', 'rule_eval') \
         GROUP BY ALL ORDER BY ALL",
    )
    .unwrap();
    assert_eq!(
        late,
        [
            vec![
                Value::from("chain_entry"),
                Value::from("relay"),
                Value::from(10),
                Value::from(2)
            ],
            vec![
                Value::from("rule_eval"),
                Value::from("relay"),
                Value::from(10),
                Value::from(2)
            ],
        ],
        "{kernel}: the late table (ping request and reply)"
    );

    // The hooks' trace ids are the kernel's own: those of the nftrace
    // source's messages.
    let nftrace_ids: std::collections::BTreeSet<u32> = duckdb(
        &rec,
        "SELECT DISTINCT trace_id FROM read_parquet('{dir}/nftrace-*.parquet') \
         WHERE \"table\" = 'fw'",
    )
    .unwrap()
    .iter()
    .map(|r| r[0].as_u64().unwrap() as u32)
    .collect();
    assert_eq!(
        ours.keys()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        nftrace_ids,
        "{kernel}"
    );

    // The analyzer: the hook emits one event per kernel trace call, so
    // there is nothing for the 5 µs dedup to remove; every chain's exit
    // stays in its packet's trace (also after a drop freed the skb).
    let traces = analyzer_ndjson(&["traces", rec.to_str().unwrap(), "--format", "ndjson"]);
    assert!(traces.iter().all(|t| t["duplicates_removed"] == 0));
    let fw_events = |t: &Value| -> Vec<String> {
        t["nft_events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["table"] == "fw" && e["source"] == "ebpf")
            .map(|e| {
                format!(
                    "{} {}",
                    e["type"].as_str().unwrap(),
                    e["chain"].as_str().unwrap()
                )
            })
            .collect()
    };
    for t in &traces {
        let evs = fw_events(t);
        let entries = evs.iter().filter(|e| e.starts_with("chain_entry")).count();
        let exits = evs.iter().filter(|e| e.starts_with("chain_exit")).count();
        assert_eq!(entries, exits, "{kernel}: {t}");
    }
    let ssh = traces
        .iter()
        .find(|t| t["packet_info"]["dst_port"] == 22 && t["packet_info"]["src_ip"] == "10.9.1.1")
        .expect("the SYN to port 22");
    assert_eq!(ssh["stats"]["final_verdict"], "drop", "{kernel}: {ssh}");
    assert_eq!(ssh["drop_reason"], "NETFILTER_DROP", "{kernel}: {ssh}");
    assert_eq!(
        fw_events(ssh),
        [
            "chain_entry prerouting",
            "rule_eval prerouting",
            "return prerouting",
            "policy prerouting",
            "chain_exit prerouting",
            "chain_entry forward",
            "rule_eval forward",
            "chain_exit forward",
        ],
        "{kernel}"
    );

    // Query chain_verdicts: per base chain, the exits counted above.
    let rows = analyzer_ndjson(&[
        "sql",
        rec.to_str().unwrap(),
        "--query",
        "chain_verdicts",
        "--format",
        "json",
    ]);
    let mut want: BTreeMap<(String, String), u64> = BTreeMap::new();
    for run in &runs {
        *want
            .entry((run.chain.clone(), run.exit.clone().unwrap()))
            .or_default() += 1;
    }
    let got: BTreeMap<(String, String), u64> = rows
        .iter()
        .filter(|r| r["table"] == "fw")
        .map(|r| {
            (
                (
                    r["chain"].as_str().unwrap().to_owned(),
                    r["verdict"].as_str().unwrap().to_owned(),
                ),
                r["packets"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want, "{kernel}: chain_verdicts");
}
