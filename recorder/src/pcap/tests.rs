//! The translation checked against libpcap's own interpreter: every
//! expression, compiled for both layers, runs on a userspace eBPF VM
//! (rbpf) over packets of many kinds, and must say what libpcap says.

use super::*;
use nft_schema::raw::PCAP_PACKET_BYTES;

/// Ethernet + IPv4 + L4 (`proto` 6 TCP with `flags`, 17 UDP, 1 ICMP echo).
fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut l4 = match proto {
        6 => {
            let mut t = vec![0u8; 20];
            t[0..2].copy_from_slice(&sport.to_be_bytes());
            t[2..4].copy_from_slice(&dport.to_be_bytes());
            t[12] = 5 << 4;
            t[13] = flags;
            t
        }
        17 => {
            let mut u = vec![0u8; 8];
            u[0..2].copy_from_slice(&sport.to_be_bytes());
            u[2..4].copy_from_slice(&dport.to_be_bytes());
            u
        }
        _ => vec![8, 0, 0, 0, 0x12, 0x34, 0, 1],
    };
    l4.extend_from_slice(&[0xab; 24]);
    let mut ip = vec![0x45, 0, 0, 0, 0x1c, 0x2b, 0x40, 0, 64, proto, 0, 0];
    let total = (20 + l4.len()) as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    ip.extend(l4);
    ether(0x0800, ip)
}

fn ipv6(src_last: u8, dst_last: u8, next: u8, sport: u16, dport: u16) -> Vec<u8> {
    let mut l4 = vec![0u8; 20];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    if next == 58 {
        l4[0] = 128; // echo request
    }
    let mut ip = vec![0x60, 0, 0, 0, 0, l4.len() as u8, next, 64];
    for last in [src_last, dst_last] {
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[15] = last;
        ip.extend_from_slice(&a);
    }
    ip.extend(l4);
    ether(0x86dd, ip)
}

fn ether(ethertype: u16, payload: Vec<u8>) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0xb, 0x02, 0, 0, 0, 0, 0xa];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend(payload);
    f
}

fn packets() -> Vec<Vec<u8>> {
    let (a, b, ten) = ([192, 168, 7, 1], [192, 168, 7, 2], [10, 1, 2, 3]);
    let mut v = vec![
        ipv4(a, b, 6, 40000, 80, 0x02),
        ipv4(a, b, 6, 40000, 443, 0x12),
        ipv4(b, a, 6, 443, 40000, 0x10),
        ipv4(ten, b, 6, 40001, 80, 0x02),
        ipv4(a, b, 6, 40002, 22, 0x04),
        ipv4(a, b, 17, 5353, 53, 0),
        ipv4(a, ten, 17, 1000, 8000, 0),
        ipv4(a, b, 1, 0, 0, 0),
        ipv6(1, 2, 6, 40000, 80),
        ipv6(1, 2, 17, 9, 53),
        ipv6(2, 1, 58, 0, 0),
        ether(0x0806, vec![0, 1, 8, 0, 6, 4, 0, 1]),
    ];
    // A long packet (loads near the copy's end) and a runt.
    let mut long = ipv4(a, b, 6, 1, 80, 0x18);
    long.resize(400, 0x5a);
    v.push(long);
    v.push(vec![0x02, 0, 0]);
    v
}

const EXPRESSIONS: &[&str] = &[
    "ip",
    "ip6",
    "arp",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "host 192.168.7.1",
    "src host 192.168.7.2",
    "dst net 10.0.0.0/8",
    "not net 10.0.0.0/8",
    "port 80",
    "tcp port 443",
    "udp dst port 53",
    "portrange 8000-8080",
    "tcp and (port 80 or port 443) and not net 10.0.0.0/8",
    "tcp[tcpflags] & tcp-syn != 0",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)",
    "tcp[tcpflags] & tcp-rst != 0",
    "icmp[icmptype] == icmp-echo",
    "ip6 and tcp port 80",
    "ether proto 0x0800",
    "ether host 02:00:00:00:00:0a",
    "greater 100",
    "less 60",
    "ip[8] == 64",
    "ip[2:2] > 50",
    "tcp[2:2] == 80 or udp[2:2] == 53",
    "vlan",
    "ip6 host fd00::2",
];

/// Every instruction is reached from the first, as the kernel's verifier
/// demands (rbpf does not check it).
fn assert_all_reachable(expr: &str, program: &[Insn]) {
    let mut reached = vec![false; program.len()];
    let mut todo = vec![0usize];
    while let Some(pc) = todo.pop() {
        if pc >= program.len() || reached[pc] {
            continue;
        }
        reached[pc] = true;
        let i = program[pc];
        let class = i.code & 0x07;
        let jump = class == 0x05 || class == 0x06;
        let target = (pc as i64 + 1 + i.off as i64) as usize;
        match (jump, i.code & 0xf0) {
            (true, 0x90) => {}                 // exit
            (true, 0x00) => todo.push(target), // goto
            (true, _) => todo.extend([pc + 1, target]),
            _ => todo.push(pc + 1),
        }
    }
    let unreached: Vec<usize> = (0..program.len()).filter(|n| !reached[*n]).collect();
    assert!(unreached.is_empty(), "{expr}: unreachable {unreached:?}");
}

