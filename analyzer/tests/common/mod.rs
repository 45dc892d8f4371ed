//! Hand-built recordings for the analyzer's tests: rows given as JSON
//! objects (only the columns that matter; the rest take defaults or null),
//! written as real zstd Parquet files with the schema crate's schemas.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use nft_analyzer::catalog::{Catalog, Settings};
use nft_analyzer::queries::Params;
use nft_analyzer::traces::model::{Summary, Trace};
use nft_analyzer::traces::sinks::Sink;
use nft_analyzer::traces::{self, Engine, Filter, Options};
use nft_schema::manifest::{Manifest, MANIFEST_FILE};
use nft_schema::tables;
use parquet::arrow::ArrowWriter;
use serde_json::{json, Value};

/// A recording directory being built.
pub struct Fixture {
    pub dir: PathBuf,
    pub manifest: Manifest,
    _tmp: tempfile::TempDir,
}

pub const START_NS: u64 = 1_000_000_000_000;
pub const STOP_NS: u64 = START_NS + 60_000_000_000;

impl Fixture {
    pub fn new(name: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let manifest = Manifest {
            schema_version: nft_schema::SCHEMA_VERSION,
            tool_version: "test".into(),
            host: "fixture".into(),
            kernel_release: "6.1.0-test".into(),
            monotonic_to_unix_ns: 0,
            started_ns: START_NS,
            stopped_ns: Some(STOP_NS),
            command_line: vec!["nft-recorder".into(), "record".into()],
            backend: "tracepoint".into(),
            end: "duration".into(),
            ended_cleanly: true,
            ..Manifest::default()
        };
        let f = Self {
            dir,
            manifest,
            _tmp: tmp,
        };
        for (table, schema) in [
            (tables::names::PROBES, tables::probes_schema()),
            (tables::names::DROP_REASONS, tables::drop_reasons_schema()),
            (tables::names::LOSSES, tables::losses_schema()),
            (tables::names::INTERFACES, tables::interfaces_schema()),
        ] {
            f.write_parquet(&format!("{table}.parquet"), &schema, &[]);
        }
        f
    }

    /// Writes `rows` as `file` with `schema`.
    pub fn write_parquet(&self, file: &str, schema: &SchemaRef, rows: &[Value]) {
        let batch = batch(schema, rows);
        let out = std::fs::File::create(self.dir.join(file)).unwrap();
        let mut w = ArrowWriter::try_new(out, schema.clone(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    /// Adds an events segment.
    pub fn events(&mut self, rows: &[Value]) -> &mut Self {
        let n = self.manifest.segments.len() + 1;
        let name = format!("events-{n:06}.parquet");
        let rows: Vec<Value> = rows.iter().map(event_defaults).collect();
        self.write_parquet(&name, &tables::events_schema(), &rows);
        self.manifest.segments.push(name);
        self.manifest.events += rows.len() as u64;
        self
    }

    /// Adds an nftrace segment.
    pub fn nftrace(&mut self, rows: &[Value]) -> &mut Self {
        let n = self.manifest.nftrace_segments.len() + 1;
        let name = format!("nftrace-{n:06}.parquet");
        self.write_parquet(&name, &tables::nftrace_schema(), rows);
        self.manifest.nftrace_segments.push(name);
        self.manifest.nftrace_events += rows.len() as u64;
        self
    }

    pub fn losses(&mut self, rows: &[Value]) -> &mut Self {
        self.write_parquet("losses.parquet", &tables::losses_schema(), rows);
        self.manifest.lost_events += rows
            .iter()
            .map(|r| r["count"].as_u64().unwrap())
            .sum::<u64>();
        self
    }

    /// A ruleset snapshot pair (JSON and text) for the recorder's own
    /// namespace.
    pub fn ruleset(&mut self, json: &str, text: &str) -> &mut Self {
        for when in ["start", "stop"] {
            for (ext, body) in [("json", json), ("nft", text)] {
                let name = format!("ruleset-self-{when}.{ext}");
                std::fs::write(self.dir.join(&name), body).unwrap();
                self.manifest.rulesets.push(name);
            }
        }
        self
    }

    /// Writes the manifest; the recording is then complete.
    pub fn finish(&self) -> PathBuf {
        std::fs::write(
            self.dir.join(MANIFEST_FILE),
            self.manifest.to_json().unwrap(),
        )
        .unwrap();
        self.dir.clone()
    }
}

/// Non-nullable event columns a test does not care about.
fn event_defaults(row: &Value) -> Value {
    let mut r = json!({
        "probe_id": 1, "kind": "tracepoint", "cpu": 0, "netns": 4026531840u64,
        "ifindex": 2, "mark": 0, "len": 84, "protocol": 2048
    });
    for (k, v) in row.as_object().unwrap() {
        r[k] = v.clone();
    }
    if r.get("nft_event").is_some() {
        r["kind"] = json!("nft");
    }
    r
}

/// Rows decoded with strings in place of dictionaries (the JSON reader
/// has none), then cast to `schema`.
pub fn batch(schema: &SchemaRef, rows: &[Value]) -> RecordBatch {
    use arrow::datatypes::{DataType, Schema};
    let plain = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Dictionary(_, v) => f.as_ref().clone().with_data_type(*v.clone()),
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ));
    let mut decoder = arrow::json::ReaderBuilder::new(plain.clone())
        .build_decoder()
        .unwrap();
    decoder.serialize(rows).unwrap();
    let decoded = decoder
        .flush()
        .unwrap()
        .unwrap_or_else(|| RecordBatch::new_empty(plain));
    let columns = decoded
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| arrow::compute::cast(c, f.data_type()).unwrap())
        .collect();
    RecordBatch::try_new(schema.clone(), columns).unwrap()
}

