//! `diff` on synthetic pairs where the answer is known: the same traffic
//! with jitter, other ephemeral ports and other skb addresses (no
//! difference), a path taking a new share, a slower hop, new drops; and the
//! binary's exit codes as a CI gate.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use nft_analyzer::diff::{Kind, Tolerances};
use serde_json::json;

const US: u64 = 1_000;

/// How one synthetic recording's traffic looks.
struct Traffic {
    traces: u64,
    /// Every n-th trace is forwarded (`ip_forward`) instead of delivered.
    forward_every: Option<u64>,
    /// Every n-th trace is dropped by nftables instead of consumed.
    drop_every: Option<u64>,
    /// Gap between the probes, ns.
    gap_ns: u64,
    /// Makes the addresses, ports and jitter differ between recordings.
    seed: u64,
}

impl Traffic {
    fn same(seed: u64) -> Self {
        Self {
            traces: 60,
            forward_every: None,
            drop_every: None,
            gap_ns: 10 * US,
            seed,
        }
    }

    fn record(&self, name: &str) -> (Fixture, PathBuf) {
        let mut f = Fixture::new(name);
        let mut rows = Vec::new();
        for i in 0..self.traces {
            let skb = 0x10_0000 + (self.seed << 16) + i * 0x100;
            let t = START_NS + i * 1_000_000;
            // Up to ±10% jitter on each gap.
            let jitter = |k: u64| {
                let h = (i * 31 + k * 7 + self.seed * 13) % 21;
                self.gap_ns * (90 + h) / 100
            };
            let sport = 40000 + ((i + self.seed * 1000) % 20000);
            let ev = |ts: u64, probe: &str, kind: &str| {
                let mut e = tcp(ts, skb, probe, (i % 60000) as u16 + 1);
                e["sport"] = json!(sport);
                e["kind"] = json!(kind);
                e
            };
            let t1 = t + jitter(1);
            let t2 = t1 + jitter(2);
            let t3 = t2 + jitter(3);
            rows.push(ev(t, "net:netif_receive_skb", "tracepoint"));
            rows.push(ev(t1, "ip_rcv.isra.0", "function"));
            let forwarded = self.forward_every.is_some_and(|n| i % n == n - 1);
            let dropped = self.drop_every.is_some_and(|n| i % n == n - 1);
            rows.push(ev(
                t2,
                if forwarded {
                    "ip_forward"
                } else {
                    "ip_local_deliver"
                },
                "function",
            ));
            if dropped {
                let mut free = ev(t3, "skb:kfree_skb", "tracepoint");
                free["drop_reason"] = json!("NETFILTER_DROP");
                free["location_sym"] = json!("nft_do_chain+0x3e8");
                rows.push(free);
            } else {
                rows.push(ev(t3, "skb:consume_skb", "tracepoint"));
            }
        }
        f.events(&rows);
        let dir = f.finish();
        (f, dir)
    }
}

fn kinds(r: &nft_analyzer::diff::Report) -> Vec<(Kind, String)> {
    r.differences
        .iter()
        .map(|d| (d.kind, d.subject.clone()))
        .collect()
}

#[test]
fn the_same_traffic_twice_has_no_differences() {
    let (_b, base) = Traffic::same(1).record("base");
    let (_n, new) = Traffic::same(2).record("new");
    let r = run_diff(&base, &new, &Tolerances::default());
    assert_eq!(
        kinds(&r),
        vec![],
        "{}",
        nft_analyzer::diff::report::text(&r)
    );
    // Other ports, one flow: the ephemeral side is not part of it.
    assert_eq!(r.flow_verdicts.len(), 1);
    assert_eq!(r.flow_verdicts[0].flow, "tcp 10.0.0.1:* > 10.0.0.2:80");
    assert_eq!(r.base.traces, 60);
    assert_eq!(r.new.traces, 60);
    // Clone suffixes are gone from paths and hops.
    assert!(r.paths[0].path.contains("> ip_rcv >"), "{:?}", r.paths);
    assert!(r.latency.iter().all(|l| !l.flagged));
}

#[test]
fn a_new_path_share_is_reported_with_examples() {
    let (_b, base) = Traffic::same(1).record("base");
    let (_n, new) = Traffic {
        forward_every: Some(3),
        ..Traffic::same(2)
    }
    .record("new");
    let r = run_diff(&base, &new, &Tolerances::default());
    let delivered = "tcp 10.0.0.1:* > 10.0.0.2:80: net:netif_receive_skb > ip_rcv > \
                     ip_local_deliver > skb:consume_skb [consumed]";
    let forwarded = "tcp 10.0.0.1:* > 10.0.0.2:80: net:netif_receive_skb > ip_rcv > \
                     ip_forward > skb:consume_skb [consumed]";
    assert_eq!(
        kinds(&r),
        vec![
            (Kind::NewPath, forwarded.to_owned()),
            (Kind::PathShare, delivered.to_owned()),
        ],
        "{}",
        nft_analyzer::diff::report::text(&r)
    );
    let new_path = &r.differences[0];
    assert_eq!(new_path.change, "0 → 20 traces (0% → 33% of the flow)");
    assert_eq!(
        (new_path.base_example, new_path.new_example),
        (None, Some(3))
    );
    assert_eq!(
        r.differences[1].change,
        "60 → 40 traces (100% → 67% of the flow)"
    );
    // Below the share tolerance, a share change is noise.
    let loose = Tolerances {
        share: 0.4,
        ..Tolerances::default()
    };
    assert_eq!(kinds(&run_diff(&base, &new, &loose)), vec![]);
}

