//! The load benchmark: what recording costs the packets and what it loses
//! under load, on the real kernel with real traffic between namespaces.
//! Three parts, each printed as a table (docs/benchmarks.md keeps them):
//! the per-hit cost of the recording programs against yardsticks loaded on
//! the same tracepoint in the same run (kernel `bpf_stats`), iperf3
//! throughput while recording as a ratio to runs without (interleaved
//! A B A B), and events offered, recorded and lost against the packet rate.
//! `scripts/bench-load.sh` runs it (as root, after `cargo build`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nft_recorder::kernel::btf::KernelBtf;
use nft_recorder::loader::{LoadOptions, LoadedObject};
use nft_recorder::sources::tracepoint::{attach, TracepointProbe};
use nft_schema::raw::ProbeConfig;
use nft_tests::{kernel_lock, manifest, recording_dir, signal, start_recorder, TwoHosts};

/// The tracepoint every per-hit figure is taken on (one hit per packet).
const TRACEPOINT: &str = "netif_receive_skb";

/// One program's counters from `bpftool prog show` (with bpf_stats on).
#[derive(Clone, Debug, Default)]
struct ProgStats {
    runs: u64,
    ns: u64,
}

impl ProgStats {
    fn per_run(&self) -> f64 {
        self.ns as f64 / self.runs.max(1) as f64
    }

    fn since(&self, before: &ProgStats) -> ProgStats {
        ProgStats {
            runs: self.runs - before.runs,
            ns: self.ns - before.ns,
        }
    }
}

/// Sums the counters of every loaded program named `name` (bpftool's
/// names are cut at 15 bytes).
fn prog_stats(name: &str) -> ProgStats {
    let out = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .expect("bpftool");
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bpftool json");
    let cut = &name[..name.len().min(15)];
    let mut s = ProgStats::default();
    for p in all.as_array().into_iter().flatten() {
        if p["name"].as_str() == Some(cut) {
            s.runs += p["run_cnt"].as_u64().unwrap_or(0);
            s.ns += p["run_time_ns"].as_u64().unwrap_or(0);
        }
    }
    s
}

/// `kernel.bpf_stats_enabled=1` while alive.
struct BpfStats;

impl BpfStats {
    fn on() -> Self {
        std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1").expect("bpf_stats_enabled");
        BpfStats
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "0");
    }
}

/// The yardstick programs (`ebpf/src/bench.rs`) attached to
/// [`TRACEPOINT`], unfiltered.
fn yardsticks() -> LoadedObject {
    let btf = KernelBtf::running().expect("BTF");
    let (offsets, _) = btf.kernel_offsets().expect("offsets");
    let config = ProbeConfig::unfiltered();
    let aya_btf = aya::Btf::from_sys_fs().expect("aya BTF");
    let mut obj = LoadedObject::load(&LoadOptions {
        offsets,
        config,
        ringbuf_bytes: 4096,
        btf: Some(&aya_btf),
        tracked_skbs: 1,
        stacks: 1,
        filter: None,
    })
    .expect("load");
    for program in YARDSTICKS {
        let probe = TracepointProbe {
            tracepoint: TRACEPOINT.into(),
            skb_arg: 0,
            probe_id: 0,
            program: program.into(),
        };
        attach(&mut obj, &probe, &aya_btf).expect("attach yardstick");
    }
    obj
}

