//! `nft-recorder record` end to end on the host kernel: real traffic
//! between two namespaces, a real nftables drop, the real binary, and the
//! recording read back by DuckDB and checked against ping, nft counters and
//! the manifest.

use nft_tests::{duckdb, duckdb_i64, kernel_lock, recording_dir, start_recorder, TwoHosts};

const PINGS: i64 = 5;
const PAYLOAD: i64 = 600;
const DROPPED_PORT: u16 = 9;

#[test]
fn records_traffic_drops_and_reasons_readable_by_duckdb() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(202).unwrap();
    // b drops TCP to port 9 in its input hook and counts what it drops.
    let ruleset = format!(
        "add table inet nt_test; \
         add chain inet nt_test input {{ type filter hook input priority 0; policy accept; }}; \
         add rule inet nt_test input tcp dport {DROPPED_PORT} counter drop"
    );
    hosts.b.exec("nft", &[&ruleset]).unwrap();

    let dir = recording_dir("rec");
    let mut recorder = start_recorder(
        &dir,
        &[
            "--netns",
            &hosts.b.name,
            "--host",
            &hosts.a_ip,
            "--duration",
            "4",
        ],
    );

    let ping = hosts
        .a
        .exec(
            "ping",
            &[
                "-q",
                "-c",
                &PINGS.to_string(),
                "-i",
                "0.05",
                "-s",
                &PAYLOAD.to_string(),
                &hosts.b_ip,
            ],
        )
        .unwrap();
    assert!(String::from_utf8_lossy(&ping.stdout).contains(&format!("{PINGS} received")));
    // A TCP connection to the dropped port: the SYN (and its retries) die in
    // b's input hook.
    let _ = hosts.a.exec(
        "nc",
        &["-z", "-w", "1", &hosts.b_ip, &DROPPED_PORT.to_string()],
    );

    let status = recorder.wait().unwrap();
    assert!(status.success(), "recorder exited with {status}");

    // Oracle: nft's own counter of dropped packets.
    let counters = hosts
        .b
        .exec("nft", &["list", "table", "inet", "nt_test"])
        .unwrap();
    let counters = String::from_utf8_lossy(&counters.stdout).to_string();
    let nft_dropped: i64 = counters
        .split("packets ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {counters}"));
    assert!(nft_dropped >= 1, "the SYN was not dropped: {counters}");

    let events = "read_parquet('{dir}/events-*.parquet')";
    // Every echo request reached b's receive path, once, with the right
    // length and addresses.
    let echo = duckdb_i64(
        &dir,
        &format!(
            "SELECT count(*) FROM {events} WHERE probe = 'net:netif_receive_skb' \
             AND icmp_type = 8 AND len = {} AND saddr = '{}' AND daddr = '{}'",
            20 + 8 + PAYLOAD,
            hosts.a_ip,
            hosts.b_ip
        ),
    )
    .unwrap();
    assert_eq!(echo, PINGS);
    // Every netfilter drop is in skb:kfree_skb with the kernel's reason,
    // and there are exactly as many as nft counted.
    let drops = duckdb_i64(
        &dir,
        &format!(
            "SELECT count(*) FROM {events} WHERE probe = 'skb:kfree_skb' \
             AND drop_reason = 'NETFILTER_DROP' AND dport = {DROPPED_PORT} AND tcp_flags & 2 = 2"
        ),
    )
    .unwrap();
    assert_eq!(drops, nft_dropped, "kfree_skb drops vs nft counter");
    let located = duckdb_i64(
        &dir,
        &format!(
            "SELECT count(*) FROM {events} WHERE drop_reason = 'NETFILTER_DROP' \
             AND (location_sym LIKE 'nf_hook_slow+0x%' OR location_sym LIKE 'nft_do_chain+0x%')"
        ),
    )
    .unwrap();
    let syms = duckdb(
        &dir,
        &format!("SELECT DISTINCT location_sym FROM {events} WHERE drop_reason = 'NETFILTER_DROP'"),
    )
    .unwrap();
    assert_eq!(
        located, nft_dropped,
        "drop location through kallsyms: {syms:?}"
    );
    // (Which of the two depends on the kernel: 6.18 drops inside
    // nft_do_chain, older kernels in nf_hook_slow.)
    // Interface names were captured in b's namespace.
    let names = duckdb(
        &dir,
        &format!(
            "SELECT DISTINCT i.name FROM {events} e JOIN read_parquet('{{dir}}/interfaces.parquet') i \
             USING (netns, ifindex) WHERE i.seen = 'start' AND e.probe = 'net:netif_receive_skb'"
        ),
    )
    .unwrap();
    assert_eq!(names, vec![vec![serde_json::json!(hosts.b_dev)]]);
    // The netns filter held: every event is in b's namespace, or belongs to
    // an skb already seen there (skb tracking follows it, e.g. over the veth
    // into a's namespace).
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("recording.json")).unwrap()).unwrap();
    let b_inode = manifest["netns"][0]["inode"].as_u64().unwrap();
    let outside = duckdb_i64(
        &dir,
        &format!(
            "WITH e AS (SELECT * FROM {events}) \
             SELECT count(*) FROM e WHERE netns <> {b_inode} \
             AND NOT EXISTS (SELECT 1 FROM e f WHERE f.skb = e.skb AND f.ts_ns <= e.ts_ns \
                             AND f.netns = {b_inode})"
        ),
    )
    .unwrap();
    assert_eq!(outside, 0);
    let in_b = duckdb_i64(
        &dir,
        &format!("SELECT count(*) FROM {events} WHERE netns = {b_inode}"),
    )
    .unwrap();
    assert!(in_b > 0);

    // The manifest says the recording is complete and lossless, and its
    // event count matches the segments.
    assert_eq!(manifest["ended_cleanly"], true, "{manifest}");
    assert_eq!(manifest["end"], "duration");
    assert_eq!(manifest["lost_events"], 0);
    let total = duckdb_i64(&dir, &format!("SELECT count(*) FROM {events}")).unwrap();
    assert_eq!(manifest["events"].as_i64(), Some(total));
    let losses = duckdb_i64(
        &dir,
        "SELECT count(*) FROM read_parquet('{dir}/losses.parquet')",
    )
    .unwrap();
    assert_eq!(losses, 0);
    // Dimension tables: probes and the kernel's drop reasons.
    let probes = duckdb_i64(
        &dir,
        "SELECT count(*) FROM read_parquet('{dir}/probes.parquet') WHERE name IN \
         ('net:netif_receive_skb', 'skb:kfree_skb', 'skb:consume_skb', 'net:net_dev_queue')",
    )
    .unwrap();
    assert_eq!(probes, 4);
    // pyarrow reads every file as it is too.
    nft_tests::run(
        "python3",
        &[
            "-c",
            "import glob, sys, pyarrow.parquet as pq\n\
             files = glob.glob(sys.argv[1] + '/*.parquet')\n\
             assert len(files) >= 4, files\n\
             [pq.read_table(f) for f in files]",
            &dir.display().to_string(),
        ],
    )
    .unwrap();
    // Files are private to the owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--live` prints one line per event while recording, with the probe and
/// the packet's tuple, and still writes the recording.
#[test]
fn live_view_prints_events_while_recording() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(209).unwrap();
    let dir = recording_dir("live");
    let child = std::process::Command::new(nft_tests::workspace_bin("nft-recorder"))
        .args(["record", "--live", "--no-nftrace", "--duration", "3", "-o"])
        .arg(&dir)
        .args(["--netns", &hosts.b.name, "--proto", "icmp"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while !dir.join("recording.json").exists() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    hosts
        .a
        .exec("ping", &["-q", "-c", "2", "-i", "0.2", &hosts.b_ip])
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let wanted = format!("icmp {} > {}", hosts.a_ip, hosts.b_ip);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("net:netif_receive_skb") && l.contains(&wanted))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("recording.json")).unwrap()).unwrap();
    assert_eq!(m["events"].as_u64().unwrap() as usize, text.lines().count());
    std::fs::remove_dir_all(&dir).unwrap();
}
