//! The fleet benchmark (ignored; run it by hand):
//!
//! ```text
//! NFT_BENCH_HOSTS=64 NFT_BENCH_EVENTS=500000 \
//!   cargo test --release -p nft-tests --test e2e -- --ignored fleet_bench --nocapture
//! ```
//!
//! Synthetic recordings, one per host. Each is pushed to a real S3-protocol
//! server (moto on loopback), interleaved with a local `cp -r` of the same
//! recording. Then `drops` and `rule_verdicts` run fleet-wide, over the
//! bucket and over the local directories, interleaved.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use nft_tests::s3::S3Server;
use nft_tests::workspace_bin;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// Runs `cmd` (which must succeed); its wall time in seconds.
fn timed(cmd: &mut Command) -> f64 {
    let start = Instant::now();
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed().as_secs_f64()
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn fleet_bench() {
    let hosts = env_u64("NFT_BENCH_HOSTS", 16);
    let events = env_u64("NFT_BENCH_EVENTS", 1_000_000);
    let root = std::env::temp_dir().join(format!("nt-fleet-bench-{hosts}x{events}"));
    let recs: Vec<PathBuf> = (0..hosts)
        .map(|i| {
            let dir = root.join(format!("rec-{i:03}"));
            if !dir.join("recording.json").exists() {
                let spec = nft_analyzer::synth::Spec {
                    events,
                    seed: i + 1,
                    host: format!("synth-{i:03}"),
                    ..Default::default()
                };
                nft_analyzer::synth::generate(&dir, &spec).unwrap();
            }
            dir
        })
        .collect();
    let bytes: u64 = recs.iter().map(|d| dir_bytes(d)).sum();
    let mib = bytes as f64 / (1u64 << 20) as f64;
    println!("{hosts} recordings x {events} events: {mib:.1} MiB");

    let s3 = S3Server::start();
    s3.create_bucket("bench");
    let copies = root.join("cp");
    let _ = std::fs::remove_dir_all(&copies);
    std::fs::create_dir_all(&copies).unwrap();
    let (mut push_s, mut cp_s) = (0.0, 0.0);
    for rec in &recs {
        let push = &mut Command::new(workspace_bin("nft-recorder"));
        push_s += timed(s3.env(push).arg("push").arg(rec).arg("s3://bench/fleet"));
        cp_s += timed(Command::new("cp").arg("-r").arg(rec).arg(&copies));
    }
    println!(
        "push: {:.1} s ({:.1} MiB/s); cp -r: {:.2} s ({:.1} MiB/s); push/cp time {:.1}",
        push_s,
        mib / push_s,
        cp_s,
        mib / cp_s,
        push_s / cp_s
    );

    let local: Vec<&str> = recs.iter().map(|d| d.to_str().unwrap()).collect();
    for query in ["drops", "rule_verdicts"] {
        let mut times = [0.0f64; 2];
        for round in 0..2 {
            let sql = |recs: &[&str]| {
                let mut cmd = Command::new(workspace_bin("nft-analyzer"));
                s3.env(&mut cmd).arg("sql").args(recs);
                cmd.args(["--query", query, "--format", "csv"]);
                cmd
            };
            let over_s3 = timed(&mut sql(&["s3://bench/fleet"]));
            let over_local = timed(&mut sql(&local));
            times[0] += over_s3;
            times[1] += over_local;
            println!("{query} round {round}: s3 {over_s3:.2} s, local {over_local:.2} s");
        }
        println!(
            "{query}: s3 / local time {:.2} (mean of 2 rounds)",
            times[0] / times[1]
        );
    }
    let _ = std::fs::remove_dir_all(&copies);
}
