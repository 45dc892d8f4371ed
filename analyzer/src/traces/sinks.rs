//! Where traces go: a JSON document in the seed's shape (streamed, never
//! held in memory), NDJSON (one trace per line), a readable table, or a
//! Parquet `traces` table for further SQL.

use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow::array::{
    ArrayRef, ListBuilder, RecordBatch, StringArray, StringBuilder, UInt16Array, UInt32Array,
    UInt64Array,
};
use nft_schema::tables::traces_schema;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::model::{Summary, Trace};
use crate::escape::Shown;

/// Receives traces in output order (by value: a sink that keeps them
/// takes them without a copy).
pub trait Sink {
    fn trace(&mut self, t: Trace) -> std::io::Result<()>;
    /// Called once after the last trace.
    fn finish(&mut self, summary: &Summary) -> std::io::Result<()>;
}

/// `tcp 10.0.0.1:40000 > 10.0.0.2:80` (ports only for TCP/UDP).
pub fn flow_text(t: &Trace) -> String {
    let p = &t.packet_info;
    flow_text_with_ports(
        t,
        p.src_port.map(|v| v.to_string()),
        p.dst_port.map(|v| v.to_string()),
    )
}

/// [`flow_text`] with the ports shown as given (`diff` shows an ephemeral
/// one as `*`).
pub fn flow_text_with_ports(t: &Trace, sport: Option<String>, dport: Option<String>) -> String {
    let p = &t.packet_info;
    let proto = p.protocol.as_deref().unwrap_or("-");
    let end = |ip: &Option<Arc<str>>, port: Option<String>| {
        let ip = ip.as_deref().unwrap_or("?");
        match port {
            Some(port) if ip.contains(':') => format!("[{ip}]:{port}"),
            Some(port) => format!("{ip}:{port}"),
            None => ip.to_owned(),
        }
    };
    if p.ip_version.is_none() {
        return "non-ip".into();
    }
    format!(
        "{proto} {} > {}",
        end(&p.src_ip, sport),
        end(&p.dst_ip, dport)
    )
}

/// The seed's document: `{"session_id", "mode", "traces": [...]}` plus our
/// `summary`, streamed trace by trace.
pub struct JsonSink<W: Write> {
    out: W,
    first: bool,
}

impl<W: Write> JsonSink<W> {
    pub fn new(mut out: W, session_id: &str, mode: &str) -> std::io::Result<Self> {
        write!(
            out,
            "{{\"session_id\":{},\"mode\":{},\"traces\":[",
            serde_json::to_string(session_id)?,
            serde_json::to_string(mode)?
        )?;
        Ok(Self { out, first: true })
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn trace(&mut self, t: Trace) -> std::io::Result<()> {
        if !self.first {
            self.out.write_all(b",")?;
        }
        self.first = false;
        self.out.write_all(b"\n")?;
        serde_json::to_writer(&mut self.out, &t)?;
        Ok(())
    }

    fn finish(&mut self, summary: &Summary) -> std::io::Result<()> {
        write!(self.out, "\n],\"summary\":")?;
        serde_json::to_writer(&mut self.out, summary)?;
        writeln!(self.out, "}}")?;
        self.out.flush()
    }
}

/// One trace per line; the summary goes to stderr.
pub struct NdjsonSink<W: Write>(pub W);

impl<W: Write> Sink for NdjsonSink<W> {
    fn trace(&mut self, t: Trace) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.0, &t)?;
        self.0.write_all(b"\n")
    }

    fn finish(&mut self, summary: &Summary) -> std::io::Result<()> {
        self.0.flush()?;
        eprintln!("{}", summary_line(summary));
        Ok(())
    }
}

/// A line per trace for people.
pub struct TableSink<W: Write> {
    out: W,
    header: bool,
}

impl<W: Write> TableSink<W> {
    pub fn new(out: W) -> Self {
        Self { out, header: false }
    }
}