#[test]
fn a_slower_hop_is_a_latency_difference() {
    let (_b, base) = Traffic::same(1).record("base");
    let (_n, new) = Traffic {
        gap_ns: 40 * US,
        ..Traffic::same(2)
    }
    .record("new");
    let r = run_diff(&base, &new, &Tolerances::default());
    let got = kinds(&r);
    assert!(got.iter().all(|(k, _)| *k == Kind::Latency), "{got:?}");
    let subjects: Vec<&str> = got.iter().map(|(_, s)| s.as_str()).collect();
    for hop in [
        "hop net:netif_receive_skb > ip_rcv",
        "hop ip_rcv > ip_local_deliver",
        "hop ip_local_deliver > skb:consume_skb",
        "end-to-end tcp 10.0.0.1:* > 10.0.0.2:80",
    ] {
        assert!(subjects.contains(&hop), "{hop} not in {subjects:?}");
    }
    let hop = r
        .latency
        .iter()
        .find(|l| l.subject == "net:netif_receive_skb > ip_rcv")
        .unwrap();
    assert!(
        (9 * US..=11 * US).contains(&hop.base_p50_ns.unwrap()),
        "{hop:?}"
    );
    assert!(
        (36 * US..=44 * US).contains(&hop.new_p50_ns.unwrap()),
        "{hop:?}"
    );
    // Too few samples: not compared.
    let strict = Tolerances {
        min_samples: 61,
        ..Tolerances::default()
    };
    assert_eq!(kinds(&run_diff(&base, &new, &strict)), vec![]);
    // A shift under the floor is noise.
    let floor = Tolerances {
        latency_floor_ns: 200 * US,
        ..Tolerances::default()
    };
    assert_eq!(kinds(&run_diff(&base, &new, &floor)), vec![]);
}

#[test]
fn new_drops_are_counted_by_reason_and_function() {
    let (_b, base) = Traffic::same(1).record("base");
    let (_n, new) = Traffic {
        drop_every: Some(4),
        ..Traffic::same(2)
    }
    .record("new");
    let r = run_diff(&base, &new, &Tolerances::default());
    let drop = r
        .differences
        .iter()
        .find(|d| d.kind == Kind::NewDrop)
        .expect("a new drop");
    assert_eq!(drop.subject, "NETFILTER_DROP at nft_do_chain");
    assert_eq!(drop.change, "0 → 15 drops");
    assert_eq!(drop.new_example, Some(4));
    assert_eq!(r.drops.len(), 1);
    assert_eq!((r.drops[0].base, r.drops[0].new), (0, 15));
}

fn analyzer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nft-analyzer"))
        .args(args)
        .output()
        .expect("run nft-analyzer")
}

#[test]
fn fail_on_gates_with_exit_codes_like_diff() {
    let (_b, base) = Traffic::same(1).record("base");
    let (_n, same) = Traffic::same(2).record("same");
    let (_s, slow) = Traffic {
        gap_ns: 40 * US,
        ..Traffic::same(3)
    }
    .record("slow");
    let (base, same, slow) = (
        base.to_str().unwrap(),
        same.to_str().unwrap(),
        slow.to_str().unwrap(),
    );
    let code = |args: &[&str]| {
        let o = analyzer(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        (
            o.status.code().unwrap(),
            String::from_utf8(o.stdout).unwrap(),
            err,
        )
    };
    let gate = "new-drop,verdict-change,new-path,latency";
    assert_eq!(code(&["diff", base, same, "--fail-on", gate]).0, 0);
    let (c, out, _) = code(&["diff", base, slow, "--fail-on", gate]);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("latency "), "{out}");
    // Not a kind it gates on: exit 0, the differences still printed.
    let (c, out, _) = code(&["diff", base, slow, "--fail-on", "new-drop"]);
    assert_eq!(c, 0);
    assert!(out.contains("difference(s)"), "{out}");
    // Every format.
    let (c, out, _) = code(&["diff", base, slow, "--format", "json"]);
    assert_eq!(c, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["differences"][0]["kind"], "latency");
    assert_eq!(doc["base"]["traces"], 60);
    let (c, out, _) = code(&["diff", base, slow, "--format", "markdown"]);
    assert_eq!(c, 0);
    assert!(out.contains("| kind | subject | change |"), "{out}");
    // Trouble is 2, with a clear message.
    let (c, _, err) = code(&["diff", base, "/nonexistent/rec"]);
    assert_eq!(c, 2);
    assert!(err.contains("is not a recording"), "{err}");
    let (c, _, err) = code(&["diff", base, same, "--fail-on", "everything"]);
    assert_eq!(c, 2);
    assert!(err.contains("invalid value"), "{err}");
}
