//! The binary's behaviour on bad input and its output formats: clear errors
//! and exit codes, never a panic.

mod common;

use std::process::{Command, Output};

use common::*;

fn analyzer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nft-analyzer"))
        .args(args)
        .output()
        .expect("run nft-analyzer")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture() -> (Fixture, std::path::PathBuf) {
    let mut f = Fixture::new("cli");
    let mut free = tcp(START_NS + 2_000, 0xa0, "skb:kfree_skb", 1);
    free["drop_reason"] = "NETFILTER_DROP".into();
    f.events(&[tcp(START_NS, 0xa0, "net:netif_receive_skb", 1), free]);
    let dir = f.finish();
    (f, dir)
}

#[test]
fn bad_input_is_a_clear_error_with_exit_code_1() {
    let (_f, dir) = fixture();
    let rec = dir.to_str().unwrap();
    for (args, wanted) in [
        (vec!["traces", "/nonexistent/rec"], "is not a recording"),
        (vec!["traces", rec, "--format", "parquet"], "needs --output"),
        (
            vec!["sql", rec, "--query", "nope"],
            "no query named \"nope\"",
        ),
        (vec!["sql", rec, "SELEC 1"], "planning the SQL"),
        (
            vec!["sql", rec, "SELECT nope FROM events"],
            "No field named nope",
        ),
        (vec!["traces", rec, "--timeout", "soon"], "invalid value"),
        (
            vec!["traces", rec, "--memory-limit", "12 parsecs"],
            "unknown unit",
        ),
    ] {
        let o = analyzer(&args);
        let e = stderr(&o);
        assert!(!e.contains("panicked"), "{args:?}: {e}");
        assert!(e.contains(wanted), "{args:?}: {e}");
        // Said once, though DataFusion's errors repeat their causes.
        assert_eq!(e.matches(wanted).count(), 1, "{args:?}: {e}");
        let code = o.status.code().unwrap();
        assert_eq!(code, 2, "{args:?}: exit {code}");
    }
}

#[test]
fn every_output_format_is_readable() {
    let (_f, dir) = fixture();
    let rec = dir.to_str().unwrap();
    let o = analyzer(&[
        "sql",
        rec,
        "SELECT probe, ts_ns FROM events ORDER BY ts_ns",
        "--format",
        "csv",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        [
            "probe,ts_ns",
            &format!("net:netif_receive_skb,{START_NS}"),
            &format!("skb:kfree_skb,{}", START_NS + 2_000),
        ]
    );
    let o = analyzer(&[
        "sql",
        rec,
        "SELECT count(*) AS n FROM events",
        "--format",
        "json",
    ]);
    assert_eq!(String::from_utf8(o.stdout).unwrap().trim(), "{\"n\":2}");

    let o = analyzer(&["traces", rec, "--format", "ndjson"]);
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(line["end"], "dropped");
    assert_eq!(line["skb_addr"], "0xa0");

    let out = dir.join("traces.parquet");
    let o = analyzer(&[
        "traces",
        rec,
        "--format",
        "parquet",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = analyzer(&["queries"]);
    let list = String::from_utf8(o.stdout).unwrap();
    assert!(
        list.contains("drops") && list.contains("trace_events"),
        "{list}"
    );
    // The Parquet traces table reads back in pyarrow.
    let check = format!(
        "import pyarrow.parquet as pq; t = pq.read_table('{}'); \
         print(t.num_rows, t.column('end')[0], t.column('functions_path')[0])",
        out.display()
    );
    let o = Command::new("python3")
        .args(["-c", &check])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "1 dropped ['net:netif_receive_skb', 'skb:kfree_skb']",
        "{}",
        stderr(&o)
    );
}

#[test]
fn sql_without_a_query_reads_statements_from_stdin() {
    use std::io::Write;
    let (_f, dir) = fixture();
    let run = |input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nft-analyzer"))
            .args(["sql", dir.to_str().unwrap(), "--format", "csv"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let o = run("SELECT count(*) AS n\n  FROM events;\nSELECT max(ts_ns) - min(ts_ns) AS span FROM events;\n");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "n\n2\nspan\n2000\n");
    let o = run("SELECT 1 AS one;\nSELEC 2;\nSELECT 3;\n");
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "one\n1\n");
    assert!(stderr(&o).contains("SELEC"), "{}", stderr(&o));
}
