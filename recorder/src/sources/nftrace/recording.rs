//! The nftrace source's part in one recording: one receive thread per
//! namespace (`spawn`), the teardown guard over their tables, and the
//! shared writer of the `nftrace` table. Stopping asks every thread to
//! remove its table at once, waits for the bounded drain, and closes the
//! table's segments.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nft_schema::files::{self, Form, When};

use super::guard::TableGuard;
use super::table::Marking;
use super::{spawn, NftraceError, NftraceStats, NftraceTarget, NftraceWriter};
use crate::sources::{SessionSource, StartContext, StartError};
use crate::writer::segments::{SegmentError, SegmentWriter};

/// A namespace that does not set up within this long is given up on.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

pub struct NftraceRecording {
    targets: Vec<NftraceTarget>,
    marking: Marking,
    dir: PathBuf,
    flush_interval: Duration,
    writer: NftraceWriter,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<NftraceStats, NftraceError>>>,
    guard: Option<TableGuard>,
    /// Ruleset snapshot files of the namespaces that started.
    pub rulesets: Vec<String>,
    /// After the stop: messages the kernel dropped (ENOBUFS), closed
    /// segments and rows written.
    pub overruns: u64,
    pub segments: Vec<String>,
    pub events: u64,
}

impl NftraceRecording {
    /// `targets` empty: the source is off (`--no-nftrace`).
    pub fn new(
        targets: Vec<NftraceTarget>,
        marking: Marking,
        dir: PathBuf,
        flush_interval: Duration,
    ) -> Self {
        let writer = Arc::new(Mutex::new(SegmentWriter::for_table(
            &dir,
            nft_schema::tables::names::NFTRACE,
            nft_schema::tables::nftrace_schema(),
        )));
        Self {
            targets,
            marking,
            dir,
            flush_interval,
            writer,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            guard: None,
            rulesets: Vec::new(),
            overruns: 0,
            segments: Vec::new(),
            events: 0,
        }
    }

    /// Starts one namespace's thread and waits until its table is in place
    /// (or it says why not).
    fn start_one(
        &mut self,
        target: NftraceTarget,
        ctx: &mut StartContext<'_>,
    ) -> Result<(), StartError> {
        ctx.names
            .nft
            .add_source(target.inode, target.netns_path.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (label, inode) = (target.label.clone(), target.inode);
        self.threads.push(spawn(
            target,
            self.marking.clone(),
            self.dir.clone(),
            self.writer.clone(),
            self.flush_interval,
            self.stop.clone(),
            ready_tx,
        ));
        let probe = format!("nftrace:{label}");
        let since = Instant::now();
        let ready = loop {
            match ready_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(r) => break Ok(r),
                Err(RecvTimeoutError::Timeout) if ctx.stop.requested() => {
                    return Err(StartError::Interrupted)
                }
                Err(RecvTimeoutError::Timeout) if since.elapsed() < READY_TIMEOUT => {}
                Err(_) => break Err(format!("did not start within {READY_TIMEOUT:?}")),
            }
        };
        match ready {
            Ok(Ok(own_table)) => {
                ctx.ledger.started(&probe);
                for when in When::BOTH {
                    for form in Form::BOTH {
                        self.rulesets.push(files::ruleset(&label, when, form));
                    }
                }
                // Names for the nft hooks: the user's ruleset as it was,
                // and the recorder's own table.
                let start = self
                    .dir
                    .join(files::ruleset(&label, When::Start, Form::Json));
                let names = std::fs::read_to_string(&start)
                    .map_err(|e| format!("{}: {e}", start.display()))
                    .and_then(|json| {
                        ctx.names
                            .nft
                            .add_snapshot(inode, &json)
                            .map_err(|e| e.to_string())
                    })
                    .and_then(|()| {
                        ctx.names
                            .nft
                            .add_snapshot(inode, &own_table)
                            .map_err(|e| e.to_string())
                    });
                if let Err(e) = names {
                    tracing::warn!("nft hook names of {label}: {e}");
                }
            }
            Ok(Err(why)) | Err(why) => {
                tracing::warn!("{probe}: {why}");
                ctx.ledger.failed(&probe, why);
            }
        }
        Ok(())
    }

    /// Closes the `nftrace` table; a recording without any message still
    /// gets an (empty) one, so every recording has the same shape.
    fn close_table(&mut self) -> Result<(), SegmentError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if w.closed().is_empty() && !w.is_open() {
            let empty =
                arrow::record_batch::RecordBatch::new_empty(nft_schema::tables::nftrace_schema());
            w.write(&empty)?;
        }
        w.rotate()?;
        self.segments = w.closed();
        self.events = w.rows_written();
        Ok(())
    }
}

impl SessionSource for NftraceRecording {
    fn name(&self) -> &'static str {
        "nftrace"
    }

    fn start(&mut self, ctx: &mut StartContext<'_>) -> Result<(), StartError> {
        if self.targets.is_empty() {
            return Ok(());
        }
        self.guard = Some(TableGuard::new(
            self.targets.iter().map(|t| t.netns_path.clone()).collect(),
        ));
        for target in std::mem::take(&mut self.targets) {
            if ctx.stop.requested() {
                return Err(StartError::Interrupted);
            }
            self.start_one(target, ctx)?;
        }
        Ok(())
    }

    fn stop(&mut self) -> Vec<String> {
        let Some(guard) = self.guard.take() else {
            return Vec::new();
        };
        self.stop.store(true, Ordering::Release);
        let mut errors = Vec::new();
        for handle in self.threads.drain(..) {
            match handle.join() {
                Ok(Ok(stats)) => {
                    self.overruns += stats.overruns;
                    if stats.filtered > 0 {
                        tracing::info!(
                            "nftrace: {} message(s) left out by --filter",
                            stats.filtered
                        );
                    }
                }
                Ok(Err(e)) => errors.push(format!("nftrace: {e}")),
                Err(_) => errors.push("nftrace: a receive thread panicked".into()),
            }
        }
        // Normally nothing is left; after a thread's failure the guard
        // removes its table.
        errors.extend(guard.remove_now());
        drop(guard);
        if let Err(e) = self.close_table() {
            errors.push(format!("nftrace: {e}"));
        }
        errors
    }
}

impl Drop for NftraceRecording {
    /// A recording dropped without its stop (an error or a panic in the
    /// session) still tells the threads to end; the guard removes the
    /// tables.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}
