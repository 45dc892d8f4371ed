//! The recorder's promises, each tested on the real kernel: no silent loss,
//! crash safety, bounded disk, and clear errors before anything is attached.

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use nft_recorder::writer::merge::recover_open_segments;
use nft_tests::{
    duckdb_i64, kernel_lock, manifest, recorder_programs_settled, recording_dir, run_bin, signal,
    start_recorder, workspace_bin, TwoHosts,
};

fn start(dir: &Path, args: &[&str]) -> Child {
    start_recorder(dir, args)
}

fn recorder(args: &[&str]) -> Output {
    Command::new(workspace_bin("nft-recorder"))
        .args(args)
        .output()
        .unwrap()
}

/// Every event the kernel generated is either in the recording or counted
/// as lost: with a one-page ring buffer and the recorder stopped (SIGSTOP)
/// during a ping flood, most are lost, and recorded + lost equals the
/// receive counter of the interface, exactly.
#[test]
fn recorded_plus_lost_equals_generated_under_overload() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(203).unwrap();
    let dir = recording_dir("loss");
    let child = start(
        &dir,
        &[
            "--netns",
            &hosts.b.name,
            "--tracepoint",
            "netif_receive_skb",
            "--ringbuf-size",
            "4096",
        ],
    );
    let rx_before = hosts
        .b
        .sysfs_u64(&hosts.b_dev, "statistics/rx_packets")
        .unwrap();
    signal(&child, libc::SIGSTOP);
    hosts
        .a
        .exec("ping", &["-q", "-f", "-c", "2000", "-s", "64", &hosts.b_ip])
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let rx_after = hosts
        .b
        .sysfs_u64(&hosts.b_dev, "statistics/rx_packets")
        .unwrap();
    signal(&child, libc::SIGCONT);
    // Losses are on disk while recording (within a sample interval), not
    // only at the end: a SIGKILL now would still leave them.
    std::thread::sleep(Duration::from_millis(1500));
    let lost_while_running = duckdb_i64(
        &dir,
        "SELECT sum(count) FROM read_parquet('{dir}/losses.parquet')",
    )
    .unwrap();
    assert!(lost_while_running > 0);
    assert_eq!(
        manifest(&dir)["lost_events"].as_i64(),
        Some(lost_while_running)
    );
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let m = manifest(&dir);
    assert_eq!(m["end"], "signal");
    assert_eq!(m["ended_cleanly"], true);
    let recorded = m["events"].as_i64().unwrap();
    let lost = m["lost_events"].as_i64().unwrap();
    let generated = (rx_after - rx_before) as i64;
    assert!(generated >= 2000, "{generated}");
    assert!(
        lost > 0,
        "a 4 KiB ring buffer with the reader stopped must overflow"
    );
    assert_eq!(
        recorded + lost,
        generated,
        "recorded {recorded} + lost {lost}"
    );
    // The losses table holds the same total, attributed to the probe.
    let table_lost = duckdb_i64(
        &dir,
        "SELECT sum(count) FROM read_parquet('{dir}/losses.parquet') \
         WHERE reason = 'ringbuf_full' AND probe_id = (SELECT probe_id FROM \
         read_parquet('{dir}/probes.parquet') WHERE name = 'net:netif_receive_skb')",
    )
    .unwrap();
    assert_eq!(table_lost, lost);
    let rows = duckdb_i64(
        &dir,
        "SELECT count(*) FROM read_parquet('{dir}/events-*.parquet')",
    )
    .unwrap();
    assert_eq!(rows, recorded);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `kill -9`: closed segments stay readable, the open one is readable up to
