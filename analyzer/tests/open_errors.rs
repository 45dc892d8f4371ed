//! Bad input gets a clear error naming the file, never a panic; a damaged
//! or missing part is left out with a warning naming it, the rest is read,
//! and the input is partial; an interrupted recording's damaged open
//! segment gives every row before the damage.

mod common;

use std::path::PathBuf;

use common::*;
use nft_analyzer::catalog::{Catalog, Settings};
use nft_analyzer::queries::Params;

fn open_err(dir: &std::path::Path) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    match rt.block_on(Catalog::open(&[dir.to_path_buf()], &Settings::default())) {
        Ok(_) => panic!("{} opened", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_directory_without_manifest_is_not_a_recording() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open_err(tmp.path());
    assert!(
        e.contains("is not a recording") && e.contains("recording.json"),
        "{e}"
    );
    let e = open_err(&tmp.path().join("missing"));
    assert!(e.contains("is not a recording"), "{e}");
}

#[test]
fn a_newer_schema_version_is_refused_by_name() {
    let mut f = Fixture::new("newer");
    f.manifest.schema_version = nft_schema::SCHEMA_VERSION + 1;
    let dir = f.finish();
    let e = open_err(&dir);
    assert!(e.contains("schema version") && e.contains("newer"), "{e}");
    assert!(e.contains("recording.json"), "{e}");
}

#[test]
fn a_broken_manifest_is_named() {
    let f = Fixture::new("broken");
    let dir = f.finish();
    std::fs::write(dir.join("recording.json"), "{\"schema_version\": 1, ").unwrap();
    let e = open_err(&dir);
    assert!(e.contains("not a valid manifest"), "{e}");
}

/// Opens `dir` (it must open) and returns its warnings and why it is
/// incomplete.
fn open_damaged(dir: &std::path::Path) -> (Vec<String>, Vec<String>) {
    let catalog = open(&[dir]);
    let warnings = catalog.warnings().map(str::to_owned).collect();
    let incomplete = catalog.incomplete().map(str::to_owned).collect();
    (warnings, incomplete)
}

/// Whether one of `lines` says all of `words`.
fn says(lines: &[String], words: &[&str]) -> bool {
    lines.iter().any(|l| words.iter().all(|w| l.contains(w)))
}

/// Two segments of 1 and 2 events.
fn two_segments(name: &str) -> Fixture {
    let mut f = Fixture::new(name);
    f.events(&[tcp(START_NS, 1, "net:netif_receive_skb", 1)]);
    f.events(&[
        tcp(START_NS + 10, 2, "net:netif_receive_skb", 2),
        tcp(START_NS + 20, 3, "net:netif_receive_skb", 3),
    ]);
    f
}

/// A damaged segment is left out, named, and makes the input partial; the
/// rest of the recording is read.
#[test]
fn a_corrupt_segment_is_left_out_and_named() {
    let f = two_segments("corrupt");
    let dir = f.finish();
    let seg = dir.join("events-000001.parquet");
    let bytes = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &bytes[..bytes.len() / 2]).unwrap();
    let (warnings, incomplete) = open_damaged(&dir);
    assert!(
        says(
            &incomplete,
            &["events-000001.parquet", "damaged", "left out"]
        ),
        "{warnings:?}"
    );
    assert!(
        says(
            &incomplete,
            &["hold 2 rows, the manifest counts 3", "1 are missing"]
        ),
        "{incomplete:?}"
    );
    assert_eq!(event_count(&dir), 2);
    let (traces, summary) = run_traces(&[&dir], Params::default());
    assert_eq!(traces.len(), 2);
    assert!(summary.partial);
}

#[test]
fn a_segment_listed_but_missing_is_left_out_and_named() {
    let f = two_segments("missing");
    let dir = f.finish();
    std::fs::remove_file(dir.join("events-000002.parquet")).unwrap();
    let (_, incomplete) = open_damaged(&dir);
    assert!(
        says(&incomplete, &["events-000002.parquet", "missing"]),
        "{incomplete:?}"
    );
    assert_eq!(event_count(&dir), 1);
}

