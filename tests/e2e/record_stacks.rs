//! `record --stack` on the host kernel: every event carries the id of the
//! kernel stack it was seen on, the recording's `stacks` table holds each
//! distinct stack once, symbolised, and the stacks are the kernel's own
//! call paths (the echo requests arrive through the receive path, the
//! replies leave through ICMP's). Without `--stack` nothing of it is there.

use nft_tests::{duckdb, duckdb_i64, kernel_lock, recording_dir, start_recorder, TwoHosts};

const PINGS: i64 = 3;

#[test]
fn stacks_are_taken_once_and_symbolised() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(211).unwrap();
    let dir = recording_dir("stacks");
    let mut recorder = start_recorder(
        &dir,
        &[
            "--netns",
            &hosts.b.name,
            "--host",
            &hosts.a_ip,
            "--stack",
            "--duration",
            "3",
        ],
    );
    let ping = hosts
        .a
        .exec(
            "ping",
            &["-q", "-c", &PINGS.to_string(), "-i", "0.1", &hosts.b_ip],
        )
        .unwrap();
    assert!(String::from_utf8_lossy(&ping.stdout).contains(&format!("{PINGS} received")));
    assert!(recorder.wait().unwrap().success());

    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("recording.json")).unwrap()).unwrap();
    let events = "read_parquet('{dir}/events-*.parquet')";
    let stacks = "read_parquet('{dir}/stacks.parquet')";
    // Every event has its stack, every id is in the table, once per frame.
    let without = duckdb_i64(
        &dir,
        &format!("SELECT count(*) FROM {events} WHERE stack_id IS NULL"),
    )
    .unwrap();
    let missing = duckdb_i64(
        &dir,
        "SELECT coalesce(sum(count), 0) FROM read_parquet('{dir}/losses.parquet') \
         WHERE reason = 'stack_missing'",
    )
    .unwrap();
    assert_eq!(
        without, missing,
        "events without a stack are counted losses"
    );
    assert_eq!(missing, 0);
    let unknown = duckdb_i64(
        &dir,
        &format!(
            "SELECT count(*) FROM {events} WHERE stack_id NOT IN (SELECT stack_id FROM {stacks})"
        ),
    )
    .unwrap();
    assert_eq!(unknown, 0, "every stack id is in the stacks table");
    let distinct = duckdb_i64(
        &dir,
        &format!("SELECT count(DISTINCT stack_id) FROM {stacks}"),
    )
    .unwrap();
    assert_eq!(m["stacks"].as_i64(), Some(distinct), "manifest count");
    let dup_frames = duckdb_i64(
        &dir,
        &format!(
            "SELECT count(*) FROM (SELECT stack_id, frame FROM {stacks} \
             GROUP BY ALL HAVING count(*) > 1)"
        ),
    )
    .unwrap();
    assert_eq!(dup_frames, 0);

    // The kernel's own call paths: each echo request's netif_receive_skb
    // stack runs through the receive path (softirq, backlog) and each
    // reply's net_dev_queue stack through ICMP's reply.
    let frames_of = |probe: &str, icmp_type: u8, like: &str| {
        duckdb_i64(
            &dir,
            &format!(
                "SELECT count(*) FROM {events} e WHERE probe = '{probe}' AND icmp_type = {icmp_type} \
                 AND EXISTS (SELECT 1 FROM {stacks} s WHERE s.stack_id = e.stack_id \
                             AND s.symbol LIKE '{like}')"
            ),
        )
        .unwrap()
    };
    assert_eq!(
        frames_of("net:netif_receive_skb", 8, "%netif_receive_skb%"),
        PINGS,
        "{:?}",
        duckdb(
            &dir,
            &format!("SELECT * FROM {stacks} ORDER BY stack_id, frame LIMIT 40")
        )
    );
    assert_eq!(frames_of("net:net_dev_queue", 0, "icmp_reply+0x%"), PINGS);

    // The shipped query names each stack for a probe, innermost first.
    let out = nft_tests::run_bin(
        "nft-analyzer",
        [
            "sql",
            dir.to_str().unwrap(),
            "--query",
            "stacks",
            "--format",
            "csv",
        ],
    );
    assert!(
        out.lines()
            .any(|l| l.contains("net:net_dev_queue") && l.contains("icmp_reply+0x")),
        "{out}"
    );

    // Every shipped query, stacks included, gives DuckDB's rows here.
    let text = nft_tests::duckdb_oracle(&dir);
    assert!(
        text.contains("stacks: ") && !text.contains("stacks: 0 rows"),
        "{text}"
    );

    // Without --stack: no ids, no table.
    let plain = recording_dir("nostacks");
    let mut recorder = start_recorder(&plain, &["--netns", &hosts.b.name, "--duration", "1"]);
    hosts
        .a
        .exec("ping", &["-q", "-c", "1", &hosts.b_ip])
        .unwrap();
    assert!(recorder.wait().unwrap().success());
    assert!(!plain.join("stacks.parquet").exists());
    let ids = duckdb_i64(
        &plain,
        "SELECT count(stack_id) FROM read_parquet('{dir}/events-*.parquet')",
    )
    .unwrap();
    assert_eq!(ids, 0);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&plain).unwrap();
}
