//! Proves the toolchain end to end on the host kernel: the embedded eBPF
//! object (Rust, aya-ebpf, bpf-linker) loads, a tp_btf program attaches to
//! `net:netif_receive_skb`, real traffic between two network namespaces
//! produces events through the ring buffer, and the fields read through
//! BTF offsets match what the kernel and ping say.

use std::time::Duration;

use nft_recorder::{
    drain::{EventReader, LossCounters},
    kernel::{btf::KernelBtf, netns::netns_inode},
    loader::{LoadOptions, LoadedObject},
    sources::tracepoint::{self, TracepointProbe},
};
use nft_schema::raw::{names::tp_slot_program, EventKind, ProbeConfig};
use nft_tests::{kernel_lock, TwoHosts};

const PINGS: usize = 20;
/// ICMP payload size: the echo requests are 20 (IPv4) + 8 (ICMP) + 1000.
const PAYLOAD: usize = 1000;
const ETH_P_IP: u16 = 0x0800;
/// Slot 7 of the skb-argument-0 programs: its events carry probe id 7.
const SLOT: u32 = 7;

#[test]
fn netif_receive_skb_events_match_traffic_and_kernel_counters() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(201).unwrap();
    let b_netns = netns_inode(&hosts.b.path()).unwrap();
    let b_ifindex = hosts.b.sysfs_u64(&hosts.b_dev, "ifindex").unwrap() as u32;

    // Offsets from the running kernel's BTF, via btf-rs.
    let (offsets, missing) = KernelBtf::running().unwrap().kernel_offsets().unwrap();
    assert!(missing.is_empty(), "fields missing from BTF: {missing:?}");
    let aya_btf = aya::Btf::from_sys_fs().unwrap();
    let mut config = ProbeConfig::unfiltered();
    config.netns[0] = b_netns;
    config.netns_count = 1;
    let mut obj = LoadedObject::load(&LoadOptions {
        offsets,
        config,
        ringbuf_bytes: 1 << 20,
        btf: Some(&aya_btf),
        tracked_skbs: 1,
        stacks: 1,
        filter: None,
    })
    .unwrap();
    let mut reader = EventReader::take(&mut obj).unwrap();
    let losses = LossCounters::take(&mut obj).unwrap();
    let probe = TracepointProbe {
        tracepoint: "netif_receive_skb".into(),
        skb_arg: 0,
        probe_id: SLOT,
        program: tp_slot_program(0, SLOT),
    };
    tracepoint::attach(&mut obj, &probe, &aya_btf).unwrap();

    let rx_before = hosts
        .b
        .sysfs_u64(&hosts.b_dev, "statistics/rx_packets")
        .unwrap();
    let ping = hosts
        .a
        .exec(
            "ping",
            &[
                "-q",
                "-c",
                &PINGS.to_string(),
                "-i",
                "0.01",
                "-W",
                "2",
                "-s",
                &PAYLOAD.to_string(),
                &hosts.b_ip,
            ],
        )
        .unwrap();
    let summary = String::from_utf8_lossy(&ping.stdout);
    assert!(
        summary.contains(&format!("{PINGS} received")),
        "ping lost packets: {summary}"
    );
    // Let the last softirq run before reading the counters.
    std::thread::sleep(Duration::from_millis(200));
    let rx_after = hosts
        .b
        .sysfs_u64(&hosts.b_dev, "statistics/rx_packets")
        .unwrap();

    let mut drained = nft_recorder::drain::Drained::default();
    reader.drain_into(&mut drained).unwrap();
    let events = drained.events;
    drop(obj); // detach before asserting, so nothing else arrives
    let lost = losses.read(&[SLOT]).unwrap();
    assert!(lost.is_empty(), "lost events: {lost:?}");

    // Only namespace b's packets pass the in-kernel netns filter.
    assert!(!events.is_empty(), "no events at all");
    for e in &events {
        assert_eq!(e.netns, b_netns, "event from another namespace: {e:?}");
        assert_eq!(e.probe_id, SLOT);
        assert_eq!(e.kind, EventKind::Tracepoint as u8);
        assert_ne!(e.skb, 0);
        assert_ne!(e.ts_ns, 0);
    }

    // Oracle 1: the kernel's own receive counter of veth-b. Every packet it
    // counted went through netif_receive_skb exactly once.
    let on_b = events.iter().filter(|e| e.ifindex == b_ifindex).count() as u64;
    assert_eq!(
        on_b,
        rx_after - rx_before,
        "events vs rx_packets of {}",
        hosts.b_dev
    );
    assert_eq!(
        on_b as usize,
        events.len(),
        "events on other interfaces of b"
    );

    // Oracle 2: ping. Exactly PINGS IPv4 packets of the echo request's size,
    // with skb->len read through the BTF offset.
    let echo_len = (20 + 8 + PAYLOAD) as u32;
    let echo_requests = events
        .iter()
        .filter(|e| e.protocol == ETH_P_IP && e.len == echo_len)
        .count();
    assert_eq!(echo_requests, PINGS, "events: {events:#?}");
    // Headers parsed through skb->head + network_header (BTF offsets).
    let a_ip: std::net::Ipv4Addr = hosts.a_ip.parse().unwrap();
    let b_ip: std::net::Ipv4Addr = hosts.b_ip.parse().unwrap();
    let icmp_echo = events.iter().filter(|e| e.len == echo_len).all(|e| {
        e.ip_version == 4
            && e.l4_proto == 1
            && e.icmp_type == 8
            && e.saddr == a_ip.to_ipv6_mapped().octets()
            && e.daddr == b_ip.to_ipv6_mapped().octets()
    });
    assert!(icmp_echo, "echo requests not parsed: {events:#?}");
}