/// An iperf3 server in `b`, for one test.
fn iperf_server(hosts: &TwoHosts) -> Child {
    let child = Command::new("ip")
        .args(["netns", "exec", &hosts.b.name, "iperf3", "-s", "-1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 -s");
    std::thread::sleep(Duration::from_millis(300));
    child
}

/// One iperf3 run from `a` to `b` (extra `args`, e.g. UDP at a rate):
/// received bits per second.
fn iperf(hosts: &TwoHosts, seconds: u32, args: &[&str]) -> f64 {
    let mut server = iperf_server(hosts);
    let t = seconds.to_string();
    let mut full = vec![
        "netns",
        "exec",
        &hosts.a.name,
        "iperf3",
        "-c",
        &hosts.b_ip,
        "-t",
        &t,
        "-J",
    ];
    full.extend_from_slice(args);
    let out = Command::new("ip").args(&full).output().expect("iperf3 -c");
    let _ = server.kill();
    let _ = server.wait();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 json");
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .or_else(|| v["end"]["sum"]["bits_per_second"].as_f64())
        .unwrap_or_else(|| panic!("iperf3 gave no throughput: {v}"))
}

/// A running `nft-recorder record` on `b`'s namespace.
struct Recording {
    child: Child,
    dir: std::path::PathBuf,
}

impl Recording {
    fn start(hosts: &TwoHosts, tag: &str, args: &[&str]) -> Self {
        let dir = recording_dir(tag);
        let mut full = vec!["--backend", "tracepoint", "--netns", &hosts.b.name];
        full.extend_from_slice(args);
        let child = start_recorder(&dir, &full);
        Self { child, dir }
    }

    /// Stops it: (events recorded, events lost, recorder CPU seconds).
    fn stop(mut self) -> (u64, u64, f64) {
        signal(&self.child, libc::SIGINT);
        let cpu = child_cpu_seconds(&mut self.child);
        let m = manifest(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
        (
            m["events"].as_u64().unwrap(),
            m["lost_events"].as_u64().unwrap(),
            cpu,
        )
    }
}

/// Waits for `child` and returns the CPU time (user + system) it used.
fn child_cpu_seconds(child: &mut Child) -> f64 {
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a child of ours, valid out-pointers.
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Yardsticks on every hit, next to the recording's program.
const YARDSTICKS: [&str; 4] = ["bench_empty", "bench_prepare", "bench_ktime", "bench_read"];

/// Part 1: ns per hit of the recording's program on [`TRACEPOINT`], by
/// configuration, next to the yardsticks (unfiltered) on the same hits.
fn per_hit_cost(hosts: &TwoHosts) {
    let _stats = BpfStats::on();
    let _sticks = yardsticks();
    let ns = hosts.b.name.as_str();
    eprintln!("\n1. per-hit cost on {TRACEPOINT}: ns per run (bpf_stats), iperf3 TCP 3 s; ratio = recorder / empty");
    eprintln!(
        "{:<40} {:>8} {:>8} {:>6} {:>8} {:>6} {:>6} {:>6}",
        "recording", "runs", "recorder", "empty", "prepare", "ktime", "read", "ratio"
    );
    let configs: [(&str, &[&str]); 7] = [
        ("all namespaces", &[]),
        // --filter (a pcap-filter expression run in the probe) against the
        // same selection by flags, on iperf3's own port.
        (
            "--proto tcp --port 5201",
            &["--proto", "tcp", "--port", "5201"],
        ),
        (
            "--filter 'tcp port 5201' (matches)",
            &["--filter", "tcp port 5201"],
        ),
        (
            "--filter 'udp port 53' (no packet matches)",
            &["--filter", "udp port 53"],
        ),
        ("--netns B (follows matched skbs)", &["--netns", ns]),
        (
            "--netns B --track-skbs 0",
            &["--netns", ns, "--track-skbs", "0"],
        ),
        (
            "all namespaces, a wake-up per event",
            &["--ring-wakeup-bytes", "0"],
        ),
    ];
    for (label, extra) in configs {
        let mut args = vec!["--no-nftrace", "--tracepoint", TRACEPOINT];
        args.extend_from_slice(extra);
        let rec = Recording::start(hosts, "bench-hit", &args);
        let progs = [
            "tp_a0_01",
            YARDSTICKS[0],
            YARDSTICKS[1],
            YARDSTICKS[2],
            YARDSTICKS[3],
        ];
        let before = progs.map(prog_stats);
        iperf(hosts, 3, &[]);
        let after = progs.map(prog_stats);
        rec.stop();
        let d: Vec<f64> = after
            .iter()
            .zip(&before)
            .map(|(a, b)| a.since(b).per_run())
            .collect();
        let runs = after[0].since(&before[0]).runs;
        eprintln!(
            "{label:<40} {runs:>8} {:>8.0} {:>6.0} {:>8.0} {:>6.0} {:>6.0} {:>6.1}",
            d[0],
            d[1],
            d[2],
            d[3],
            d[4],
            d[0] / d[1].max(1.0)
        );
    }
}

/// bpftrace (Debian's 0.17) on [`TRACEPOINT`] with `script`'s action,
/// until dropped; its output goes nowhere.
struct Bpftrace(Child);

impl Bpftrace {
    /// The name its program has in `bpftool prog show` (bpftrace 0.17
    /// names it after the tracepoint, cut at 15 bytes).
    const PROGRAM: &'static str = "netif_receive_s";

    fn start(action: &str) -> Option<Self> {
        let script = format!("tracepoint:net:{TRACEPOINT} {{ {action} }}");
        let child = Command::new("bpftrace")
            .args(["-e", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let tracer = Self(child);
        let t = std::time::Instant::now();
        while prog_stats_prefix(Self::PROGRAM).is_none() {
            if t.elapsed() > Duration::from_secs(30) {
                return None; // dropping `tracer` stops it
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(tracer)
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        signal(&self.0, libc::SIGINT);
        let _ = self.0.wait();
    }
}

/// Like [`prog_stats`] for programs whose name starts with `prefix`; `None`
/// when there is none.
fn prog_stats_prefix(prefix: &str) -> Option<ProgStats> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .ok()?;
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let mut found = None;
    for p in all.as_array().into_iter().flatten() {
        if p["name"].as_str().is_some_and(|n| n.starts_with(prefix)) {
            let s = found.get_or_insert_with(ProgStats::default);
            s.runs += p["run_cnt"].as_u64().unwrap_or(0);
            s.ns += p["run_time_ns"].as_u64().unwrap_or(0);
        }
    }
    found
}

/// Part 1b: the peers on the same tracepoint and traffic, with the empty
/// yardstick beside them: bpftrace counting hits, and bpftrace printing
/// three fields per hit through its perf buffer (how the BCC tools this
/// project replaces emit events).
fn peers_per_hit(hosts: &TwoHosts) {
    if Command::new("bpftrace").arg("--version").output().is_err() {
        eprintln!("(bpftrace not installed: apt-get install bpftrace to compare)");
        return;
    }
    let _stats = BpfStats::on();
    let _sticks = yardsticks();
    for (label, action) in [
        ("bpftrace: count()", "@hits = count();"),
        ("bpftrace: printf 3 fields (perf buffer)", PRINTF),
    ] {
        let Some(tracer) = Bpftrace::start(action) else {
            eprintln!("{label:<40} (did not start)");
            continue;
        };
        let before = (
            prog_stats_prefix(Bpftrace::PROGRAM).unwrap(),
            prog_stats(YARDSTICKS[0]),
        );
        iperf(hosts, 3, &[]);
        let after = (
            prog_stats_prefix(Bpftrace::PROGRAM).unwrap(),
            prog_stats(YARDSTICKS[0]),
        );
        drop(tracer);
        let (ours, empty) = (after.0.since(&before.0), after.1.since(&before.1));
        eprintln!(
            "{label:<40} {:>8} {:>8.0} {:>6.0} {:>8} {:>6} {:>6} {:>6.1}",
            ours.runs,
            ours.per_run(),
            empty.per_run(),
            "-",
            "-",
            "-",
            ours.per_run() / empty.per_run().max(1.0)
        );
    }
}

/// bpftrace printing three fields per hit through its perf buffer.
const PRINTF: &str = r#"printf("%lx %u %s\n", args->skbaddr, args->len, str(args->name));"#;

/// What part 2 runs during the traffic.
enum Tracer {
    /// `nft-recorder record` on B with these arguments.
    Recorder(&'static [&'static str]),
    /// bpftrace with this action.
    Bpftrace(&'static str),
}

/// A running [`Tracer`]; dropping it stops it.
enum Running {
    Recorder(Option<Recording>),
    Bpftrace(Option<Bpftrace>),
}

impl Tracer {
    fn start(&self, hosts: &TwoHosts) -> Running {
        match self {
            Tracer::Recorder(args) => {
                Running::Recorder(Some(Recording::start(hosts, "bench-tput", args)))
            }
            Tracer::Bpftrace(action) => Running::Bpftrace(Bpftrace::start(action)),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        match self {
            Running::Recorder(r) => {
                if let Some(r) = r.take() {
                    r.stop();
                }
            }
            Running::Bpftrace(b) => drop(b.take()),
        }
    }
}

/// Part 2: iperf3 TCP throughput while recording, as a ratio to the mean of
/// the runs without a recorder just before and after it (A B A B ...).
fn packet_overhead(hosts: &TwoHosts, rounds: usize) {
    eprintln!("\n2. iperf3 TCP 3 s between namespaces while recording B, ratio to the baseline runs around it");
    eprintln!(
        "{:<40} {:>8} {:>8} {:>8}",
        "recording", "median", "min", "max"
    );
    let mut configs: Vec<(&str, Tracer)> = vec![
        (
            "default tracepoints, --no-nftrace",
            Tracer::Recorder(&["--no-nftrace"]),
        ),
        ("default tracepoints and nftrace", Tracer::Recorder(&[])),
        (
            "netif_receive_skb only",
            Tracer::Recorder(&["--no-nftrace", "--tracepoint", TRACEPOINT]),
        ),
    ];
    if Command::new("bpftrace").arg("--version").output().is_ok() {
        configs.push((
            "bpftrace printf on netif_receive_skb",
            Tracer::Bpftrace(PRINTF),
        ));
    }
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut before = iperf(hosts, 3, &[]);
    for _ in 0..rounds {
        for (i, (_, tracer)) in configs.iter().enumerate() {
            let running = tracer.start(hosts);
            let with = iperf(hosts, 3, &[]);
            drop(running);
            let after = iperf(hosts, 3, &[]);
            ratios[i].push(with / ((before + after) / 2.0));
            before = after;
        }
    }
    for ((label, _), mut r) in configs.iter().zip(ratios) {
        r.sort_by(|a, b| a.total_cmp(b));
        eprintln!(
            "{label:<40} {:>8.3} {:>8.3} {:>8.3}",
            r[r.len() / 2],
            r[0],
            r[r.len() - 1]
        );
    }
}

/// Part 3: events offered (recorded + lost), recorded and lost by packet
/// rate, default tracepoints on B without nftrace, `seconds` per rate:
/// UDP at fixed packet rates (iperf3 `-u -l 64 -b`), then a ping flood for
/// `flood_seconds`.
fn loss_by_rate(hosts: &TwoHosts, seconds: u32, flood_seconds: u32) {
    eprintln!("\n3. default tracepoints on B (--no-nftrace): UDP {seconds} s per rate, ping -f {flood_seconds} s");
    eprintln!(
        "{:<22} {:>10} {:>12} {:>12} {:>10} {:>10} {:>12}",
        "traffic", "pkts/s", "offered/s", "recorded", "lost", "lost %", "CPU s/M ev"
    );
    let mut runs: Vec<(String, Vec<String>)> = [25_000u64, 50_000, 100_000, 200_000, 400_000]
        .iter()
        .map(|pps| {
            let bits = (pps * 64 * 8).to_string();
            (
                format!("UDP {pps} pkt/s"),
                ["-u", "-l", "64", "-b", &bits].map(String::from).to_vec(),
            )
        })
        .collect();
    runs.push(("ping -f".into(), Vec::new()));
    for (label, args) in runs {
        let seconds = if args.is_empty() {
            flood_seconds
        } else {
            seconds
        };
        let rx_before = hosts.b_rx_packets();
        let rec = Recording::start(hosts, "bench-loss", &["--no-nftrace"]);
        if args.is_empty() {
            hosts.flood(seconds);
        } else {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            iperf(hosts, seconds, &a);
        }
        let rx = hosts.b_rx_packets() - rx_before;
        let (events, lost, cpu) = rec.stop();
        let offered = events + lost;
        eprintln!(
            "{label:<22} {:>10.0} {:>12.0} {events:>12} {lost:>10} {:>10.3} {:>12.2}",
            rx as f64 / seconds as f64,
            offered as f64 / seconds as f64,
            100.0 * lost as f64 / offered.max(1) as f64,
            cpu / (offered.max(1) as f64 / 1e6)
        );
    }
}

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `scripts/bench-load.sh` (or `cargo test -p nft-tests -- --ignored
/// load_bench --nocapture`); `NFT_LOAD_ROUNDS` (default 3) and
/// `NFT_LOAD_SECONDS` (default 5) and `NFT_FLOOD_SECONDS` (default 60) size
/// parts 3 and 4; `NFT_LOAD_PARTS` (default `1234`) picks the parts.
#[test]
#[ignore]
fn bench() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(233).unwrap();
    let parts = std::env::var("NFT_LOAD_PARTS").unwrap_or_else(|_| "1234".into());
    if parts.contains('1') {
        per_hit_cost(&hosts);
    }
    if parts.contains('2') {
        peers_per_hit(&hosts);
    }
    if parts.contains('3') {
        packet_overhead(&hosts, env_or("NFT_LOAD_ROUNDS", 3) as usize);
    }
    if parts.contains('4') {
        loss_by_rate(
            &hosts,
            env_or("NFT_LOAD_SECONDS", 5),
            env_or("NFT_FLOOD_SECONDS", 60),
        );
    }
}
