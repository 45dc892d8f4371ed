//! Synthetic recordings at scale, for the analyzer's benchmark: a realistic
//! mix of packets with function paths of 20–100 hops, nftables chain entries
//! and rule verdicts (some repeated within the dedup window), drops with
//! reasons, and skb addresses reused from a small pool, interleaved in time
//! as concurrent packets are in a real recording. Written with the schema
//! crate's schemas as zstd Parquet segments plus a manifest, exactly like
//! the recorder's output.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, DictionaryArray, Int32Array, RecordBatch, StringArray, UInt16Array, UInt32Array,
    UInt64Array, UInt8Array,
};
use arrow::datatypes::Int32Type;
use nft_schema::manifest::{Manifest, MANIFEST_FILE};
use nft_schema::tables;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// Kernel functions a path is drawn from (receive, netfilter, local in,
/// forward, output, transmit), in path order.
const FUNCTIONS: &[&str] = &[
    "napi_gro_receive",
    "dev_gro_receive",
    "__netif_receive_skb",
    "__netif_receive_skb_core",
    "__netif_receive_skb_one_core",
    "ip_rcv",
    "ip_rcv_core",
    "nf_hook_slow",
    "nft_do_chain_ipv4",
    "ip_rcv_finish",
    "ip_route_input_noref",
    "ip_route_input_slow",
    "fib_validate_source",
    "ip_local_deliver",
    "ip_local_deliver_finish",
    "ip_protocol_deliver_rcu",
    "raw_local_deliver",
    "tcp_v4_rcv",
    "tcp_v4_do_rcv",
    "tcp_rcv_established",
    "tcp_queue_rcv",
    "tcp_data_queue",
    "udp_rcv",
    "__udp4_lib_rcv",
    "udp_unicast_rcv_skb",
    "udp_queue_rcv_skb",
    "icmp_rcv",
    "ip_forward",
    "ip_forward_finish",
    "ip_output",
    "ip_finish_output",
    "__ip_finish_output",
    "ip_finish_output2",
    "neigh_resolve_output",
    "dev_queue_xmit",
    "__dev_queue_xmit",
    "validate_xmit_skb",
    "netif_skb_features",
    "skb_csum_hwoffload_help",
    "dev_hard_start_xmit",
    "sch_direct_xmit",
    "pfifo_fast_enqueue",
    "pfifo_fast_dequeue",
    "veth_xmit",
    "__dev_forward_skb",
    "eth_type_trans",
    "netif_rx",
    "skb_clone",
    "tcp_v4_early_demux",
    "ip_local_out",
    "__ip_local_out",
    "ip_queue_xmit",
    "__ip_queue_xmit",
    "tcp_transmit_skb",
    "__tcp_transmit_skb",
    "skb_push",
    "skb_pull_rcsum",
    "inet_gro_receive",
    "tcp4_gro_receive",
    "tcp_gro_receive",
    "udp4_gro_receive",
    "skb_gro_receive",
    "napi_skb_finish",
    "ipv4_dst_check",
    "nf_conntrack_in",
    "nf_ct_get_tuple",
    "nf_nat_inet_fn",
    "nf_nat_ipv4_pre_routing",
    "ipt_do_table",
    "selinux_ip_postroute",
    "ip_sabotage_in",
    "skb_ensure_writable",
    "__skb_checksum_complete",
    "tcp_filter",
    "sk_filter_trim_cap",
    "tcp_add_backlog",
    "tcp_ack",
    "tcp_clean_rtx_queue",
    "tcp_event_data_recv",
    "skb_copy_datagram_iter",
];
const TRACEPOINTS: &[&str] = &[
    "net:netif_receive_skb",
    "net:napi_gro_receive_entry",
    "net:net_dev_queue",
    "net:net_dev_start_xmit",
    "net:net_dev_xmit",
];
const DROP_REASONS: &[&str] = &["NETFILTER_DROP", "NO_SOCKET", "TCP_CSUM", "OTHERHOST"];
const CHAINS: &[&str] = &["prerouting", "input", "forward", "output"];
const VERDICTS: &[&str] = &["continue", "continue", "continue", "accept", "jump"];

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub events: u64,
    /// Distinct skb addresses (reuse happens when packets outnumber them).
    pub skb_pool: u64,
    /// Packets in flight at once (their events interleave).
    pub concurrency: usize,
    /// Rows per Parquet segment.
    pub segment_rows: usize,
    pub seed: u64,
    /// The manifest's host (a fleet of synthetic boxes).
    pub host: String,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            events: 10_000_000,
            skb_pool: 65_536,
            concurrency: 256,
            segment_rows: 4 << 20,
            seed: 1,
            host: "synthetic".into(),
        }
    }
}

