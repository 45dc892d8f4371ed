//! Filters applied in the kernel (eBPF) and in the nftrace table: IPv6
//! address, protocol and port together. Packets that do not match must not
//! appear; those that match must all appear.

use nft_tests::{duckdb, duckdb_i64, kernel_lock, recording_dir, start_recorder, TwoHosts};

#[test]
fn ipv6_host_proto_and_port_filters() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(208).unwrap();
    let (a6, b6) = ("fd00:208::1", "fd00:208::2");
    for (ns, dev, addr) in [(&hosts.a, &hosts.a_dev, a6), (&hosts.b, &hosts.b_dev, b6)] {
        ns.exec(
            "sysctl",
            &["-qw", &format!("net.ipv6.conf.{dev}.disable_ipv6=0")],
        )
        .unwrap();
        ns.exec(
            "ip",
            &["addr", "add", &format!("{addr}/64"), "dev", dev, "nodad"],
        )
        .unwrap();
    }
    // A user chain in b, so nftrace has something to report.
    hosts.b.add_counting_input_chain();
    // Neighbour discovery first, so it is not part of what we count.
    hosts
        .a
        .exec("ping", &["-q", "-c", "1", "-W", "2", b6])
        .unwrap();

    let dir = recording_dir("filters");
    let mut recorder = start_recorder(
        &dir,
        &[
            "--netns",
            &hosts.b.name,
            "--host",
            a6,
            "--proto",
            "udp",
            "--dst-port",
            "7000",
            "--duration",
            "4",
        ],
    );
    let send = |addr: &str, port: u16| {
        let cmd = format!("for i in 1 2 3; do echo x > /dev/udp/{addr}/{port}; done");
        hosts.a.exec("bash", &["-c", &cmd]).unwrap();
    };
    send(b6, 7000); // matches: 3 packets
    send(b6, 7001); // wrong port
    send(&hosts.b_ip, 7000); // IPv4: wrong host
    hosts
        .a
        .exec("ping", &["-q", "-c", "2", "-i", "0.2", b6])
        .unwrap(); // wrong proto
    assert!(recorder.wait().unwrap().success());

    let events = "read_parquet('{dir}/events-*.parquet')";
    let received = duckdb_i64(
        &dir,
        &format!("SELECT count(*) FROM {events} WHERE probe = 'net:netif_receive_skb'"),
    )
    .unwrap();
    assert_eq!(received, 3);
    let off_filter = duckdb(
        &dir,
        &format!(
            "SELECT probe, saddr, daddr, l4_proto, dport FROM {events} WHERE ip_version IS DISTINCT FROM 6 \
             OR '{a6}' NOT IN (saddr, daddr) OR l4_proto <> 17 OR dport <> 7000"
        ),
    )
    .unwrap();
    assert!(
        off_filter.is_empty(),
        "events outside the filter: {off_filter:?}"
    );
    // Unanswered UDP dies with the kernel's reason.
    let no_socket = duckdb_i64(
        &dir,
        &format!("SELECT count(*) FROM {events} WHERE drop_reason = 'NO_SOCKET'"),
    )
    .unwrap();
    assert_eq!(no_socket, 3);
    // The nftrace table matched the same packets: every message that
    // carries headers is one of them.
    let traced = duckdb(
        &dir,
        "SELECT count(*), count(*) FILTER (WHERE saddr = 'fd00:208::1' AND dport = 7000) \
         FROM read_parquet('{dir}/nftrace-*.parquet') WHERE ip_version IS NOT NULL",
    )
    .unwrap();
    assert_eq!(traced[0][0], traced[0][1], "nftrace outside the filter");
    assert_eq!(
        traced[0][0], 3,
        "each matching packet's first message carries headers"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
