//! Helpers for the end-to-end suites: real network namespaces, veth pairs
//! and traffic, torn down on drop. Tests using them need root (CI is root).

pub mod browser;
pub mod s3;

use std::path::PathBuf;
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

/// Runs a command, failing with its stderr when it exits non-zero.
pub fn run(program: &str, args: &[&str]) -> Result<Output> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program} (is it installed? see scripts/setup.sh)"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// A name unique to this process and `tag`, short enough for an interface
/// name (15 bytes).
pub fn unique_name(tag: &str) -> String {
    format!("nt{}{}", tag, std::process::id() % 100_000)
}

/// A network namespace created with `ip netns add`, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Result<Self> {
        let name = unique_name(tag);
        // A namespace left by a killed earlier run with the same pid.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name])?;
        let ns = Self { name };
        ns.exec("ip", &["link", "set", "lo", "up"])?;
        // IPv6 autoconfiguration would add packets the tests do not count.
        ns.exec("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
        ns.exec("sysctl", &["-qw", "net.ipv6.conf.default.disable_ipv6=1"])?;
        Ok(ns)
    }

    /// `/run/netns/NAME`, whose inode identifies the namespace.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs a command inside the namespace (`ip netns exec`, which also
    /// remounts /sys for it).
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output> {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// An `inet fw` table with an input chain whose one rule counts, so
    /// nftrace has a user chain to report.
    pub fn add_counting_input_chain(&self) {
        self.exec(
            "nft",
            &["add table inet fw; add chain inet fw input { type filter hook input priority 0; policy accept; }; add rule inet fw input counter"],
        )
        .expect("nft");
    }

    /// Reads a sysfs file of interface `dev` in this namespace.
    pub fn sysfs_u64(&self, dev: &str, file: &str) -> Result<u64> {
        let out = self.exec("cat", &[&format!("/sys/class/net/{dev}/{file}")])?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .parse()
            .with_context(|| format!("{dev}/{file}: not a number: {text:?}"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Two namespaces joined by a veth pair, `a` at 10.<subnet>.0.1 and `b` at
/// 10.<subnet>.0.2 (/24). Both ends are called after their namespace.
pub struct TwoHosts {
    pub a: Netns,
    pub b: Netns,
    pub a_ip: String,
    pub b_ip: String,
    pub a_dev: String,
    pub b_dev: String,
}

impl TwoHosts {
    pub fn new(subnet: u8) -> Result<Self> {
        let a = Netns::new("a")?;
        let b = Netns::new("b")?;
        let (a_dev, b_dev) = ("veth-a".to_string(), "veth-b".to_string());
        run(
            "ip",
            &[
                "link", "add", &a_dev, "netns", &a.name, "type", "veth", "peer", "name", &b_dev,
                "netns", &b.name,
            ],
        )?;
        let a_ip = format!("10.{subnet}.0.1");
        let b_ip = format!("10.{subnet}.0.2");
        a.exec("ip", &["addr", "add", &format!("{a_ip}/24"), "dev", &a_dev])?;
        b.exec("ip", &["addr", "add", &format!("{b_ip}/24"), "dev", &b_dev])?;
        a.exec("ip", &["link", "set", &a_dev, "up"])?;
        b.exec("ip", &["link", "set", &b_dev, "up"])?;
        Ok(Self {
            a,
            b,
            a_ip,
            b_ip,
            a_dev,
            b_dev,
        })
    }
}

impl TwoHosts {
    /// `ping -f` from A to B for `seconds` (the flood the load tests and
    /// the load benchmark use).
    pub fn flood(&self, seconds: u32) {
        let w = seconds.to_string();
        self.a
            .exec("ping", &["-f", "-q", "-w", &w, &self.b_ip])
            .expect("ping -f");
    }

    /// Packets B's veth has received.
    pub fn b_rx_packets(&self) -> u64 {
        self.b
            .sysfs_u64(&self.b_dev, "statistics/rx_packets")
            .expect("rx_packets")
    }
}

/// The directory holding the workspace's built binaries (the one this test
/// binary was built into: `target/<profile>/`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// Path of a workspace binary, with a clear failure when it was not built.
pub fn workspace_bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo build` with the same profile first",
        path.display()
    );
    path
}

/// Runs a workspace binary, requires success (showing its stderr if not),
/// and returns its stdout.
pub fn run_bin<S: AsRef<std::ffi::OsStr>>(name: &str, args: impl IntoIterator<Item = S>) -> String {
    let out = std::process::Command::new(workspace_bin(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Serialises tests that load eBPF programs or count what is loaded, so one
/// test's programs are never mistaken for another's leftovers.
pub fn kernel_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The recorder's programs loaded in the kernel (tracepoint slots and the
/// kfree_skb program), by `bpftool prog show`.
pub fn recorder_programs_loaded() -> usize {
    let out = run("bpftool", &["prog", "show"]).expect("bpftool prog show");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(" tp_a") || l.contains("tp_kfree_skb"))
        .count()
}

/// The count once the kernel has freed what closed descriptors released:
/// a tp_btf program goes after an RCU grace period, not at `close()`.
/// Waits up to 3 s for the count to reach `expected`.
pub fn recorder_programs_settled(expected: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let n = recorder_programs_loaded();
        if n == expected || std::time::Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs one SQL query in DuckDB (the oracle for what we write) and returns
/// the rows as JSON values. `{dir}` in the SQL is replaced by `dir`.
pub fn duckdb(dir: &std::path::Path, sql: &str) -> Result<Vec<Vec<serde_json::Value>>> {
    let sql = sql.replace("{dir}", &dir.display().to_string());
    let script = "import duckdb, json, sys\n\
                  rows = duckdb.sql(sys.argv[1]).fetchall()\n\
                  print(json.dumps([list(r) for r in rows], default=str))";
    let out = run("python3", &["-c", script, &sql])?;
    serde_json::from_slice(&out.stdout).context("duckdb output is not JSON")
}

/// The single value of a one-row, one-column DuckDB query, as i64.
pub fn duckdb_i64(dir: &std::path::Path, sql: &str) -> Result<i64> {
    let rows = duckdb(dir, sql)?;
    rows.first()
        .and_then(|r| r.first())
        .and_then(|v| v.as_i64())
        .with_context(|| format!("{sql}: expected one integer, got {rows:?}"))
}

/// Runs `nft-analyzer ARGS` (which must succeed) and parses its NDJSON
/// output (`traces --format ndjson`, `sql --format json`), one value per
/// line.
pub fn analyzer_ndjson(args: &[&str]) -> Vec<serde_json::Value> {
    run_bin("nft-analyzer", args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Runs every shipped query on recording `dir` with both the analyzer
/// (DataFusion) and DuckDB (`tests/duckdb_queries.py`), asserts they agree,
/// and returns the oracle's report (one line per query).
pub fn duckdb_oracle(dir: &std::path::Path) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new("python3")
        .arg(format!("{root}/tests/duckdb_queries.py"))
        .arg(workspace_bin("nft-analyzer"))
        .arg(dir)
        .arg(format!("{root}/queries"))
        .output()
        .expect("run tests/duckdb_queries.py");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// A fresh recording directory path under the temp dir (removed if left by
/// an earlier run).
pub fn recording_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Starts `nft-recorder record -o DIR ARGS...` (stderr piped) and returns
/// once its manifest exists, which the recorder writes after attaching
/// every probe and installing its nftrace tables.
pub fn start_recorder(dir: &std::path::Path, args: &[&str]) -> std::process::Child {
    let mut child = Command::new(workspace_bin("nft-recorder"))
        .args(["record", "-o"])
        .arg(dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn nft-recorder");
    let start = std::time::Instant::now();
    while !dir.join("recording.json").exists() {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let mut stderr = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr);
            panic!("nft-recorder {args:?} exited ({status}) before recording: {stderr}");
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "the recorder never wrote its manifest"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child
}

/// Sends `sig` to `child`.
pub fn signal(child: &std::process::Child, sig: libc::c_int) {
    // SAFETY: sending a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// A recording's manifest, parsed.
pub fn manifest(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("recording.json")).unwrap()).unwrap()
}

/// The scenario's ruleset (also the demo's): accept, drop (verdict map),
/// reject, a jump to a regular chain, a counter on every rule that can carry
/// one.
pub const FIREWALL: &str = include_str!("../scripts/firewall.nft");

pub type TraceRow = (u32, String, String, String, Option<u64>, String);

/// Parses `nft -a monitor trace` lines for rules and policies.
pub fn parse_monitor(text: &str) -> Vec<TraceRow> {
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 7 || words[0] != "trace" || words[1] != "id" {
            continue;
        }
        let id = u32::from_str_radix(words[2], 16).unwrap();
        let (table, chain) = (words[4].to_string(), words[5].to_string());
        match words[6] {
            "rule" | "unknown" => {
                let handle = line
                    .split("# handle ")
                    .nth(1)
                    .or_else(|| line.split("rule handle ").nth(1))
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|h| h.parse().ok());
                let verdict = line
                    .rsplit("(verdict ")
                    .next()
                    .and_then(|s| s.split([' ', ')']).next())
                    .unwrap()
                    .to_string();
                out.push((id, table, chain, "rule".into(), handle, verdict));
            }
            "policy" => out.push((id, table, chain, "policy".into(), None, words[7].into())),
            _ => {}
        }
    }
    out.sort();
    out
}

/// One line of `nft -a monitor trace`, in the order printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorLine {
    pub id: u32,
    pub table: String,
    pub chain: String,
    /// `packet` (the first message of a base chain's run, with the
    /// headers), `rule`, `return` or `policy`.
    pub kind: String,
    pub handle: Option<u64>,
    /// `accept`, `drop`, `continue`, `jump web`, ... (with its target).
    pub verdict: Option<String>,
}

/// Parses `nft -a monitor trace` output, keeping the order of the lines.
pub fn monitor_lines(text: &str) -> Vec<MonitorLine> {
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 7 || words[0] != "trace" || words[1] != "id" {
            continue;
        }
        let Ok(id) = u32::from_str_radix(words[2], 16) else {
            continue;
        };
        let (table, chain) = (words[4].to_string(), words[5].to_string());
        let (kind, handle, verdict) = match words[6] {
            "packet:" => ("packet", None, None),
            "rule" => (
                "rule",
                line.split("# handle ")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|h| h.parse().ok()),
                line.rsplit("(verdict ")
                    .next()
                    .and_then(|s| s.split(')').next())
                    .map(str::to_owned),
            ),
            "policy" => ("policy", None, words.get(7).map(|v| v.to_string())),
            // A RETURN message (6.1: a chain's end, `verdict continue`, or
            // an explicit `return` rule, printed without its handle).
            "verdict" => ("return", None, words.get(7).map(|v| v.to_string())),
            _ => continue,
        };
        out.push(MonitorLine {
            id,
            table,
            chain,
            kind: kind.into(),
            handle,
            verdict,
        });
    }
    out
}

/// `nft -a monitor trace` running in a namespace: the oracle for nftrace
/// verdicts.
pub struct MonitorTrace(std::process::Child);

impl MonitorTrace {
    pub fn start(netns: &str) -> Self {
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "nft", "-a", "monitor", "trace"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn nft monitor trace");
        Self(child)
    }

    /// Stops it (after letting late messages arrive) and returns its output.
    pub fn stop(mut self) -> String {
        std::thread::sleep(std::time::Duration::from_millis(300));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let mut text = String::new();
        std::io::Read::read_to_string(self.0.stdout.as_mut().unwrap(), &mut text).unwrap();
        let _ = self.0.wait();
        text
    }
}

/// Traffic from a to b that meets every rule of [`FIREWALL`]: 3 pings
/// (jump, accept), TCP to port 9 (vmap drop), TCP to port 80 (vmap accept)
/// where a listener accepts the connection, TCP to port 81 (no rule: policy,
/// RST), UDP to 5353 (reject).
pub fn firewall_traffic(hosts: &TwoHosts) {
    let b = &hosts.b_ip;
    // An open port: accepts one connection, then exits.
    let mut listener = Command::new("ip")
        .args(["netns", "exec", &hosts.b.name, "python3", "-c"])
        .arg(
            "import socket; s = socket.socket(); \
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); \
             s.bind(('0.0.0.0', 80)); s.listen(1); s.settimeout(10); \
             print('listening', flush=True); c, _ = s.accept(); c.recv(1); c.close()",
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the listener");
    let mut ready = [0u8; 9];
    std::io::Read::read_exact(listener.stdout.as_mut().unwrap(), &mut ready).unwrap();
    // Steps 200 ms apart: a trace timeout shorter than that keeps packets
    // whose free tracepoints miss (TCP's) out of the next packet's trace.
    let pause = || std::thread::sleep(std::time::Duration::from_millis(200));
    hosts
        .a
        .exec("ping", &["-q", "-c", "3", "-i", "0.1", b])
        .unwrap();
    pause();
    let _ = hosts.a.exec("nc", &["-z", "-w", "1", b, "9"]);
    pause();
    let connected = hosts.a.exec("nc", &["-z", "-w", "2", b, "80"]);
    assert!(connected.is_ok(), "TCP to the open port: {connected:?}");
    assert!(
        listener.wait().unwrap().success(),
        "the listener saw no connection"
    );
    pause();
    let _ = hosts.a.exec("nc", &["-z", "-w", "1", b, "81"]);
    pause();
    let udp = format!("echo x > /dev/udp/{b}/5353");
    let _ = hosts.a.exec("bash", &["-c", &udp]);
}

/// Records the firewall scenario: [`FIREWALL`] in b, `nft monitor trace`
/// in b, `nft-recorder record --host a --duration 5` limited to `netns`,
/// [`firewall_traffic`]. Returns the recording and what the monitor printed.
pub fn record_firewall(hosts: &TwoHosts, tag: &str, netns: &[&str]) -> (PathBuf, String) {
    record_scenario(hosts, tag, netns, FIREWALL)
}

/// [`record_firewall`] with another ruleset in b (b's ruleset is flushed
/// first, so scenarios can be recorded one after another).
pub fn record_scenario(
    hosts: &TwoHosts,
    tag: &str,
    netns: &[&str],
    ruleset: &str,
) -> (PathBuf, String) {
    hosts.b.exec("nft", &["flush ruleset"]).unwrap();
    hosts.b.exec("nft", &[ruleset]).unwrap();
    let dir = recording_dir(tag);
    let monitor = MonitorTrace::start(&hosts.b.name);
    let mut args: Vec<&str> = Vec::new();
    for n in netns {
        args.extend(["--netns", n]);
    }
    args.extend(["--host", &hosts.a_ip, "--duration", "5"]);
    let mut recorder = start_recorder(&dir, &args);
    firewall_traffic(hosts);
    assert!(recorder.wait().unwrap().success());
    (dir, monitor.stop())
}