/// Side files after a power loss: an empty part, a truncated stop
/// snapshot, a damaged losses table. Each is left out and named; the
/// events are all read.
#[test]
fn damaged_side_files_leave_the_rest_readable() {
    let mut f = two_segments("side");
    f.ruleset(
        r#"{"nftables": [{"chain": {"family": "inet", "table": "fw", "name": "input", "handle": 1}}]}"#,
        "table inet fw { # handle 7\n}\n",
    );
    let dir = f.finish();
    std::fs::write(dir.join("ruleset-self-stop.json"), "{\"nftables\": [{\"ch").unwrap();
    std::fs::write(dir.join("losses.parquet"), b"").unwrap();
    std::fs::write(dir.join("events-000003.part-000001.parquet"), b"").unwrap();
    let (_, incomplete) = open_damaged(&dir);
    for words in [
        &["ruleset-self-stop.json", "damaged", "stop ruleset"][..],
        &["losses.parquet", "damaged", "losses table is empty"],
        &["events-000003.part-000001.parquet", "damaged"],
    ] {
        assert!(says(&incomplete, words), "{words:?}: {incomplete:?}");
    }
    assert_eq!(event_count(&dir), 3);
    let chains = sql(
        &[&dir],
        "SELECT snapshot, count(*) AS n FROM chains GROUP BY snapshot",
    );
    let text = arrow::util::pretty::pretty_format_batches(&chains)
        .unwrap()
        .to_string();
    assert!(text.contains("start") && !text.contains("stop"), "{text}");
    let losses = sql(&[&dir], "SELECT count(*) AS n FROM losses");
    assert_eq!(losses[0].num_rows(), 1);
}

/// A recording of schema 4 or later keeps no `.arrows` file: one there is
/// not read (arrow-ipc would allocate whatever body length it declares).
#[test]
fn an_arrows_file_in_a_schema_4_recording_is_not_read() {
    let mut f = Fixture::new("arrows4");
    f.events(&[tcp(START_NS, 1, "net:netif_receive_skb", 1)]);
    let dir = f.finish();
    // The review's 16 bytes: a continuation marker and an absurd length.
    let b = [
        0xff, 0xff, 0xff, 0xff, 8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ];
    std::fs::write(dir.join("events-000002.arrows"), b).unwrap();
    let (warnings, incomplete) = open_damaged(&dir);
    assert!(
        says(&warnings, &["events-000002.arrows", "not read"]),
        "{warnings:?}"
    );
    assert!(incomplete.is_empty(), "{incomplete:?}");
    assert_eq!(event_count(&dir), 1);
}

/// An interrupted recording: a closed segment and an open IPC stream whose
/// last batch was cut mid-write.
#[test]
fn a_truncated_open_segment_gives_the_rows_before_the_damage() {
    let mut f = Fixture::new("killed");
    f.events(&[tcp(START_NS, 0x1, "net:netif_receive_skb", 1)]);
    f.manifest.schema_version = nft_schema::files::LAST_SCHEMA_WITH_ARROWS;
    f.manifest.ended_cleanly = false;
    f.manifest.end = "running".into();
    f.manifest.stopped_ns = None;
    let dir = f.finish();
    let schema = nft_schema::tables::events_schema();
    let path: PathBuf = dir.join("events-000002.arrows");
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut w = arrow::ipc::writer::StreamWriter::try_new(file, &schema).unwrap();
        for i in 0..3u64 {
            let rows: Vec<_> = (0..100)
                .map(|j| {
                    tcp(
                        START_NS + i * 1000 + j,
                        0x100 + j,
                        "net:netif_receive_skb",
                        2,
                    )
                })
                .map(|mut r| {
                    for (k, v) in [
                        ("probe_id", 1),
                        ("cpu", 0),
                        ("netns", 1),
                        ("ifindex", 2),
                        ("mark", 0),
                        ("len", 60),
                        ("protocol", 2048),
                    ] {
                        r[k] = v.into();
                    }
                    r["kind"] = "tracepoint".into();
                    r
                })
                .collect();
            w.write(&batch(&schema, &rows)).unwrap();
        }
        w.flush().unwrap();
    }
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 200).unwrap();

    let catalog = open(&[&dir]);
    let warnings: Vec<&str> = catalog.warnings().collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("events-000002.arrows") && w.contains("damaged after 200 rows")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("did not end cleanly")),
        "{warnings:?}"
    );
    let batches = sql(&[&dir], "SELECT count(*) AS n FROM events");
    let n = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(n.contains("| 201 |"), "{n}");
    let (traces, summary) = run_traces(&[&dir], Params::default());
    assert_eq!(traces.len(), 101);
    assert!(summary.partial);
}

/// An interrupted recording of schema 4: the open segment's parts are
/// complete Parquet files and are read, unless their segment exists (the
/// recorder was killed while removing them after the merge).
#[test]
fn the_parts_of_an_open_segment_are_read_once() {
    let mut f = Fixture::new("parts");
    f.events(&[
        tcp(START_NS, 0x1, "net:netif_receive_skb", 1),
        tcp(START_NS + 10, 0x2, "net:netif_receive_skb", 1),
    ]);
    f.manifest.ended_cleanly = false;
    f.manifest.end = "running".into();
    f.manifest.stopped_ns = None;
    let dir = f.finish();
    let segment = dir.join("events-000001.parquet");
    // Leftovers of segment 1, merged already: ignored.
    std::fs::copy(&segment, dir.join("events-000001.part-000001.parquet")).unwrap();
    // Segment 2, open at the kill: two parts, and the part being encoded.
    std::fs::copy(&segment, dir.join("events-000002.part-000001.parquet")).unwrap();
    std::fs::copy(&segment, dir.join("events-000002.part-000002.parquet")).unwrap();
    std::fs::write(dir.join("events-000002.part-000003.parquet.tmp"), b"PAR1").unwrap();
    let catalog = open(&[&dir]);
    let warnings: Vec<&str> = catalog.warnings().collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("open events segment") && w.contains("2 part(s)")),
        "{warnings:?}"
    );
    let batches = sql(&[&dir], "SELECT count(*) AS n FROM events");
    let n = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(n.contains("| 6 |"), "segment 1 and two parts: {n}");
    let (traces, summary) = run_traces(&[&dir], Params::default());
    assert_eq!(
        traces.len(),
        2,
        "copies of an event fall in their packet's trace"
    );
    assert!(summary.partial);
}

