//! A recording is untrusted input. From one real recording (the firewall
//! scenario on the host kernel), this builds a corpus of damaged copies:
//! bytes of a segment flipped, segments cut at every page, empty parts, a
//! FIFO, symlinks, glob characters and `..` in paths, escape sequences in
//! chain names, a 20 GB sparse manifest, a newer schema, a truncated
//! snapshot. Each is read by `nft-analyzer` under `ulimit -v 4G` and a
//! timeout, and the rule of docs/analyzer.md must hold: it exits 0
//! (complete), 2 (error) or 3 (partial, with `--strict`), never by a
//! signal, never hangs, and never prints complete results over missing
//! data.

use std::path::{Path, PathBuf};
use std::process::Command;

use nft_tests::{kernel_lock, record_scenario, workspace_bin, TwoHosts, FIREWALL};

/// How one run of the analyzer ended.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `nft-analyzer ARGS` with 4 GiB of address space and 60 s; a hang is
/// exit 124 (timeout), a signal 128 + its number.
fn analyzer(args: &[&str]) -> Run {
    let out = Command::new("bash")
        .arg("-c")
        .arg("ulimit -v 4194304; exec timeout -k 5 60 \"$0\" \"$@\"")
        .arg(workspace_bin("nft-analyzer"))
        .args(args)
        .output()
        .expect("run nft-analyzer");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The rule, for one damaged copy: every command ends 0, 2 or 3; a
/// complete answer (0) counts every event of the original and says
/// nothing is partial; a partial one (3) says so. Returns the exit codes.
fn holds(case: &str, dir: &Path, events: u64) -> [i32; 2] {
    let d = dir.to_str().unwrap();
    let count = analyzer(&[
        "sql",
        "--strict",
        d,
        "SELECT count(*) AS n FROM events",
        "--format",
        "csv",
    ]);
    let traces = analyzer(&["traces", "--strict", d, "--format", "json"]);
    for (what, run) in [("sql", &count), ("traces", &traces)] {
        assert!(
            matches!(run.code, 0 | 2 | 3),
            "{case}: {what} exited {} (a signal or a hang): {}",
            run.code,
            run.stderr
        );
        // parquet-rs still panics on some damaged pages: caught, an error.
        if run.stderr.contains("panic") {
            assert_eq!(run.code, 2, "{case}: {what}: {}", run.stderr);
        }
        match run.code {
            0 => assert!(
                !run.stderr.contains("PARTIAL"),
                "{case}: {what}: {}",
                run.stderr
            ),
            3 => assert!(
                run.stderr.contains("PARTIAL"),
                "{case}: {what}: {}",
                run.stderr
            ),
            _ => assert!(
                run.stderr.contains("error"),
                "{case}: {what}: {}",
                run.stderr
            ),
        }
    }
    if count.code == 0 {
        assert_eq!(
            count.stdout.trim(),
            format!("n\n{events}"),
            "{case}: a complete answer over missing events"
        );
    }
    if traces.code == 0 {
        let doc: serde_json::Value = serde_json::from_str(&traces.stdout).unwrap();
        assert_eq!(doc["summary"]["partial"], false, "{case}");
    }
    [count.code, traces.code]
}

/// A fresh copy of `src` beside it, named after it and `name`.
fn copy(src: &Path, name: &str) -> PathBuf {
    let base = src.file_name().unwrap().to_str().unwrap();
    let dst = src.parent().unwrap().join(format!("{base}-{name}"));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir(&dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
    dst
}

#[test]
fn damaged_recordings_are_read_by_the_rule() {
    let _kernel = kernel_lock();
    let hosts = TwoHosts::new(225).unwrap();
    let netns = [hosts.a.name.as_str(), hosts.b.name.as_str()];
    let (rec, _) = record_scenario(&hosts, "damage", &netns, FIREWALL);
    drop(hosts);
    let events = nft_tests::manifest(&rec)["events"].as_u64().unwrap();
    assert!(events > 20, "a real recording: {events} events");
    assert_eq!(holds("original", &rec, events), [0, 0]);
    let segment = "events-000001.parquet";
    let bytes = std::fs::read(rec.join(segment)).unwrap();

    // Bytes flipped, 48 places spread over the file (footer included).
    let mut codes = std::collections::BTreeMap::<i32, u32>::new();
    for i in 0..48 {
        let at = i * (bytes.len() - 1) / 47;
        let dir = copy(&rec, "flip");
        let mut b = bytes.clone();
        b[at] ^= if i % 2 == 0 { 0xff } else { 0x10 };
        std::fs::write(dir.join(segment), &b).unwrap();
        *codes
            .entry(holds(&format!("byte {at} flipped"), &dir, events)[0])
            .or_default() += 1;
    }
    eprintln!("flips: exit codes {codes:?}");

    // Cut at every page start (a sample of at most 24) and in the footer.
    let pages = nft_reader::parquet_check::page_starts(&rec.join(segment)).unwrap();
    let step = pages.len().div_ceil(24).max(1);
    let cuts: Vec<u64> = pages
        .iter()
        .step_by(step)
        .copied()
        .chain([bytes.len() as u64 - 3])
        .collect();
    for cut in cuts {
        let dir = copy(&rec, "cut");
        std::fs::write(dir.join(segment), &bytes[..cut as usize]).unwrap();
        let got = holds(&format!("cut at {cut}"), &dir, events);
        assert_eq!(
            got,
            [3, 3],
            "cut at {cut}: the segment is left out, partial"
        );
    }

    special_cases(&rec, events);
    escapes_are_shown_not_sent(&rec);
    let base = rec.file_name().unwrap().to_str().unwrap().to_owned();
    for entry in std::fs::read_dir(rec.parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&base)
        {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// The named cases, each with the exit the rule gives.
fn special_cases(rec: &Path, events: u64) {
    let segment = "events-000001.parquet";
    // An empty part after a power loss: left out, partial.
    let dir = copy(rec, "empty-part");
    std::fs::write(dir.join("events-000002.part-000001.parquet"), b"").unwrap();
    assert_eq!(holds("empty part", &dir, events), [3, 3]);
    // The segment listed but gone.
    let dir = copy(rec, "gone");
    std::fs::remove_file(dir.join(segment)).unwrap();
    assert_eq!(holds("missing segment", &dir, events), [3, 3]);
    // A FIFO and a symlink out of the recording in the segment's place.
    let dir = copy(rec, "fifo");
    std::fs::remove_file(dir.join(segment)).unwrap();
    let c = std::ffi::CString::new(dir.join(segment).to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path this test owns.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_eq!(holds("fifo segment", &dir, events), [3, 3]);
    let dir = copy(rec, "link");
    std::fs::remove_file(dir.join(segment)).unwrap();
    std::os::unix::fs::symlink(rec.join(segment), dir.join(segment)).unwrap();
    assert_eq!(holds("symlinked segment", &dir, events), [3, 3]);
    // A truncated stop snapshot: left out, partial; the events are whole.
    let dir = copy(rec, "snapshot");
    let stop = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().unwrap().ends_with("-stop.json"))
        .expect("a stop snapshot");
    let text = std::fs::read(&stop).unwrap();
    std::fs::write(&stop, &text[..text.len() / 2]).unwrap();
    assert_eq!(holds("cut snapshot", &dir, events), [3, 3]);
    // Paths taken literally: glob characters, `..`.
    let dir = copy(rec, "rec[1]*?");
    assert_eq!(holds("glob characters", &dir, events), [0, 0]);
    let via = dir.join("..").join(dir.file_name().unwrap());
    assert_eq!(holds("a path through ..", &via, events), [0, 0]);
    // The manifest: 20 GB sparse, and a newer schema: errors, named.
    let dir = copy(rec, "huge");
    std::fs::File::create(dir.join("recording.json"))
        .unwrap()
        .set_len(20 << 30)
        .unwrap();
    assert_eq!(holds("20 GB manifest", &dir, events), [2, 2]);
    let dir = copy(rec, "newer");
    let mut m = nft_tests::manifest(&dir);
    m["schema_version"] = (nft_schema::SCHEMA_VERSION + 1).into();
    std::fs::write(dir.join("recording.json"), m.to_string()).unwrap();
    assert_eq!(holds("newer schema", &dir, events), [2, 2]);
    let run = analyzer(&["stats", dir.to_str().unwrap()]);
    assert!(
        run.stderr.contains("newer than this nft-analyzer reads"),
        "{}",
        run.stderr
    );
    // A gate does not pass on partial input.
    let damaged = copy(rec, "gate");
    std::fs::write(damaged.join("events-000002.part-000001.parquet"), b"").unwrap();
    let run = analyzer(&[
        "diff",
        rec.to_str().unwrap(),
        damaged.to_str().unwrap(),
        "--fail-on",
        "new-drop",
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
}

/// Chain names with a terminal escape and a newline (in the nftrace
/// segment and the ruleset snapshots): every output for people shows
/// them, none sends them.
fn escapes_are_shown_not_sent(rec: &Path) {
    let dir = copy(rec, "escapes");
    let evil = "\u{1b}[31mevil\nFORGED line";
    // pyarrow writes min/max statistics, which the recorder does not: a
    // file another tool rewrote (DataFusion once failed on those).
    let script = r#"
import sys, pyarrow as pa, pyarrow.parquet as pq
path, evil = sys.argv[1], sys.argv[2]
t = pq.read_table(path)
i = t.schema.get_field_index("chain")
f = t.schema.field(i)
col = pa.array([evil] * t.num_rows, type=pa.string()).cast(f.type)
pq.write_table(t.set_column(i, f, col), path, compression="zstd")
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(dir.join("nftrace-000001.parquet"))
        .arg(evil)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.starts_with("ruleset-") && name.ends_with(".json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let escaped = serde_json::to_string(evil).unwrap();
            let text = text.replace("\"name\": \"input\"", &format!("\"name\": {escaped}"));
            std::fs::write(&path, text).unwrap();
        }
    }
    let d = dir.to_str().unwrap();
    let r = rec.to_str().unwrap();
    // (command, whether it prints chain names)
    for (args, names) in [
        (vec!["traces", d, "--format", "table"], true),
        (vec!["stats", d], false),
        (vec!["sql", d, "SELECT chain FROM nftrace"], true),
        (vec!["sql", d, "SELECT chain FROM chains"], true),
        (vec!["diff", r, d], true),
        (vec!["diff", r, d, "--format", "markdown"], true),
    ] {
        let run = analyzer(&args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert!(
            !names || run.stdout.contains("evil"),
            "{args:?}: the name is shown: {}",
            run.stdout
        );
        for out in [&run.stdout, &run.stderr] {
            assert!(!out.contains('\u{1b}'), "{args:?}: an escape sent: {out}");
            assert!(
                !out.lines().any(|l| l.starts_with("FORGED")),
                "{args:?}: a line forged: {out}"
            );
        }
    }
}