/// What was generated, for checking the analyzer's counts.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Generated {
    pub events: u64,
    pub packets: u64,
    pub duplicates: u64,
    pub drops: u64,
}

/// xorshift64*: deterministic, fast, and good enough for a workload mix
/// (pulling in `rand` for this alone is not worth a dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An nft event: (event: 0 chain entry / 1 rule eval, chain, rule handle,
/// verdict), as indices into the name lists above.
type NftCols = (u32, u32, u64, u32);

/// One event row, before it becomes columns.
#[derive(Clone, Default)]
struct Row {
    ts: u64,
    skb: u64,
    probe: u32,
    kind: u32,
    cpu: u32,
    len: u32,
    saddr: u32,
    daddr: u32,
    l4: u8,
    sport: u16,
    dport: u16,
    ip_id: u16,
    drop: Option<u32>,
    nft: Option<NftCols>,
    /// A repeated verdict: it comes 1 µs after the packet's previous event.
    dup: bool,
}

/// Writes a synthetic recording into `dir` (created).
pub fn generate(dir: &Path, spec: &Spec) -> std::io::Result<Generated> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng(spec.seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let probe_names: Vec<&str> = TRACEPOINTS.iter().chain(FUNCTIONS).copied().collect();
    let mut generated = Generated::default();
    let mut rows: Vec<Row> = Vec::with_capacity(spec.segment_rows);
    let mut segments = Vec::new();
    let mut clock: u64 = 1_000_000_000_000;
    let mut wave_no = 0u64;
    while generated.events < spec.events {
        // A wave of concurrent packets whose events interleave in time. Each
        // wave takes half its addresses from the previous one (freed by
        // then): addresses are reused as the kernel's slab reuses them.
        let mut wave: Vec<Vec<Row>> = Vec::with_capacity(spec.concurrency);
        for i in 0..spec.concurrency as u64 {
            let slot = (wave_no * (spec.concurrency as u64 / 2) + i) % spec.skb_pool;
            let skb = 0xffff_8880_0000_0000 + slot * 256;
            wave.push(packet(&mut rng, skb, &mut generated));
        }
        wave_no += 1;
        let longest = wave.iter().map(Vec::len).max().unwrap_or(0);
        let mut last_ts = vec![0u64; wave.len()];
        for hop in 0..longest {
            for (p, last) in wave.iter_mut().zip(last_ts.iter_mut()) {
                if let Some(row) = p.get_mut(hop) {
                    // 100-300 ns between events: about 5 M events/s, a
                    // busy recording. A packet's next hop comes after one
                    // event of each concurrent packet (~50 µs); a repeated
                    // verdict 1 µs after the packet's previous event, so
                    // it is written later than events with later times,
                    // as the ring buffer may do.
                    clock += 100 + rng.below(201);
                    let mut row = std::mem::take(row);
                    row.ts = if row.dup { *last + 1_000 } else { clock };
                    *last = row.ts;
                    rows.push(row);
                    generated.events += 1;
                    if rows.len() == spec.segment_rows {
                        segments.push(write_segment(dir, segments.len() + 1, &rows, &probe_names)?);
                        rows.clear();
                    }
                }
            }
        }
        clock += 1000;
    }
    if !rows.is_empty() {
        segments.push(write_segment(dir, segments.len() + 1, &rows, &probe_names)?);
    }
    write_dimensions(dir, &probe_names)?;
    let manifest = Manifest {
        schema_version: nft_schema::SCHEMA_VERSION,
        tool_version: "synth".into(),
        host: spec.host.clone(),
        kernel_release: "synthetic".into(),
        monotonic_to_unix_ns: 0,
        started_ns: 1_000_000_000_000,
        stopped_ns: Some(clock),
        command_line: vec!["synth".into()],
        backend: "synthetic".into(),
        segments,
        events: generated.events,
        end: "duration".into(),
        ended_cleanly: true,
        ..Manifest::default()
    };
    std::fs::write(
        dir.join(MANIFEST_FILE),
        manifest.to_json().map_err(std::io::Error::other)?,
    )?;
    Ok(generated)
}

