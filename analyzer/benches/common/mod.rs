//! What the analyzer's benchmarks share: the synthetic recording (generated
//! once into `target/`, reused by every benchmark) and a timed run under
//! GNU time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use nft_analyzer::synth::{generate, Spec};

/// EVENTS from the command line (the first argument that is not a flag),
/// 10 M by default.
pub fn events_arg() -> u64 {
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse().expect("EVENTS must be a number"))
        .unwrap_or(10_000_000)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// The synthetic recording of `events` events, generated when missing.
pub fn recording(events: u64) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    // v2: events at about 5 M/s (v1 packed them 5 ns apart). The schema
    // version is in the name: DuckDB reads the files as they are, and the
    // SQL names every column of the current schema.
    let dir = root.join(format!(
        "target/bench-recording-v2-schema{}-{events}",
        nft_schema::SCHEMA_VERSION
    ));
    if !dir.join("recording.json").exists() {
        let spec = Spec {
            events,
            ..Spec::default()
        };
        let start = Instant::now();
        let g = generate(&dir, &spec).expect("generate");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "generated {} events, {} packets, {} duplicates, {} drops in {secs:.1} s ({:.2} bytes/event)",
            g.events,
            g.packets,
            g.duplicates,
            g.drops,
            dir_bytes(&dir) as f64 / g.events as f64
        );
    }
    dir
}

/// Runs a command under GNU time; returns (seconds, peak RSS MiB, stdout).
pub fn timed(cmd: &mut Command) -> (f64, f64, String) {
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
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    let kib: f64 = std::fs::read_to_string(&rss_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = std::fs::remove_file(&rss_file);
    (
        secs,
        kib / 1024.0,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
