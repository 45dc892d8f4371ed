//! `nft-recorder serve` on loopback, driven by real clients: curl with the
//! user guide's own calls, a WebSocket client, and the errors, limits and
//! shutdown an operator meets. Sessions record real traffic between two
//! namespaces; what they return is read back by the analyzer.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::Value;

use nft_tests::{
    kernel_lock, recorder_programs_settled, recording_dir, run, workspace_bin, TwoHosts,
};

/// A server process on an ephemeral loopback port, with its token.
struct Server {
    child: Child,
    url: String,
    token: String,
    data: PathBuf,
    _stderr: std::sync::Mutex<Receiver<String>>,
}

impl Server {
    fn start(tag: &str, extra: &[&str]) -> Self {
        let data = recording_dir(&format!("serve-{tag}"));
        let mut child = Command::new(workspace_bin("nft-recorder"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("server: {line}");
                let _ = tx.send(line);
            }
        });
        let url = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("the server printed where it listens");
            if let Some(rest) = line.split("serving on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        let token = std::fs::read_to_string(data.join("api-token"))
            .unwrap()
            .trim()
            .to_string();
        Server {
            child,
            url,
            token,
            data,
            _stderr: std::sync::Mutex::new(rx),
        }
    }

    /// One request with curl; returns the status and the JSON body.
    fn call_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-w", "\n%{http_code}", "-X", method]);
        if let Some(t) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        if body.is_some() {
            cmd.args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                "@-",
            ]);
        }
        cmd.arg(format!("{}{path}", self.url));
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(b) = body {
            child.stdin.take().unwrap().write_all(b.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (json, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        let code: u16 = code.trim().parse().unwrap_or(0);
        let value = serde_json::from_str(json).unwrap_or(Value::String(json.to_string()));
        (code, value)
    }

    fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.call_as(Some(&self.token.clone()), method, path, body)
    }

    fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                let _ = std::fs::remove_dir_all(&self.data);
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "server did not exit"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tables_in(hosts: &TwoHosts) -> String {
    let out = hosts.b.exec("nft", &["list", "tables"]).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn host_tables() -> String {
    String::from_utf8_lossy(&run("nft", &["list", "tables"]).unwrap().stdout).into_owned()
}

/// The user guide's calls, verbatim but for the token header: a multi-mode
/// session started and deleted. Its `output_file` is a recording the
/// analyzer reads, holding every echo request that was sent.
#[test]
fn the_user_guides_session_calls() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(221).unwrap();
    let server = Server::start("guide", &[]);
    let body = r#"{"session_id": "multi_trace_001", "mode": "multi", "max_functions": 500, "pcap_filter": ""}"#;
    let (code, v) = server.call("POST", "/api/sessions", Some(body));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "success");
    assert_eq!(v["session_id"], "multi_trace_001");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.starts_with("Session started in MULTI mode"),
        "{message}"
    );
    assert!(v["probes_attached"].as_u64().unwrap() > 0);
    let (code, listed) = server.call("GET", "/api/sessions/multi_trace_001", None);
    assert_eq!(code, 200);
    assert_eq!(listed["session"]["state"], "recording");
    hosts
        .a
        .exec(
            "ping",
            &["-q", "-c", "15", "-i", "0.02", "-s", "333", &hosts.b_ip],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (code, v) = server.call("DELETE", "/api/sessions/multi_trace_001", None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "success");
    assert_eq!(v["ended"], "stopped");
    let dir = PathBuf::from(v["output_file"].as_str().unwrap());
    assert!(!host_tables().contains("nft_tracer"));
    // The echo requests a sent (IP length 20 + 8 + 333), once each at
    // b's receive.
    let sql = "SELECT count(*) AS n FROM events WHERE probe = 'net:netif_receive_skb' \
               AND icmp_type = 8 AND len = 361";
    let out = nft_tests::run_bin(
        "nft-analyzer",
        [
            std::ffi::OsStr::new("sql"),
            dir.as_os_str(),
            "--format".as_ref(),
            "csv".as_ref(),
            sql.as_ref(),
        ],
    );
    assert_eq!(out.trim(), "n\n15");
    let out = nft_tests::run_bin(
        "nft-analyzer",
        [std::ffi::OsStr::new("traces"), dir.as_os_str()],
    );
    assert!(out.contains("icmp"), "{out}");

    // The finished recording is listed and can be copied off as a tar.
    let (code, v) = server.call("GET", "/api/recordings", None);
    assert_eq!(code, 200);
    assert_eq!(v["recordings"][0]["id"], "multi_trace_001");
    let tar = recording_dir("serve-tar");
    std::fs::create_dir_all(&tar).unwrap();
    let archive = tar.join("a.tar");
    run(
        "curl",
        &[
            "-s",
            "-f",
            "-o",
            archive.to_str().unwrap(),
            "-H",
            &format!("Authorization: Bearer {}", server.token),
            &format!("{}/api/recordings/multi_trace_001/archive", server.url),
        ],
    )
    .unwrap();
    run(
        "tar",
        &[
            "-xf",
            archive.to_str().unwrap(),
            "-C",
            tar.to_str().unwrap(),
        ],
    )
    .unwrap();
    let copied = tar.join("multi_trace_001");
    let out = nft_tests::run_bin(
        "nft-analyzer",
        [
            std::ffi::OsStr::new("sql"),
            copied.as_os_str(),
            "--format".as_ref(),
            "csv".as_ref(),
            sql.as_ref(),
        ],
    );
    assert_eq!(out.trim(), "n\n15");
    std::fs::remove_dir_all(&tar).unwrap();
    assert!(server.stop().success());
}

