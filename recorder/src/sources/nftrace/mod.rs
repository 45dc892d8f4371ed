//! nftrace source: the kernel's own per-rule trace messages, on netlink group
//! NFNLGRP_NFTRACE. Needs nf_tables but no kprobes, so it works where
//! function tracing is locked down. No eBPF side: the kernel does the
//! tracing once the recorder's table (`table.rs`) marks packets.
//!
//! One thread per traced network namespace: it enters the namespace, snaps
//! the ruleset, opens the socket, installs the table, and receives until
//! told to stop; then it removes the table and snaps the ruleset again.

pub mod guard;
pub mod message;
pub mod pcap_match;
pub mod recording;
pub mod socket;
pub mod table;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nft_schema::files::{self, Form, When};

use super::{KernelContext, Source};
use crate::kernel::clock::monotonic_ns;
use crate::kernel::netns::enter_netns;
use crate::writer::nftrace_batch::{nftrace_batch, NftraceRow};
use crate::writer::segments::{write_file_atomically, SegmentError, SegmentWriter};
use pcap_match::TraceFilter;
use socket::NftraceSocket;

pub struct NftraceSource;

impl Source for NftraceSource {
    fn name(&self) -> &'static str {
        "nftrace"
    }

    fn try_on_running_kernel(&self, _kernel: &KernelContext) -> Result<String, String> {
        let sock = NftraceSocket::open()
            .map_err(|e| format!("cannot join netlink group NFNLGRP_NFTRACE: {e}"))?;
        let generation = sock
            .ruleset_generation()
            .map_err(|e| format!("nf_tables does not answer (is nf_tables available?): {e}"))?;
        Ok(format!(
            "joined NFNLGRP_NFTRACE; nf_tables ruleset generation {generation}"
        ))
    }
}

