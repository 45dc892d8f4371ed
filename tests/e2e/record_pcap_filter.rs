//! `record --filter EXPR` against tcpdump: one capture of mixed traffic
//! (IPv4 and IPv6, ICMP, TCP SYNs, UDP, ARP, two source networks, large
//! and small packets) on B's veth, one recorder per expression running at
//! the same time (`--no-nftrace` takes no namespace lock), and for each
//! expression the packets recorded at `net:netif_receive_skb` must be
//! exactly the packets `tcpdump -r CAPTURE EXPR` matches.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nft_tests::{
    duckdb, kernel_lock, recorder_programs_settled, recording_dir, signal, start_recorder, TwoHosts,
};

/// What identifies a received packet in both the capture and the events.
type Key = (u8, String, String, u8, u16, u16, u16, u8, u8);

/// The expressions: hosts, nets, ports, port ranges, protocols, ICMP
/// types, TCP flags, IPv6, L2, lengths, negations and parentheses.
const EXPRESSIONS: &[&str] = &[
    "icmp",
    "tcp and (port 80 or port 443) and not net 192.168.0.0/16",
    "host 192.168.209.1",
    "src net 10.209.0.0/24 and udp",
    "tcp dst portrange 440-450",
    "udp port 53 or udp port 8000",
    "tcp[tcpflags] & tcp-syn != 0",
    "icmp[icmptype] == icmp-echo",
    "ip6",
    "ip6 and icmp6",
    "ether proto 0x0806",
    "not ip6 and not tcp",
    "greater 500",
    "ip[8] == 64 and not icmp",
];

fn traffic(hosts: &TwoHosts, b6: &str) {
    // Fresh neighbours, so ARP and neighbour discovery are in the capture.
    for ns in [&hosts.a, &hosts.b] {
        ns.exec("ip", &["neigh", "flush", "all"]).unwrap();
    }
    let a = |cmd: &str| {
        let _ = hosts.a.exec("bash", &["-c", cmd]);
    };
    let b = &hosts.b_ip;
    a(&format!("ping -q -c 3 -i 0.2 {b}"));
    a(&format!("ping -q -c 2 -i 0.2 -s 900 {b}"));
    a("ping -q -c 2 -i 0.2 -I 192.168.209.1 192.168.209.2");
    a(&format!("ping -6 -q -c 2 -i 0.2 {b6}"));
    for port in [80, 443, 445, 22, 8080] {
        a(&format!("timeout 1 bash -c 'echo > /dev/tcp/{b}/{port}'"));
        a(&format!(
            "timeout 1 bash -c 'echo > /dev/tcp/192.168.209.2/{port}'"
        ));
        a(&format!("timeout 1 bash -c 'echo > /dev/tcp/{b6}/{port}'"));
    }
    for port in [53, 7000, 8000] {
        a(&format!("echo x > /dev/udp/{b}/{port}"));
        a(&format!("echo x > /dev/udp/{b6}/{port}"));
    }
}

/// The key of an Ethernet frame, as the recorder records its fields.
fn frame_key(f: &[u8]) -> Key {
    let none = (0, String::new(), String::new(), 0, 0, 0, 0, 0, 0);
    if f.len() < 14 {
        return none;
    }
    let ip = &f[14..];
    let ethertype = u16::from_be_bytes([f[12], f[13]]);
    let (version, src, dst, proto, l4, id) = match ethertype {
        0x0800 if ip.len() >= 20 => {
            let ihl = (ip[0] & 0x0f) as usize * 4;
            let s = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]).to_string();
            let d = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]).to_string();
            let id = u16::from_be_bytes([ip[4], ip[5]]);
            (4, s, d, ip[9], &ip[ihl.min(ip.len())..], id)
        }
        0x86dd if ip.len() >= 40 => {
            let addr = |b: &[u8]| Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap()).to_string();
            (6, addr(&ip[8..24]), addr(&ip[24..40]), ip[6], &ip[40..], 0)
        }
        _ => return none,
    };
    let port = |at: usize| {
        l4.get(at..at + 2)
            .map_or(0, |p| u16::from_be_bytes([p[0], p[1]]))
    };
    let (sport, dport, flags, icmp) = match proto {
        6 => (port(0), port(2), l4.get(13).copied().unwrap_or(0), 0),
        17 => (port(0), port(2), 0, 0),
        1 | 58 => (0, 0, 0, l4.first().copied().unwrap_or(0)),
        _ => (0, 0, 0, 0),
    };
    (version, src, dst, proto, sport, dport, id, icmp, flags)
}

