//! Live events and the session API in the guest (issue 18), checked on the
//! host from what tests/vm/guest/api.sh left in /out: the nft hook's
//! verdicts in `record --live` as they happened, equal to the recording's;
//! and, where kprobe.multi works, the user guide's multi-mode session over
//! the API, whose recording gives the echo requests' function traces.

use std::path::Path;

use nft_tests::duckdb_i64;
use serde_json::Value;

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn live_verdicts(kernel: &str, out: &Path) {
    let text = std::fs::read_to_string(out.join("live.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty(), "{kernel}: no live output");
    // `--filter 'tcp dst port 9'`: the pings sent alongside stay out.
    assert!(
        lines.iter().all(|l| !l.contains(" icmp ")),
        "{kernel}: {text}"
    );
    let live_drops = lines
        .iter()
        .filter(|l| l.contains(" nft rule_eval ") && l.contains("verdict=drop"))
        .count() as i64;
    let recorded = duckdb_i64(
        &out.join("live"),
        "SELECT count(*) FROM read_parquet('{dir}/events-*.parquet') \
         WHERE kind = 'nft' AND nft_event = 'rule_eval' AND nft_verdict = 'drop'",
    )
    .unwrap();
    assert!(live_drops >= 2, "{kernel}: {live_drops} live drops\n{text}");
    assert_eq!(live_drops, recorded, "{kernel}: live vs recorded drops");
}

fn multi_session(kernel: &str, out: &Path) {
    let start = json(&out.join("api-start.json"));
    assert_eq!(start["status"], "success", "{kernel}: {start}");
    assert_eq!(start["backend"], "kprobe-multi", "{kernel}: {start}");
    assert!(
        start["message"].as_str().unwrap().contains("MULTI mode"),
        "{start}"
    );
    assert!(start["probes_attached"].as_u64().unwrap() >= 300, "{start}");
    let stop = json(&out.join("api-stop.json"));
    assert_eq!(stop["status"], "success", "{kernel}: {stop}");
    assert_eq!(stop["output_file"], "/out/api/multi_trace_001", "{stop}");
    let rec = out.join("api/multi_trace_001");
    let traces = crate::vm_multi::traces(&rec);
    let echo: Vec<Vec<String>> = traces
        .iter()
        .filter(|t| t["packet_info"]["icmp_type"] == 8)
        .map(crate::vm_multi::path)
        .filter(|p| p.iter().any(|f| f == "icmp_rcv"))
        .collect();
    assert_eq!(echo.len(), 3, "{kernel}: echo request traces over the API");
    assert!(echo.iter().all(|p| p.len() >= 5), "{kernel}: {echo:?}");
}

pub fn check(kernel: &str, out: &Path, kprobe_multi: bool) {
    live_verdicts(kernel, out);
    if kprobe_multi {
        multi_session(kernel, out);
    }
}
