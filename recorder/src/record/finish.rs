//! Step 4 of a recording: stop in reverse and finish. The sources stop
//! first (nftrace's tables at once, then the probes); the last losses are
//! read once nothing can add to them, the ring buffer is drained, the
//! writer closes its segment, and the manifest gets its true end. A step
//! that fails does not skip the ones after it: its error becomes the
//! manifest's `end` (`error: ...`) and the rest still runs.

use std::sync::atomic::Ordering;
use std::time::Instant;

use nft_schema::raw::{PROBE_NFTRACE, PROBE_WRITER};
use nft_schema::tables::values;

use super::pipeline::WriterResult;
use super::run::Running;
use super::session::State;
use super::start::snap_interfaces;
use super::{RecordError, RecordSummary};
use crate::kernel::clock::monotonic_ns;
use crate::writer::dims::{self, LossRow};
use crate::writer::kallsyms::Kallsyms;
use crate::writer::manifest::write_manifest;

fn joined<T, E: std::fmt::Display>(
    what: &str,
    r: std::thread::Result<Result<T, E>>,
    errors: &mut Vec<String>,
) -> Option<T> {
    match r {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            errors.push(e.to_string());
            None
        }
        Err(_) => {
            errors.push(format!("the {what} thread panicked"));
            None
        }
    }
}

/// Losses the userspace side counted: nftrace messages the kernel could
/// not queue, and events that arrived after `--max-bytes`.
fn userspace_losses(r: &mut Running, nftrace_overruns: u64, written: Option<&WriterResult>) {
    let now = monotonic_ns();
    if nftrace_overruns > 0 {
        r.losses.rows.push(LossRow {
            window_start_ns: r.started.manifest.started_ns,
            window_end_ns: now,
            cpu: 0,
            probe_id: PROBE_NFTRACE,
            reason: values::LOSS_NFTRACE_OVERRUN.into(),
            count: nftrace_overruns,
        });
    }
    if let Some(w) = written.filter(|w| w.dropped_after_limit > 0) {
        r.losses.rows.push(LossRow {
            window_start_ns: r.losses.window_start,
            window_end_ns: now,
            cpu: 0,
            probe_id: PROBE_WRITER,
            reason: values::LOSS_MAX_BYTES.into(),
            count: w.dropped_after_limit,
        });
    }
}

/// The side tables written at the end: losses, stacks, interfaces.
fn write_side_tables(r: &mut Running, errors: &mut Vec<String>) -> Option<u64> {
    let dir = r.started.dir.clone();
    if let Err(e) = dims::write_losses(&dir, &r.losses.rows) {
        errors.push(e.to_string());
    }
    let stacks = r.started.stack_map.as_ref().map(|map| {
        let rows = map.rows(Kallsyms::load().as_ref());
        if let Err(e) = dims::write_stacks(&dir, &rows) {
            errors.push(e.to_string());
        }
        rows.iter().filter(|r| r.frame == 0).count() as u64
    });
    let mut rows = std::mem::take(&mut r.started.interface_rows);
    snap_interfaces(&r.started.interface_targets, "stop", &mut rows);
    if let Err(e) = dims::write_interfaces(&dir, &rows) {
        errors.push(e.to_string());
    }
    stacks
}

pub fn finish(mut r: Running, reason: String) -> Result<RecordSummary, RecordError> {
    r.counters.set_state(State::Stopping);
    r.started.reserve.release();
    let mut errors: Vec<String> = Vec::new();
    let detach_start = Instant::now();
    errors.extend(r.started.sources.stop());
    // The tables are gone: another recorder may take these namespaces.
    r.locks.clear();
    // Dropping the object detaches every program; the maps taken out of it
    // (ring buffer, loss counters, stacks) stay readable.
    drop(r.started.obj.take());
    let detach_seconds = detach_start.elapsed().as_secs_f64();
    tracing::info!("stop: sources stopped and probes detached in {detach_seconds:.3} s");
    if let Err(e) = r.losses.sample() {
        errors.push(e.to_string());
    }
    r.drain_stop.store(true, Ordering::Release);
    if let Some(drain) = r.drain.take() {
        joined("drain", drain.join(), &mut errors);
    }
    let written = r
        .writer
        .take()
        .and_then(|w| joined("writer", w.join(), &mut errors));
    tracing::info!(
        "stop: ring buffer drained and segments closed {:.3} s after the stop began",
        detach_start.elapsed().as_secs_f64()
    );
    let overruns = r.started.sources.nftrace.overruns;
    userspace_losses(&mut r, overruns, written.as_ref());
    let stacks = write_side_tables(&mut r, &mut errors);
    let lost = r.losses.total();
    r.counters.lost.store(lost, Ordering::Relaxed);

    let end = match errors.first() {
        Some(e) => format!("{}{e}", values::END_ERROR_PREFIX),
        None => reason,
    };
    for e in errors.iter().skip(1) {
        tracing::error!("also while stopping: {e}");
    }
    let mut m = r.manifest.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(w) = &written {
        m.segments = w.segments.clone();
        m.events = w.rows;
        m.deleted_segments = w.deleted_segments.clone();
    }
    let nftrace = &r.started.sources.nftrace;
    m.nftrace_segments = nftrace.segments.clone();
    m.nftrace_events = nftrace.events;
    m.lost_events = lost;
    m.stopped_ns = Some(monotonic_ns());
    m.detach_seconds = Some(detach_seconds);
    m.stacks = stacks;
    m.end = end.clone();
    m.ended_cleanly = !end.starts_with(values::END_ERROR_PREFIX);
    let result = write_manifest(&r.started.dir, &m);
    r.counters.set_state(State::Stopped);
    result?;
    Ok(RecordSummary {
        dir: r.started.dir.clone(),
        events: m.events,
        lost,
        segments: m.segments.clone(),
        probes_attached: r.started.ledger.attached_count(),
        probes_failed: r.started.ledger.failed_count(),
        end,
    })
}