/// One network namespace to trace.
#[derive(Clone, Debug)]
pub struct NftraceTarget {
    /// File name part for the ruleset snapshots (`self` for the recorder's
    /// own namespace).
    pub label: String,
    /// `None`: the recorder's own namespace.
    pub netns_path: Option<PathBuf>,
    pub inode: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum NftraceError {
    #[error("entering network namespace {path}: {source}")]
    Setns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("NFNLGRP_NFTRACE socket: {0}")]
    Socket(std::io::Error),
    #[error(transparent)]
    Table(#[from] table::TableError),
    #[error(transparent)]
    Write(#[from] SegmentError),
    #[error("building the nftrace batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// What one namespace's thread saw.
#[derive(Debug, Default)]
pub struct NftraceStats {
    pub messages: u64,
    /// Messages `--filter` left out.
    pub filtered: u64,
    /// Times the kernel reported ENOBUFS (messages dropped because the
    /// socket buffer was full): each is at least one lost message.
    pub overruns: u64,
    /// A table left by an earlier, killed recorder was removed.
    pub removed_leftover: bool,
    /// When the stop removed the table (kernel monotonic ns).
    pub table_removed_ns: Option<u64>,
}

/// After a stop, queued messages are read for at most this long.
pub const DRAIN_AFTER_STOP: Duration = Duration::from_secs(1);

/// Shared writer of the `nftrace` table.
pub type NftraceWriter = Arc<Mutex<SegmentWriter>>;

/// Saves the ruleset twice: as JSON (structure, handles, counters) and as
/// stateless text (`-s`: counters omitted), whose lines are the rule text
/// the analyzer shows next to a handle. Rendering rule text from the JSON
/// would mean re-implementing nft's printer, so nft prints it here.
fn snapshot(dir: &Path, label: &str, when: When) -> Result<(), NftraceError> {
    for form in Form::BOTH {
        let args = match form {
            Form::Json => &["-j", "-a", "list", "ruleset"][..],
            Form::Text => &["-s", "-a", "list", "ruleset"][..],
        };
        let text = table::nft(args, None)?;
        let path = dir.join(files::ruleset(label, when, form));
        // A disk that fills during the stop snapshot leaves no half file.
        write_file_atomically(&path, text.as_bytes())?;
    }
    Ok(())
}

/// Sets the namespace up and signals `ready` (with the result) before
/// receiving, so `record` knows every table is in place (or why not). The
/// result carries the recorder's own table as `nft -j -a` lists it: the
/// start snapshot is the user's ruleset, taken before the table exists,
/// and the nft hooks see the table's chains too.
pub fn spawn(
    target: NftraceTarget,
    marking: table::Marking,
    dir: PathBuf,
    writer: NftraceWriter,
    flush_interval: Duration,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<Result<String, String>>,
) -> JoinHandle<Result<NftraceStats, NftraceError>> {
    std::thread::Builder::new()
        .name(format!("nft-nftrace-{}", target.label))
        .spawn(move || {
            let setup = || -> Result<(NftraceSocket, bool, String), NftraceError> {
                if let Some(path) = &target.netns_path {
                    enter_netns(path).map_err(|source| NftraceError::Setns {
                        path: path.clone(),
                        source,
                    })?;
                }
                let removed = table::remove()?;
                snapshot(&dir, &target.label, When::Start)?;
                let sock = NftraceSocket::open().map_err(NftraceError::Socket)?;
                table::create(&marking.rules)?;
                let own = table::list_json()?;
                Ok((sock, removed, own))
            };
            let (sock, removed_leftover) = match setup() {
                Ok((sock, removed, own)) => {
                    let _ = ready.send(Ok(own));
                    (sock, removed)
                }
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            let mut stats = NftraceStats {
                removed_leftover,
                ..Default::default()
            };
            let mut filter = marking.expression.as_deref().map(TraceFilter::new);
            let receiving = Receiving {
                target: &target,
                writer: &writer,
                flush_interval,
                stop: &stop,
            };
            let result = receive(&sock, &receiving, filter.as_mut(), &mut stats);
            // Always remove the table, even after an error.
            let removed = table::remove();
            let snapped = snapshot(&dir, &target.label, When::Stop);
            result?;
            removed?;
            snapped?;
            Ok(stats)
        })
        .expect("spawn nftrace thread")
}

/// What one namespace's receive loop works with.
struct Receiving<'a> {
    target: &'a NftraceTarget,
    writer: &'a NftraceWriter,
    flush_interval: Duration,
    stop: &'a AtomicBool,
}

fn receive(
    sock: &NftraceSocket,
    r: &Receiving<'_>,
    mut filter: Option<&mut TraceFilter>,
    stats: &mut NftraceStats,
) -> Result<(), NftraceError> {
    let (target, writer, flush_interval, stop) = (r.target, r.writer, r.flush_interval, r.stop);
    let mut buf = vec![0u8; 256 * 1024];
    let mut rows: Vec<NftraceRow> = Vec::new();
    let mut last_flush = Instant::now();
    let flush = |rows: &mut Vec<NftraceRow>| -> Result<(), NftraceError> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = nftrace_batch(rows)?;
        let mut w = writer.lock().expect("nftrace writer lock");
        w.write(&batch)?;
        w.flush()?;
        if w.parts_full() {
            w.rotate()?;
        }
        rows.clear();
        Ok(())
    };
    // After stop: remove the table at once (no new packet is marked), then
    // drain what the kernel already queued, until a receive times out or
    // for at most `DRAIN_AFTER_STOP` (a user's own `meta nftrace set 1`
    // rules may keep messages coming).
    let mut draining: Option<Instant> = None;
    loop {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                stats.overruns += 1;
                continue;
            }
            Err(e) => return Err(NftraceError::Socket(e)),
        };
        let now = monotonic_ns();
        for event in message::parse_datagram(&buf[..n]) {
            if event.table == table::TABLE {
                continue; // our own marking chains
            }
            if filter.as_mut().is_some_and(|f| !f.keeps(&event)) {
                stats.filtered += 1;
                continue;
            }
            stats.messages += 1;
            rows.push(NftraceRow {
                ts_ns: now,
                netns: target.inode,
                event,
            });
        }
        if last_flush.elapsed() >= flush_interval {
            flush(&mut rows)?;
            last_flush = Instant::now();
        }
        match draining {
            Some(since) if n == 0 || since.elapsed() >= DRAIN_AFTER_STOP => break,
            Some(_) => {}
            None if stop.load(Ordering::Acquire) => {
                table::remove()?;
                stats.table_removed_ns = Some(monotonic_ns());
                draining = Some(Instant::now());
            }
            None => {}
        }
    }
    flush(&mut rows)
}