/// One packet's events (timestamps are set when the wave interleaves).
fn packet(rng: &mut Rng, skb: u64, g: &mut Generated) -> Vec<Row> {
    let flow = rng.below(4096) as u32;
    let base = Row {
        skb,
        cpu: (rng.below(2)) as u32,
        len: 60 + rng.below(1400) as u32,
        saddr: 0x0a00_0000 | (flow & 0xff),
        daddr: 0x0a01_0000 | (flow >> 8),
        l4: if flow.is_multiple_of(5) { 17 } else { 6 },
        sport: 1024 + (flow as u16 % 60000),
        dport: [80, 443, 22, 53, 8080][(flow % 5) as usize],
        ip_id: rng.below(65536) as u16,
        ..Row::default()
    };
    let hops = 20 + rng.below(81) as usize;
    let mut out = Vec::with_capacity(hops + 8);
    let n_tp = TRACEPOINTS.len() as u32;
    let mut f = rng.below(8) as usize;
    let first_chain = rng.below(CHAINS.len() as u64) as u32;
    for i in 0..hops {
        let mut r = base.clone();
        if i % 10 == 0 {
            r.probe = (i / 10 % TRACEPOINTS.len()) as u32;
            r.kind = 0;
        } else {
            f = (f + 1 + rng.below(3) as usize) % FUNCTIONS.len();
            r.probe = n_tp + f as u32;
            r.kind = 1;
        }
        out.push(r);
        // nftables: a chain with a few rules at two points of the path.
        if i == 6 || i == hops / 2 {
            // Two different chains, so only the intended repeats are
            // duplicates.
            let chain = (first_chain + u32::from(i != 6)) % CHAINS.len() as u32;
            let mut entry = base.clone();
            entry.nft = Some((0, chain, 0, 0));
            out.push(entry);
            for rule in 0..1 + rng.below(4) {
                let mut r = base.clone();
                let verdict = rng.below(VERDICTS.len() as u64) as u32;
                r.nft = Some((1, chain, 10 + rule, verdict));
                out.push(r.clone());
                if rng.below(10) == 0 {
                    // The same verdict again, right after: a duplicate.
                    r.dup = true;
                    out.push(r);
                    g.duplicates += 1;
                }
            }
        }
    }
    let mut last = base.clone();
    if rng.below(10) == 0 {
        last.probe = u32::MAX; // skb:kfree_skb
        last.drop = Some(rng.below(DROP_REASONS.len() as u64) as u32);
        g.drops += 1;
    } else {
        last.probe = u32::MAX - 1; // skb:consume_skb
    }
    last.kind = 0;
    out.push(last);
    g.packets += 1;
    out
}

fn dict(keys: Vec<Option<i32>>, values: &[&str]) -> ArrayRef {
    Arc::new(
        DictionaryArray::<Int32Type>::try_new(
            Int32Array::from(keys),
            Arc::new(StringArray::from(values.to_vec())),
        )
        .expect("keys are in range"),
    )
}