/// its last flush, and the manifest says the recording did not end.
#[test]
fn kill_9_loses_at_most_the_last_flush_interval() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(204).unwrap();
    let dir = recording_dir("kill");
    let mut child = start(
        &dir,
        &[
            "--netns",
            &hosts.b.name,
            "--tracepoint",
            "netif_receive_skb",
            "--segment-seconds",
            "1.5",
            "--flush-interval",
            "0.2",
        ],
    );
    // Two bursts: the first one's segment is closed (1.5 s) before the
    // second, whose segment is still open at the kill.
    for pause in [2000, 600] {
        hosts
            .a
            .exec(
                "ping",
                &["-q", "-c", "10", "-i", "0.02", "-s", "300", &hosts.b_ip],
            )
            .unwrap();
        // The second pause is longer than the flush interval since the
        // last packet, shorter than the segment.
        std::thread::sleep(Duration::from_millis(pause));
    }
    signal(&child, libc::SIGKILL);
    let _ = child.wait();

    let m = manifest(&dir);
    assert_eq!(m["end"], "running", "a killed recorder cannot say it ended");
    assert_eq!(m["ended_cleanly"], false);
    let closed = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "parquet")
        })
        .count();
    assert!(
        closed >= 3,
        "events segment(s) + probes + drop_reasons: {closed}"
    );
    // The analyzer reads the killed recording as it is: closed segments plus
    // the open segment's parts, complete Parquet files closed at each flush.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.contains(".part-") && n.ends_with(".parquet")),
        "the open segment's flushed rows are in parts: {names:?}"
    );
    let query = "SELECT count(*) AS n FROM events WHERE icmp_type = 8 AND len = 328";
    let out = run_bin(
        "nft-analyzer",
        [
            std::ffi::OsStr::new("sql"),
            dir.as_os_str(),
            "--format".as_ref(),
            "csv".as_ref(),
            query.as_ref(),
        ],
    );
    assert_eq!(out.trim(), "n\n20");
    let recovered = recover_open_segments(&dir).unwrap();
    assert_eq!(recovered.len(), 1, "the open segment: {recovered:?}");
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".part-") || n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "merged and removed: {left:?}");
    // Every echo request (len 20 + 8 + 300) sent before the kill is there.
    let echo = duckdb_i64(
        &dir,
        "SELECT count(*) FROM read_parquet('{dir}/events-*.parquet') WHERE icmp_type = 8 AND len = 328",
    )
    .unwrap();
    assert_eq!(echo, 20);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--max-bytes`: the recorder stops by itself and says why; what arrived
/// after the limit is counted as lost. The limit counts every file of the
/// recording, not only the events.
#[test]
fn max_bytes_stops_cleanly() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(205).unwrap();
    let dir = recording_dir("max");
    let max: u64 = 150_000;
    let mut child = start(
        &dir,
        &[
            "--netns",
            &hosts.b.name,
            "--max-bytes",
            &max.to_string(),
            "--flush-interval",
            "0.1",
            "--duration",
            "20",
        ],
    );
    let mut ping = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &hosts.a.name,
            "ping",
            "-q",
            "-f",
            "-c",
            "100000",
            "-s",
            "200",
            &hosts.b_ip,
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "did not stop at --max-bytes"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = ping.kill();
    let _ = ping.wait();
    assert!(status.success());
    let m = manifest(&dir);
    assert_eq!(m["end"], "max-bytes");
    assert_eq!(m["ended_cleanly"], true);
    assert!(m["events"].as_i64().unwrap() > 0);
    // Everything on disk: under the limit, but for the files written at
    // the stop (losses, interfaces, the final manifest and snapshot).
    let total: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        total <= max + 48 * 1024,
        "{total} bytes for --max-bytes {max}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SIGTERM stops cleanly like SIGINT; `--ring` keeps the newest segments
/// under the byte limit instead of stopping, and says which it deleted.
#[test]
fn sigterm_and_ring_mode() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(207).unwrap();
    let dir = recording_dir("ring");
    let child = start(
        &dir,
        &[
            "--netns",
            &hosts.b.name,
            "--max-bytes",
            "20000",
            "--ring",
            "--segment-seconds",
            "0.3",
            "--flush-interval",
            "0.1",
        ],
    );
    for _ in 0..6 {
        hosts
            .a
            .exec(
                "ping",
                &["-q", "-c", "20", "-i", "0.01", "-s", "200", &hosts.b_ip],
            )
            .unwrap();
        std::thread::sleep(Duration::from_millis(400));
    }
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = manifest(&dir);
    assert_eq!(m["end"], "signal");
    assert_eq!(m["ended_cleanly"], true);
    // The manifest lists exactly the segments on disk, and they fit.
    let listed: Vec<String> = m["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("events-"))
        .collect();
    on_disk.sort();
    assert_eq!(listed, on_disk);
    assert!(
        !listed.contains(&"events-000001.parquet".to_string()),
        "oldest kept: {listed:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Bad input: a clear message, exit non-zero, nothing attached, no
/// directory left behind.
#[test]
fn bad_input_is_refused_before_anything_is_attached() {
    let _kernel = kernel_lock();
    let dir = recording_dir("bad");
    // Bad arguments exit 2 (as clap does); a kernel that cannot do what
    // was asked exits 1.
    let cases: &[(&[&str], &str, i32)] = &[
        (&["--netns", "no-such-ns-xyz"], "--netns no-such-ns-xyz", 2),
        (
            &["--port", "70000"],
            "--port \"70000\": a port is a number from 1 to 65535",
            2,
        ),
        (
            &["--host", "10.0.0.300"],
            "--host \"10.0.0.300\": not an IPv4 or IPv6 address",
            2,
        ),
        (&["--proto", "sctp"], "expected tcp, udp, icmp or icmpv6", 2),
        (
            &["--tracepoint", "no_such_tp"],
            "--tracepoint no_such_tp: no such tracepoint",
            2,
        ),
        (&["--ringbuf-size", "5000"], "must be a power of two", 2),
        (
            &["--duration", "0"],
            "must be a positive number of seconds",
            2,
        ),
        (
            &["--functions", "/nonexistent/functions.json"],
            "--functions: /nonexistent/functions.json",
            2,
        ),
        // pcap-filter expressions: libpcap's own message, or why a probe
        // cannot run what libpcap made of it.
        (
            &["--filter", "tcp prt 80"],
            "--filter \"tcp prt 80\": libpcap: can't parse filter expression: syntax error",
            2,
        ),
        (
            &["--filter", "ip broadcast"],
            "libpcap: netmask not known, so 'ip broadcast' not supported",
            2,
        ),
        (&["--filter", "protochain 6"], "a probe runs no loops", 2),
        (
            &["--filter", "tcp[300] == 1"],
            "beyond the first 256 bytes the probes copy",
            2,
        ),
    ];
    let mut cases = cases.to_vec();
    // An explicit function backend the kernel refuses (this host has no
    // kprobes) is an error, not a silent fallback.
    if !std::path::Path::new("/sys/bus/event_source/devices/kprobe/type").exists() {
        cases.push((
            &["--backend", "kprobe"],
            "--backend kprobe: no function could be attached",
            1,
        ));
    }
    // kprobe.multi where the kernel has no fprobe (this host): refused by
    // the trial link in validation, before the output directory exists.
    if nft_recorder::sources::kprobe_multi::supported().is_err() {
        cases.push((
            &["--backend", "kprobe-multi"],
            "--backend kprobe-multi: the kernel has no fprobe",
            1,
        ));
    }
    for (args, expected, code) in &cases {
        let mut full = vec!["record", "-o", dir.to_str().unwrap()];
        full.extend_from_slice(args);
        let out = recorder(&full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!dir.exists(), "{args:?} left {}", dir.display());
        assert_eq!(
            recorder_programs_settled(0),
            0,
            "{args:?} left programs attached"
        );
    }
    // A directory that already holds something is never overwritten.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep"), "x").unwrap();
    let out = recorder(&["record", "-o", dir.to_str().unwrap(), "--duration", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists and is not empty"));
    assert_eq!(std::fs::read_to_string(dir.join("keep")).unwrap(), "x");
    std::fs::remove_dir_all(&dir).unwrap();
}