impl<W: Write> Sink for TableSink<W> {
    fn trace(&mut self, t: Trace) -> std::io::Result<()> {
        if !self.header {
            self.header = true;
            writeln!(
                self.out,
                "{:>6}  {:<18}  {:>10}  {:<9}  {:<7}  {:<44}  {:>5}  {:>5}  detail",
                "trace", "skb", "dur_us", "end", "verdict", "flow", "funcs", "rules"
            )?;
        }
        let mut detail = Vec::new();
        if let Some(r) = &t.drop_reason {
            detail.push(format!(
                "{r} at {}",
                t.drop_location.as_deref().unwrap_or("?")
            ));
        }
        if let Some(last) = t
            .nft_events
            .iter()
            .rev()
            .find(|e| &*e.kind != "chain_entry" && e.verdict.is_some())
        {
            detail.push(format!(
                "{}/{}{} {}{}",
                last.table.as_deref().unwrap_or("?"),
                last.chain.as_deref().unwrap_or("?"),
                last.rule_handle
                    .map(|h| format!("#{h}"))
                    .unwrap_or_default(),
                last.verdict.as_deref().unwrap_or(""),
                last.rule_text
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
            ));
        }
        for f in &t.flags {
            detail.push((*f).to_owned());
        }
        writeln!(
            self.out,
            "{:>6}  {:<18}  {:>10.3}  {:<9}  {:<7}  {:<44}  {:>5}  {:>5}  {}",
            t.trace_id,
            t.skb_addr,
            t.duration_ns as f64 / 1000.0,
            t.end,
            Shown(t.stats.final_verdict.as_deref().unwrap_or("-")),
            Shown(&flow_text(&t)),
            t.stats.total_functions,
            t.stats.total_rules_evaluated,
            Shown(&detail.join("; "))
        )
    }

    fn finish(&mut self, summary: &Summary) -> std::io::Result<()> {
        writeln!(self.out, "{}", summary_line(summary))?;
        for w in &summary.warnings {
            writeln!(self.out, "warning: {}", Shown(w))?;
        }
        self.out.flush()
    }
}

pub fn summary_line(s: &Summary) -> String {
    format!(
        "{} traces ({} written) from {} events; {} duplicate verdicts removed; {} in flight; \
         {} incomplete due to loss; nftrace: {} attached, {} unmatched{}",
        s.traces,
        s.traces_written,
        s.events,
        s.duplicates_removed,
        s.in_flight,
        s.incomplete_due_to_loss,
        s.nftrace_attached,
        s.nftrace_unmatched,
        if s.partial {
            "; PARTIAL: see warnings"
        } else {
            ""
        }
    )
}

/// The `traces` table as zstd Parquet, written in batches. Shaping and
/// encoding run on a thread of their own, so they overlap with building
/// the traces (the bounded channel holds at most two batches).
pub struct ParquetSink {
    pending: Vec<Trace>,
    tx: Option<SyncSender<Vec<Trace>>>,
    worker: Option<JoinHandle<std::io::Result<()>>>,
}

const PARQUET_BATCH: usize = 8192;

impl ParquetSink {
    pub fn new<W: Write + Send + 'static>(out: W) -> Result<Self, parquet::errors::ParquetError> {
        // zstd 1 and no min/max statistics (which compare every string of
        // the path lists): the encoder thread is a third of `traces`' CPU,
        // and the traces table is read whole, not pruned.
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
            .set_statistics_enabled(EnabledStatistics::None)
            .build();
        let mut writer = ArrowWriter::try_new(out, traces_schema(), Some(props))?;
        let (tx, rx) = sync_channel::<Vec<Trace>>(2);
        let worker = std::thread::Builder::new()
            .name("traces-parquet".into())
            .spawn(move || {
                for traces in rx {
                    let batch = traces_batch(&traces).map_err(std::io::Error::other)?;
                    writer.write(&batch).map_err(std::io::Error::other)?;
                }
                writer.close().map_err(std::io::Error::other)?;
                Ok(())
            })?;
        Ok(Self {
            pending: Vec::with_capacity(PARQUET_BATCH),
            tx: Some(tx),
            worker: Some(worker),
        })
    }

    /// Hands the pending traces to the encoder; a failed encoder's error.
    fn flush(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(PARQUET_BATCH));
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(batch).is_ok());
        if sent {
            Ok(())
        } else {
            self.join()
        }
    }

    /// Waits for the encoder to finish writing.
    fn join(&mut self) -> std::io::Result<()> {
        self.tx = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(std::io::Error::other("the Parquet encoder panicked")),
            None => Ok(()),
        }
    }
}

