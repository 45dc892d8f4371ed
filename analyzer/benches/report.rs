//! Benchmark of `nft-analyzer report` on a synthetic recording at scale
//! (the `traces` benchmark's recording: paths of 20–100 hops, rule
//! verdicts, drops), interleaved with `traces --format parquet` on the same
//! files (A B A B) so the ratio holds on a noisy machine. Run:
//!
//!     cargo bench -p nft-analyzer --bench report [-- EVENTS]
//!
//! (default 10 M events). Prints each run's time and peak RSS, the report's
//! size, and the report / traces time ratio; figures go to
//! docs/benchmarks.md.

mod common;

use std::process::Command;

use common::{events_arg, recording, timed};

fn main() {
    let events = events_arg();
    let dir = recording(events);
    let analyzer = env!("CARGO_BIN_EXE_nft-analyzer");
    let rec = dir.to_str().unwrap();
    let tmp = std::env::temp_dir();
    let html = tmp.join(format!("nt-bench-report-{}.html", std::process::id()));
    let parquet = tmp.join(format!("nt-bench-traces-{}.parquet", std::process::id()));
    let (mut report_secs, mut traces_secs) = (Vec::new(), Vec::new());
    for round in 1..=2 {
        let (secs, rss, _) = timed(
            Command::new(analyzer)
                .args(["report", rec, "-o"])
                .arg(&html),
        );
        let size = std::fs::metadata(&html).unwrap().len();
        println!(
            "round {round}: report: {secs:.1} s, {:.2} M events/s, peak RSS {rss:.0} MiB, \
             {:.2} MiB of HTML",
            events as f64 / secs / 1e6,
            size as f64 / (1 << 20) as f64
        );
        report_secs.push(secs);
        let (secs, rss, _) = timed(
            Command::new(analyzer)
                .args(["traces", rec, "--format", "parquet", "-o"])
                .arg(&parquet),
        );
        println!("round {round}: traces --format parquet: {secs:.1} s, peak RSS {rss:.0} MiB");
        traces_secs.push(secs);
    }
    let _ = std::fs::remove_file(&parquet);
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    println!(
        "report / traces time ratio: {:.2} (report kept at {})",
        sum(&report_secs) / sum(&traces_secs),
        html.display()
    );
}
