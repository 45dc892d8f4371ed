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

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use nft_analyzer::synth::{generate, Spec};

/// Runs a command under GNU time; returns (seconds, peak RSS MiB).
fn timed(cmd: &mut Command) -> (f64, f64) {
    let rss_file = std::env::temp_dir().join(format!("nt-bench-rss-{}", std::process::id()));
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let start = Instant::now();
    let out = wrapped.output().expect("run /usr/bin/time");
    let secs = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kib: f64 = std::fs::read_to_string(&rss_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = std::fs::remove_file(&rss_file);
    (secs, kib / 1024.0)
}

fn main() {
    let events: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse().expect("EVENTS must be a number"))
        .unwrap_or(10_000_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    // The traces benchmark's directory: generated once, shared.
    let dir = root.join(format!(
        "target/bench-recording-v2-schema{}-{events}",
        nft_schema::SCHEMA_VERSION
    ));
    if !dir.join("recording.json").exists() {
        let spec = Spec {
            events,
            ..Spec::default()
        };
        let g = generate(&dir, &spec).expect("generate");
        println!(
            "generated {} events, {} packets, {} drops",
            g.events, g.packets, g.drops
        );
    }
    let analyzer = env!("CARGO_BIN_EXE_nft-analyzer");
    let rec = dir.to_str().unwrap();
    let tmp = std::env::temp_dir();
    let html = tmp.join(format!("nt-bench-report-{}.html", std::process::id()));
    let parquet = tmp.join(format!("nt-bench-traces-{}.parquet", std::process::id()));
    let (mut report_secs, mut traces_secs) = (Vec::new(), Vec::new());
    for round in 1..=2 {
        let (secs, rss) = timed(
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
        let (secs, rss) = timed(
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
