//! The recording session as a safe guest on a production box (issue 17),
//! each promise tested on the real kernel with real traffic: a bounded stop
//! under a flood by every way of stopping, a clean end when `--live`'s
//! reader goes away, nothing left in the kernel after SIGHUP or a double
//! Ctrl-C, unsafe output directories refused and planted links untouched,
//! one recorder per namespace, a full disk, `--ring` killed at random, and
//! the `Session` library driven twice in one process.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nft_recorder::record::{RecordOptions, Session, State};
use nft_recorder::stop::StopSignal;
use nft_tests::{
    kernel_lock, manifest, recorder_programs_settled, recording_dir, run, signal, start_recorder,
    workspace_bin, TwoHosts,
};

/// Waits for `child` to exit, at most `limit`; returns how long it took.
fn wait_exit(child: &mut Child, limit: Duration) -> (ExitStatus, Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the recorder did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut s);
    }
    s
}

/// The nftables tables in `hosts.b`: the recorder's must be gone.
fn assert_no_table(hosts: &TwoHosts) {
    let out = hosts.b.exec("nft", &["list", "tables"]).unwrap();
    let tables = String::from_utf8_lossy(&out.stdout);
    assert!(!tables.contains("nft_tracer"), "table left: {tables}");
}

/// A ping flood from a to b that outlives the test's recording.
struct Flood(Child);

