//! `nft-analyzer diff` on real pairs of recordings of the firewall scenario
//! (host kernel, two namespaces): the same ruleset twice, a drop switched to
//! accept in the verdict map, and a rule inserted before the others.

use std::process::Command;

use nft_tests::{kernel_lock, record_scenario, workspace_bin, TwoHosts, FIREWALL};
use serde_json::Value;

const GATE: &str = "new-drop,verdict-change,new-path,latency";

/// Runs `diff BASE NEW ARGS --format json`: exit code and report.
fn diff(base: &str, new: &str, args: &[&str]) -> (i32, Value) {
    let out = Command::new(workspace_bin("nft-analyzer"))
        .args(["diff", base, new, "--format", "json"])
        .args(args)
        .output()
        .expect("run nft-analyzer diff");
    let code = out.status.code().unwrap();
    assert!(
        code == 0 || code == 1,
        "diff failed ({code}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, serde_json::from_slice(&out.stdout).unwrap())
}

fn kinds(report: &Value) -> Vec<(String, String)> {
    report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["subject"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn counts(v: &Value, verdict: &str) -> u64 {
    v.get(verdict).and_then(Value::as_u64).unwrap_or(0)
}

#[test]
fn diff_of_real_recordings_finds_exactly_what_changed() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(210).unwrap();
    let netns = [hosts.a.name.as_str(), hosts.b.name.as_str()];
    let accept = FIREWALL.replace("9 : drop", "9 : accept");
    assert_ne!(accept, FIREWALL);
    let inserted_rule = format!("ip saddr {} counter", hosts.a_ip);
    let inserted = FIREWALL.replacen(
        "policy accept;\n",
        &format!("policy accept;\n    {inserted_rule}\n"),
        1,
    );
    assert_ne!(inserted, FIREWALL);
    let (base, _) = record_scenario(&hosts, "diff-base", &netns, FIREWALL);
    let (again, _) = record_scenario(&hosts, "diff-again", &netns, FIREWALL);
    let (switched, _) = record_scenario(&hosts, "diff-accept", &netns, &accept);
    let (moved, _) = record_scenario(&hosts, "diff-inserted", &netns, &inserted);
    let [base, again, switched, moved] =
        [&base, &again, &switched, &moved].map(|d| d.to_str().unwrap());

    // (1) The same ruleset and traffic twice: nothing to report, gate open.
    let (code, r) = diff(base, again, &["--fail-on", GATE]);
    assert_eq!(kinds(&r), vec![], "{r:#}");
    assert_eq!(code, 0);
    assert!(
        r["base"]["traces"].as_u64().unwrap() > 10,
        "{:#}",
        r["base"]
    );

    // (2) 9 : drop switched to 9 : accept. One packet goes to port 9, so
    // every path counts (--min-count 1).
    let (code, r) = diff(
        base,
        switched,
        &["--fail-on", "verdict-change", "--min-count", "1"],
    );
    assert_eq!(code, 1, "{r:#}");
    let got = kinds(&r);
    let vmap = r["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["base_text"]
                .as_str()
                .is_some_and(|t| t.contains("9 : drop"))
        })
        .expect("the vmap rule of the base");
    assert!(
        vmap["new_text"].as_str().unwrap().contains("9 : accept"),
        "matched to its edited self: {vmap:#}"
    );
    assert!(counts(&vmap["base"], "drop") >= 1, "{vmap:#}");
    assert_eq!(counts(&vmap["new"], "drop"), 0, "{vmap:#}");
    assert!(
        counts(&vmap["new"], "accept") > counts(&vmap["base"], "accept"),
        "{vmap:#}"
    );
    let subject = |kind: &str, part: &str| got.iter().any(|(k, s)| k == kind && s.contains(part));
    assert!(subject("verdict-change", "9 : drop"), "{got:#?}");
    let port9 = format!("tcp {}:* > {}:9", hosts.a_ip, hosts.b_ip);
    assert!(
        subject("verdict-change", &format!("{port9}: final verdict")),
        "{got:#?}"
    );
    // The new path goes past the firewall (to TCP, which has no socket).
    let new_path = got
        .iter()
        .find(|(k, s)| k == "new-path" && s.starts_with(&port9))
        .unwrap_or_else(|| panic!("no new path for {port9}: {got:#?}"));
    assert!(!new_path.1.contains("NETFILTER_DROP"), "{new_path:?}");
    assert!(
        got.iter().any(|(k, s)| k == "vanished-path"
            && s.starts_with(&port9)
            && s.contains("NETFILTER_DROP")),
        "{got:#?}"
    );
    let nf_drops = r["drops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["reason"] == "NETFILTER_DROP")
        .expect("NETFILTER_DROP drops");
    assert!(
        nf_drops["new"].as_u64() < nf_drops["base"].as_u64(),
        "fewer NETFILTER_DROP: {nf_drops}"
    );

    // (3) A rule inserted first: the handles of the old rules all changed,
    // yet each is matched by its text with the same counts.
    let (code, r) = diff(
        base,
        moved,
        &["--fail-on", "new-drop,verdict-change,new-path"],
    );
    assert_eq!(code, 0, "{r:#}");
    let rules = r["rules"].as_array().unwrap();
    for p in rules {
        match (p["base_text"].as_str(), p["new_text"].as_str()) {
            (Some(b), Some(n)) => {
                assert_eq!(b, n, "{p:#}");
                // The same verdicts, give or take a retransmitted SYN.
                let (bv, nv) = (
                    p["base"].as_object().unwrap(),
                    p["new"].as_object().unwrap(),
                );
                assert_eq!(
                    bv.keys().collect::<Vec<_>>(),
                    nv.keys().collect::<Vec<_>>(),
                    "{p:#}"
                );
                for (v, c) in bv {
                    assert!(
                        c.as_u64().unwrap().abs_diff(counts(&p["new"], v)) <= 1,
                        "{p:#}"
                    );
                }
            }
            (None, Some(n)) => assert_eq!(n, inserted_rule, "{p:#}"),
            _ => panic!("a base rule without its match: {p:#}"),
        }
    }
    assert_eq!(
        kinds(&r),
        vec![(
            "rule-change".to_owned(),
            format!("inet fw/input: {inserted_rule}")
        )],
        "{r:#}"
    );
    let handles = |dir: &str| -> Vec<(String, u64)> {
        let out = Command::new(workspace_bin("nft-analyzer"))
            .args(["sql", dir, "--format", "json"])
            .arg("SELECT text, handle FROM rules WHERE snapshot = 'start' AND chain = 'input' AND text LIKE 'tcp dport%'")
            .output()
            .unwrap();
        // One JSON object per line.
        let rows: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        rows.iter()
            .map(|r| {
                (
                    r["text"].as_str().unwrap().to_owned(),
                    r["handle"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let (hb, hm) = (handles(base), handles(moved));
    assert_eq!(hb.len(), 1, "{hb:?}");
    assert_eq!(hb[0].0, hm[0].0);
    assert_ne!(hb[0].1, hm[0].1, "the handle moved");
}
