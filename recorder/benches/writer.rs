//! Benchmark of the recorder's userspace path: raw `SkbEvent`s -> Arrow
//! batches -> the open segment's parts (complete zstd Parquet files) ->
//! closed segment (the parts' row groups copied into one file), on one core (the writer thread's whole job), with a
//! realistic event mix. Run:
//!
//!     cargo bench -p nft-recorder --bench writer [-- EVENTS]
//!
//! Prints events/s, bytes per event on disk and peak RSS. Figures go to
//! docs/benchmarks.md.

use std::time::Instant;

use nft_recorder::writer::batch::{events_batch, Names};
use nft_recorder::writer::segments::SegmentWriter;
use nft_schema::raw::{EventKind, SkbEvent, PROBE_KFREE_SKB};

/// A packet's path: the probes a forwarded or delivered packet passes.
const PATH: [u32; 9] = [4, 5, 6, 8, 9, 10, 1, 0, 2];

/// Deterministic xorshift, so every run sees the same events.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn mapped(a: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[10] = 0xff;
    out[11] = 0xff;
    out[12..].copy_from_slice(&a.to_be_bytes());
    out
}

/// `n` events: 2000 flows, each packet walking PATH (one in 50 dropped at
/// kfree_skb instead of consumed), timestamps a few µs apart, skb addresses
/// reused from a pool like the slab does.
fn events(n: usize) -> Vec<SkbEvent> {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut out = Vec::with_capacity(n);
    let mut ts = 1_000_000_000u64;
    while out.len() < n {
        let flow = (rng.next() % 2000) as u32;
        let skb = 0xffff_8880_1000_0000 + (rng.next() % 4096) * 256;
        let drop = rng.next().is_multiple_of(50);
        let id = (rng.next() & 0xffff) as u16;
        for (hop, probe) in PATH.iter().enumerate() {
            let last = hop == PATH.len() - 1;
            ts += 200 + rng.next() % 3000;
            out.push(SkbEvent {
                ts_ns: ts,
                skb,
                location: if last && drop {
                    0xffff_ffff_8190_0000 + (flow as u64 % 7) * 64
                } else {
                    0
                },
                saddr: mapped(0x0a00_0000 | (flow % 250)),
                daddr: mapped(0x0a01_0000 | (flow % 40)),
                probe_id: if last && drop {
                    PROBE_KFREE_SKB
                } else {
                    *probe
                },
                cpu: flow % 2,
                netns: 4026531840,
                ifindex: 2 + (hop as u32 % 3),
                mark: 0,
                len: 60 + flow % 1400,
                drop_reason: if last && drop { 6 } else { 0 },
                protocol: 0x0800,
                sport: 30000 + (flow % 20000) as u16,
                dport: [443, 80, 53, 22][flow as usize % 4],
                ip_id: id,
                l4_proto: if flow % 4 == 2 { 17 } else { 6 },
                tcp_flags: 0x10,
                icmp_type: 0,
                icmp_code: 0,
                ip_version: 4,
                kind: EventKind::Tracepoint as u8,
                _pad: [0; 2],
                stack: 0,
            });
            if out.len() == n {
                break;
            }
        }
    }
    out
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    let input = events(n);
    let mut names = Names::default();
    for (i, p) in ["consume_skb", "kfree_skb"].iter().enumerate() {
        names.probes.insert(i as u32, format!("skb:{p}"));
    }
    for id in 2..=12 {
        names.probes.insert(id, format!("net:probe_{id}"));
    }
    names.probes.insert(PROBE_KFREE_SKB, "skb:kfree_skb".into());
    names.drop_reasons.insert(6, "NETFILTER_DROP".into());

    let dir = std::env::temp_dir().join(format!("nft-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut segments = SegmentWriter::new(&dir);
    // The drain thread hands over chunks of 16 Ki events.
    let start = Instant::now();
    for chunk in input.chunks(16 * 1024) {
        let batch = events_batch(chunk, &[], &names).unwrap();
        segments.write(&batch).unwrap();
    }
    segments.flush().unwrap();
    let encode = start.elapsed();
    let open_bytes = segments.bytes_on_disk();
    segments.rotate().unwrap();
    let total = start.elapsed();
    let bytes = segments.bytes_on_disk();
    std::fs::remove_dir_all(&dir).unwrap();

    let secs = total.as_secs_f64();
    println!("events             {n}");
    println!(
        "raw -> parts       {:.2} s ({:.2} M events/s)",
        encode.as_secs_f64(),
        n as f64 / encode.as_secs_f64() / 1e6
    );
    println!(
        "raw -> Parquet     {:.2} s ({:.2} M events/s, one core)",
        secs,
        n as f64 / secs / 1e6
    );
    println!(
        "bytes on disk      {bytes} ({:.2} bytes/event)",
        bytes as f64 / n as f64
    );
    println!(
        "open segment       {open_bytes} ({:.2} bytes/event as parts)",
        open_bytes as f64 / n as f64
    );
    println!(
        "peak RSS           {} MiB (input events alone: {} MiB)",
        peak_rss_kib() / 1024,
        (n * std::mem::size_of::<SkbEvent>()) >> 20
    );
}