fn ws_connect(server: &Server, id: &str) -> Ws {
    use tungstenite::client::IntoClientRequest;
    let url = format!(
        "{}/api/sessions/{id}/live",
        server.url.replace("http://", "ws://")
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", server.token).parse().unwrap(),
    );
    tungstenite::connect(req).unwrap().0
}

type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// Reads live messages until the session ends: (events, dropped counts).
/// `throttle`: sleep 1 ms after every that many messages.
fn read_live(ws: &mut Ws, throttle: Option<u64>) -> (u64, u64) {
    let (mut events, mut dropped, mut read) = (0u64, 0u64, 0u64);
    while let Ok(msg) = ws.read() {
        read += 1;
        let text = msg.to_text().unwrap_or("");
        if text.contains(r#""type":"event""#) {
            events += 1;
        } else if let Ok(v) = serde_json::from_str::<Value>(text) {
            match v["type"].as_str() {
                Some("dropped") => dropped += v["count"].as_u64().unwrap_or(0),
                Some("end") => break,
                _ => {}
            }
        }
        if throttle.is_some_and(|n| read.is_multiple_of(n)) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    (events, dropped)
}

/// A WebSocket client gets every event of a ping while the session runs
/// (as many as the recording holds); a client that reads slowly during a
/// flood is told what it missed, and the recorder is not slowed.
#[test]
fn live_events_over_websocket() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(222).unwrap();
    let server = Server::start("live", &[]);
    let body = format!(
        r#"{{"session_id": "live1", "netns": ["{}"], "tracepoints": ["netif_receive_skb"], "backend": "tracepoint"}}"#,
        hosts.b.name
    );
    let (code, v) = server.call("POST", "/api/sessions", Some(&body));
    assert_eq!(code, 200, "{v}");
    let mut ws = ws_connect(&server, "live1");
    let reader = std::thread::spawn(move || read_live(&mut ws, None));
    std::thread::sleep(Duration::from_millis(200));
    hosts
        .a
        .exec("ping", &["-q", "-c", "25", "-i", "0.01", &hosts.b_ip])
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (code, v) = server.call("DELETE", "/api/sessions/live1", None);
    assert_eq!(code, 200, "{v}");
    let (events, dropped) = reader.join().unwrap();
    assert_eq!(dropped, 0);
    assert!(events >= 25, "{events}");
    assert_eq!(events, v["events"].as_u64().unwrap(), "{v}");

    // A flood, a client that reads slowly and one that never reads.
    let body = format!(
        r#"{{"session_id": "live2", "netns": ["{}"], "backend": "tracepoint", "no_nftrace": true}}"#,
        hosts.b.name
    );
    let (code, v) = server.call("POST", "/api/sessions", Some(&body));
    assert_eq!(code, 200, "{v}");
    let mut slow = ws_connect(&server, "live2");
    let _never_reads = ws_connect(&server, "live2");
    // About 10 k messages/s: far slower than a flood's events.
    let slow_reader = std::thread::spawn(move || read_live(&mut slow, Some(10)));
    let _ = hosts
        .a
        .exec("timeout", &["3", "ping", "-f", "-q", &hosts.b_ip]);
    let started = Instant::now();
    let (code, v) = server.call("DELETE", "/api/sessions/live2", None);
    assert_eq!(code, 200, "{v}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let (events, dropped) = slow_reader.join().unwrap();
    let recorded = v["events"].as_u64().unwrap();
    eprintln!("slow client: {events} events, {dropped} dropped; recorded {recorded}");
    assert!(dropped > 0, "a slow client is told what it missed");
    assert!(
        recorded >= events + dropped,
        "{recorded} < {events} + {dropped}"
    );
    assert!(server.stop().success());
}

/// Every bad request is a JSON error with the right code, and attaches
/// nothing; a server reachable from other hosts needs a token file.
#[test]
fn bad_requests_and_limits() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(223).unwrap();
    let before = recorder_programs_settled(0);
    let server = Server::start("errors", &["--max-sessions", "1"]);
    let (code, v) = server.call_as(None, "GET", "/api/sessions", None);
    assert_eq!((code, v["status"].as_str()), (401, Some("error")), "{v}");
    let (code, _) = server.call_as(Some("wrong-token-0123456789"), "GET", "/api/status", None);
    assert_eq!(code, 401);
    let ns = hosts.b.name.clone();
    let cases: Vec<(String, u16, &str)> = vec![
        (r#"{"session_id": "x""#.into(), 400, "request body"),
        (
            r#"{"session_id": "x", "colour": "red"}"#.into(),
            400,
            "unknown field",
        ),
        (
            r#"{"session_id": "x", "mode": "fast"}"#.into(),
            400,
            "expected one of",
        ),
        (
            r#"{"session_id": "x", "port": "70000"}"#.into(),
            400,
            "a port is a number",
        ),
        (
            r#"{"session_id": "x", "netns": ["no-such-ns-xyz"]}"#.into(),
            400,
            "no-such-ns-xyz",
        ),
        (r#"{"session_id": "bad id!"}"#.into(), 400, "session id"),
        (
            r#"{"session_id": "x", "pcap_filter": "tcp prt 80"}"#.into(),
            400,
            "libpcap: can't parse filter expression",
        ),
        (
            format!(
                r#"{{"session_id": "x", "padding": "{}"}}"#,
                "a".repeat(70_000)
            ),
            413,
            "",
        ),
    ];
    for (body, want, why) in &cases {
        let (code, v) = server.call("POST", "/api/sessions", Some(body));
        assert_eq!(code, *want, "{}: {v}", &body[..body.len().min(80)]);
        if !why.is_empty() {
            assert_eq!(v["status"], "error");
            assert!(v["error"].as_str().unwrap().contains(why), "{v}");
        }
        assert_eq!(recorder_programs_settled(before), before, "{body:.80}");
        assert!(!server.data.join("x").exists());
    }
    let (code, _) = server.call("DELETE", "/api/sessions/nope", None);
    assert_eq!(code, 404);
    let (code, _) = server.call("GET", "/api/no/such/thing", None);
    assert_eq!(code, 404);

    // One session is the limit; the id is taken while it runs and after.
    let body = format!(
        r#"{{"session_id": "one", "netns": ["{ns}"], "backend": "tracepoint", "pcap_filter": "icmp or tcp port 80"}}"#
    );
    let (code, v) = server.call("POST", "/api/sessions", Some(&body));
    assert_eq!(code, 200, "{v}");
    let (code, v) = server.call("POST", "/api/sessions", Some(&body));
    assert_eq!(code, 400, "{v}");
    let other = r#"{"session_id": "two", "backend": "tracepoint", "no_nftrace": true}"#;
    let (code, v) = server.call("POST", "/api/sessions", Some(other));
    assert_eq!(code, 429, "{v}");
    let (code, _) = server.call("GET", "/api/trace/status", None);
    assert_eq!(code, 200);
    let (code, v) = server.call("GET", &format!("/api/nftables/tables?netns={ns}"), None);
    assert_eq!(code, 200, "{v}");
    assert!(v["tables"].to_string().contains("nft_tracer"), "{v}");
    let (code, v) = server.call("GET", &format!("/api/nftables/rules?netns={ns}"), None);
    assert_eq!(code, 200, "{v}");
    assert!(v["rules"].to_string().contains("meta nftrace set 1"), "{v}");
    let (code, v) = server.call("GET", "/api/nftables/chains?netns=no-such-ns-xyz", None);
    assert_eq!(code, 400, "{v}");
    let (code, v) = server.call("POST", "/api/discover", Some(r#"{"priority": 0}"#));
    assert_eq!(code, 200, "{v}");
    assert!(v["count"].as_u64().unwrap() > 10, "{v}");
    let (code, v) = server.call("GET", "/api/status", None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["active_sessions"], 1);

    // SIGTERM stops the running session cleanly before the server exits.
    let data = server.data.clone();
    let manifest_path = data.join("one/recording.json");
    let status = {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
        let mut server = server;
        let start = Instant::now();
        loop {
            if let Some(s) = server.child.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < Duration::from_secs(20));
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(status.success());
    let m: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    assert_eq!(m["end"], "stopped");
    assert_eq!(m["filter_program"]["expression"], "icmp or tcp port 80");
    assert!(!tables_in(&hosts).contains("nft_tracer"));
    let _ = std::fs::remove_dir_all(&data);

    let out = Command::new(workspace_bin("nft-recorder"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data"])
        .arg(recording_dir("serve-exposed"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a token"));
}

fn fds_and_threads(pid: u32) -> (usize, usize) {
    let count = |p: String| std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0);
    (
        count(format!("/proc/{pid}/fd")),
        count(format!("/proc/{pid}/task")),
    )
}

/// 8 sessions created at once and deleted, `NFT_SERVE_LOAD_ROUNDS` times
/// (10 here; 50 in `docs/api.md`'s run): no table, program, descriptor or
/// thread is left afterwards.
#[test]
fn concurrent_sessions_leave_nothing_behind() {
    let _kernel = kernel_lock();
    let rounds: usize = std::env::var("NFT_SERVE_LOAD_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let nss: Vec<nft_tests::Netns> = (0..8)
        .map(|i| nft_tests::Netns::new(&format!("l{i}")).unwrap())
        .collect();
    let server = Server::start("load", &["--max-sessions", "8"]);
    let programs = recorder_programs_settled(0);
    let pid = server.child.id();
    // Warm up once so lazily created threads and descriptors exist.
    let warm = format!(
        r#"{{"session_id": "warm", "netns": ["{}"], "backend": "tracepoint", "tracepoints": ["netif_receive_skb"]}}"#,
        nss[0].name
    );
    assert_eq!(server.call("POST", "/api/sessions", Some(&warm)).0, 200);
    assert_eq!(server.call("DELETE", "/api/sessions/warm", None).0, 200);
    let (fds, threads) = fds_and_threads(pid);
    let mut latencies = Vec::new();
    for round in 0..rounds {
        std::thread::scope(|s| {
            let handles: Vec<_> = nss
                .iter()
                .enumerate()
                .map(|(i, ns)| {
                    let server = &server;
                    s.spawn(move || {
                        let id = format!("r{round}-s{i}");
                        let body = format!(r#"{{"session_id": "{id}", "netns": ["{}"], "backend": "tracepoint", "tracepoints": ["netif_receive_skb"]}}"#, ns.name);
                        let t = Instant::now();
                        let (code, v) = server.call("POST", "/api/sessions", Some(&body));
                        assert_eq!(code, 200, "{v}");
                        let started = t.elapsed();
                        let t = Instant::now();
                        let (code, v) = server.call("DELETE", &format!("/api/sessions/{id}"), None);
                        assert_eq!(code, 200, "{v}");
                        (started, t.elapsed())
                    })
                })
                .collect();
            for h in handles {
                latencies.push(h.join().unwrap());
            }
        });
        for ns in &nss {
            let out = ns.exec("nft", &["list", "tables"]).unwrap();
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains("nft_tracer"),
                "round {round}"
            );
        }
    }
    assert_eq!(recorder_programs_settled(programs), programs);
    // Idle blocking threads of the runtime go after 1 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (fds_after, threads_after) = loop {
        let now = fds_and_threads(pid);
        if (now.0 <= fds && now.1 <= threads + 2) || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(fds_after <= fds, "descriptors {fds} -> {fds_after}");
    assert!(
        threads_after <= threads + 2,
        "threads {threads} -> {threads_after}"
    );
    let mut starts: Vec<Duration> = latencies.iter().map(|l| l.0).collect();
    let mut stops: Vec<Duration> = latencies.iter().map(|l| l.1).collect();
    starts.sort();
    stops.sort();
    eprintln!(
        "{} sessions, 8 at a time: start median {:?}, stop median {:?}",
        latencies.len(),
        starts[starts.len() / 2],
        stops[stops.len() / 2]
    );
    assert!(server.stop().success());
}

/// Benchmark (not run by `make test`): start/stop request latency of one
/// session at a time, and the event rate one WebSocket client sustains
/// during a ping flood.
/// `cargo test -p nft-tests -- --ignored serve_api::bench --nocapture`
#[test]
#[ignore]
fn bench_session_latency_and_live_rate() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(224).unwrap();
    let server = Server::start("bench", &[]);
    let body = |id: &str| {
        format!(
            r#"{{"session_id": "{id}", "netns": ["{}"], "backend": "tracepoint"}}"#,
            hosts.b.name
        )
    };
    let (mut starts, mut stops) = (Vec::new(), Vec::new());
    for i in 0..10 {
        let id = format!("lat{i}");
        let t = Instant::now();
        assert_eq!(
            server.call("POST", "/api/sessions", Some(&body(&id))).0,
            200
        );
        starts.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(
            server
                .call("DELETE", &format!("/api/sessions/{id}"), None)
                .0,
            200
        );
        stops.push(t.elapsed());
    }
    starts.sort();
    stops.sort();
    eprintln!(
        "start: median {:?} (min {:?}, max {:?})",
        starts[5], starts[0], starts[9]
    );
    eprintln!(
        "stop: median {:?} (min {:?}, max {:?})",
        stops[5], stops[0], stops[9]
    );

    assert_eq!(
        server.call("POST", "/api/sessions", Some(&body("rate"))).0,
        200
    );
    let mut ws = ws_connect(&server, "rate");
    let reader = std::thread::spawn(move || {
        let t = Instant::now();
        let (events, dropped) = read_live(&mut ws, None);
        (events, dropped, t.elapsed())
    });
    let _ = hosts
        .a
        .exec("timeout", &["5", "ping", "-f", "-q", &hosts.b_ip]);
    let (code, v) = server.call("DELETE", "/api/sessions/rate", None);
    assert_eq!(code, 200);
    let (events, dropped, took) = reader.join().unwrap();
    eprintln!(
        "live: {events} events in {took:?} = {:.0} events/s to one client; {dropped} dropped for it; recorded {}, lost {}",
        events as f64 / took.as_secs_f64(),
        v["events"],
        v["lost"]
    );
    assert!(server.stop().success());
}