/// An IPv4 TCP event.
pub fn tcp(ts: u64, skb: u64, probe: &str, ip_id: u16) -> Value {
    json!({"ts_ns": ts, "skb": skb, "probe": probe, "ip_version": 4,
           "saddr": "10.0.0.1", "daddr": "10.0.0.2", "l4_proto": 6,
           "sport": 40000, "dport": 80, "ip_id": ip_id})
}

/// Collects traces.
#[derive(Default)]
pub struct Collect(pub Vec<Trace>);

impl Sink for Collect {
    fn trace(&mut self, t: Trace) -> std::io::Result<()> {
        self.0.push(t);
        Ok(())
    }
    fn finish(&mut self, _: &Summary) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn open(dirs: &[&Path]) -> Catalog {
    let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(Catalog::open(&dirs, &Settings::default()))
        .unwrap()
}

/// Runs `traces` on the recordings with both engines, checks that they
/// give the same traces and summary (the streaming engine against the SQL
/// that defines traces), and returns the traces and summary.
pub fn run_traces(dirs: &[&Path], params: Params) -> (Vec<Trace>, Summary) {
    let stream = run_traces_with(
        dirs,
        Options {
            params,
            engine: Engine::Stream,
        },
    );
    let sql = run_traces_with(
        dirs,
        Options {
            params,
            engine: Engine::Sql,
        },
    );
    assert_eq!(
        stream.0.len(),
        sql.0.len(),
        "trace counts of the two engines"
    );
    for (i, (a, b)) in stream.0.iter().zip(&sql.0).enumerate() {
        assert_eq!(
            a, b,
            "trace {i}: streaming engine (left) vs SQL engine (right)"
        );
    }
    assert_eq!(stream.1, sql.1, "summaries: streaming vs SQL");
    stream
}

/// Runs `traces` with the engine `options` names.
pub fn run_traces_with(dirs: &[&Path], options: Options) -> (Vec<Trace>, Summary) {
    let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let catalog = Catalog::open(&dirs, &Settings::default()).await.unwrap();
        let mut sink = Collect::default();
        let hidden = indicatif::ProgressBar::hidden();
        let summary = traces::run(&catalog, &options, &Filter::default(), &mut sink, &hidden)
            .await
            .unwrap();
        (sink.0, summary)
    })
}

pub fn sql(dirs: &[&Path], query: &str) -> Vec<RecordBatch> {
    let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let catalog = Catalog::open(&dirs, &Settings::default()).await.unwrap();
        catalog
            .ctx
            .sql(query)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
    })
}

pub fn arc<T>(t: T) -> Arc<T> {
    Arc::new(t)
}

/// Runs `diff` on two recordings and returns its report.
pub fn run_diff(
    base: &Path,
    new: &Path,
    tolerances: &nft_analyzer::diff::Tolerances,
) -> nft_analyzer::diff::Report {
    let dirs = [base.to_path_buf(), new.to_path_buf()];
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let catalog = Catalog::open(&dirs, &Settings::default()).await.unwrap();
        let hidden = indicatif::ProgressBar::hidden();
        nft_analyzer::diff::run(&catalog, &Options::default(), tolerances, false, &hidden)
            .await
            .unwrap()
    })
}