/// Our eBPF for `program` on `packet`, under rbpf: the packet copied into
/// a buffer of the probes' size, r2 and r3 set as the probes set them.
fn run_ebpf(program: &[Insn], packet: &[u8]) -> bool {
    let caplen = packet.len().min(PCAP_PACKET_BYTES);
    let mut buf = vec![0u8; PCAP_PACKET_BYTES];
    buf[..caplen].copy_from_slice(&packet[..caplen]);
    let mov = |reg: u8, v: usize| Insn {
        code: 0xb7,
        regs: reg,
        off: 0,
        imm: v as i32,
    };
    let bytes: Vec<u8> = [mov(2, caplen), mov(3, packet.len())]
        .into_iter()
        .chain(program.iter().copied())
        .flat_map(Insn::to_bytes)
        .collect();
    let vm = rbpf::EbpfVmRaw::new(Some(&bytes)).expect("rbpf accepts the program");
    vm.execute_program(&mut buf).expect("the program runs") != 0
}

#[test]
fn translated_programs_match_what_libpcap_matches() {
    let packets = packets();
    let (mut compared, mut matched) = (0, 0);
    for expr in EXPRESSIONS {
        let filter = PcapFilter::compile(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        for program in &filter.programs {
            let linktype = if program.name == "l2" {
                libpcap::DLT_EN10MB
            } else {
                libpcap::DLT_RAW
            };
            let oracle = Program::compile(expr, linktype).unwrap();
            assert_all_reachable(expr, &program.ebpf);
            for (n, frame) in packets.iter().enumerate() {
                // The L3 program reads from the IP header.
                let packet = match program.name {
                    "l2" => &frame[..],
                    _ => &frame[frame.len().min(14)..],
                };
                let expected = oracle.matches(packet);
                matched += expected as usize;
                assert_eq!(
                    run_ebpf(&program.ebpf, packet),
                    expected,
                    "{expr:?} ({}) on packet {n}",
                    program.name
                );
                compared += 1;
            }
        }
    }
    // Both answers are common: the comparison can fail either way.
    assert!(compared > 500, "{compared}");
    assert!(
        matched > compared / 10 && matched < compared * 9 / 10,
        "{matched} of {compared}"
    );
}

#[test]
fn both_layers_where_the_expression_allows() {
    let f = PcapFilter::compile("tcp port 80").unwrap();
    assert_eq!(f.layers().layers, pcap_layer::L2 | pcap_layer::L3);
    let f = PcapFilter::compile("ether proto 0x0806").unwrap();
    assert_eq!(f.layers().layers, pcap_layer::L2);
    assert_eq!(f.refused.len(), 1);
    let m = f.manifest();
    assert_eq!(m.layers[0].layer, "l2");
    assert!(m.layers[0].cbpf_insns > 0 && m.layers[0].ebpf_insns > m.layers[0].cbpf_insns);
}

#[test]
fn what_cannot_run_is_refused_with_the_reason() {
    let cases = [
        ("tcp prt 80", "libpcap: can't parse filter expression"),
        ("ip broadcast", "netmask not known"),
        ("protochain 6", "a probe runs no loops"),
        ("ip[300] == 1", "beyond the first 256 bytes"),
    ];
    for (expr, why) in cases {
        let e = PcapFilter::compile(expr).unwrap_err().to_string();
        assert!(e.contains(why), "{expr}: {e}");
        assert!(e.contains(expr), "{e}");
    }
    let many: Vec<String> = (0..200)
        .map(|i| format!("host 10.0.{}.{}", i / 250, i % 250))
        .collect();
    let e = PcapFilter::compile(&many.join(" or "))
        .unwrap_err()
        .to_string();
    assert!(e.contains("the probes have room for"), "{e}");
}

#[test]
fn classic_programs_that_are_not_bpf_are_refused() {
    let ret = Cbpf {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: 1,
    };
    assert_eq!(translate::translate(&[]), Err(TranslateError::NoReturn));
    let bad = Cbpf {
        code: 0xff,
        jt: 0,
        jf: 0,
        k: 0,
    };
    assert!(matches!(
        translate::translate(&[bad, ret]),
        Err(TranslateError::Unsupported { at: 0, .. })
    ));
    // Linux's ancillary loads (SKF_AD_OFF + protocol).
    let ancillary = Cbpf {
        code: 0x28,
        jt: 0,
        jf: 0,
        k: 0xfffff000,
    };
    assert!(matches!(
        translate::check_offsets(&[ancillary, ret]),
        Err(TranslateError::Ancillary { at: 0, .. })
    ));
    let div0 = Cbpf {
        code: 0x34,
        jt: 0,
        jf: 0,
        k: 0,
    };
    assert!(matches!(
        translate::translate(&[div0, ret]),
        Err(TranslateError::BadConstant { .. })
    ));
}