impl Sink for ParquetSink {
    fn trace(&mut self, t: Trace) -> std::io::Result<()> {
        self.pending.push(t);
        if self.pending.len() >= PARQUET_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self, summary: &Summary) -> std::io::Result<()> {
        self.flush()?;
        self.join()?;
        eprintln!("{}", summary_line(summary));
        Ok(())
    }
}

fn traces_batch(traces: &[Trace]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let strs = |f: &dyn Fn(&Trace) -> Option<&str>| -> ArrayRef {
        Arc::new(StringArray::from_iter(traces.iter().map(f)))
    };
    let u64s = |f: &dyn Fn(&Trace) -> u64| -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(traces.iter().map(f)))
    };
    let lists = |f: &dyn Fn(&Trace) -> Vec<std::borrow::Cow<str>>| -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new());
        for t in traces {
            for item in f(t) {
                b.values().append_value(item);
            }
            b.append(true);
        }
        Arc::new(b.finish())
    };
    let ports = |f: &dyn Fn(&Trace) -> Option<u16>| -> ArrayRef {
        Arc::new(UInt16Array::from_iter(traces.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        strs(&|t| Some(t.recording.as_str())),
        u64s(&|t| t.trace_id),
        u64s(&|t| u64::from_str_radix(t.skb_addr.trim_start_matches("0x"), 16).unwrap_or(0)),
        u64s(&|t| t.first_seen_ns),
        u64s(&|t| t.duration_ns),
        strs(&|t| Some(t.end)),
        strs(&|t| t.stats.final_verdict.as_deref()),
        strs(&|t| t.drop_reason.as_deref()),
        strs(&|t| t.drop_location.as_deref()),
        lists(&|t| t.flags.iter().map(|f| (*f).into()).collect()),
        lists(&|t| t.functions_path.iter().map(|f| (**f).into()).collect()),
        lists(&|t| {
            t.nft_events
                .iter()
                .map(|e| {
                    format!(
                        "{} {}/{}{} {}",
                        e.kind,
                        e.table.as_deref().unwrap_or("?"),
                        e.chain.as_deref().unwrap_or("?"),
                        e.rule_handle.map(|h| format!("#{h}")).unwrap_or_default(),
                        e.verdict.as_deref().unwrap_or("")
                    )
                    .trim_end()
                    .to_owned()
                    .into()
                })
                .collect()
        }),
        Arc::new(UInt32Array::from_iter_values(
            traces.iter().map(|t| t.stats.total_functions as u32),
        )),
        Arc::new(UInt32Array::from_iter_values(
            traces.iter().map(|t| t.stats.total_rules_evaluated as u32),
        )),
        u64s(&|t| t.duplicates_removed),
        strs(&|t| t.packet_info.protocol.as_deref()),
        strs(&|t| t.packet_info.src_ip.as_deref()),
        ports(&|t| t.packet_info.src_port),
        strs(&|t| t.packet_info.dst_ip.as_deref()),
        ports(&|t| t.packet_info.dst_port),
        ports(&|t| t.packet_info.ip_id),
    ];
    RecordBatch::try_new(traces_schema(), columns)
}