/// Every frame of a pcap file (Ethernet link type).
fn pcap_frames(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap();
    assert!(data.len() >= 24, "{} is not a pcap file", path.display());
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let incl = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        out.push(data[at + 16..at + 16 + incl].to_vec());
        at += 16 + incl;
    }
    out
}

fn counts(keys: impl IntoIterator<Item = Key>) -> BTreeMap<Key, usize> {
    let mut m = BTreeMap::new();
    for k in keys {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

fn recorded(dir: &Path) -> BTreeMap<Key, usize> {
    let sql = format!(
        "SELECT coalesce(ip_version, 0), coalesce(saddr, ''), coalesce(daddr, ''), \
         coalesce(l4_proto, 0), coalesce(sport, 0), coalesce(dport, 0), coalesce(ip_id, 0), \
         coalesce(icmp_type, 0), coalesce(tcp_flags, 0) \
         FROM read_parquet('{}/events-*.parquet') WHERE probe = 'net:netif_receive_skb'",
        dir.display()
    );
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    counts(duckdb(dir, &sql).unwrap().iter().map(|r| {
        let s = |i: usize| r[i].as_str().unwrap_or_default().to_string();
        (
            n(&r[0]) as u8,
            s(1),
            s(2),
            n(&r[3]) as u8,
            n(&r[4]) as u16,
            n(&r[5]) as u16,
            n(&r[6]) as u16,
            n(&r[7]) as u8,
            n(&r[8]) as u8,
        )
    }))
}

fn tcpdump_capture(hosts: &TwoHosts, file: &Path) -> Child {
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &hosts.b.name,
            "tcpdump",
            "-i",
            &hosts.b_dev,
        ])
        .args(["--immediate-mode", "-Q", "in", "-U", "-s", "0", "-w"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // tcpdump says "listening on" once its socket is open.
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let start = Instant::now();
    while !String::from_utf8_lossy(&seen).contains("listening on") {
        let mut buf = [0u8; 256];
        let n = std::io::Read::read(&mut stderr, &mut buf).unwrap();
        assert!(
            n > 0 && start.elapsed() < Duration::from_secs(10),
            "tcpdump did not start"
        );
        seen.extend_from_slice(&buf[..n]);
    }
    // Keep reading: a closed pipe would kill tcpdump at its next message.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    child
}

fn two_networks(hosts: &TwoHosts) -> String {
    let b6 = "fd00:209::2";
    for (ns, dev, v4, v6) in [
        (&hosts.a, &hosts.a_dev, "192.168.209.1/24", "fd00:209::1/64"),
        (&hosts.b, &hosts.b_dev, "192.168.209.2/24", b6),
    ] {
        // No router solicitations: sent on their own timer, they could
        // fall between the capture's start or end and the recorders'.
        for setting in ["router_solicitations=0", "disable_ipv6=0"] {
            ns.exec(
                "sysctl",
                &["-qw", &format!("net.ipv6.conf.{dev}.{setting}")],
            )
            .unwrap();
        }
        ns.exec("ip", &["addr", "add", v4, "dev", dev]).unwrap();
        let v6 = if v6.contains('/') {
            v6.to_string()
        } else {
            format!("{v6}/64")
        };
        ns.exec("ip", &["addr", "add", &v6, "dev", dev, "nodad"])
            .unwrap();
    }
    b6.to_string()
}

/// The recorders of one test, one per expression; killed if the test
/// fails before it stops them (they run until told to).
struct Recorders(Vec<(&'static str, std::path::PathBuf, Child)>);

impl Drop for Recorders {
    fn drop(&mut self) {
        for (_, _, child) in &mut self.0 {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

#[test]
fn recorded_packets_are_the_ones_tcpdump_matches() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(209).unwrap();
    let b6 = two_networks(&hosts);
    let mut recorders = Recorders(
        EXPRESSIONS
            .iter()
            .enumerate()
            .map(|(i, expr)| {
                let dir = recording_dir(&format!("pcap-{i}"));
                let args = [
                    "--netns",
                    &hosts.b.name,
                    "--no-nftrace",
                    "--backend",
                    "tracepoint",
                    "--tracepoint",
                    "netif_receive_skb",
                    "--ringbuf-size",
                    "262144",
                    "--filter",
                    expr,
                ];
                let child = start_recorder(&dir, &args);
                (*expr, dir, child)
            })
            .collect(),
    );
    let capture = recording_dir("pcap-capture").with_extension("pcap");
    let mut tcpdump = tcpdump_capture(&hosts, &capture);
    traffic(&hosts, &b6);
    std::thread::sleep(Duration::from_millis(300));
    signal(&tcpdump, libc::SIGINT);
    tcpdump.wait().unwrap();
    // Every recorder stopped at once, right after the capture.
    for (_, _, child) in &recorders.0 {
        signal(child, libc::SIGINT);
    }
    for (expr, _, child) in &mut recorders.0 {
        assert!(child.wait().unwrap().success(), "{expr}");
    }
    let frames = pcap_frames(&capture);
    assert!(frames.len() >= 30, "{} frames captured", frames.len());
    for (expr, dir, _) in &recorders.0 {
        let (expr, dir) = (*expr, dir.as_path());
        let matched = recording_dir("pcap-matched").with_extension("pcap");
        let out = Command::new("tcpdump")
            .args(["-r"])
            .arg(&capture)
            .arg("-w")
            .arg(&matched)
            .arg(expr)
            .output()
            .unwrap();
        assert!(out.status.success(), "tcpdump -r {expr}: {out:?}");
        let expected = counts(pcap_frames(&matched).iter().map(|f| frame_key(f)));
        let got = recorded(dir);
        assert!(!expected.is_empty(), "{expr}: the traffic has no match");
        assert_eq!(got, expected, "{expr}: recorded vs tcpdump");
        let program = &nft_tests::manifest(dir)["filter_program"];
        assert_eq!(program["expression"], expr);
        assert!(program["layers"][0]["ebpf_insns"].as_u64().unwrap() > 0);
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_file(&matched);
    }
    let _ = std::fs::remove_file(&capture);
    assert_eq!(recorder_programs_settled(0), 0);
}

/// nft has no match for a pcap-filter expression, so the recorder's table
/// marks every packet and the receiver keeps only the messages whose
/// headers libpcap matches: the nftrace rows are those of the matching
/// packets, every message of their traces.
#[test]
fn nftrace_messages_are_matched_by_libpcap() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(210).unwrap();
    hosts.b.add_counting_input_chain();
    hosts
        .a
        .exec("ping", &["-q", "-c", "1", &hosts.b_ip])
        .unwrap();
    let dir = recording_dir("pcap-nftrace");
    let mut recorder = start_recorder(
        &dir,
        &[
            "--netns",
            &hosts.b.name,
            "--backend",
            "tracepoint",
            "--tracepoint",
            "netif_receive_skb",
            "--filter",
            "udp dst port 53",
        ],
    );
    let b = &hosts.b_ip;
    let cmd = format!(
        "for p in 53 7000 53 7000 53; do echo x > /dev/udp/{b}/$p; done; ping -q -c 2 -i 0.2 {b}"
    );
    hosts.a.exec("bash", &["-c", &cmd]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    signal(&recorder, libc::SIGINT);
    assert!(recorder.wait().unwrap().success());
    let nftrace = |filter: &str| {
        nft_tests::duckdb_i64(
            &dir,
            &format!(
                "SELECT count(*) FROM read_parquet('{{dir}}/nftrace-*.parquet') \
                 WHERE \"table\" = 'fw' AND {filter}"
            ),
        )
        .unwrap()
    };
    // The kernel puts the headers in a trace's first message only; the
    // rest of the trace (the rule, the policy) follows it.
    assert_eq!(nftrace("l4_proto = 17 AND dport = 53"), 3);
    assert_eq!(
        nftrace("l4_proto IS NOT NULL AND NOT (l4_proto = 17 AND dport = 53)"),
        0
    );
    assert_eq!(nftrace("type = 'policy'"), 3);
    assert_eq!(
        nftrace("trace_id NOT IN (SELECT trace_id FROM read_parquet('{dir}/nftrace-*.parquet') WHERE dport = 53)"),
        0
    );
    let events = nft_tests::duckdb_i64(
        &dir,
        "SELECT count(*) FROM read_parquet('{dir}/events-*.parquet') WHERE dport = 53",
    )
    .unwrap();
    assert_eq!(events, 3);
    let _ = std::fs::remove_dir_all(&dir);
}