fn write_segment(dir: &Path, n: usize, rows: &[Row], probes: &[&str]) -> std::io::Result<String> {
    let mut probe_values: Vec<&str> = probes.to_vec();
    probe_values.extend(["skb:consume_skb", "skb:kfree_skb", "nft_do_chain"]);
    let probe_count = probes.len() as i32;
    let probe_key = |p: u32| match p {
        u32::MAX => probe_count + 1,
        p if p == u32::MAX - 1 => probe_count,
        p => p as i32,
    };
    let addr = |a: u32| {
        format!(
            "{}.{}.{}.{}",
            a >> 24,
            (a >> 16) & 255,
            (a >> 8) & 255,
            a & 255
        )
    };
    let mut addrs: Vec<String> = Vec::new();
    let mut addr_index: std::collections::HashMap<u32, i32> = Default::default();
    let mut key_of = |a: u32| {
        *addr_index.entry(a).or_insert_with(|| {
            addrs.push(addr(a));
            addrs.len() as i32 - 1
        })
    };
    let saddr: Vec<Option<i32>> = rows.iter().map(|r| Some(key_of(r.saddr))).collect();
    let daddr: Vec<Option<i32>> = rows.iter().map(|r| Some(key_of(r.daddr))).collect();
    let addr_values: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let nft = |f: &dyn Fn(&NftCols) -> i32| -> Vec<Option<i32>> {
        rows.iter().map(|r| r.nft.as_ref().map(f)).collect()
    };
    let is_l4 = |r: &Row| matches!(r.l4, 6 | 17);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.ts))),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.skb))),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| r.probe % 4096),
        )),
        dict(
            rows.iter()
                .map(|r| {
                    Some(if r.nft.is_some() {
                        probe_count + 2
                    } else {
                        probe_key(r.probe)
                    })
                })
                .collect(),
            &probe_values,
        ),
        dict(
            rows.iter()
                .map(|r| Some(if r.nft.is_some() { 2 } else { r.kind as i32 }))
                .collect(),
            &["tracepoint", "function", "nft"],
        ),
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.cpu))),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|_| 4026531840),
        )),
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|_| 2))),
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|_| 0))),
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.len))),
        Arc::new(UInt16Array::from_iter_values(rows.iter().map(|_| 2048))),
        Arc::new(UInt8Array::from_iter(rows.iter().map(|_| Some(4u8)))),
        dict(saddr, &addr_values),
        dict(daddr, &addr_values),
        Arc::new(UInt8Array::from_iter(rows.iter().map(|r| Some(r.l4)))),
        Arc::new(UInt16Array::from_iter(
            rows.iter().map(|r| is_l4(r).then_some(r.sport)),
        )),
        Arc::new(UInt16Array::from_iter(
            rows.iter().map(|r| is_l4(r).then_some(r.dport)),
        )),
        Arc::new(UInt8Array::from_iter(
            rows.iter().map(|r| (r.l4 == 6).then_some(16u8)),
        )),
        Arc::new(UInt8Array::from_iter(rows.iter().map(|_| None::<u8>))),
        Arc::new(UInt8Array::from_iter(rows.iter().map(|_| None::<u8>))),
        Arc::new(UInt16Array::from_iter(rows.iter().map(|r| Some(r.ip_id)))),
        dict(
            rows.iter().map(|r| r.drop.map(|d| d as i32)).collect(),
            DROP_REASONS,
        ),
        Arc::new(UInt64Array::from_iter(
            rows.iter()
                .map(|r| r.drop.map(|_| 0xffff_ffff_8100_0000u64)),
        )),
        dict(
            rows.iter().map(|r| r.drop.map(|_| 0)).collect(),
            &["nft_do_chain+0x3e8"],
        ),
        dict(nft(&|n| n.0 as i32), &["chain_entry", "rule_eval"]),
        dict(nft(&|_| 0), &["inet"]),
        dict(nft(&|_| 0), &["filter"]),
        dict(nft(&|n| n.1 as i32), CHAINS),
        dict(nft(&|n| n.1 as i32), CHAINS),
        Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.nft.map(|_| 0)))),
        Arc::new(UInt64Array::from_iter(
            rows.iter().map(|r| r.nft.filter(|n| n.0 == 1).map(|n| n.2)),
        )),
        Arc::new(UInt32Array::from_iter(
            rows.iter()
                .map(|r| r.nft.filter(|n| n.0 == 1).map(|n| n.2 as u32 - 9)),
        )),
        dict(
            rows.iter()
                .map(|r| r.nft.filter(|n| n.0 == 1).map(|n| n.3 as i32))
                .collect(),
            VERDICTS,
        ),
        dict(
            rows.iter()
                .map(|r| {
                    r.nft
                        .filter(|n| n.0 == 1 && VERDICTS[n.3 as usize] == "jump")
                        .map(|_| 0)
                })
                .collect(),
            &["sub"],
        ),
        // nft_trace_id, stack_id: not generated.
        Arc::new(UInt32Array::new_null(rows.len())),
        Arc::new(UInt32Array::new_null(rows.len())),
    ];
    let batch =
        RecordBatch::try_new(tables::events_schema(), columns).map_err(std::io::Error::other)?;
    let name = nft_schema::files::segment(tables::names::EVENTS, n as u32);
    let file = std::fs::File::create(dir.join(&name))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).map_err(std::io::Error::other)?,
        ))
        .build();
    let mut w = ArrowWriter::try_new(file, tables::events_schema(), Some(props))
        .map_err(std::io::Error::other)?;
    for chunk in (0..batch.num_rows()).step_by(65_536) {
        let len = 65_536.min(batch.num_rows() - chunk);
        w.write(&batch.slice(chunk, len))
            .map_err(std::io::Error::other)?;
    }
    w.close().map_err(std::io::Error::other)?;
    Ok(name)
}

fn write_dimensions(dir: &Path, probes: &[&str]) -> std::io::Result<()> {
    let empty = |schema: arrow::datatypes::SchemaRef| RecordBatch::new_empty(schema);
    let n = probes.len();
    let probes_batch = RecordBatch::try_new(
        tables::probes_schema(),
        vec![
            Arc::new(UInt32Array::from_iter_values(0..n as u32)),
            Arc::new(StringArray::from_iter_values((0..n).map(|i| {
                if i < TRACEPOINTS.len() {
                    "tracepoint"
                } else {
                    "function"
                }
            }))),
            Arc::new(StringArray::from(probes.to_vec())),
            Arc::new(UInt8Array::from_iter_values((0..n).map(|_| 1u8))),
        ],
    )
    .map_err(std::io::Error::other)?;
    for (table, batch) in [
        (tables::names::PROBES, probes_batch),
        (
            tables::names::DROP_REASONS,
            empty(tables::drop_reasons_schema()),
        ),
        (tables::names::LOSSES, empty(tables::losses_schema())),
        (
            tables::names::INTERFACES,
            empty(tables::interfaces_schema()),
        ),
    ] {
        let file = std::fs::File::create(dir.join(nft_schema::files::dimension(table)))?;
        let mut w =
            ArrowWriter::try_new(file, batch.schema(), None).map_err(std::io::Error::other)?;
        w.write(&batch).map_err(std::io::Error::other)?;
        w.close().map_err(std::io::Error::other)?;
    }
    Ok(())
}