impl Flood {
    fn start(hosts: &TwoHosts, seconds: u32) -> Self {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &hosts.a.name,
                "timeout",
                &seconds.to_string(),
            ])
            .args(["ping", "-f", "-q", &hosts.b_ip])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Flood(child)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A 4 MiB tmpfs, unmounted and removed on drop: a disk that fills.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(tag: &str) -> Self {
        let path = recording_dir(tag);
        std::fs::create_dir_all(&path).unwrap();
        let target = path.to_str().unwrap();
        run("mount", &["-t", "tmpfs", "-o", "size=4m", "tmpfs", target]).unwrap();
        SmallDisk(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = run("umount", &["-l", self.0.to_str().unwrap()]);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `nft-recorder record -o DIR ARGS...`, run to its end.
fn record_once(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(workspace_bin("nft-recorder"))
        .args(["record", "-o"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

/// The manifest says the recording ended by `end`, cleanly, and it opens;
/// then it is removed.
fn assert_clean_end(dir: &Path, end: &str) {
    let m = manifest(dir);
    assert_eq!(m["end"], end);
    assert_eq!(m["ended_cleanly"], true);
    analyzer_opens(dir);
    std::fs::remove_dir_all(dir).unwrap();
}

fn analyzer_opens(dir: &Path) {
    let out = Command::new(workspace_bin("nft-analyzer"))
        .arg("stats")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Under a ping flood that goes on past the end, `--duration`, SIGINT and
/// SIGTERM each end the recorder within 5 s of the stop, leave no table,
/// say how it ended, and the recording opens.
#[test]
fn stop_under_a_flood_is_bounded() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(211).unwrap();
    let _flood = Flood::start(&hosts, 120);
    for (how, end) in [
        ("duration", "duration"),
        ("SIGINT", "signal"),
        ("SIGTERM", "signal"),
    ] {
        let dir = recording_dir(&format!("flood-{how}"));
        let mut args = vec!["--backend", "tracepoint", "--netns", &hosts.b.name];
        if how == "duration" {
            args.extend(["--duration", "2"]);
        }
        let mut child = start_recorder(&dir, &args);
        let stop_at = Instant::now() + Duration::from_secs(2);
        if how != "duration" {
            std::thread::sleep(Duration::from_secs(2));
            let sig = if how == "SIGINT" {
                libc::SIGINT
            } else {
                libc::SIGTERM
            };
            signal(&child, sig);
        }
        let (status, _) = wait_exit(&mut child, Duration::from_secs(30));
        let stop_took = Instant::now().saturating_duration_since(stop_at);
        let err = stderr_of(&mut child);
        assert!(status.success(), "{how}: {err}");
        eprintln!("stop by {how} under a flood: {stop_took:?}");
        assert!(stop_took < Duration::from_secs(5), "{how}: {stop_took:?}");
        assert_no_table(&hosts);
        assert!(manifest(&dir)["events"].as_u64().unwrap() > 0, "{how}");
        assert_clean_end(&dir, end);
    }
}

/// `record --live | head -1`: the closed pipe ends the recording cleanly.
#[test]
fn live_output_closed_by_its_reader_ends_cleanly() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(212).unwrap();
    let _flood = Flood::start(&hosts, 60);
    let dir = recording_dir("live-head");
    let script = format!(
        "{} record -o {} --backend tracepoint --netns {} --live | head -1",
        workspace_bin("nft-recorder").display(),
        dir.display(),
        hosts.b.name
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, _) = wait_exit(&mut child, Duration::from_secs(30));
    let err = stderr_of(&mut child);
    assert!(status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_no_table(&hosts);
    assert_clean_end(&dir, "stdout-closed");
}

/// SIGHUP stops like SIGTERM; two SIGINTs while attaching end at once.
/// Either way nothing is left in the kernel.
#[test]
fn sighup_and_a_double_ctrl_c_leave_nothing_behind() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(213).unwrap();
    let before = recorder_programs_settled(0);
    let dir = recording_dir("hup");
    let mut child = start_recorder(&dir, &["--backend", "tracepoint", "--netns", &hosts.b.name]);
    signal(&child, libc::SIGHUP);
    let (status, took) = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{}", stderr_of(&mut child));
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(manifest(&dir)["end"], "signal");
    assert_no_table(&hosts);
    assert_eq!(recorder_programs_settled(before), before);
    std::fs::remove_dir_all(&dir).unwrap();

    // Ctrl-C twice right after the start, while the recorder is still
    // validating or attaching.
    let dir = recording_dir("double-int");
    let mut child = Command::new(workspace_bin("nft-recorder"))
        .args(["record", "-o"])
        .arg(&dir)
        .args(["--backend", "tracepoint", "--netns", &hosts.b.name])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(100));
    signal(&child, libc::SIGINT);
    let (status, took) = wait_exit(&mut child, Duration::from_secs(10));
    let err = stderr_of(&mut child);
    assert!(!status.success(), "{err}");
    assert!(took < Duration::from_secs(3), "{took:?}: {err}");
    assert_no_table(&hosts);
    assert_eq!(recorder_programs_settled(before), before, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A directory another user owns or can write to, or a symbolic link, is
/// refused before anything is attached; a link planted at a name the
/// recorder will write while it records is not followed.
#[test]
fn unsafe_output_directories_are_refused_and_planted_links_untouched() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(214).unwrap();
    let base = recording_dir("owner");
    std::fs::create_dir_all(&base).unwrap();
    let shared = base.join("shared");
    std::fs::create_dir(&shared).unwrap();
    run("chmod", &["0777", shared.to_str().unwrap()]).unwrap();
    let theirs = base.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    run("chown", &["65534:65534", theirs.to_str().unwrap()]).unwrap();
    run("chmod", &["0700", theirs.to_str().unwrap()]).unwrap();
    let link = base.join("link");
    std::os::unix::fs::symlink(&theirs, &link).unwrap();
    for (dir, why) in [
        (&shared, "writable by group or others"),
        (&theirs, "is owned by uid 65534"),
        (&link, "symbolic link"),
    ] {
        let out = record_once(dir, &["--netns", &hosts.b.name, "--duration", "1"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(why), "{}: {err}", dir.display());
        assert!(std::fs::read_dir(dir).unwrap().next().is_none());
        assert_no_table(&hosts);
    }

    // Links planted at the names of the stop snapshot and of the next
    // event part, pointing at a file that must not change.
    let victim = base.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let dir = base.join("rec");
    let child = start_recorder(&dir, &["--netns", &hosts.b.name, "--flush-interval", "0.2"]);
    let label = nft_schema::tables::ruleset_label(Some(&hosts.b.name));
    for name in [
        format!("ruleset-{label}-stop.json"),
        format!("ruleset-{label}-stop.nft"),
        "events-000001.part-000009.parquet.tmp".to_string(),
        "losses.parquet".to_string(),
    ] {
        std::os::unix::fs::symlink(&victim, dir.join(name)).unwrap();
    }
    let _ = hosts
        .a
        .exec("ping", &["-q", "-c", "20", "-i", "0.05", &hosts.b_ip]);
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_no_table(&hosts);
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    run("rm", &["-rf", base.to_str().unwrap()]).unwrap();
}

/// A second recorder on a namespace is refused with the first one's pid;
/// the first keeps its table and ends normally. Without nftrace (no table)
/// two recorders may share a namespace.
#[test]
fn one_recorder_per_namespace() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(215).unwrap();
    let first_dir = recording_dir("lock-1");
    let first = start_recorder(&first_dir, &["--netns", &hosts.b.name]);
    let second_dir = recording_dir("lock-2");
    let out = record_once(&second_dir, &["--netns", &hosts.b.name, "--duration", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("already being recorded"), "{err}");
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    assert!(
        !second_dir.exists(),
        "a refused recorder makes no directory"
    );
    let tables = hosts.b.exec("nft", &["list", "tables"]).unwrap();
    assert!(String::from_utf8_lossy(&tables.stdout).contains("nft_tracer"));

    let third_dir = recording_dir("lock-3");
    let out = record_once(
        &third_dir,
        &["--netns", &hosts.b.name, "--no-nftrace", "--duration", "1"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    signal(&first, libc::SIGINT);
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(manifest(&first_dir)["end"], "signal");
    assert_no_table(&hosts);
    for d in [first_dir, third_dir] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// A full disk (a 4 MiB tmpfs under a flood): the exit names it, the table
/// is removed, and what was written opens in the analyzer.
#[test]
fn a_full_disk_ends_the_recording_cleanly() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(216).unwrap();
    let disk = SmallDisk::mount("tmpfs");
    let mount = disk.0.clone();
    let _flood = Flood::start(&hosts, 60);
    let dir = mount.join("rec");
    let mut child = start_recorder(
        &dir,
        &[
            "--backend",
            "tracepoint",
            "--netns",
            &hosts.b.name,
            "--flush-interval",
            "0.2",
        ],
    );
    let (status, _) = wait_exit(&mut child, Duration::from_secs(60));
    let err = stderr_of(&mut child);
    assert!(!status.success(), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_no_table(&hosts);
    // The reserve let the stop write its files: the manifest says why it
    // ended, and the recording opens.
    let m = manifest(&dir);
    let end = m["end"].as_str().unwrap();
    assert!(end.contains("No space left on device"), "{end}");
    assert_eq!(m["ended_cleanly"], false);
    analyzer_opens(&dir);
}

/// The disk fills up while a quiet recording runs (a filler file takes
/// every free block), then SIGINT: the stop's own files (ruleset snapshot,
/// side tables, the closed segments, the manifest) go into the space the
/// reserve held, and the recording ends cleanly.
#[test]
fn a_disk_full_before_the_stop_still_lets_it_finish() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(219).unwrap();
    let disk = SmallDisk::mount("tmpfs-stop");
    let mount = disk.0.clone();
    let dir = mount.join("rec");
    let mut child = start_recorder(&dir, &["--netns", &hosts.b.name]);
    // Fill what is left: dd stops at ENOSPC.
    let filler = mount.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .stderr(Stdio::null())
        .status();
    signal(&child, libc::SIGINT);
    let (status, _) = wait_exit(&mut child, Duration::from_secs(20));
    let err = stderr_of(&mut child);
    assert!(status.success(), "{err}");
    assert_no_table(&hosts);
    let m = manifest(&dir);
    assert_eq!(m["end"], "signal", "{err}");
    assert_eq!(m["ended_cleanly"], true);
    let label = nft_schema::tables::ruleset_label(Some(&hosts.b.name));
    assert!(dir.join(format!("ruleset-{label}-stop.json")).exists());
    analyzer_opens(&dir);
}

/// `--ring` killed with SIGKILL at random moments, 50 times: every
/// directory opens in the analyzer.
#[test]
fn ring_recordings_killed_at_random_all_open() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(217).unwrap();
    let _flood = Flood::start(&hosts, 600);
    // A fixed seed: a failure can be rerun as it was.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..50 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait_ms = 50 + seed % 1500;
        let dir = recording_dir(&format!("ring-kill-{i}"));
        let mut child = start_recorder(
            &dir,
            &[
                "--backend",
                "tracepoint",
                "--netns",
                &hosts.b.name,
                "--tracepoint",
                "netif_receive_skb",
                "--max-bytes",
                "400000",
                "--ring",
                "--segment-seconds",
                "0.2",
                "--flush-interval",
                "0.1",
            ],
        );
        std::thread::sleep(Duration::from_millis(wait_ms));
        signal(&child, libc::SIGKILL);
        let _ = child.wait();
        analyzer_opens(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // The last kill left a table; the next start removes it.
    let dir = recording_dir("ring-kill-after");
    let child = start_recorder(&dir, &["--netns", &hosts.b.name, "--duration", "0.5"]);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_table(&hosts);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The session library, twice in one process: counters while running, and
/// the recorded `netif_receive_skb` events equal to the packets b's
/// interface received.
#[test]
fn session_library_runs_twice_in_one_process() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(218).unwrap();
    for round in 0..2 {
        let dir = recording_dir(&format!("session-{round}"));
        let mut opts = RecordOptions::new(dir.clone());
        opts.netns = vec![hosts.b.name.clone()];
        opts.tracepoints = vec!["netif_receive_skb".into()];
        opts.backend = nft_recorder::record::functions::BackendChoice::Tracepoint;
        opts.flush_interval = Duration::from_millis(200);
        let stop = Arc::new(StopSignal::new());
        let session = Session::start(opts, stop, None).unwrap();
        assert_eq!(session.counters().state, State::Recording);
        assert!(session.ready.probes_attached >= 2, "{:?}", session.ready);
        let rx_before = hosts
            .b
            .sysfs_u64(&hosts.b_dev, "statistics/rx_packets")
            .unwrap();
        hosts
            .a
            .exec("ping", &["-q", "-c", "30", "-i", "0.01", &hosts.b_ip])
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let rx = hosts
            .b
            .sysfs_u64(&hosts.b_dev, "statistics/rx_packets")
            .unwrap()
            - rx_before;
        let deadline = Instant::now() + Duration::from_secs(5);
        while session.counters().events < rx && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(session.counters().events, rx, "round {round}");
        let tables = hosts.b.exec("nft", &["list", "tables"]).unwrap();
        assert!(String::from_utf8_lossy(&tables.stdout).contains("nft_tracer"));
        let summary = session.stop().unwrap();
        assert_eq!(summary.end, "stopped");
        assert_eq!(summary.events, rx);
        assert_eq!(summary.lost, 0);
        assert_no_table(&hosts);
        assert_eq!(manifest(&dir)["end"], "stopped");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
