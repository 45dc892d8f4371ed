//! Benchmark of `nft-analyzer traces` on a synthetic recording at scale
//! (realistic mix: paths of 20–100 hops, rule verdicts with duplicates,
//! drops, address reuse), against DuckDB running the same sessionization
//! SQL on the same files. Run:
//!
//!     cargo bench -p nft-analyzer --bench traces [-- EVENTS]
//!
//! (default 10 M events; the figure is for 100 M; add `--sql-engine`
//! to also time `traces --engine sql`). The recording is generated once
//! into target/bench-recording-EVENTS and reused. Prints events/s and peak
//! RSS of each run; figures go to docs/benchmarks.md.

mod common;

use std::process::Command;

use common::{events_arg, recording, timed};
use nft_analyzer::queries::{self, Params};

fn main() {
    let events = events_arg();
    let dir = recording(events);
    let analyzer = env!("CARGO_BIN_EXE_nft-analyzer");
    let rec = dir.to_str().unwrap();

    // 1. The full traces command, writing the Parquet traces table, with
    //    the streaming engine (the default) and optionally the SQL one.
    let out = std::env::temp_dir().join(format!("nt-bench-traces-{}.parquet", std::process::id()));
    let mut engines = vec!["stream"];
    if std::env::args().any(|a| a == "--sql-engine") {
        engines.push("sql");
    }
    let mut stream_secs = 0.0;
    for engine in engines {
        let (secs, rss, _) = timed(Command::new(analyzer).args([
            "traces",
            rec,
            "--engine",
            engine,
            "--format",
            "parquet",
            "-o",
            out.to_str().unwrap(),
        ]));
        let _ = std::fs::remove_file(&out);
        println!(
            "traces --engine {engine} --format parquet: {secs:.1} s, {:.2} M events/s, peak RSS {rss:.0} MiB",
            events as f64 / secs / 1e6
        );
        if engine == "stream" {
            stream_secs = secs;
        }
    }

    // 2. The sessionization SQL alone, in DataFusion and in DuckDB.
    let sql = Params::default().bind(queries::find("trace_events").unwrap().sql);
    let wrapped = format!(
        "SELECT count(*) AS events, count(DISTINCT skb) AS skbs, max(trace_seq) AS max_seq, \
         sum(CASE WHEN is_dup THEN 1 ELSE 0 END) AS dups FROM ({sql}) t"
    );
    let (df_secs, df_rss, df_out) =
        timed(Command::new(analyzer).args(["sql", rec, &wrapped, "--format", "csv"]));
    println!(
        "sessionization SQL, DataFusion: {df_secs:.1} s, {:.2} M events/s, peak RSS {df_rss:.0} MiB: {}",
        events as f64 / df_secs / 1e6,
        df_out.lines().nth(1).unwrap_or("")
    );
    let script = format!(
        "import duckdb\n\
         con = duckdb.connect()\n\
         con.sql(\"SET memory_limit='1536MB'\")\n\
         con.sql(\"CREATE VIEW events AS SELECT 'r' AS recording, * FROM read_parquet('{rec}/events-*.parquet')\")\n\
         print(con.sql('''{wrapped}''').fetchall())\n"
    );
    let (dk_secs, dk_rss, dk_out) = timed(Command::new("python3").args(["-c", &script]));
    println!(
        "sessionization SQL, DuckDB: {dk_secs:.1} s, {:.2} M events/s, peak RSS {dk_rss:.0} MiB: {}",
        events as f64 / dk_secs / 1e6,
        dk_out.trim()
    );
    println!("DataFusion / DuckDB time ratio: {:.2}", df_secs / dk_secs);
    println!(
        "traces (streaming engine, whole command) / DuckDB sessionization SQL time ratio: {:.3}",
        stream_secs / dk_secs
    );
}