/// Paths are taken literally: a recording named `a[1]` reads its own files,
/// not those of `a1` beside it (a glob would match `a1`).
#[test]
fn glob_characters_in_a_recording_path_are_literal() {
    let mut other = Fixture::new("a1");
    other.events(&[
        tcp(START_NS, 1, "net:netif_receive_skb", 1),
        tcp(START_NS + 1, 2, "net:netif_receive_skb", 1),
        tcp(START_NS + 2, 3, "net:netif_receive_skb", 1),
    ]);
    let other_dir = other.finish();
    let mut own = Fixture::new("own");
    own.events(&[tcp(START_NS, 9, "net:netif_receive_skb", 1)]);
    let own_dir = own.finish();
    for name in ["a[1]", "a?", "a*"] {
        let dir = other_dir.parent().unwrap().join(name);
        std::fs::create_dir(&dir).unwrap();
        for entry in std::fs::read_dir(&own_dir).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        let n = event_count(&dir);
        assert_eq!(n, 1, "{name}: read another recording's events");
    }
}

/// Regression (found by benches/report.rs): a path through `..` was
/// refused by object_store ("illegal character sequence").
#[test]
fn a_recording_path_through_dot_dot_is_read() {
    let mut own = Fixture::new("dotdot");
    own.events(&[tcp(START_NS, 9, "net:netif_receive_skb", 1)]);
    let dir = own.finish();
    let name = dir.file_name().unwrap().to_owned();
    let via = dir.join("..").join(&name);
    assert_eq!(event_count(&via), 1);
}

/// `SELECT count(*) FROM events` of one recording.
fn event_count(dir: &std::path::Path) -> i64 {
    let batches = sql(&[dir], "SELECT count(*) AS n FROM events");
    batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0)
}

/// Opens `dir` on another thread: a FIFO read by mistake would block it
/// forever, so a hang is a failure here, not a stuck test.
fn open_within(dir: &std::path::Path) -> Result<Vec<String>, String> {
    let dir = dir.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let r = rt
            .block_on(Catalog::open(&[dir], &Settings::default()))
            .map(|c| c.warnings().map(str::to_owned).collect::<Vec<_>>())
            .map_err(|e| e.to_string());
        let _ = tx.send(r);
    });
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .expect("opening the recording hung")
}

/// Only regular files are read: a manifest that is a symlink or too large
/// is an error saying so; a FIFO or a symlink named like a segment is
/// ignored with a warning (never opened, never followed out).
#[test]
fn symlinks_fifos_and_huge_files_are_not_read() {
    let mut f = Fixture::new("links");
    f.events(&[tcp(START_NS, 1, "net:netif_receive_skb", 1)]);
    let dir = f.finish();
    let outside = dir.parent().unwrap().join("outside.parquet");
    std::fs::copy(dir.join("events-000001.parquet"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("events-000002.parquet")).unwrap();
    let fifo = std::ffi::CString::new(dir.join("events-000003.parquet").to_str().unwrap()).unwrap();
    // SAFETY: a plain mkfifo on a path we own.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let warnings = open_within(&dir).unwrap();
    for name in ["events-000002.parquet", "events-000003.parquet"] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(name) && w.contains("not a regular file")),
            "{name}: {warnings:?}"
        );
    }
    let n = sql(&[&dir], "SELECT count(*) FROM events")[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n, 1, "the linked segment was read");

    // The manifest itself: a symlink, then a 20 GB sparse file.
    let manifest = dir.join("recording.json");
    let real = dir.parent().unwrap().join("real.json");
    std::fs::rename(&manifest, &real).unwrap();
    std::os::unix::fs::symlink(&real, &manifest).unwrap();
    let e = open_within(&dir).unwrap_err();
    assert!(
        e.contains("recording.json") && e.contains("not a regular file"),
        "{e}"
    );
    std::fs::remove_file(&manifest).unwrap();
    let huge = std::fs::File::create(&manifest).unwrap();
    huge.set_len(20 << 30).unwrap();
    let e = open_within(&dir).unwrap_err();
    assert!(e.contains("more than the"), "{e}");
}
